//! Events of the `Cart` aggregate.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::CartClearReason;
use crate::money::Money;

/// What happened to a `Cart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CartEvent {
    /// Units were added to a line, created if needed (emitted by `AddToCart`).
    CartItemAdded {
        /// The cart's owner.
        user_id: Uuid,
        /// The product.
        product_id: Uuid,
        /// Its name (refreshed on the line).
        product_name: String,
        /// Its price (refreshed on the line).
        unit_price: Money,
        /// Units added.
        quantity: u32,
        /// The line's quantity after.
        quantity_after: u32,
        /// The line's subtotal after.
        subtotal: Money,
        /// When.
        at: DateTime<Utc>,
    },
    /// A line's quantity was set (emitted by `SetCartQuantity`).
    CartItemQuantityChanged {
        /// The cart's owner.
        user_id: Uuid,
        /// The product.
        product_id: Uuid,
        /// Quantity before.
        quantity_before: u32,
        /// Quantity after.
        quantity: u32,
        /// The line's subtotal after.
        subtotal: Money,
        /// When.
        at: DateTime<Utc>,
    },
    /// A line was removed (emitted by `RemoveFromCart`).
    CartItemRemoved {
        /// The cart's owner.
        user_id: Uuid,
        /// The product.
        product_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// The cart was emptied (emitted by `ClearCart`).
    CartCleared {
        /// The cart's owner.
        user_id: Uuid,
        /// Why.
        reason: CartClearReason,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for CartEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CartItemAdded { .. } => "CartItemAdded",
            Self::CartItemQuantityChanged { .. } => "CartItemQuantityChanged",
            Self::CartItemRemoved { .. } => "CartItemRemoved",
            Self::CartCleared { .. } => "CartCleared",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
