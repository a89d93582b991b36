//! The catalog applied a batch at a time, for a rebuild. The two kinds of event that make up most
//! of the log cost a statement or two per batch instead of one per event:
//!
//! - `ProductCreated` rows are gathered and inserted in one statement (`ON CONFLICT DO NOTHING`
//!   as one at a time: the first creation of a product wins, an existing row is kept);
//! - inventory events are folded into the batch's stock rows, read once, exactly as
//!   [`set_stock`]'s guarded upsert would change them (the guard and the `coalesce` of a commit's
//!   missing `available` depend on the row as it is, so it is read rather than assumed), and the
//!   changed rows are written back in one upsert.
//!
//! Everything else (product updates and deactivations, categories, reviews) is rare and applied
//! one event at a time with the projection's own `apply`. No apply reads or writes another
//! aggregate's table, so only the order within a table matters: a product update waits for its
//! product's pending insert, which is written first.
//!
//! [`set_stock`]: super::set_stock

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use commerce_domain::inventory::InventoryEvent;
use commerce_domain::product::ProductEvent;
use commerce_event_store::{HandlerError, StoredEvent};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{apply_category, apply_product, apply_review, stock_levels, StockLevels};

/// One stock row.
#[derive(sqlx::FromRow)]
struct Stock {
    product_id: Uuid,
    available: i64,
    reserved: i64,
    version: i64,
}

pub(super) async fn apply(
    conn: &mut PgConnection,
    events: &[&StoredEvent],
) -> Result<(), HandlerError> {
    // No other event touches `stock`, and stock events touch nothing else: they are folded on
    // their own, in log order.
    let mut levels = Vec::new();
    for event in events.iter().filter(|e| e.aggregate_type == "Inventory") {
        // Decoded from the borrowed payload: no copy of it.
        if let Some(stated) = stock_levels(InventoryEvent::deserialize(&event.payload)?) {
            levels.push((stated, event.sequence));
        }
    }
    if !levels.is_empty() {
        let ids: HashSet<Uuid> = levels.iter().map(|(l, _)| l.product_id).collect();
        let mut stock = StockRows::read(conn, ids.into_iter().collect()).await?;
        for (stated, version) in levels {
            stock.set(stated, version);
        }
        stock.write(conn).await?;
    }

    let mut products = NewProducts::default();
    for event in events {
        match event.aggregate_type.as_str() {
            "Product" => match ProductEvent::deserialize(&event.payload)? {
                ProductEvent::ProductCreated {
                    product_id,
                    name,
                    slug,
                    description,
                    price,
                    category_id,
                    image_url,
                    at,
                } => {
                    if products.ids.insert(product_id) {
                        let c = &mut products.columns;
                        c.ids.push(product_id);
                        c.names.push(name);
                        c.slugs.push(slug);
                        c.descriptions.push(description);
                        c.prices.push(price.amount_minor);
                        c.currencies.push(price.currency.as_str().to_owned());
                        c.category_ids.push(category_id);
                        c.image_urls.push(image_url);
                        c.at.push(at);
                    }
                }
                ProductEvent::ProductUpdated { product_id, .. }
                | ProductEvent::ProductDeactivated { product_id, .. } => {
                    if products.ids.contains(&product_id) {
                        products.insert(conn).await?;
                    }
                    apply_product(conn, event).await?;
                }
            },
            "Category" => apply_category(conn, event).await?,
            "Review" => apply_review(conn, event).await?,
            _ => {}
        }
    }
    products.insert(conn).await?;
    Ok(())
}

/// Stock rows read at the start of the batch and changed in memory.
struct StockRows {
    rows: HashMap<Uuid, Stock>,
    changed: HashSet<Uuid>,
}

impl StockRows {
    /// The existing rows of products `ids`.
    async fn read(conn: &mut PgConnection, ids: Vec<Uuid>) -> Result<Self, sqlx::Error> {
        let rows = sqlx::query_as::<_, Stock>(
            "SELECT product_id, available, reserved, version FROM stock \
             WHERE product_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|s| (s.product_id, s))
        .collect();
        Ok(Self {
            rows,
            changed: HashSet::new(),
        })
    }

    /// [`super::set_stock`]'s upsert, in memory.
    fn set(&mut self, stated: StockLevels, version: i64) {
        let StockLevels {
            product_id,
            available,
            reserved,
        } = stated;
        match self.rows.get_mut(&product_id) {
            None => {
                let row = Stock {
                    product_id,
                    available: available.unwrap_or(0),
                    reserved,
                    version,
                };
                self.rows.insert(product_id, row);
            }
            Some(row) if row.version < version => {
                row.available = available.unwrap_or(row.available);
                row.reserved = reserved;
                row.version = version;
            }
            Some(_) => return,
        }
        self.changed.insert(product_id);
    }

    async fn write(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let rows: Vec<&Stock> = self
            .changed
            .iter()
            .filter_map(|id| self.rows.get(id))
            .collect();
        if rows.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO stock (product_id, available, reserved, version) \
             SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[]) \
             ON CONFLICT (product_id) DO UPDATE SET available = EXCLUDED.available, \
               reserved = EXCLUDED.reserved, version = EXCLUDED.version",
        )
        .bind(rows.iter().map(|s| s.product_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|s| s.available).collect::<Vec<_>>())
        .bind(rows.iter().map(|s| s.reserved).collect::<Vec<_>>())
        .bind(rows.iter().map(|s| s.version).collect::<Vec<_>>())
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// `ProductCreated` rows not inserted yet, each product once: the first creation wins.
#[derive(Default)]
struct NewProducts {
    ids: HashSet<Uuid>,
    columns: ProductColumns,
}

#[derive(Default)]
struct ProductColumns {
    ids: Vec<Uuid>,
    names: Vec<String>,
    slugs: Vec<String>,
    descriptions: Vec<String>,
    prices: Vec<i64>,
    currencies: Vec<String>,
    category_ids: Vec<Uuid>,
    image_urls: Vec<Option<String>>,
    at: Vec<DateTime<Utc>>,
}

impl NewProducts {
    /// Inserts the pending rows and starts over.
    async fn insert(&mut self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        let c = std::mem::take(&mut self.columns);
        self.ids.clear();
        if c.ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO products (id, name, slug, description, price_minor, currency, \
               category_id, image_url, is_active, created_at, updated_at) \
             SELECT id, name, slug, description, price_minor, currency, category_id, image_url, \
               true, at, at \
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], \
               $6::text[], $7::uuid[], $8::text[], $9::timestamptz[]) \
               AS n(id, name, slug, description, price_minor, currency, category_id, image_url, at) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&c.ids)
        .bind(&c.names)
        .bind(&c.slugs)
        .bind(&c.descriptions)
        .bind(&c.prices)
        .bind(&c.currencies)
        .bind(&c.category_ids)
        .bind(&c.image_urls)
        .bind(&c.at)
        .execute(conn)
        .await?;
        Ok(())
    }
}
