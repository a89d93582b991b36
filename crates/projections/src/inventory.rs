//! The inventory read model: each product's stock levels and its movement history.
//!
//! Built from `Inventory` events, which carry the levels after them: levels are set to those
//! values, never recomputed, and only by an event newer than the row's `version` (the inventory's
//! sequence), so a stale or redelivered event changes nothing. Movements are keyed by event id.
//! A product exists here from its first `StockAdjusted`, as on the write side; reading never
//! creates rows. `StockReservationRejected` moves no stock and is not a movement.
//!
//! A movement's `before`/`after` are the product's *available* units around it. A commit moves
//! reserved units out of the warehouse, so its `before` and `after` are equal (the available units
//! at that point, taken from the level row: `StockCommitted` does not carry them).

use chrono::{DateTime, Utc};
use commerce_domain::inventory::InventoryEvent;
use commerce_event_store::{HandlerError, StoredEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::Projection;

/// The warehouse every level is reported in: the model has one stock pool per product.
pub const DEFAULT_WAREHOUSE_ID: &str = "default";

/// The inventory projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct InventoryProjection;

/// A product's stock as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StockLevelView {
    /// The product.
    pub product_id: Uuid,
    /// Units that can be reserved.
    pub available: i64,
    /// Units held for orders.
    pub reserved: i64,
    /// Units on hand: available + reserved.
    pub total: i64,
    /// Always [`DEFAULT_WAREHOUSE_ID`].
    pub warehouse_id: String,
}

/// The answer to an availability check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Availability {
    /// True when every item can be reserved now.
    pub available: bool,
    /// The items that cannot, in the order first asked for.
    pub unavailable_items: Vec<UnavailableItem>,
}

/// A product with fewer available units than requested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UnavailableItem {
    /// The product.
    pub product_id: Uuid,
    /// Units requested (summed over the items naming this product).
    pub requested: i64,
    /// Units available (0 for a product without stock).
    pub available: i64,
}

/// One stock movement as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct MovementView {
    /// The event's id.
    pub id: Uuid,
    /// The product.
    pub product_id: Uuid,
    /// `INBOUND`, `OUTBOUND`, `ADJUSTMENT`, `RESERVED`, `RELEASED` or `COMMITTED`.
    pub movement_type: String,
    /// Units moved (never negative; the type says which way).
    pub quantity: i64,
    /// Available units before.
    pub before: i64,
    /// Available units after.
    pub after: i64,
    /// `ORDER` or `ADJUSTMENT`.
    pub reference_type: String,
    /// The order, for `ORDER` movements.
    pub reference_id: Option<Uuid>,
    /// The operator's reason, for adjustments that gave one.
    pub reason: Option<String>,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
}

/// A movement row about to be written.
struct Movement {
    movement_type: &'static str,
    quantity: i64,
    before: i64,
    after: i64,
    order_id: Option<Uuid>,
    reason: Option<String>,
}

impl Movement {
    /// A movement an order caused.
    fn for_order(
        movement_type: &'static str,
        order_id: Uuid,
        quantity: u32,
        before: i64,
        after: i64,
    ) -> Self {
        Self {
            movement_type,
            quantity: quantity.into(),
            before,
            after,
            order_id: Some(order_id),
            reason: None,
        }
    }
}

async fn insert_movement(
    conn: &mut PgConnection,
    event: &StoredEvent,
    product_id: Uuid,
    m: Movement,
) -> Result<(), sqlx::Error> {
    let reference_type = if m.order_id.is_some() {
        "ORDER"
    } else {
        "ADJUSTMENT"
    };
    sqlx::query(
        "INSERT INTO movements (id, product_id, sequence, movement_type, quantity, \
         available_before, available_after, reference_type, reference_id, reason, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (id) DO NOTHING",
    )
    .bind(event.event_id)
    .bind(product_id)
    .bind(event.sequence)
    .bind(m.movement_type)
    .bind(m.quantity)
    .bind(m.before)
    .bind(m.after)
    .bind(reference_type)
    .bind(m.order_id)
    .bind(m.reason)
    .bind(event.recorded_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets a product's levels (creating the row on its first adjustment), unless the row already
/// reflects this event or a later one.
async fn set_levels(
    conn: &mut PgConnection,
    event: &StoredEvent,
    product_id: Uuid,
    available: i64,
    reserved: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO levels (product_id, available, reserved, total, version, \
         created_at, updated_at) VALUES ($1, $2, $3, $2 + $3, $4, $5, $5) \
         ON CONFLICT (product_id) DO UPDATE SET available = EXCLUDED.available, \
         reserved = EXCLUDED.reserved, total = EXCLUDED.total, \
         version = EXCLUDED.version, updated_at = EXCLUDED.updated_at \
         WHERE levels.version < EXCLUDED.version",
    )
    .bind(product_id)
    .bind(available)
    .bind(reserved)
    .bind(event.sequence)
    .bind(event.recorded_at)
    .execute(conn)
    .await?;
    Ok(())
}

impl Projection for InventoryProjection {
    const NAME: &'static str = "inventory";

    const PARTITIONABLE: bool = true;

    fn bindings() -> Vec<String> {
        vec!["Inventory.*".to_owned()]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        // Every stock event sets the levels it reports and records one movement.
        let (product_id, available, reserved, movement) = match event
            .payload_as::<InventoryEvent>()?
        {
            InventoryEvent::StockAdjusted {
                product_id,
                delta,
                available_before,
                available_after,
                reserved,
                reason,
                ..
            } => {
                // The event does not say which operation it was (add, subtract, set, delta):
                // the sign of the change decides, and only a change of zero is an ADJUSTMENT.
                let movement_type = match delta.signum() {
                    1 => "INBOUND",
                    -1 => "OUTBOUND",
                    _ => "ADJUSTMENT",
                };
                let movement = Movement {
                    movement_type,
                    quantity: delta.saturating_abs(),
                    before: available_before,
                    after: available_after,
                    order_id: None,
                    reason,
                };
                (product_id, available_after, reserved, movement)
            }
            InventoryEvent::StockReserved {
                product_id,
                order_id,
                quantity,
                available_after,
                reserved_after,
                ..
            } => {
                let before = available_after + i64::from(quantity);
                let movement =
                    Movement::for_order("RESERVED", order_id, quantity, before, available_after);
                (product_id, available_after, reserved_after, movement)
            }
            InventoryEvent::StockReleased {
                product_id,
                order_id,
                quantity,
                available_after,
                reserved_after,
                ..
            } => {
                let before = available_after - i64::from(quantity);
                let movement =
                    Movement::for_order("RELEASED", order_id, quantity, before, available_after);
                (product_id, available_after, reserved_after, movement)
            }
            InventoryEvent::StockCommitted {
                product_id,
                order_id,
                quantity,
                reserved_after,
                ..
            } => {
                // A commit needs a reservation, hence an adjusted inventory: a missing row is a
                // broken log or model, and halts the projection rather than losing the movement.
                let available: i64 =
                    sqlx::query_scalar("SELECT available FROM levels WHERE product_id = $1")
                        .bind(product_id)
                        .fetch_optional(&mut *conn)
                        .await?
                        .ok_or_else(|| format!("StockCommitted for {product_id} without stock"))?;
                let movement =
                    Movement::for_order("COMMITTED", order_id, quantity, available, available);
                (product_id, available, reserved_after, movement)
            }
            InventoryEvent::StockReturned {
                product_id,
                order_id,
                quantity,
                available_after,
                reserved,
                ..
            } => {
                let before = available_after - i64::from(quantity);
                let mut movement =
                    Movement::for_order("INBOUND", order_id, quantity, before, available_after);
                movement.reason = Some("order cancelled".to_owned());
                (product_id, available_after, reserved, movement)
            }
            InventoryEvent::StockReservationRejected { .. } => return Ok(()),
        };
        set_levels(conn, event, product_id, available, reserved).await?;
        insert_movement(conn, event, product_id, movement).await?;
        Ok(())
    }
}

/// A product's stock; `None` for a product whose stock was never adjusted.
pub async fn get(pool: &PgPool, product_id: Uuid) -> Result<Option<StockLevelView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT product_id, available, reserved, total, $2::text AS warehouse_id \
         FROM inventory.levels WHERE product_id = $1",
    )
    .bind(product_id)
    .bind(DEFAULT_WAREHOUSE_ID)
    .fetch_optional(pool)
    .await
}

/// Whether every `(product_id, quantity)` can be reserved now. Items naming the same product are
/// summed; a product without stock has 0 available.
pub async fn check_availability(
    pool: &PgPool,
    items: &[(Uuid, i64)],
) -> Result<Availability, sqlx::Error> {
    let (ids, quantities): (Vec<Uuid>, Vec<i64>) = items.iter().copied().unzip();
    let unavailable_items: Vec<UnavailableItem> = sqlx::query_as(
        "SELECT r.product_id, r.requested, COALESCE(l.available, 0) AS available \
         FROM (SELECT product_id, sum(quantity)::bigint AS requested, min(n) AS n \
               FROM unnest($1::uuid[], $2::bigint[]) WITH ORDINALITY AS t(product_id, quantity, n) \
               GROUP BY product_id) r \
         LEFT JOIN inventory.levels l ON l.product_id = r.product_id \
         WHERE COALESCE(l.available, 0) < r.requested ORDER BY r.n",
    )
    .bind(ids)
    .bind(quantities)
    .fetch_all(pool)
    .await?;
    Ok(Availability {
        available: unavailable_items.is_empty(),
        unavailable_items,
    })
}

/// A page of a product's movements in log order (oldest first), with the total count. A product
/// without stock has none.
pub async fn history(
    pool: &PgPool,
    product_id: Uuid,
    page: crate::Page,
) -> Result<(Vec<MovementView>, i64), sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT id, product_id, movement_type, quantity, available_before AS before, \
         available_after AS after, reference_type, reference_id, reason, created_at \
         FROM inventory.movements WHERE product_id = $1 ORDER BY sequence LIMIT $2 OFFSET $3",
    )
    .bind(product_id)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let total =
        sqlx::query_scalar("SELECT count(*) FROM inventory.movements WHERE product_id = $1")
            .bind(product_id)
            .fetch_one(pool)
            .await?;
    Ok((rows, total))
}
