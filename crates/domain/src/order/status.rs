//! The three statuses of an order: lifecycle, stock and payment (serialised in UPPERCASE).

use serde::{Deserialize, Serialize};

use crate::words::status_words;

/// An order's lifecycle status (serialised `PENDING`, `CONFIRMED`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Placed; waiting for stock and payment.
    Pending,
    /// Stock reserved and paid.
    Confirmed,
    /// Left the warehouse.
    Shipped,
    /// Arrived.
    Delivered,
    /// Cancelled before shipping.
    Cancelled,
}

/// Where the order's stock reservation stands (serialised `PENDING`, `RESERVED`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StockStatus {
    /// Reservation not settled yet.
    Pending,
    /// Every line reserved.
    Reserved,
    /// Some line could not be reserved.
    Rejected,
    /// Reservations given back.
    Released,
    /// Reserved stock left with the order.
    Committed,
}

/// Where the order's payment stands (serialised `UNPAID`, `PAID`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderPaymentStatus {
    /// Not paid.
    Unpaid,
    /// Paid in full.
    Paid,
    /// The payment was refunded in full.
    Refunded,
    /// Part of the payment was refunded.
    PartiallyRefunded,
}

status_words!(OrderStatus {
    Pending => "PENDING",
    Confirmed => "CONFIRMED",
    Shipped => "SHIPPED",
    Delivered => "DELIVERED",
    Cancelled => "CANCELLED",
});

status_words!(StockStatus {
    Pending => "PENDING",
    Reserved => "RESERVED",
    Rejected => "REJECTED",
    Released => "RELEASED",
    Committed => "COMMITTED",
});

status_words!(OrderPaymentStatus {
    Unpaid => "UNPAID",
    Paid => "PAID",
    Refunded => "REFUNDED",
    PartiallyRefunded => "PARTIALLY_REFUNDED",
});

impl OrderPaymentStatus {
    /// The order's payment status after a refund of its payment: the rule, for the aggregate and
    /// every read model alike.
    pub const fn after_refund(fully_refunded: bool) -> Self {
        if fully_refunded {
            Self::Refunded
        } else {
            Self::PartiallyRefunded
        }
    }
}
