//! Commands accepted by the `PaymentMethod` aggregate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What can be asked of a user's `PaymentMethod` aggregate. Its id is the user id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PaymentMethodCommand {
    /// Save a method. Preconditions: a new method id, fewer than 20 saved methods, method type
    /// 1..=30 and gateway id 1..=255 characters. Emits `PaymentMethodAdded`, plus
    /// `DefaultPaymentMethodChanged` when it becomes the default (asked for, or the first one).
    AddPaymentMethod {
        /// The new method's id.
        method_id: Uuid,
        /// The owner (the aggregate id).
        user_id: Uuid,
        /// Kind, e.g. `card`.
        method_type: String,
        /// The gateway's token for it.
        gateway_method_id: String,
        /// Make it the default.
        is_default: bool,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Forget a method. Emits `PaymentMethodRemoved`, plus `DefaultPaymentMethodChanged` to the
    /// oldest remaining method if it was the default. An unknown method is not found.
    RemovePaymentMethod {
        /// The method.
        method_id: Uuid,
        /// When it happened.
        at: DateTime<Utc>,
    },
}
