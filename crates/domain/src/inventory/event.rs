//! Events of the `Inventory` aggregate. Each carries the levels after it, so movement history and
//! stock read models never recompute them.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to an `Inventory`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InventoryEvent {
    /// Stock was adjusted by an operator (emitted by `AdjustStock`).
    StockAdjusted {
        /// The product.
        product_id: Uuid,
        /// Change of `available` (negative for goods out).
        delta: i64,
        /// Available before.
        available_before: i64,
        /// Available after.
        available_after: i64,
        /// Reserved (unchanged by adjustments).
        reserved: i64,
        /// Why, if given.
        reason: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Units were held for an order (emitted by `ReserveStock`).
    StockReserved {
        /// The product.
        product_id: Uuid,
        /// The order holding them.
        order_id: Uuid,
        /// Units held.
        quantity: u32,
        /// Available after.
        available_after: i64,
        /// Reserved after.
        reserved_after: i64,
        /// When.
        at: DateTime<Utc>,
    },
    /// An order asked for more than was available (emitted by `ReserveStock`); the saga cancels
    /// the order.
    StockReservationRejected {
        /// The product.
        product_id: Uuid,
        /// The order refused.
        order_id: Uuid,
        /// Units asked for.
        requested: u32,
        /// Units available at that moment.
        available: i64,
        /// When.
        at: DateTime<Utc>,
    },
    /// An order's reservation went back to available stock (emitted by `ReleaseStock`).
    StockReleased {
        /// The product.
        product_id: Uuid,
        /// The order.
        order_id: Uuid,
        /// Units released.
        quantity: u32,
        /// Available after.
        available_after: i64,
        /// Reserved after.
        reserved_after: i64,
        /// When.
        at: DateTime<Utc>,
    },
    /// An order's reserved units left the warehouse (emitted by `CommitStock`).
    StockCommitted {
        /// The product.
        product_id: Uuid,
        /// The order.
        order_id: Uuid,
        /// Units committed.
        quantity: u32,
        /// Reserved after (available is unchanged).
        reserved_after: i64,
        /// When.
        at: DateTime<Utc>,
    },
    /// A cancelled order's committed units came back (emitted by `ReturnStock`).
    StockReturned {
        /// The product.
        product_id: Uuid,
        /// The order.
        order_id: Uuid,
        /// Units returned.
        quantity: u32,
        /// Available after.
        available_after: i64,
        /// Reserved (unchanged).
        reserved: i64,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for InventoryEvent {
    fn event_type(&self) -> String {
        match self {
            Self::StockAdjusted { .. } => "StockAdjusted",
            Self::StockReserved { .. } => "StockReserved",
            Self::StockReservationRejected { .. } => "StockReservationRejected",
            Self::StockReleased { .. } => "StockReleased",
            Self::StockCommitted { .. } => "StockCommitted",
            Self::StockReturned { .. } => "StockReturned",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
