//! The orders read model: every order with its priced lines and its three statuses (lifecycle,
//! stock, payment), as `GET /orders` shows them.
//!
//! Built from `Order` events only. Each row records the aggregate version it reflects and an
//! update applies only to an older row, so a repeated event never moves an order backwards. The
//! payment status follows the aggregate's rule: only refunds of the payment that paid the order
//! change it (a capture that landed after cancellation leaves the order `UNPAID`).
//!
//! `batch.rs` applies a rebuild's batch with the same result in a few bulk statements;
//! `queries.rs` holds the views and the queries the API calls.

mod batch;
mod queries;

use chrono::{DateTime, Utc};
use commerce_domain::order::{
    CancellationReason, OrderEvent, OrderLineItem, OrderPaymentStatus, OrderStatus,
    ShippingAddress, StockStatus,
};
use commerce_domain::Money;
use commerce_event_store::{HandlerError, StoredEvent};
use sqlx::PgConnection;
use uuid::Uuid;

pub use queries::{get, has_confirmed_order_with, list, OrderFilter, OrderItemView, OrderView};

use crate::{erasure, Projection};

/// The orders projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrdersProjection;

/// What an event after `OrderPlaced` changes on its order (`None`: unchanged).
#[derive(Debug, Default)]
struct Change {
    status: Option<OrderStatus>,
    stock_status: Option<StockStatus>,
    payment_status: Option<OrderPaymentStatus>,
    cancellation_reason: Option<CancellationReason>,
    paid_by: Option<Uuid>,
    /// Apply `payment_status` only if this payment is the one that paid the order.
    only_if_paid_by: Option<Uuid>,
}

impl Change {
    fn status(status: OrderStatus) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }

    fn stock(stock_status: StockStatus) -> Self {
        Self {
            stock_status: Some(stock_status),
            ..Self::default()
        }
    }

    /// Applies the change to order `order_id` at aggregate version `version`, unless the row
    /// already reflects that version. `batch.rs` folds the same update in memory: keep them in
    /// step.
    async fn apply(
        self,
        conn: &mut PgConnection,
        order_id: Uuid,
        version: i64,
        at: DateTime<Utc>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE orders SET \
               status = COALESCE($3, status), \
               stock_status = COALESCE($4, stock_status), \
               payment_status = CASE WHEN $7::uuid IS NULL OR paid_by = $7 \
                 THEN COALESCE($5, payment_status) ELSE payment_status END, \
               cancellation_reason = COALESCE($6, cancellation_reason), \
               paid_by = COALESCE($8, paid_by), \
               version = $2, updated_at = $9 \
             WHERE id = $1 AND version < $2",
        )
        .bind(order_id)
        .bind(version)
        .bind(self.status.map(OrderStatus::as_str))
        .bind(self.stock_status.map(StockStatus::as_str))
        .bind(self.payment_status.map(OrderPaymentStatus::as_str))
        .bind(self.cancellation_reason.map(CancellationReason::as_str))
        .bind(self.only_if_paid_by)
        .bind(self.paid_by)
        .bind(at)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// What one order event does to the read model.
enum Effect {
    /// Inserts the order and its lines, unless they exist.
    Place(Box<Placed>),
    /// Changes an existing order (see [`Change::apply`]).
    Change(Uuid, Change),
}

/// The order an `OrderPlaced` inserts.
struct Placed {
    order_id: Uuid,
    user_id: Uuid,
    lines: Vec<OrderLineItem>,
    total: Money,
    shipping_address: ShippingAddress,
    payment_method: String,
}

impl Effect {
    /// The same mapping serves [`Projection::apply`] and the batch, so both change the same fields.
    fn of(event: OrderEvent) -> Self {
        let (order_id, change) = match event {
            OrderEvent::OrderPlaced {
                order_id,
                user_id,
                lines,
                total,
                shipping_address,
                payment_method,
                ..
            } => {
                return Self::Place(Box::new(Placed {
                    order_id,
                    user_id,
                    lines,
                    total,
                    shipping_address,
                    payment_method,
                }))
            }
            OrderEvent::OrderStockReserved { order_id, .. }
            | OrderEvent::OrderStockReservedAfterCancellation { order_id, .. } => {
                (order_id, Change::stock(StockStatus::Reserved))
            }
            OrderEvent::OrderStockRejected { order_id, .. } => {
                (order_id, Change::stock(StockStatus::Rejected))
            }
            OrderEvent::OrderStockReleased { order_id, .. } => {
                (order_id, Change::stock(StockStatus::Released))
            }
            OrderEvent::OrderStockCommitted { order_id, .. } => {
                (order_id, Change::stock(StockStatus::Committed))
            }
            OrderEvent::OrderPaid {
                order_id,
                payment_id,
                ..
            } => (
                order_id,
                Change {
                    payment_status: Some(OrderPaymentStatus::Paid),
                    paid_by: Some(payment_id),
                    ..Change::default()
                },
            ),
            // A payment requested or failed, or captured too late, leaves the statuses as they
            // are: the order stays payable, or the saga refunds the late capture.
            OrderEvent::OrderPaymentRequested { order_id, .. }
            | OrderEvent::OrderPaymentFailed { order_id, .. }
            | OrderEvent::OrderPaidAfterCancellation { order_id, .. } => {
                (order_id, Change::default())
            }
            OrderEvent::OrderConfirmed { order_id, .. } => {
                (order_id, Change::status(OrderStatus::Confirmed))
            }
            OrderEvent::OrderCancelled {
                order_id, reason, ..
            } => (
                order_id,
                Change {
                    cancellation_reason: Some(reason),
                    ..Change::status(OrderStatus::Cancelled)
                },
            ),
            OrderEvent::OrderShipped { order_id, .. } => {
                (order_id, Change::status(OrderStatus::Shipped))
            }
            OrderEvent::OrderDelivered { order_id, .. } => {
                (order_id, Change::status(OrderStatus::Delivered))
            }
            OrderEvent::OrderRefunded {
                order_id,
                payment_id,
                fully_refunded,
                ..
            } => (
                order_id,
                Change {
                    payment_status: Some(OrderPaymentStatus::after_refund(fully_refunded)),
                    only_if_paid_by: Some(payment_id),
                    ..Change::default()
                },
            ),
        };
        Self::Change(order_id, change)
    }
}

impl Projection for OrdersProjection {
    const NAME: &'static str = "orders";

    const PARTITIONABLE: bool = true;

    fn bindings() -> Vec<String> {
        vec!["Order.*".to_owned(), erasure::binding()]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        if let Some(user_id) = erasure::erased_person(event) {
            return erase(conn, user_id).await;
        }
        let order_event = event.payload_as::<OrderEvent>()?;
        // The event's own time, as the write side answers with it (`Order::times`).
        let (at, version) = (order_event.at(), event.sequence);
        let placed = match Effect::of(order_event) {
            Effect::Change(order_id, change) => {
                change.apply(conn, order_id, version, at).await?;
                return Ok(());
            }
            Effect::Place(placed) => placed,
        };
        sqlx::query(
            "INSERT INTO orders (id, user_id, status, stock_status, payment_status, \
               total_amount, currency, shipping_address, payment_method, version, \
               created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(placed.order_id)
        .bind(placed.user_id)
        .bind(OrderStatus::Pending.as_str())
        .bind(StockStatus::Pending.as_str())
        .bind(OrderPaymentStatus::Unpaid.as_str())
        .bind(placed.total.amount_minor)
        .bind(placed.total.currency.as_str())
        .bind(sqlx::types::Json(&placed.shipping_address))
        .bind(&placed.payment_method)
        .bind(version)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        for (line_no, line) in (1_i32..).zip(&placed.lines) {
            sqlx::query(
                "INSERT INTO order_items (order_id, line_no, product_id, product_name, \
                   quantity, price, subtotal) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (order_id, line_no) DO NOTHING",
            )
            .bind(placed.order_id)
            .bind(line_no)
            .bind(line.product_id)
            .bind(&line.product_name)
            .bind(i64::from(line.quantity))
            .bind(line.unit_price.amount_minor)
            .bind(line.subtotal.amount_minor)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    async fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), HandlerError> {
        // Runs of order events in one go; an erasure in between applies in its place.
        let mut run = 0;
        for (i, event) in events.iter().enumerate() {
            if let Some(user_id) = erasure::erased_person(event) {
                if run < i {
                    batch::apply(conn, &events[run..i]).await?;
                }
                erase(conn, user_id).await?;
                run = i + 1;
            }
        }
        if run < events.len() {
            batch::apply(conn, &events[run..]).await?;
        }
        Ok(())
    }
}

/// The erased person's orders as a replay builds them: the sealed address reads as erased.
async fn erase(conn: &mut PgConnection, user_id: Uuid) -> Result<(), HandlerError> {
    sqlx::query("UPDATE orders SET shipping_address = to_jsonb($2::text) WHERE user_id = $1")
        .bind(user_id)
        .bind(commerce_domain::ERASED)
        .execute(conn)
        .await?;
    Ok(())
}
