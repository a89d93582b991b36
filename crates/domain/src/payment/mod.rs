//! The `Payment` aggregate: one gateway capture for an order and its refunds. A payment id is
//! processed once, so a retried capture never charges twice; refunds are idempotent per
//! `refund_id` and their sum never exceeds what was captured.

mod command;
mod error;
mod event;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use command::{GatewayOutcome, PaymentCommand};
pub use error::PaymentError;
pub use event::PaymentEvent;

use crate::money::Money;
use crate::validate::{char_len, len_within};

/// A payment's status (serialised `COMPLETED`, `FAILED`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentStatus {
    /// Captured.
    Completed,
    /// Declined by the gateway.
    Failed,
    /// Refunded in full.
    Refunded,
    /// Partly refunded.
    PartiallyRefunded,
}

crate::words::status_words!(PaymentStatus {
    Completed => "COMPLETED",
    Failed => "FAILED",
    Refunded => "REFUNDED",
    PartiallyRefunded => "PARTIALLY_REFUNDED",
});

impl PaymentStatus {
    /// A payment's status after a refund: the rule, for the aggregate and every read model.
    pub const fn after_refund(fully_refunded: bool) -> Self {
        if fully_refunded {
            Self::Refunded
        } else {
            Self::PartiallyRefunded
        }
    }
}

/// State of a processed payment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Processed {
    payment_id: Uuid,
    order_id: Uuid,
    user_id: Uuid,
    amount: Money,
    status: PaymentStatus,
    refunded: Money,
    refund_ids: BTreeSet<Uuid>,
    method: String,
    /// The gateway's reference of a capture; `None` for a failed payment.
    gateway_transaction_id: Option<String>,
    /// The gateway's reason of a failure.
    failure_reason: Option<String>,
    /// The `at` of the capture (or failure) and of the latest event.
    times: (DateTime<Utc>, DateTime<Utc>),
}

/// A payment, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    processed: Option<Processed>,
}

impl Payment {
    /// The status, once processed.
    pub fn status(&self) -> Option<PaymentStatus> {
        self.processed.as_ref().map(|p| p.status)
    }

    /// The order paid, once processed.
    pub fn order_id(&self) -> Option<Uuid> {
        self.processed.as_ref().map(|p| p.order_id)
    }

    /// The payer, once processed.
    pub fn user_id(&self) -> Option<Uuid> {
        self.processed.as_ref().map(|p| p.user_id)
    }

    /// The amount, once processed.
    pub fn amount(&self) -> Option<Money> {
        self.processed.as_ref().map(|p| p.amount)
    }

    /// The amount refunded so far, once processed.
    pub fn refunded(&self) -> Option<Money> {
        self.processed.as_ref().map(|p| p.refunded)
    }

    /// The payment method named by the payer, once processed.
    pub fn method(&self) -> Option<&str> {
        self.processed.as_ref().map(|p| p.method.as_str())
    }

    /// The gateway's reference of a captured payment.
    pub fn gateway_transaction_id(&self) -> Option<&str> {
        self.processed
            .as_ref()
            .and_then(|p| p.gateway_transaction_id.as_deref())
    }

    /// The gateway's reason of a failed payment.
    pub fn failure_reason(&self) -> Option<&str> {
        self.processed
            .as_ref()
            .and_then(|p| p.failure_reason.as_deref())
    }

    /// When it was processed and last changed (the `at` of its first and latest event).
    pub fn times(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.processed.as_ref().map(|p| p.times)
    }

    fn decide(&self, command: PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        let PaymentCommand::CapturePayment {
            payment_id,
            order_id,
            user_id,
            amount,
            method,
            outcome,
            at,
            ..
        } = command
        else {
            return self
                .processed
                .as_ref()
                .ok_or(PaymentError::NotFound)?
                .decide(command);
        };
        if self.processed.is_some() {
            return Err(PaymentError::AlreadyProcessed { payment_id });
        }
        if amount.is_negative() {
            return Err(PaymentError::NegativeAmount { amount });
        }
        let method = method.trim().to_owned();
        if !len_within(&method, 1, 50) {
            return Err(PaymentError::InvalidMethod);
        }
        Ok(vec![match outcome {
            GatewayOutcome::Approved { transaction_id } => PaymentEvent::PaymentCaptured {
                payment_id,
                order_id,
                user_id,
                amount,
                method,
                gateway_transaction_id: transaction_id,
                at,
            },
            GatewayOutcome::Declined { reason } => PaymentEvent::PaymentFailed {
                payment_id,
                order_id,
                user_id,
                amount,
                method,
                reason,
                at,
            },
        }])
    }
}

impl Processed {
    fn decide(&self, command: PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        match command {
            PaymentCommand::CapturePayment { .. } => Err(PaymentError::AlreadyProcessed {
                payment_id: self.payment_id,
            }),
            PaymentCommand::RefundPayment {
                refund_id,
                amount,
                reason,
                at,
            } => {
                if self.refund_ids.contains(&refund_id) {
                    return Ok(vec![]);
                }
                if self.status == PaymentStatus::Failed {
                    return Err(PaymentError::NotCaptured {
                        status: self.status,
                    });
                }
                if amount.amount_minor <= 0 || amount.currency != self.amount.currency {
                    return Err(PaymentError::InvalidRefundAmount { amount });
                }
                if char_len(&reason) > 500 {
                    return Err(PaymentError::ReasonTooLong);
                }
                let refundable = Money::new(
                    self.amount.amount_minor - self.refunded.amount_minor,
                    self.amount.currency,
                );
                if amount.amount_minor > refundable.amount_minor {
                    return Err(PaymentError::RefundExceedsCaptured {
                        requested: amount,
                        refundable,
                    });
                }
                let total_refunded = Money::new(
                    self.refunded.amount_minor + amount.amount_minor,
                    self.amount.currency,
                );
                Ok(vec![PaymentEvent::PaymentRefunded {
                    payment_id: self.payment_id,
                    order_id: self.order_id,
                    user_id: self.user_id,
                    refund_id,
                    amount,
                    total_refunded,
                    fully_refunded: total_refunded == self.amount,
                    reason,
                    at,
                }])
            }
            PaymentCommand::ConfirmPayment { .. } => match self.status {
                PaymentStatus::Completed => Ok(vec![]),
                PaymentStatus::Failed => Err(PaymentError::Failed),
                PaymentStatus::Refunded | PaymentStatus::PartiallyRefunded => {
                    Err(PaymentError::Refunded)
                }
            },
        }
    }
}

impl Aggregate for Payment {
    const TYPE: &'static str = "Payment";
    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let processed =
            |payment_id, order_id, user_id, amount: Money, status, method, at| Processed {
                payment_id,
                order_id,
                user_id,
                amount,
                status,
                refunded: Money::zero(amount.currency),
                refund_ids: BTreeSet::new(),
                method,
                gateway_transaction_id: None,
                failure_reason: None,
                times: (at, at),
            };
        match event {
            PaymentEvent::PaymentCaptured {
                payment_id,
                order_id,
                user_id,
                amount,
                method,
                gateway_transaction_id,
                at,
            } => {
                self.processed = Some(Processed {
                    gateway_transaction_id: Some(gateway_transaction_id),
                    ..processed(
                        payment_id,
                        order_id,
                        user_id,
                        amount,
                        PaymentStatus::Completed,
                        method,
                        at,
                    )
                });
            }
            PaymentEvent::PaymentFailed {
                payment_id,
                order_id,
                user_id,
                amount,
                method,
                reason,
                at,
            } => {
                self.processed = Some(Processed {
                    failure_reason: Some(reason),
                    ..processed(
                        payment_id,
                        order_id,
                        user_id,
                        amount,
                        PaymentStatus::Failed,
                        method,
                        at,
                    )
                });
            }
            PaymentEvent::PaymentRefunded {
                refund_id,
                total_refunded,
                fully_refunded,
                at,
                ..
            } => {
                if let Some(p) = &mut self.processed {
                    p.refund_ids.insert(refund_id);
                    p.refunded = total_refunded;
                    p.status = PaymentStatus::after_refund(fully_refunded);
                    p.times.1 = at;
                }
            }
        }
    }
}
