//! Errors of the `Review` aggregate.

use thiserror::Error;
use uuid::Uuid;

use crate::error::{DomainError, ErrorKind};

/// Why a `Review` command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReviewError {
    /// Deleting needs a submitted review.
    #[error("review not found")]
    NotFound,
    /// One live review per user and product.
    #[error("this user already reviewed this product")]
    AlreadyReviewed,
    /// The review id must be derived from user and product, or "one per user" would race.
    #[error("review id {given} is not the id derived from user and product ({expected})")]
    IdMismatch {
        /// `review_id(user_id, product_id)`.
        expected: Uuid,
        /// The id in the command.
        given: Uuid,
    },
    /// A rating is 1..=5 stars.
    #[error("rating must be between 1 and 5, got {rating}")]
    RatingOutOfRange {
        /// The rating given.
        rating: u8,
    },
    /// A comment has at most 2000 characters.
    #[error("comment must have at most 2000 characters, got {length}")]
    CommentTooLong {
        /// Characters given.
        length: usize,
    },
}

impl DomainError for ReviewError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound => ErrorKind::NotFound,
            Self::AlreadyReviewed => ErrorKind::Conflict,
            Self::IdMismatch { .. }
            | Self::RatingOutOfRange { .. }
            | Self::CommentTooLong { .. } => ErrorKind::Invalid,
        }
    }
}
