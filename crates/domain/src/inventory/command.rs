//! Commands accepted by the `Inventory` aggregate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// How an `AdjustStock` changes the stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StockAdjustment {
    /// Goods in: `available += n`.
    Add(u32),
    /// Goods out: `available -= n`; never below zero.
    Subtract(u32),
    /// Set the total on hand (available + reserved) to `n`; never below what is reserved.
    Set(u32),
    /// Signed change of `available`; never below zero.
    Delta(i64),
}

/// What can be asked of an `Inventory`. Its id is the product id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum InventoryCommand {
    /// Change the stock level; the first adjustment creates the inventory. Preconditions: the
    /// result keeps `available >= 0` and the total above what is reserved; reason at most 500
    /// characters. Emits `StockAdjusted`.
    AdjustStock {
        /// The product (the aggregate id).
        product_id: Uuid,
        /// The change.
        adjustment: StockAdjustment,
        /// Why, for the movement history.
        reason: Option<String>,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Saga step: hold `quantity` for an order. Emits `StockReserved`, or
    /// `StockReservationRejected` (an event, not an error: the saga reacts to it) when fewer are
    /// available. Idempotent: an order that already reserved, was rejected, released or committed
    /// gets no new events.
    ReserveStock {
        /// The product (the aggregate id).
        product_id: Uuid,
        /// The order asking.
        order_id: Uuid,
        /// Units wanted, at least 1.
        quantity: u32,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Saga step: give an order's reservation back. Emits `StockReleased`; without an active
    /// reservation (already released, committed, never made) emits nothing.
    ReleaseStock {
        /// The product (the aggregate id).
        product_id: Uuid,
        /// The order whose reservation is released.
        order_id: Uuid,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Saga step: the reserved units leave with the order (reserved decreases, available is
    /// unchanged). Emits `StockCommitted`; a second commit emits nothing; an order without a
    /// reservation is a conflict.
    CommitStock {
        /// The product (the aggregate id).
        product_id: Uuid,
        /// The order whose reservation is committed.
        order_id: Uuid,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Saga step: a cancelled order's committed units come back to available stock. Emits
    /// `StockReturned` once per order; a repeat, or an order whose stock was never committed,
    /// emits nothing.
    ReturnStock {
        /// The product (the aggregate id).
        product_id: Uuid,
        /// The cancelled order.
        order_id: Uuid,
        /// Units the order had committed (its line quantity).
        quantity: u32,
        /// When it happened.
        at: DateTime<Utc>,
    },
}
