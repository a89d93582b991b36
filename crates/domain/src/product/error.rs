//! Errors of the `Product` aggregate.

use thiserror::Error;

use crate::error::{DomainError, ErrorKind};
use crate::money::Money;

/// Why a `Product` command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProductError {
    /// Commands other than `CreateProduct` need an existing product.
    #[error("product not found")]
    NotFound,
    /// A product is created once.
    #[error("product already exists")]
    AlreadyExists,
    /// A deactivated product accepts no updates.
    #[error("product is inactive")]
    Inactive,
    /// A name has 1..=200 characters.
    #[error("product name must have 1 to 200 characters, got {length}")]
    InvalidName {
        /// Characters given (after trimming).
        length: usize,
    },
    /// A description has at most 5000 characters.
    #[error("description must have at most 5000 characters, got {length}")]
    DescriptionTooLong {
        /// Characters given.
        length: usize,
    },
    /// A price is never negative.
    #[error("price must not be negative, got {} minor units", price.amount_minor)]
    NegativePrice {
        /// The price given.
        price: Money,
    },
    /// A slug is lowercase letters, digits and single hyphens, at most 120 characters.
    #[error("invalid slug {slug:?}: use lowercase letters, digits and hyphens")]
    InvalidSlug {
        /// The slug given.
        slug: String,
    },
    /// An image URL has 1..=2048 characters.
    #[error("image URL must have 1 to 2048 characters, got {length}")]
    InvalidImageUrl {
        /// Characters given.
        length: usize,
    },
}

impl DomainError for ProductError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::AlreadyExists | Self::Inactive => ErrorKind::Conflict,
            Self::InvalidName { .. }
            | Self::DescriptionTooLong { .. }
            | Self::NegativePrice { .. }
            | Self::InvalidSlug { .. }
            | Self::InvalidImageUrl { .. } => ErrorKind::Invalid,
        }
    }
}
