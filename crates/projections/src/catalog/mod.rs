//! The catalog read model: one row per product, with its category name, stock levels and rating,
//! so `GET /products` and `GET /products/{id}` are one read from one projection.
//!
//! Built from `Product`, `Category`, `Inventory` and `Review` events. Each aggregate feeds its own
//! table (`products`, `categories`, `stock`, `ratings`), joined when read: an inventory or review
//! event that reaches the log before its product's `ProductCreated` is kept, not lost, and every
//! apply stays a single-row write. Stock levels are copied from the events (they carry the levels
//! after them), never recomputed. Ratings are kept as an integer sum and count; the average is
//! computed when read (see [`RatingView`]). A product's `updated_at` is its last `Product` event:
//! stock and rating changes do not touch it.
//!
//! `batch.rs` applies a rebuild's batch with the same result in a few bulk statements;
//! `queries.rs` holds the views and the queries the API calls.

mod batch;
mod queries;

use commerce_domain::category::CategoryEvent;
use commerce_domain::inventory::InventoryEvent;
use commerce_domain::product::ProductEvent;
use commerce_domain::review::ReviewEvent;
use commerce_event_store::{HandlerError, StoredEvent};
use sqlx::PgConnection;

pub use queries::{
    get_product, list_products, product_for_cart, rating, CartProduct, ProductFilter, ProductSort,
    ProductView, RatingView, StockView,
};

use crate::Projection;

/// The catalog projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct CatalogProjection;

impl Projection for CatalogProjection {
    const NAME: &'static str = "catalog";

    fn bindings() -> Vec<String> {
        [
            "Product.*",
            "Category.CategoryCreated",
            "Category.CategoryRenamed",
            "Inventory.StockAdjusted",
            "Inventory.StockReserved",
            "Inventory.StockReleased",
            "Inventory.StockCommitted",
            "Inventory.StockReturned",
            "Review.*",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        match event.aggregate_type.as_str() {
            "Product" => apply_product(conn, event).await,
            "Category" => apply_category(conn, event).await,
            "Inventory" => apply_inventory(conn, event).await,
            "Review" => apply_review(conn, event).await,
            _ => Ok(()),
        }
    }

    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), HandlerError> {
        batch::apply(conn, events).await
    }
}

async fn apply_product(conn: &mut PgConnection, event: &StoredEvent) -> Result<(), HandlerError> {
    // The event's own time, which the command answered with (so the two agree).
    let event: ProductEvent = event.payload_as()?;
    let at = event.at();
    match event {
        ProductEvent::ProductCreated {
            product_id,
            name,
            slug,
            description,
            price,
            category_id,
            image_url,
            ..
        } => {
            sqlx::query(
                "INSERT INTO products (id, name, slug, description, price_minor, currency, \
                 category_id, image_url, is_active, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, true, $9, $9) ON CONFLICT (id) DO NOTHING",
            )
            .bind(product_id)
            .bind(name)
            .bind(slug)
            .bind(description)
            .bind(price.amount_minor)
            .bind(price.currency.as_str())
            .bind(category_id)
            .bind(image_url)
            .bind(at)
            .execute(conn)
            .await?;
        }
        ProductEvent::ProductUpdated {
            product_id,
            name,
            slug,
            description,
            price,
            category_id,
            image_url,
            ..
        } => {
            sqlx::query(
                "UPDATE products SET name = $2, slug = $3, description = $4, price_minor = $5, \
                 currency = $6, category_id = $7, image_url = $8, updated_at = $9 WHERE id = $1",
            )
            .bind(product_id)
            .bind(name)
            .bind(slug)
            .bind(description)
            .bind(price.amount_minor)
            .bind(price.currency.as_str())
            .bind(category_id)
            .bind(image_url)
            .bind(at)
            .execute(conn)
            .await?;
        }
        ProductEvent::ProductDeactivated { product_id, .. } => {
            sqlx::query("UPDATE products SET is_active = false, updated_at = $2 WHERE id = $1")
                .bind(product_id)
                .bind(at)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

async fn apply_category(conn: &mut PgConnection, event: &StoredEvent) -> Result<(), HandlerError> {
    match event.payload_as::<CategoryEvent>()? {
        CategoryEvent::CategoryCreated {
            category_id, name, ..
        } => {
            sqlx::query(
                "INSERT INTO categories (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            )
            .bind(category_id)
            .bind(name)
            .execute(conn)
            .await?;
        }
        CategoryEvent::CategoryRenamed {
            category_id, name, ..
        } => {
            sqlx::query("UPDATE categories SET name = $2 WHERE id = $1")
                .bind(category_id)
                .bind(name)
                .execute(conn)
                .await?;
        }
        // Only inactive products can still point at a deleted category; they keep its last name.
        CategoryEvent::CategoryDeleted { .. } => {}
    }
    Ok(())
}

/// The levels an inventory event states (they are the levels after it).
struct StockLevels {
    product_id: uuid::Uuid,
    /// `None`: unchanged (a commit does not change `available`).
    available: Option<i64>,
    reserved: i64,
}

/// Upserts the levels an inventory event states; `None` keeps the current value. Guarded by the
/// event's sequence: an older event never wins. `batch.rs` folds the same upsert in memory: keep
/// them in step.
async fn set_stock(
    conn: &mut PgConnection,
    event: &StoredEvent,
    levels: StockLevels,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO stock (product_id, available, reserved, version) \
         VALUES ($1, coalesce($2, 0), $3, $4) \
         ON CONFLICT (product_id) DO UPDATE SET \
           available = coalesce($2, stock.available), reserved = $3, version = $4 \
         WHERE stock.version < $4",
    )
    .bind(levels.product_id)
    .bind(levels.available)
    .bind(levels.reserved)
    .bind(event.sequence)
    .execute(conn)
    .await?;
    Ok(())
}

/// The levels an inventory event states; `None` for an event that changes none.
fn stock_levels(event: InventoryEvent) -> Option<StockLevels> {
    let (product_id, available, reserved) = match event {
        InventoryEvent::StockAdjusted {
            product_id,
            available_after,
            reserved,
            ..
        }
        | InventoryEvent::StockReturned {
            product_id,
            available_after,
            reserved,
            ..
        } => (product_id, Some(available_after), reserved),
        InventoryEvent::StockReserved {
            product_id,
            available_after,
            reserved_after,
            ..
        }
        | InventoryEvent::StockReleased {
            product_id,
            available_after,
            reserved_after,
            ..
        } => (product_id, Some(available_after), reserved_after),
        InventoryEvent::StockCommitted {
            product_id,
            reserved_after,
            ..
        } => (product_id, None, reserved_after),
        // Changes nothing; not bound, but harmless if it ever arrives.
        InventoryEvent::StockReservationRejected { .. } => return None,
    };
    Some(StockLevels {
        product_id,
        available,
        reserved,
    })
}

async fn apply_inventory(conn: &mut PgConnection, event: &StoredEvent) -> Result<(), HandlerError> {
    if let Some(levels) = stock_levels(event.payload_as::<InventoryEvent>()?) {
        set_stock(conn, event, levels).await?;
    }
    Ok(())
}

async fn apply_review(conn: &mut PgConnection, event: &StoredEvent) -> Result<(), HandlerError> {
    match event.payload_as::<ReviewEvent>()? {
        ReviewEvent::ReviewSubmitted {
            review_id,
            product_id,
            rating,
            ..
        } => {
            // Counted only when the review was not already live: a submission counts once.
            sqlx::query(
                "WITH counted AS ( \
                   INSERT INTO rated_reviews (review_id, product_id, rating, is_live) \
                   VALUES ($1, $2, $3, true) \
                   ON CONFLICT (review_id) DO UPDATE SET \
                     product_id = EXCLUDED.product_id, rating = EXCLUDED.rating, is_live = true \
                   WHERE NOT rated_reviews.is_live \
                   RETURNING product_id, rating) \
                 INSERT INTO ratings (product_id, rating_sum, rating_count) \
                 SELECT product_id, rating, 1 FROM counted \
                 ON CONFLICT (product_id) DO UPDATE SET \
                   rating_sum = ratings.rating_sum + EXCLUDED.rating_sum, \
                   rating_count = ratings.rating_count + 1",
            )
            .bind(review_id)
            .bind(product_id)
            .bind(i16::from(rating))
            .execute(conn)
            .await?;
        }
        ReviewEvent::ReviewDeleted { review_id, .. } => {
            // Uncounted only when it was live: a deletion counts once.
            sqlx::query(
                "WITH uncounted AS ( \
                   UPDATE rated_reviews SET is_live = false WHERE review_id = $1 AND is_live \
                   RETURNING product_id, rating) \
                 UPDATE ratings SET rating_sum = ratings.rating_sum - u.rating, \
                   rating_count = ratings.rating_count - 1 \
                 FROM uncounted u WHERE ratings.product_id = u.product_id",
            )
            .bind(review_id)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}
