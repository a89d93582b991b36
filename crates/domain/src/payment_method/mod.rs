//! The `PaymentMethod` aggregate: ONE per user (id = user id), holding all of that user's saved
//! methods. Keeping them in one stream makes "exactly one default per user, while any method is
//! saved" an invariant of a single aggregate, protected by optimistic concurrency, instead of a
//! race between per-method aggregates. At most 20 methods per user.

mod command;
mod error;
mod event;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use command::PaymentMethodCommand;
pub use error::PaymentMethodError;
pub use event::PaymentMethodEvent;

use crate::validate::len_within;

/// Most methods one user can save.
pub const MAX_METHODS: usize = 20;

/// One saved method.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedPaymentMethod {
    /// The method's id.
    pub method_id: Uuid,
    /// Kind, e.g. `card`.
    pub method_type: String,
    /// The gateway's token.
    pub gateway_method_id: String,
    /// When it was saved.
    pub added_at: DateTime<Utc>,
}

/// A user's saved payment methods, folded from their events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaymentMethod {
    user_id: Option<Uuid>,
    /// Oldest first.
    methods: Vec<SavedPaymentMethod>,
    default_method: Option<Uuid>,
}

impl PaymentMethod {
    /// The saved methods, oldest first.
    pub fn methods(&self) -> &[SavedPaymentMethod] {
        &self.methods
    }

    /// The default method, present whenever any method is saved.
    pub fn default_method(&self) -> Option<Uuid> {
        self.default_method
    }

    fn decide(
        &self,
        command: PaymentMethodCommand,
    ) -> Result<Vec<PaymentMethodEvent>, PaymentMethodError> {
        match command {
            PaymentMethodCommand::AddPaymentMethod {
                method_id,
                user_id,
                method_type,
                gateway_method_id,
                is_default,
                at,
            } => {
                if let Some(expected) = self.user_id.filter(|owner| *owner != user_id) {
                    return Err(PaymentMethodError::UserMismatch {
                        expected,
                        given: user_id,
                    });
                }
                if self.methods.iter().any(|m| m.method_id == method_id) {
                    return Err(PaymentMethodError::AlreadyExists { method_id });
                }
                if self.methods.len() >= MAX_METHODS {
                    return Err(PaymentMethodError::TooManyMethods { max: MAX_METHODS });
                }
                let method_type = method_type.trim().to_owned();
                if !len_within(&method_type, 1, 30) {
                    return Err(PaymentMethodError::InvalidMethodType);
                }
                if !len_within(gateway_method_id.trim(), 1, 255) {
                    return Err(PaymentMethodError::InvalidGatewayMethodId);
                }
                let gateway_method_id = gateway_method_id.trim().to_owned();
                let is_default = is_default || self.methods.is_empty();
                let mut events = vec![PaymentMethodEvent::PaymentMethodAdded {
                    user_id,
                    method_id,
                    method_type,
                    gateway_method_id,
                    is_default,
                    at,
                }];
                if is_default {
                    events.push(PaymentMethodEvent::DefaultPaymentMethodChanged {
                        user_id,
                        method_id,
                        previous_method_id: self.default_method,
                        at,
                    });
                }
                Ok(events)
            }
            PaymentMethodCommand::RemovePaymentMethod { method_id, at } => {
                let not_found = PaymentMethodError::MethodNotFound { method_id };
                let user_id = self.user_id.ok_or(not_found.clone())?;
                if !self.methods.iter().any(|m| m.method_id == method_id) {
                    return Err(not_found);
                }
                let was_default = self.default_method == Some(method_id);
                let mut events = vec![PaymentMethodEvent::PaymentMethodRemoved {
                    user_id,
                    method_id,
                    was_default,
                    at,
                }];
                let oldest_remaining = self.methods.iter().find(|m| m.method_id != method_id);
                if let Some(next) = oldest_remaining.filter(|_| was_default) {
                    events.push(PaymentMethodEvent::DefaultPaymentMethodChanged {
                        user_id,
                        method_id: next.method_id,
                        previous_method_id: None,
                        at,
                    });
                }
                Ok(events)
            }
        }
    }
}

impl Aggregate for PaymentMethod {
    const TYPE: &'static str = "PaymentMethod";
    type Command = PaymentMethodCommand;
    type Event = PaymentMethodEvent;
    type Error = PaymentMethodError;
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
        match event {
            PaymentMethodEvent::PaymentMethodAdded {
                user_id,
                method_id,
                method_type,
                gateway_method_id,
                at,
                ..
            } => {
                self.user_id = Some(user_id);
                self.methods.push(SavedPaymentMethod {
                    method_id,
                    method_type,
                    gateway_method_id,
                    added_at: at,
                });
            }
            PaymentMethodEvent::PaymentMethodRemoved { method_id, .. } => {
                self.methods.retain(|m| m.method_id != method_id);
                if self.default_method == Some(method_id) {
                    self.default_method = None;
                }
            }
            PaymentMethodEvent::DefaultPaymentMethodChanged { method_id, .. } => {
                self.default_method = Some(method_id)
            }
        }
    }
}
