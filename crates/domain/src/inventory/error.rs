//! Errors of the `Inventory` aggregate. A shortage during a reservation is not an error but the
//! `StockReservationRejected` event, because the saga must react to it.

use thiserror::Error;
use uuid::Uuid;

use crate::error::{DomainError, ErrorKind};

/// Why an `Inventory` command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InventoryError {
    /// Committing needs an inventory created by a first `AdjustStock`.
    #[error("inventory not found")]
    NotFound,
    /// The command's product id must be the inventory's own.
    #[error("command for product {given} sent to the inventory of product {expected}")]
    ProductMismatch {
        /// The inventory's product.
        expected: Uuid,
        /// The product in the command.
        given: Uuid,
    },
    /// Available stock never goes below zero.
    #[error("insufficient stock: {requested} requested, {available} available")]
    InsufficientStock {
        /// Units the adjustment takes out.
        requested: i64,
        /// Units available.
        available: i64,
    },
    /// The total on hand never goes below what is reserved for orders.
    #[error("cannot set stock to {requested_total}: {reserved} units are reserved")]
    BelowReserved {
        /// Total asked for.
        requested_total: i64,
        /// Units reserved.
        reserved: i64,
    },
    /// A reservation is for at least one unit.
    #[error("quantity must be at least 1")]
    ZeroQuantity,
    /// Stock levels fit in 64 bits.
    #[error("stock level overflow")]
    Overflow,
    /// A reason has at most 500 characters.
    #[error("reason must have at most 500 characters, got {length}")]
    ReasonTooLong {
        /// Characters given.
        length: usize,
    },
    /// Only an order holding a reservation can commit it.
    #[error("order {order_id} holds no reservation to commit")]
    NoReservation {
        /// The order.
        order_id: Uuid,
    },
}

impl DomainError for InventoryError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            // Overflow depends on the stock there is, as a shortfall does: a conflict with the
            // current state, not a malformed request.
            Self::InsufficientStock { .. }
            | Self::BelowReserved { .. }
            | Self::NoReservation { .. }
            | Self::Overflow => ErrorKind::Conflict,
            Self::ProductMismatch { .. } | Self::ZeroQuantity | Self::ReasonTooLong { .. } => {
                ErrorKind::Invalid
            }
        }
    }
}
