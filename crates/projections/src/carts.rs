//! The carts read model: each user's cart lines with names, prices and subtotals.
//!
//! Built from `Cart` events, which carry each line's name, price and subtotal: nothing is looked
//! up in the catalog and no subtotal is recomputed (a quantity change keeps the line's price, as
//! on the write side). Each cart row records the cart's last applied sequence; an event not newer
//! than it (a redelivery) is ignored as a whole, so lines removed or cleared never come back.

use commerce_domain::cart::CartEvent;
use commerce_domain::Currency;
use commerce_event_store::{HandlerError, StoredEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::Projection;

/// The carts projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct CartsProjection;

/// A user's cart as the API shows it. Money is in minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CartView {
    /// The owner.
    pub user_id: Uuid,
    /// The lines, in the order they were first added.
    pub items: Vec<CartItemView>,
    /// Sum of the subtotals.
    pub total_minor: i64,
    /// The lines' currency; USD (the API's default) for an empty cart.
    pub currency: String,
    /// Sum of the quantities.
    pub item_count: i64,
}

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CartItemView {
    /// The product.
    pub product_id: Uuid,
    /// Its name when last added.
    pub product_name: String,
    /// Units.
    pub quantity: i64,
    /// Unit price when last added, in minor units.
    pub price_minor: i64,
    /// `price_minor * quantity`.
    pub subtotal_minor: i64,
    /// Currency of both amounts.
    pub currency: String,
}

/// Moves the cart's row to this event's sequence; false when it already reflects this event or
/// a later one (then the event must change nothing).
async fn advance(
    conn: &mut PgConnection,
    event: &StoredEvent,
    user_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let advanced = sqlx::query(
        "INSERT INTO carts (user_id, version, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         ON CONFLICT (user_id) DO UPDATE SET version = EXCLUDED.version, \
         updated_at = EXCLUDED.updated_at WHERE carts.version < EXCLUDED.version",
    )
    .bind(user_id)
    .bind(event.sequence)
    .bind(event.recorded_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(advanced == 1)
}

fn user_of(event: &CartEvent) -> Uuid {
    match event {
        CartEvent::CartItemAdded { user_id, .. }
        | CartEvent::CartItemQuantityChanged { user_id, .. }
        | CartEvent::CartItemRemoved { user_id, .. }
        | CartEvent::CartCleared { user_id, .. } => *user_id,
    }
}

impl Projection for CartsProjection {
    const NAME: &'static str = "carts";

    const PARTITIONABLE: bool = true;

    fn bindings() -> Vec<String> {
        vec!["Cart.*".to_owned()]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        let at = event.recorded_at;
        let payload = event.payload_as::<CartEvent>()?;
        if !advance(conn, event, user_of(&payload)).await? {
            return Ok(());
        }
        match payload {
            CartEvent::CartItemAdded {
                user_id,
                product_id,
                product_name,
                unit_price,
                quantity_after,
                subtotal,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO items (user_id, product_id, product_name, quantity, price_minor, \
                     subtotal_minor, currency, line_order, added_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                     ON CONFLICT (user_id, product_id) DO UPDATE SET \
                     product_name = EXCLUDED.product_name, quantity = EXCLUDED.quantity, \
                     price_minor = EXCLUDED.price_minor, subtotal_minor = EXCLUDED.subtotal_minor, \
                     currency = EXCLUDED.currency, updated_at = EXCLUDED.updated_at",
                )
                .bind(user_id)
                .bind(product_id)
                .bind(product_name)
                .bind(i64::from(quantity_after))
                .bind(unit_price.amount_minor)
                .bind(subtotal.amount_minor)
                .bind(subtotal.currency.as_str())
                .bind(event.sequence)
                .bind(at)
                .execute(conn)
                .await?;
            }
            CartEvent::CartItemQuantityChanged {
                user_id,
                product_id,
                quantity,
                subtotal,
                ..
            } => {
                sqlx::query(
                    "UPDATE items SET quantity = $3, subtotal_minor = $4, updated_at = $5 \
                     WHERE user_id = $1 AND product_id = $2",
                )
                .bind(user_id)
                .bind(product_id)
                .bind(i64::from(quantity))
                .bind(subtotal.amount_minor)
                .bind(at)
                .execute(conn)
                .await?;
            }
            CartEvent::CartItemRemoved {
                user_id,
                product_id,
                ..
            } => {
                sqlx::query("DELETE FROM items WHERE user_id = $1 AND product_id = $2")
                    .bind(user_id)
                    .bind(product_id)
                    .execute(conn)
                    .await?;
            }
            CartEvent::CartCleared { user_id, .. } => {
                sqlx::query("DELETE FROM items WHERE user_id = $1")
                    .bind(user_id)
                    .execute(conn)
                    .await?;
            }
        }
        Ok(())
    }
}

/// A user's cart; a user without one gets an empty cart.
pub async fn get(pool: &PgPool, user_id: Uuid) -> Result<CartView, sqlx::Error> {
    let items: Vec<CartItemView> = sqlx::query_as(
        "SELECT product_id, product_name, quantity, price_minor, subtotal_minor, currency \
         FROM carts.items WHERE user_id = $1 ORDER BY line_order, product_id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    let currency = items
        .first()
        .map_or_else(|| Currency::USD.to_string(), |i| i.currency.clone());
    Ok(CartView {
        user_id,
        // At most 100 lines of at most 1000 units; a sum of absurd prices saturates, never panics.
        total_minor: items
            .iter()
            .fold(0, |sum: i64, i| sum.saturating_add(i.subtotal_minor)),
        item_count: items.iter().map(|i| i.quantity).sum(),
        currency,
        items,
    })
}
