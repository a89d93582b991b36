//! Errors of the `Payment` aggregate.

use thiserror::Error;
use uuid::Uuid;

use super::PaymentStatus;
use crate::error::{DomainError, ErrorKind};
use crate::money::Money;

/// Why a `Payment` command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PaymentError {
    /// Commands other than `CapturePayment` need a processed payment.
    #[error("payment not found")]
    NotFound,
    /// A payment is captured at most once.
    #[error("payment {payment_id} was already processed")]
    AlreadyProcessed {
        /// The payment.
        payment_id: Uuid,
    },
    /// A payment amount is never negative.
    #[error("amount must not be negative")]
    NegativeAmount {
        /// The amount given.
        amount: Money,
    },
    /// A method name has 1..=50 characters.
    #[error("payment method must have 1 to 50 characters")]
    InvalidMethod,
    /// Only a captured payment can be refunded.
    #[error("a payment in status {status:?} cannot be refunded")]
    NotCaptured {
        /// The payment's status.
        status: PaymentStatus,
    },
    /// A refund is positive and in the payment's currency.
    #[error("invalid refund amount {} {}", amount.amount_minor, amount.currency)]
    InvalidRefundAmount {
        /// The amount given.
        amount: Money,
    },
    /// The sum of refunds never exceeds what was captured.
    #[error("refund of {} exceeds the refundable {}", requested.amount_minor, refundable.amount_minor)]
    RefundExceedsCaptured {
        /// The amount asked for.
        requested: Money,
        /// What remains refundable.
        refundable: Money,
    },
    /// A reason has at most 500 characters.
    #[error("reason must have at most 500 characters")]
    ReasonTooLong,
    /// A failed payment cannot be confirmed.
    #[error("payment failed and cannot be confirmed")]
    Failed,
    /// A refunded payment is never revived.
    #[error("payment was refunded and cannot be confirmed")]
    Refunded,
}

impl DomainError for PaymentError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::AlreadyProcessed { .. }
            | Self::NotCaptured { .. }
            | Self::RefundExceedsCaptured { .. }
            | Self::Failed
            | Self::Refunded => ErrorKind::Conflict,
            Self::NegativeAmount { .. }
            | Self::InvalidMethod
            | Self::InvalidRefundAmount { .. }
            | Self::ReasonTooLong => ErrorKind::Invalid,
        }
    }
}
