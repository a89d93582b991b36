//! Events of the `PaymentMethod` aggregate.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to a user's saved payment methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PaymentMethodEvent {
    /// A method was saved (emitted by `AddPaymentMethod`).
    PaymentMethodAdded {
        /// The owner.
        user_id: Uuid,
        /// The method.
        method_id: Uuid,
        /// Kind.
        method_type: String,
        /// The gateway's token.
        gateway_method_id: String,
        /// Whether it is the default (then a `DefaultPaymentMethodChanged` follows).
        is_default: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// A method was forgotten (emitted by `RemovePaymentMethod`).
    PaymentMethodRemoved {
        /// The owner.
        user_id: Uuid,
        /// The method.
        method_id: Uuid,
        /// Whether it was the default.
        was_default: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user's default method changed (emitted by either command).
    DefaultPaymentMethodChanged {
        /// The owner.
        user_id: Uuid,
        /// The new default.
        method_id: Uuid,
        /// The previous default, if any (and still saved).
        previous_method_id: Option<Uuid>,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for PaymentMethodEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PaymentMethodAdded { .. } => "PaymentMethodAdded",
            Self::PaymentMethodRemoved { .. } => "PaymentMethodRemoved",
            Self::DefaultPaymentMethodChanged { .. } => "DefaultPaymentMethodChanged",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
