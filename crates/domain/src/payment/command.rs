//! Commands accepted by the `Payment` aggregate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Money;

/// What the payment gateway answered; the command layer calls the gateway and puts the answer
/// here, keeping the aggregate pure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GatewayOutcome {
    /// The gateway took the money.
    Approved {
        /// The gateway's reference.
        transaction_id: String,
    },
    /// The gateway refused.
    Declined {
        /// The gateway's reason.
        reason: String,
    },
}

/// What can be asked of a `Payment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PaymentCommand {
    /// Record a gateway capture for an order. Preconditions: this payment id was never
    /// processed (a payment is captured at most once); amount not negative; method 1..=50
    /// characters. Emits `PaymentCaptured` or `PaymentFailed` according to the outcome.
    CapturePayment {
        /// The payment's id.
        payment_id: Uuid,
        /// The order paid.
        order_id: Uuid,
        /// The payer.
        user_id: Uuid,
        /// The order's total.
        amount: Money,
        /// Method name (e.g. `card`).
        method: String,
        /// Saved method or gateway token used, if any.
        payment_method_id: Option<String>,
        /// The gateway's answer.
        outcome: GatewayOutcome,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Refund part or all of a captured payment. Preconditions: captured; amount positive, in
    /// the payment's currency, within what remains refundable; reason at most 500 characters.
    /// Emits `PaymentRefunded`; a `refund_id` seen before emits nothing.
    RefundPayment {
        /// Idempotency key of this refund.
        refund_id: Uuid,
        /// Amount to give back.
        amount: Money,
        /// Why.
        reason: String,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Client-side confirmation: succeeds without events for a completed payment; a failed or
    /// refunded payment is never revived.
    ConfirmPayment {
        /// When it happened.
        at: DateTime<Utc>,
    },
}
