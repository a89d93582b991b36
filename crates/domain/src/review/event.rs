//! Events of the `Review` aggregate.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to a `Review`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReviewEvent {
    /// A review was submitted (emitted by `SubmitReview`).
    ReviewSubmitted {
        /// The review.
        review_id: Uuid,
        /// The product.
        product_id: Uuid,
        /// The author.
        user_id: Uuid,
        /// Stars, 1..=5.
        rating: u8,
        /// Text.
        comment: String,
        /// The author bought the product.
        verified_purchase: bool,
        /// When.
        at: DateTime<Utc>,
    },
    /// A review was deleted (emitted by `DeleteReview`); carries the rating so the product's
    /// average can be corrected without a lookup.
    ReviewDeleted {
        /// The review.
        review_id: Uuid,
        /// The product.
        product_id: Uuid,
        /// The author.
        user_id: Uuid,
        /// The rating removed.
        rating: u8,
        /// When.
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ReviewEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ReviewSubmitted { .. } => "ReviewSubmitted",
            Self::ReviewDeleted { .. } => "ReviewDeleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
