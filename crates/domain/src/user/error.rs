//! Errors of the `User` aggregate.

use thiserror::Error;

use crate::error::{DomainError, ErrorKind};

/// Why a `User` command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UserError {
    /// Commands other than `RegisterUser` need a registered user.
    #[error("user not found")]
    NotFound,
    /// One user per email, case-insensitively: the id derived from it is already registered.
    #[error("email {email:?} is already registered")]
    EmailTaken {
        /// The email of the rejected registration.
        email: String,
    },
    /// An email must look like `local@domain.tld` and have at most 254 characters.
    #[error("invalid email address: {reason}")]
    InvalidEmail {
        /// Which rule was broken.
        reason: &'static str,
    },
    /// A password needs 8..=128 characters with at least one letter and one digit.
    #[error("weak password: {reason}")]
    WeakPassword {
        /// Which rule was broken.
        reason: &'static str,
    },
    /// A name has 1..=100 characters.
    #[error("name must have 1 to 100 characters, got {length}")]
    InvalidName {
        /// Characters given (after trimming).
        length: usize,
    },
    /// A phone number has 1..=32 characters.
    #[error("phone must have 1 to 32 characters, got {length}")]
    InvalidPhone {
        /// Characters given (after trimming).
        length: usize,
    },
    /// A user keeps at least one role.
    #[error("a user needs at least one role")]
    NoRoles,
    /// A deactivated user accepts no further changes.
    #[error("user is deactivated")]
    Deactivated,
}

impl DomainError for UserError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::EmailTaken { .. } | Self::Deactivated => ErrorKind::Conflict,
            Self::InvalidEmail { .. }
            | Self::WeakPassword { .. }
            | Self::InvalidName { .. }
            | Self::InvalidPhone { .. }
            | Self::NoRoles => ErrorKind::Invalid,
        }
    }
}
