//! Errors of the `PaymentMethod` aggregate.

use thiserror::Error;
use uuid::Uuid;

use crate::error::{DomainError, ErrorKind};

/// Why a `PaymentMethod` command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PaymentMethodError {
    /// The user has no saved method with this id.
    #[error("payment method {method_id} not found")]
    MethodNotFound {
        /// The method asked for.
        method_id: Uuid,
    },
    /// A method id is saved once.
    #[error("payment method {method_id} already exists")]
    AlreadyExists {
        /// The method.
        method_id: Uuid,
    },
    /// A user saves at most 20 methods.
    #[error("at most {max} payment methods per user")]
    TooManyMethods {
        /// The limit.
        max: usize,
    },
    /// The aggregate belongs to the user it is keyed by.
    #[error("payment methods of user {expected} addressed as user {given}")]
    UserMismatch {
        /// The owner.
        expected: Uuid,
        /// The user in the command.
        given: Uuid,
    },
    /// A method type has 1..=30 characters.
    #[error("method type must have 1 to 30 characters")]
    InvalidMethodType,
    /// A gateway method id has 1..=255 characters.
    #[error("gateway method id must have 1 to 255 characters")]
    InvalidGatewayMethodId,
}

impl DomainError for PaymentMethodError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::MethodNotFound { .. } => ErrorKind::NotFound,
            Self::AlreadyExists { .. } | Self::TooManyMethods { .. } => ErrorKind::Conflict,
            Self::UserMismatch { .. } | Self::InvalidMethodType | Self::InvalidGatewayMethodId => {
                ErrorKind::Invalid
            }
        }
    }
}
