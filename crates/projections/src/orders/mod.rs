//! The orders read model: every order with its priced lines and its three statuses (lifecycle,
//! stock, payment), as `GET /orders` shows them.
//!
//! Built from `Order` events only. Each row records the aggregate version it reflects and an
//! update applies only to an older row, so a repeated event never moves an order backwards. The
//! payment status follows the aggregate's rule: only refunds of the payment that paid the order
//! change it (a capture that landed after cancellation leaves the order `UNPAID`).
//!
//! `queries.rs` holds the views and the queries the API calls.

mod queries;

use chrono::{DateTime, Utc};
use commerce_domain::order::{
    CancellationReason, OrderEvent, OrderPaymentStatus, OrderStatus, StockStatus,
};
use commerce_event_store::{HandlerError, StoredEvent};
use sqlx::PgConnection;
use uuid::Uuid;

pub use queries::{get, has_confirmed_order_with, list, OrderFilter, OrderItemView, OrderView};

use crate::Projection;

/// The orders projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrdersProjection;

fn status_name(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Pending => "PENDING",
        OrderStatus::Confirmed => "CONFIRMED",
        OrderStatus::Shipped => "SHIPPED",
        OrderStatus::Delivered => "DELIVERED",
        OrderStatus::Cancelled => "CANCELLED",
    }
}

fn stock_name(status: StockStatus) -> &'static str {
    match status {
        StockStatus::Pending => "PENDING",
        StockStatus::Reserved => "RESERVED",
        StockStatus::Rejected => "REJECTED",
        StockStatus::Released => "RELEASED",
        StockStatus::Committed => "COMMITTED",
    }
}

fn payment_name(status: OrderPaymentStatus) -> &'static str {
    match status {
        OrderPaymentStatus::Unpaid => "UNPAID",
        OrderPaymentStatus::Paid => "PAID",
        OrderPaymentStatus::Refunded => "REFUNDED",
        OrderPaymentStatus::PartiallyRefunded => "PARTIALLY_REFUNDED",
    }
}

fn reason_name(reason: CancellationReason) -> &'static str {
    match reason {
        CancellationReason::CustomerRequest => "CUSTOMER_REQUEST",
        CancellationReason::OutOfStock => "OUT_OF_STOCK",
        CancellationReason::PaymentTimeout => "PAYMENT_TIMEOUT",
    }
}

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
    /// already reflects that version.
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
        .bind(self.status.map(status_name))
        .bind(self.stock_status.map(stock_name))
        .bind(self.payment_status.map(payment_name))
        .bind(self.cancellation_reason.map(reason_name))
        .bind(self.only_if_paid_by)
        .bind(self.paid_by)
        .bind(at)
        .execute(conn)
        .await?;
        Ok(())
    }
}

impl Projection for OrdersProjection {
    const NAME: &'static str = "orders";

    fn bindings() -> Vec<String> {
        vec!["Order.*".to_owned()]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        let (at, version) = (event.recorded_at, event.sequence);
        let (order_id, change) = match event.payload_as::<OrderEvent>()? {
            OrderEvent::OrderPlaced {
                order_id,
                user_id,
                lines,
                total,
                shipping_address,
                payment_method,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO orders (id, user_id, status, stock_status, payment_status, \
                       total_amount, currency, shipping_address, payment_method, version, \
                       created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(order_id)
                .bind(user_id)
                .bind(status_name(OrderStatus::Pending))
                .bind(stock_name(StockStatus::Pending))
                .bind(payment_name(OrderPaymentStatus::Unpaid))
                .bind(total.amount_minor)
                .bind(total.currency.as_str())
                .bind(sqlx::types::Json(&shipping_address))
                .bind(payment_method)
                .bind(version)
                .bind(at)
                .execute(&mut *conn)
                .await?;
                for (line_no, line) in (1_i32..).zip(&lines) {
                    sqlx::query(
                        "INSERT INTO order_items (order_id, line_no, product_id, product_name, \
                           quantity, price, subtotal) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (order_id, line_no) DO NOTHING",
                    )
                    .bind(order_id)
                    .bind(line_no)
                    .bind(line.product_id)
                    .bind(&line.product_name)
                    .bind(i64::from(line.quantity))
                    .bind(line.unit_price.amount_minor)
                    .bind(line.subtotal.amount_minor)
                    .execute(&mut *conn)
                    .await?;
                }
                return Ok(());
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
                    payment_status: Some(if fully_refunded {
                        OrderPaymentStatus::Refunded
                    } else {
                        OrderPaymentStatus::PartiallyRefunded
                    }),
                    only_if_paid_by: Some(payment_id),
                    ..Change::default()
                },
            ),
        };
        change.apply(conn, order_id, version, at).await?;
        Ok(())
    }
}
