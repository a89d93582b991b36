//! Commands accepted by the `Cart` aggregate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Money;

/// Why a cart was emptied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CartClearReason {
    /// The customer emptied it.
    UserRequest,
    /// Its lines became an order.
    CheckedOut {
        /// The order placed from the cart.
        order_id: Uuid,
    },
}

/// What can be asked of a `Cart`. Its id is the user id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CartCommand {
    /// Add units of a product (to its existing line, refreshing name and price). Preconditions:
    /// quantity 1..=1000 and the line's new quantity at most 1000, at most 100 lines, price not
    /// negative and in the cart's currency. The command layer checks the product is active and
    /// puts its current name and price here. Emits `CartItemAdded`.
    AddToCart {
        /// The cart's owner (the aggregate id).
        user_id: Uuid,
        /// The product.
        product_id: Uuid,
        /// Its current name.
        product_name: String,
        /// Its current price.
        unit_price: Money,
        /// Units to add.
        quantity: u32,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Set a line's quantity (1..=1000). Emits `CartItemQuantityChanged`, nothing if unchanged;
    /// an absent line is not found.
    SetCartQuantity {
        /// The line's product.
        product_id: Uuid,
        /// The new quantity.
        quantity: u32,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Remove a line. Emits `CartItemRemoved`; an absent line is not found.
    RemoveFromCart {
        /// The line's product.
        product_id: Uuid,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Empty the cart. Emits `CartCleared`; an empty cart emits nothing (safe to redeliver after
    /// checkout).
    ClearCart {
        /// Why.
        reason: CartClearReason,
        /// When it happened.
        at: DateTime<Utc>,
    },
}
