//! Errors of the `Category` aggregate.

use thiserror::Error;

use crate::error::{DomainError, ErrorKind};

/// Why a `Category` command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CategoryError {
    /// Commands other than `CreateCategory` need an existing category.
    #[error("category not found")]
    NotFound,
    /// A category is created once.
    #[error("category already exists")]
    AlreadyExists,
    /// A deleted category cannot be renamed.
    #[error("category is deleted")]
    Deleted,
    /// A name has 1..=100 characters.
    #[error("category name must have 1 to 100 characters, got {length}")]
    InvalidName {
        /// Characters given (after trimming).
        length: usize,
    },
    /// A slug is non-empty, at most 120 characters, lowercase ASCII letters, digits and single
    /// hyphens (its own `slugify`).
    #[error("invalid slug {slug:?}: use lowercase letters, digits and hyphens")]
    InvalidSlug {
        /// The slug given.
        slug: String,
    },
}

impl DomainError for CategoryError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::AlreadyExists | Self::Deleted => ErrorKind::Conflict,
            Self::InvalidName { .. } | Self::InvalidSlug { .. } => ErrorKind::Invalid,
        }
    }
}
