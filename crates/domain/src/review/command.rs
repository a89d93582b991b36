//! Commands accepted by the `Review` aggregate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What can be asked of a `Review`. Its id is [`crate::ids::review_id`] of user and product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ReviewCommand {
    /// Submit the user's review of a product. Preconditions: `review_id` derived from user and
    /// product; no live review; rating 1..=5; comment at most 2000 characters. The command
    /// layer decides `verified_purchase`. Emits `ReviewSubmitted`.
    SubmitReview {
        /// Must be `review_id(user_id, product_id)`.
        review_id: Uuid,
        /// The product reviewed.
        product_id: Uuid,
        /// The author.
        user_id: Uuid,
        /// Stars, 1..=5.
        rating: u8,
        /// Text, possibly empty.
        comment: String,
        /// The author has a confirmed order with the product.
        verified_purchase: bool,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Delete the review. Emits `ReviewDeleted`; deleting again emits nothing.
    DeleteReview {
        /// When it happened.
        at: DateTime<Utc>,
    },
}
