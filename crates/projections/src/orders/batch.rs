//! Orders applied a batch at a time, for a rebuild: the batch's orders are read once, each event
//! is folded into them in memory exactly as [`OrdersProjection::apply`] would change the row (the
//! insert of `OrderPlaced`, then [`Change::apply`]'s guarded update), and the result is written
//! back in at most three statements: new orders, changed orders, new lines. Reading the rows first
//! is what makes the fold exact for any order of events and for events already applied: the
//! version guard and the `paid_by` rule depend on the row as it is.
//!
//! [`OrdersProjection::apply`]: super::OrdersProjection

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use commerce_domain::order::{OrderEvent, OrderPaymentStatus, OrderStatus, StockStatus};
use commerce_event_store::{HandlerError, StoredEvent};
use serde::Deserialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Change, Effect, Placed};

/// The columns of an order that events change.
#[derive(sqlx::FromRow)]
struct Order {
    status: String,
    stock_status: String,
    payment_status: String,
    cancellation_reason: Option<String>,
    paid_by: Option<Uuid>,
    version: i64,
    updated_at: DateTime<Utc>,
}

/// An order as the batch leaves it.
struct Folded {
    order: Order,
    /// Set when the batch inserted it: the columns no event changes.
    placed: Option<(Box<Placed>, DateTime<Utc>)>,
    changed: bool,
}

impl Folded {
    /// The row `OrderPlaced` inserts.
    fn placed(placed: Box<Placed>, version: i64, at: DateTime<Utc>) -> Self {
        Self {
            order: Order {
                status: OrderStatus::Pending.as_str().to_owned(),
                stock_status: StockStatus::Pending.as_str().to_owned(),
                payment_status: OrderPaymentStatus::Unpaid.as_str().to_owned(),
                cancellation_reason: None,
                paid_by: None,
                version,
                updated_at: at,
            },
            placed: Some((placed, at)),
            changed: true,
        }
    }

    /// [`Change::apply`]'s update, in memory: every `SET` reads the row as it was before.
    fn change(&mut self, change: &Change, version: i64, at: DateTime<Utc>) {
        let order = &mut self.order;
        if order.version >= version {
            return;
        }
        if let Some(status) = change.status {
            order.status = status.as_str().to_owned();
        }
        if let Some(stock) = change.stock_status {
            order.stock_status = stock.as_str().to_owned();
        }
        if change.only_if_paid_by.is_none() || order.paid_by == change.only_if_paid_by {
            if let Some(payment) = change.payment_status {
                order.payment_status = payment.as_str().to_owned();
            }
        }
        if let Some(reason) = change.cancellation_reason {
            order.cancellation_reason = Some(reason.as_str().to_owned());
        }
        if let Some(paid_by) = change.paid_by {
            order.paid_by = Some(paid_by);
        }
        order.version = version;
        order.updated_at = at;
        self.changed = true;
    }
}

/// One decoded event of the batch.
struct Step {
    effect: Effect,
    version: i64,
    at: DateTime<Utc>,
}

pub(super) async fn apply(
    conn: &mut PgConnection,
    events: &[&StoredEvent],
) -> Result<(), HandlerError> {
    let mut steps = Vec::with_capacity(events.len());
    let mut ids = HashSet::new();
    for event in events {
        // Decoded from the borrowed payload: no copy of it.
        let order_event = OrderEvent::deserialize(&event.payload)?;
        let at = order_event.at();
        let effect = Effect::of(order_event);
        ids.insert(match &effect {
            Effect::Place(placed) => placed.order_id,
            Effect::Change(order_id, _) => *order_id,
        });
        steps.push(Step {
            effect,
            version: event.sequence,
            at,
        });
    }

    let ids: Vec<Uuid> = ids.into_iter().collect();
    let mut orders: HashMap<Uuid, Folded> = sqlx::query_as::<_, OrderRow>(
        "SELECT id, status, stock_status, payment_status, cancellation_reason, paid_by, version, \
           updated_at FROM orders WHERE id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|row| {
        let folded = Folded {
            order: row.order,
            placed: None,
            changed: false,
        };
        (row.id, folded)
    })
    .collect();

    let mut items = Items::default();
    for Step {
        effect,
        version,
        at,
    } in steps
    {
        match effect {
            Effect::Place(placed) => {
                // Lines are inserted even when the order exists, each unless it exists.
                items.add(&placed);
                orders
                    .entry(placed.order_id)
                    .or_insert_with(|| Folded::placed(placed, version, at));
            }
            // An order not (yet) inserted is not updated, as the `UPDATE` would find no row.
            Effect::Change(order_id, change) => {
                if let Some(order) = orders.get_mut(&order_id) {
                    order.change(&change, version, at);
                }
            }
        }
    }

    insert_orders(conn, &orders).await?;
    update_orders(conn, &orders).await?;
    items.insert(conn).await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: Uuid,
    #[sqlx(flatten)]
    order: Order,
}

/// The orders the batch inserted, with the statuses the rest of the batch gave them.
async fn insert_orders(
    conn: &mut PgConnection,
    orders: &HashMap<Uuid, Folded>,
) -> Result<(), HandlerError> {
    let mut c = OrderColumns::default();
    let mut user_ids = Vec::new();
    let mut totals = Vec::new();
    let mut currencies = Vec::new();
    let mut addresses = Vec::new();
    let mut methods = Vec::new();
    let mut created = Vec::new();
    for (id, folded) in orders {
        let Some((placed, at)) = &folded.placed else {
            continue;
        };
        c.push(*id, &folded.order);
        user_ids.push(placed.user_id);
        totals.push(placed.total.amount_minor);
        currencies.push(placed.total.currency.as_str().to_owned());
        addresses.push(serde_json::to_string(&placed.shipping_address)?);
        methods.push(placed.payment_method.as_str());
        created.push(*at);
    }
    if c.ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO orders (id, status, stock_status, payment_status, cancellation_reason, \
           paid_by, version, updated_at, user_id, total_amount, currency, shipping_address, \
           payment_method, created_at) \
         SELECT id, status, stock_status, payment_status, cancellation_reason, paid_by, version, \
           updated_at, user_id, total_amount, currency, shipping_address::jsonb, payment_method, \
           created_at \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[], \
           $7::bigint[], $8::timestamptz[], $9::uuid[], $10::bigint[], $11::text[], $12::text[], \
           $13::text[], $14::timestamptz[]) \
           AS n(id, status, stock_status, payment_status, cancellation_reason, paid_by, version, \
             updated_at, user_id, total_amount, currency, shipping_address, payment_method, \
             created_at)",
    )
    .bind(&c.ids)
    .bind(&c.statuses)
    .bind(&c.stock_statuses)
    .bind(&c.payment_statuses)
    .bind(&c.reasons)
    .bind(&c.paid_by)
    .bind(&c.versions)
    .bind(&c.updated_at)
    .bind(&user_ids)
    .bind(&totals)
    .bind(&currencies)
    .bind(&addresses)
    .bind(&methods)
    .bind(&created)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The orders that existed before the batch and that it changed.
async fn update_orders(
    conn: &mut PgConnection,
    orders: &HashMap<Uuid, Folded>,
) -> Result<(), HandlerError> {
    let mut c = OrderColumns::default();
    for (id, folded) in orders {
        if folded.changed && folded.placed.is_none() {
            c.push(*id, &folded.order);
        }
    }
    if c.ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE orders o SET status = u.status, stock_status = u.stock_status, \
           payment_status = u.payment_status, cancellation_reason = u.cancellation_reason, \
           paid_by = u.paid_by, version = u.version, updated_at = u.updated_at \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[], \
           $7::bigint[], $8::timestamptz[]) \
           AS u(id, status, stock_status, payment_status, cancellation_reason, paid_by, version, \
             updated_at) \
         WHERE o.id = u.id",
    )
    .bind(&c.ids)
    .bind(&c.statuses)
    .bind(&c.stock_statuses)
    .bind(&c.payment_statuses)
    .bind(&c.reasons)
    .bind(&c.paid_by)
    .bind(&c.versions)
    .bind(&c.updated_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The changing columns of several orders, as arrays for `unnest`.
#[derive(Default)]
struct OrderColumns<'a> {
    ids: Vec<Uuid>,
    statuses: Vec<&'a str>,
    stock_statuses: Vec<&'a str>,
    payment_statuses: Vec<&'a str>,
    reasons: Vec<Option<&'a str>>,
    paid_by: Vec<Option<Uuid>>,
    versions: Vec<i64>,
    updated_at: Vec<DateTime<Utc>>,
}

impl<'a> OrderColumns<'a> {
    fn push(&mut self, id: Uuid, order: &'a Order) {
        self.ids.push(id);
        self.statuses.push(&order.status);
        self.stock_statuses.push(&order.stock_status);
        self.payment_statuses.push(&order.payment_status);
        self.reasons.push(order.cancellation_reason.as_deref());
        self.paid_by.push(order.paid_by);
        self.versions.push(order.version);
        self.updated_at.push(order.updated_at);
    }
}

/// Order lines to insert, each `(order, line)` once: the first `OrderPlaced` wins, as with
/// `ON CONFLICT DO NOTHING` one event at a time.
#[derive(Default)]
struct Items {
    seen: HashSet<(Uuid, i32)>,
    order_ids: Vec<Uuid>,
    line_nos: Vec<i32>,
    product_ids: Vec<Uuid>,
    names: Vec<String>,
    quantities: Vec<i64>,
    prices: Vec<i64>,
    subtotals: Vec<i64>,
}

impl Items {
    fn add(&mut self, placed: &Placed) {
        for (line_no, line) in (1_i32..).zip(&placed.lines) {
            if !self.seen.insert((placed.order_id, line_no)) {
                continue;
            }
            self.order_ids.push(placed.order_id);
            self.line_nos.push(line_no);
            self.product_ids.push(line.product_id);
            self.names.push(line.product_name.clone());
            self.quantities.push(i64::from(line.quantity));
            self.prices.push(line.unit_price.amount_minor);
            self.subtotals.push(line.subtotal.amount_minor);
        }
    }

    async fn insert(&self, conn: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.order_ids.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO order_items (order_id, line_no, product_id, product_name, quantity, \
               price, subtotal) \
             SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::text[], $5::bigint[], \
               $6::bigint[], $7::bigint[]) \
             ON CONFLICT (order_id, line_no) DO NOTHING",
        )
        .bind(&self.order_ids)
        .bind(&self.line_nos)
        .bind(&self.product_ids)
        .bind(&self.names)
        .bind(&self.quantities)
        .bind(&self.prices)
        .bind(&self.subtotals)
        .execute(conn)
        .await?;
        Ok(())
    }
}
