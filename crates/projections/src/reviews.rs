//! The reviews read model: the live reviews of each product.
//!
//! Built from `Review` events. A review id is derived from user and product, so one row per id
//! serves a review that is deleted and submitted again. A deleted review stays as a tombstone
//! (`deleted_at` set, comment cleared) that every query skips; with the row's `version` (the
//! review's last applied sequence) this keeps a redelivered submission from bringing it back.

use chrono::{DateTime, Utc};
use commerce_domain::review::ReviewEvent;
use commerce_event_store::{HandlerError, StoredEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{erasure, Projection};

/// The reviews projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReviewsProjection;

/// A review as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ReviewView {
    /// Review id.
    pub id: Uuid,
    /// The product reviewed.
    pub product_id: Uuid,
    /// The author.
    pub user_id: Uuid,
    /// Stars, 1..=5.
    pub rating: i16,
    /// Text, possibly empty.
    pub comment: String,
    /// The author had a confirmed order with the product when submitting.
    pub verified_purchase: bool,
    /// When submitted.
    pub created_at: DateTime<Utc>,
}

impl Projection for ReviewsProjection {
    const NAME: &'static str = "reviews";

    const PARTITIONABLE: bool = true;

    fn bindings() -> Vec<String> {
        vec!["Review.*".to_owned(), erasure::binding()]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        if let Some(user_id) = erasure::erased_person(event) {
            // A tombstone's comment is empty already.
            sqlx::query(
                "UPDATE reviews SET comment = $2 WHERE user_id = $1 AND deleted_at IS NULL",
            )
            .bind(user_id)
            .bind(commerce_domain::ERASED)
            .execute(conn)
            .await?;
            return Ok(());
        }
        // Times are the event's own, which the command answered with (so the two agree).
        match event.payload_as::<ReviewEvent>()? {
            ReviewEvent::ReviewSubmitted {
                review_id,
                product_id,
                user_id,
                rating,
                comment,
                verified_purchase,
                at,
            } => {
                sqlx::query(
                    "INSERT INTO reviews (id, product_id, user_id, rating, comment, \
                     verified_purchase, version, created_at, updated_at, deleted_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, NULL) \
                     ON CONFLICT (id) DO UPDATE SET product_id = EXCLUDED.product_id, \
                     user_id = EXCLUDED.user_id, rating = EXCLUDED.rating, \
                     comment = EXCLUDED.comment, verified_purchase = EXCLUDED.verified_purchase, \
                     version = EXCLUDED.version, created_at = EXCLUDED.created_at, \
                     updated_at = EXCLUDED.updated_at, deleted_at = NULL \
                     WHERE reviews.version < EXCLUDED.version",
                )
                .bind(review_id)
                .bind(product_id)
                .bind(user_id)
                .bind(i16::from(rating))
                .bind(comment)
                .bind(verified_purchase)
                .bind(event.sequence)
                .bind(at)
                .execute(conn)
                .await?;
            }
            ReviewEvent::ReviewDeleted { review_id, at, .. } => {
                sqlx::query(
                    "UPDATE reviews SET comment = '', deleted_at = $3, updated_at = $3, \
                     version = $2 WHERE id = $1 AND version < $2",
                )
                .bind(review_id)
                .bind(event.sequence)
                .bind(at)
                .execute(conn)
                .await?;
            }
        }
        Ok(())
    }
}

/// A live review by id.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<ReviewView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, product_id, user_id, rating, comment, verified_purchase, created_at \
         FROM reviews.reviews WHERE id = $1 AND deleted_at IS NULL",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A page of a product's live reviews, newest first, with the total count.
pub async fn list_for_product(
    pool: &PgPool,
    product_id: Uuid,
    page: crate::Page,
) -> Result<(Vec<ReviewView>, i64), sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT id, product_id, user_id, rating, comment, verified_purchase, created_at \
         FROM reviews.reviews WHERE product_id = $1 AND deleted_at IS NULL \
         ORDER BY created_at DESC, id LIMIT $2 OFFSET $3",
    )
    .bind(product_id)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(
        "SELECT count(*) FROM reviews.reviews WHERE product_id = $1 AND deleted_at IS NULL",
    )
    .bind(product_id)
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

/// Whether the user has a live review of the product.
pub async fn exists_for(
    pool: &PgPool,
    user_id: Uuid,
    product_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM reviews.reviews \
         WHERE user_id = $1 AND product_id = $2 AND deleted_at IS NULL)",
    )
    .bind(user_id)
    .bind(product_id)
    .fetch_one(pool)
    .await
}
