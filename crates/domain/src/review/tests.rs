use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::test::TestFramework;

use super::*;
use crate::error::{DomainError, ErrorKind};

type ReviewTest = TestFramework<Review>;

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 1, 1, 12, 0, 0).unwrap()
}

fn user() -> Uuid {
    Uuid::from_u128(1)
}

fn product() -> Uuid {
    Uuid::from_u128(1001)
}

fn submit(rating: u8, comment: &str) -> ReviewCommand {
    ReviewCommand::SubmitReview {
        review_id: review_id(user(), product()),
        product_id: product(),
        user_id: user(),
        rating,
        comment: comment.into(),
        verified_purchase: true,
        at: at(),
    }
}

fn submitted() -> ReviewEvent {
    ReviewEvent::ReviewSubmitted {
        review_id: review_id(user(), product()),
        product_id: product(),
        user_id: user(),
        rating: 4,
        comment: "Good".into(),
        verified_purchase: true,
        at: at(),
    }
}

fn deleted() -> ReviewEvent {
    ReviewEvent::ReviewDeleted {
        review_id: review_id(user(), product()),
        product_id: product(),
        user_id: user(),
        rating: 4,
        at: at(),
    }
}

#[test]
fn submitting_a_review_emits_review_submitted() {
    ReviewTest::with(())
        .given_no_previous_events()
        .when(submit(4, " Good "))
        .then_expect_events(vec![submitted()]);
}

#[test]
fn submitting_a_second_review_for_the_same_product_is_rejected() {
    let error = ReviewTest::with(())
        .given(vec![submitted()])
        .when(submit(5, "Again"))
        .inspect_result()
        .unwrap_err();
    assert_eq!(error, ReviewError::AlreadyReviewed);
    assert_eq!(error.kind(), ErrorKind::Conflict);
}

#[test]
fn a_deleted_review_can_be_submitted_again() {
    ReviewTest::with(())
        .given(vec![submitted(), deleted()])
        .when(submit(4, "Good"))
        .then_expect_events(vec![submitted()]);
}

#[test]
fn a_rating_outside_one_to_five_is_rejected() {
    for rating in [0, 6] {
        ReviewTest::with(())
            .given_no_previous_events()
            .when(submit(rating, ""))
            .then_expect_error(ReviewError::RatingOutOfRange { rating });
    }
}

#[test]
fn a_comment_over_two_thousand_characters_is_rejected() {
    ReviewTest::with(())
        .given_no_previous_events()
        .when(submit(3, &"é".repeat(2001)))
        .then_expect_error(ReviewError::CommentTooLong { length: 2001 });
}

#[test]
fn a_review_id_not_derived_from_user_and_product_is_rejected() {
    ReviewTest::with(())
        .given_no_previous_events()
        .when(ReviewCommand::SubmitReview {
            review_id: Uuid::nil(),
            product_id: product(),
            user_id: user(),
            rating: 3,
            comment: String::new(),
            verified_purchase: false,
            at: at(),
        })
        .then_expect_error(ReviewError::IdMismatch {
            expected: review_id(user(), product()),
            given: Uuid::nil(),
        });
}

#[test]
fn deleting_a_review_carries_its_rating_and_is_idempotent() {
    ReviewTest::with(())
        .given(vec![submitted()])
        .when(ReviewCommand::DeleteReview { at: at() })
        .then_expect_events(vec![deleted()]);
    ReviewTest::with(())
        .given(vec![submitted(), deleted()])
        .when(ReviewCommand::DeleteReview { at: at() })
        .then_expect_events(vec![]);
}

#[test]
fn deleting_a_review_never_submitted_is_rejected_as_not_found() {
    ReviewTest::with(())
        .given_no_previous_events()
        .when(ReviewCommand::DeleteReview { at: at() })
        .then_expect_error(ReviewError::NotFound);
}

#[test]
fn a_live_review_knows_what_was_submitted_and_a_deleted_one_nothing() {
    let mut review = Review::default();
    assert_eq!(review.submitted(), None);
    review.apply(submitted());
    assert_eq!(
        review.submitted(),
        Some(Submitted {
            product_id: product(),
            user_id: user(),
            comment: "Good",
            verified_purchase: true,
            at: at(),
        })
    );
    review.apply(deleted());
    assert_eq!(review.submitted(), None);
}
