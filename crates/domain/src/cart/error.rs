//! Errors of the `Cart` aggregate.

use thiserror::Error;
use uuid::Uuid;

use crate::error::{DomainError, ErrorKind};
use crate::money::{Currency, Money};

/// Why a `Cart` command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CartError {
    /// The cart has no line for this product.
    #[error("product {product_id} is not in the cart")]
    LineNotFound {
        /// The product asked for.
        product_id: Uuid,
    },
    /// A line holds 1..=1000 units.
    #[error("quantity must be between 1 and 1000, got {quantity}")]
    QuantityOutOfRange {
        /// The quantity asked for (for an add: the line's total).
        quantity: u64,
    },
    /// A cart holds at most 100 lines.
    #[error("a cart holds at most 100 lines")]
    TooManyLines,
    /// A cart holds one currency.
    #[error("cart is in {cart}, product priced in {given}")]
    CurrencyMismatch {
        /// The cart's currency.
        cart: Currency,
        /// The price's currency.
        given: Currency,
    },
    /// A price is never negative.
    #[error("price must not be negative, got {} minor units", price.amount_minor)]
    NegativePrice {
        /// The price given.
        price: Money,
    },
    /// A product name has 1..=200 characters.
    #[error("product name must have 1 to 200 characters")]
    InvalidProductName,
    /// A cart belongs to the user it is keyed by.
    #[error("cart of user {expected} addressed as user {given}")]
    UserMismatch {
        /// The cart's owner.
        expected: Uuid,
        /// The user in the command.
        given: Uuid,
    },
    /// A line subtotal fits in 64-bit minor units.
    #[error("amount overflow")]
    Overflow,
}

impl DomainError for CartError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::LineNotFound { .. } => ErrorKind::NotFound,
            // What the cart holds already decides these (a line's total past 1000 units, a 101st
            // line, a second currency): conflicts with its state. The API refuses a request's
            // own quantity outside 1..=1000 with a 400 before the cart sees it.
            Self::QuantityOutOfRange { .. }
            | Self::TooManyLines
            | Self::CurrencyMismatch { .. } => ErrorKind::Conflict,
            Self::NegativePrice { .. }
            | Self::InvalidProductName
            | Self::UserMismatch { .. }
            | Self::Overflow => ErrorKind::Invalid,
        }
    }
}
