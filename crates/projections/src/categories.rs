//! The categories read model: every live category with the count of its active products.
//!
//! Built from `Category` events and the `Product` events that move products between categories
//! (`ProductCreated`, `ProductUpdated` with `previous_category_id`, `ProductDeactivated`). Each
//! product's category and active flag is kept as one row and counted when read, so every apply is
//! an idempotent row write and the count never drifts, whatever the order of events across
//! aggregates. A deleted category is kept as a tombstone (a redelivered `CategoryCreated` cannot
//! bring it back) and disappears from every query.

use chrono::{DateTime, Utc};
use commerce_domain::category::CategoryEvent;
use commerce_domain::product::ProductEvent;
use commerce_event_store::{HandlerError, StoredEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{Page, Projection};

/// The categories projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct CategoriesProjection;

/// A category as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CategoryView {
    /// Category id.
    pub id: Uuid,
    /// Display name (unique, case-insensitively, among live categories).
    pub name: String,
    /// URL slug.
    pub slug: String,
    /// Active products in the category.
    pub product_count: i64,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// Last rename (or creation).
    pub updated_at: DateTime<Utc>,
}

impl Projection for CategoriesProjection {
    const NAME: &'static str = "categories";

    fn bindings() -> Vec<String> {
        vec!["Category.*".to_owned(), "Product.*".to_owned()]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        match event.aggregate_type.as_str() {
            "Category" => apply_category(conn, event).await,
            "Product" => apply_product(conn, event).await,
            _ => Ok(()),
        }
    }
}

async fn apply_category(conn: &mut PgConnection, event: &StoredEvent) -> Result<(), HandlerError> {
    // The event's own time, which the command answered with (so the two agree).
    let event: CategoryEvent = event.payload_as()?;
    let at = event.at();
    match event {
        CategoryEvent::CategoryCreated {
            category_id,
            name,
            slug,
            ..
        } => {
            sqlx::query(
                "INSERT INTO categories (id, name, slug, is_deleted, created_at, updated_at) \
                 VALUES ($1, $2, $3, false, $4, $4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(category_id)
            .bind(name)
            .bind(slug)
            .bind(at)
            .execute(conn)
            .await?;
        }
        CategoryEvent::CategoryRenamed {
            category_id,
            name,
            slug,
            ..
        } => {
            sqlx::query(
                "UPDATE categories SET name = $2, slug = $3, updated_at = $4 WHERE id = $1",
            )
            .bind(category_id)
            .bind(name)
            .bind(slug)
            .bind(at)
            .execute(conn)
            .await?;
        }
        CategoryEvent::CategoryDeleted { category_id, .. } => {
            sqlx::query("UPDATE categories SET is_deleted = true, updated_at = $2 WHERE id = $1")
                .bind(category_id)
                .bind(at)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

async fn apply_product(conn: &mut PgConnection, event: &StoredEvent) -> Result<(), HandlerError> {
    let (product_id, category_id, is_active) = match event.payload_as::<ProductEvent>()? {
        ProductEvent::ProductCreated {
            product_id,
            category_id,
            ..
        } => (product_id, category_id, true),
        // Only an active product can be updated, and the event names the category it is in now.
        ProductEvent::ProductUpdated {
            product_id,
            category_id,
            ..
        } => (product_id, category_id, true),
        ProductEvent::ProductDeactivated {
            product_id,
            category_id,
            ..
        } => (product_id, category_id, false),
    };
    sqlx::query(
        "INSERT INTO products (product_id, category_id, is_active) VALUES ($1, $2, $3) \
         ON CONFLICT (product_id) DO UPDATE SET category_id = $2, is_active = $3",
    )
    .bind(product_id)
    .bind(category_id)
    .bind(is_active)
    .execute(conn)
    .await?;
    Ok(())
}

const CATEGORY_COLUMNS: &str = "c.id, c.name, c.slug, \
     (SELECT count(*) FROM categories.products p WHERE p.category_id = c.id AND p.is_active) \
       AS product_count, \
     c.created_at, c.updated_at";

/// One live category by id.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<CategoryView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CATEGORY_COLUMNS} FROM categories.categories c WHERE c.id = $1 AND NOT c.is_deleted"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A page of live categories by name (case-insensitively), with the total count.
pub async fn list(pool: &PgPool, page: Page) -> Result<(Vec<CategoryView>, i64), sqlx::Error> {
    let rows = sqlx::query_as(&format!(
        "SELECT {CATEGORY_COLUMNS} FROM categories.categories c WHERE NOT c.is_deleted \
         ORDER BY lower(c.name), c.id LIMIT $1 OFFSET $2"
    ))
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let total =
        sqlx::query_scalar("SELECT count(*) FROM categories.categories WHERE NOT is_deleted")
            .fetch_one(pool)
            .await?;
    Ok((rows, total))
}

/// The live category named `name`, ignoring case and surrounding spaces (as the domain trims
/// names): how the API answers 409 to a duplicate name.
pub async fn find_by_name(pool: &PgPool, name: &str) -> Result<Option<CategoryView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {CATEGORY_COLUMNS} FROM categories.categories c \
         WHERE lower(c.name) = lower($1) AND NOT c.is_deleted ORDER BY c.id LIMIT 1"
    ))
    .bind(name.trim())
    .fetch_optional(pool)
    .await
}

/// Active products in category `id` (0 for an unknown category): the API refuses to delete a
/// category while this is not 0.
pub async fn product_count(pool: &PgPool, id: Uuid) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM categories.products WHERE category_id = $1 AND is_active",
    )
    .bind(id)
    .fetch_one(pool)
    .await
}
