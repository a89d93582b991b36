//! Events of the `Payment` aggregate.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Money;

/// What happened to a `Payment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PaymentEvent {
    /// The gateway took the money (emitted by `CapturePayment`); the saga marks the order paid.
    PaymentCaptured {
        /// The payment.
        payment_id: Uuid,
        /// The order paid.
        order_id: Uuid,
        /// The payer.
        user_id: Uuid,
        /// Amount captured.
        amount: Money,
        /// Method name.
        method: String,
        /// The gateway's reference.
        gateway_transaction_id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// The gateway refused (emitted by `CapturePayment`); the saga tells the order.
    PaymentFailed {
        /// The payment.
        payment_id: Uuid,
        /// The order.
        order_id: Uuid,
        /// The payer.
        user_id: Uuid,
        /// Amount attempted.
        amount: Money,
        /// Method name.
        method: String,
        /// The gateway's reason.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// Money was given back (emitted by `RefundPayment`); the saga records it on the order.
    PaymentRefunded {
        /// The payment.
        payment_id: Uuid,
        /// The order.
        order_id: Uuid,
        /// The payer.
        user_id: Uuid,
        /// This refund's id.
        refund_id: Uuid,
        /// This refund.
        amount: Money,
        /// All refunds so far, this one included.
        total_refunded: Money,
        /// Whether the whole capture is now refunded.
        fully_refunded: bool,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for PaymentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PaymentCaptured { .. } => "PaymentCaptured",
            Self::PaymentFailed { .. } => "PaymentFailed",
            Self::PaymentRefunded { .. } => "PaymentRefunded",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
