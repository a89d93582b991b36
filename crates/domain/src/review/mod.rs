//! The `Review` aggregate: one user's review of one product. Its id is derived from both
//! ([`crate::ids::review_id`]), so two concurrent submissions hit one stream and only one wins.
//! A deleted review can be submitted again.

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

pub use command::ReviewCommand;
pub use error::ReviewError;
pub use event::ReviewEvent;

use crate::ids::review_id;
use crate::validate::char_len;

/// Longest comment, in characters.
pub const MAX_COMMENT_CHARS: usize = 2000;

/// A live review's facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Live {
    review_id: Uuid,
    product_id: Uuid,
    user_id: Uuid,
    rating: u8,
    comment: String,
    verified_purchase: bool,
    submitted_at: DateTime<Utc>,
}

/// A review, folded from its events.
/// What a live review says, as submitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Submitted<'a> {
    /// The product reviewed.
    pub product_id: Uuid,
    /// The author.
    pub user_id: Uuid,
    /// The comment, trimmed.
    pub comment: &'a str,
    /// The author had a confirmed order with the product when submitting.
    pub verified_purchase: bool,
    /// When it was submitted.
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Review {
    live: Option<Live>,
    ever_submitted: bool,
}

impl Review {
    /// The rating of the live review, if any.
    pub fn rating(&self) -> Option<u8> {
        self.live.as_ref().map(|r| r.rating)
    }

    /// The live review's product, author, comment, verified-purchase flag and submission time.
    pub fn submitted(&self) -> Option<Submitted<'_>> {
        self.live.as_ref().map(|r| Submitted {
            product_id: r.product_id,
            user_id: r.user_id,
            comment: &r.comment,
            verified_purchase: r.verified_purchase,
            at: r.submitted_at,
        })
    }

    fn decide(&self, command: ReviewCommand) -> Result<Vec<ReviewEvent>, ReviewError> {
        match command {
            ReviewCommand::SubmitReview {
                review_id: given,
                product_id,
                user_id,
                rating,
                comment,
                verified_purchase,
                at,
            } => {
                if self.live.is_some() {
                    return Err(ReviewError::AlreadyReviewed);
                }
                let expected = review_id(user_id, product_id);
                if given != expected {
                    return Err(ReviewError::IdMismatch { expected, given });
                }
                if !(1..=5).contains(&rating) {
                    return Err(ReviewError::RatingOutOfRange { rating });
                }
                let comment = comment.trim().to_owned();
                if char_len(&comment) > MAX_COMMENT_CHARS {
                    return Err(ReviewError::CommentTooLong {
                        length: char_len(&comment),
                    });
                }
                Ok(vec![ReviewEvent::ReviewSubmitted {
                    review_id: given,
                    product_id,
                    user_id,
                    rating,
                    comment,
                    verified_purchase,
                    at,
                }])
            }
            ReviewCommand::DeleteReview { at } => match &self.live {
                Some(live) => Ok(vec![ReviewEvent::ReviewDeleted {
                    review_id: live.review_id,
                    product_id: live.product_id,
                    user_id: live.user_id,
                    rating: live.rating,
                    at,
                }]),
                None if self.ever_submitted => Ok(vec![]),
                None => Err(ReviewError::NotFound),
            },
        }
    }
}

impl Aggregate for Review {
    const TYPE: &'static str = "Review";
    type Command = ReviewCommand;
    type Event = ReviewEvent;
    type Error = ReviewError;
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
            ReviewEvent::ReviewSubmitted {
                review_id,
                product_id,
                user_id,
                rating,
                comment,
                verified_purchase,
                at,
            } => {
                self.live = Some(Live {
                    review_id,
                    product_id,
                    user_id,
                    rating,
                    comment,
                    verified_purchase,
                    submitted_at: at,
                });
                self.ever_submitted = true;
            }
            ReviewEvent::ReviewDeleted { .. } => self.live = None,
        }
    }
}
