//! Events of the `Order` aggregate. Each carries the order id, and those a consumer acts on
//! (notifications, the saga, read models) carry the user, lines and amounts too.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CancellationReason, ShippingAddress};
use crate::money::Money;

/// A priced line of a placed order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLineItem {
    /// The product.
    pub product_id: Uuid,
    /// Its name at ordering time.
    pub product_name: String,
    /// Units.
    pub quantity: u32,
    /// Price per unit at ordering time.
    pub unit_price: Money,
    /// `unit_price × quantity`.
    pub subtotal: Money,
}

/// What happened to an `Order`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderEvent {
    /// An order was placed (emitted by `PlaceOrder`); the saga starts reserving stock.
    OrderPlaced {
        /// The order.
        order_id: Uuid,
        /// The customer.
        user_id: Uuid,
        /// Merged, priced lines.
        lines: Vec<OrderLineItem>,
        /// Sum of the subtotals (its currency is the order's).
        total: Money,
        /// Where it ships.
        shipping_address: ShippingAddress,
        /// How the customer intends to pay.
        payment_method: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Stock is reserved for every line (emitted by `MarkStockReserved`).
    OrderStockReserved {
        /// The order.
        order_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// Stock was reserved for an order already cancelled (emitted by `MarkStockReserved`); the
    /// saga must release it.
    OrderStockReservedAfterCancellation {
        /// The order.
        order_id: Uuid,
        /// The lines whose stock to release.
        lines: Vec<OrderLineItem>,
        /// When.
        at: DateTime<Utc>,
    },
    /// Some line's stock could not be reserved (emitted by `MarkStockRejected`).
    OrderStockRejected {
        /// The order.
        order_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// The order's reservations were released (emitted by `MarkStockReleased`).
    OrderStockReleased {
        /// The order.
        order_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// The order's reservations were committed: right after `OrderConfirmed`, in the same
    /// append (older logs: emitted by `MarkStockCommitted`).
    OrderStockCommitted {
        /// The order.
        order_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// A payment is in flight (emitted by `RequestPayment`).
    OrderPaymentRequested {
        /// The order.
        order_id: Uuid,
        /// The payment.
        payment_id: Uuid,
        /// Its amount.
        amount: Money,
        /// When.
        at: DateTime<Utc>,
    },
    /// The order was paid (emitted by `MarkPaid`).
    OrderPaid {
        /// The order.
        order_id: Uuid,
        /// The customer.
        user_id: Uuid,
        /// The payment.
        payment_id: Uuid,
        /// Amount captured.
        amount: Money,
        /// When.
        at: DateTime<Utc>,
    },
    /// A capture landed on a cancelled order (emitted by `MarkPaid`); the saga refunds it.
    OrderPaidAfterCancellation {
        /// The order.
        order_id: Uuid,
        /// The customer.
        user_id: Uuid,
        /// The payment to refund.
        payment_id: Uuid,
        /// Amount captured.
        amount: Money,
        /// When.
        at: DateTime<Utc>,
    },
    /// The in-flight payment failed (emitted by `MarkPaymentFailed`); the order stays payable.
    OrderPaymentFailed {
        /// The order.
        order_id: Uuid,
        /// The customer.
        user_id: Uuid,
        /// The payment.
        payment_id: Uuid,
        /// The gateway's reason.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Paid and stock reserved (emitted by `MarkStockReserved` or `MarkPaid`, whichever is
    /// second); the saga commits stock and the customer is notified.
    OrderConfirmed {
        /// The order.
        order_id: Uuid,
        /// The customer.
        user_id: Uuid,
        /// The order's total.
        total: Money,
        /// The lines (whose stock to commit).
        lines: Vec<OrderLineItem>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The order was cancelled (emitted by `CancelOrder` or `ExpirePayment`). The saga releases
    /// the lines' stock (always: a reservation may still be in flight) and refunds `was_paid`.
    OrderCancelled {
        /// The order.
        order_id: Uuid,
        /// The customer.
        user_id: Uuid,
        /// Why.
        reason: CancellationReason,
        /// The payment to refund, if the order was paid and not fully refunded.
        was_paid: Option<Uuid>,
        /// Whether stock was reserved (and so must be released).
        stock_reserved: bool,
        /// The order's total.
        total: Money,
        /// The lines.
        lines: Vec<OrderLineItem>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The order left the warehouse (emitted by `ShipOrder`).
    OrderShipped {
        /// The order.
        order_id: Uuid,
        /// The customer.
        user_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// The order arrived (emitted by `DeliverOrder`).
    OrderDelivered {
        /// The order.
        order_id: Uuid,
        /// The customer.
        user_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// A refund of one of the order's payments went through (emitted by `RecordRefund`).
    OrderRefunded {
        /// The order.
        order_id: Uuid,
        /// The customer.
        user_id: Uuid,
        /// The refunded payment.
        payment_id: Uuid,
        /// This refund.
        amount: Money,
        /// All refunds of that payment so far.
        total_refunded: Money,
        /// Whether the payment is now refunded in full.
        fully_refunded: bool,
        /// When.
        at: DateTime<Utc>,
    },
}

impl OrderEvent {
    /// When the command behind the event decided it: what the order's `created_at` and
    /// `updated_at` are made of, on the write side and in the read model alike.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::OrderPlaced { at, .. }
            | Self::OrderStockReserved { at, .. }
            | Self::OrderStockReservedAfterCancellation { at, .. }
            | Self::OrderStockRejected { at, .. }
            | Self::OrderStockReleased { at, .. }
            | Self::OrderStockCommitted { at, .. }
            | Self::OrderPaymentRequested { at, .. }
            | Self::OrderPaid { at, .. }
            | Self::OrderPaidAfterCancellation { at, .. }
            | Self::OrderPaymentFailed { at, .. }
            | Self::OrderConfirmed { at, .. }
            | Self::OrderCancelled { at, .. }
            | Self::OrderShipped { at, .. }
            | Self::OrderDelivered { at, .. }
            | Self::OrderRefunded { at, .. } => *at,
        }
    }
}

impl DomainEvent for OrderEvent {
    fn event_type(&self) -> String {
        match self {
            Self::OrderPlaced { .. } => "OrderPlaced",
            Self::OrderStockReserved { .. } => "OrderStockReserved",
            Self::OrderStockReservedAfterCancellation { .. } => {
                "OrderStockReservedAfterCancellation"
            }
            Self::OrderStockRejected { .. } => "OrderStockRejected",
            Self::OrderStockReleased { .. } => "OrderStockReleased",
            Self::OrderStockCommitted { .. } => "OrderStockCommitted",
            Self::OrderPaymentRequested { .. } => "OrderPaymentRequested",
            Self::OrderPaid { .. } => "OrderPaid",
            Self::OrderPaidAfterCancellation { .. } => "OrderPaidAfterCancellation",
            Self::OrderPaymentFailed { .. } => "OrderPaymentFailed",
            Self::OrderConfirmed { .. } => "OrderConfirmed",
            Self::OrderCancelled { .. } => "OrderCancelled",
            Self::OrderShipped { .. } => "OrderShipped",
            Self::OrderDelivered { .. } => "OrderDelivered",
            Self::OrderRefunded { .. } => "OrderRefunded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
