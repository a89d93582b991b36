//! Queries of the orders read model and the views they return.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use commerce_domain::order::{OrderStatus, ShippingAddress};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::Page;

/// An order as the API shows it. Amounts are minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OrderView {
    /// Order id.
    pub id: Uuid,
    /// The customer.
    pub user_id: Uuid,
    /// `PENDING`, `CONFIRMED`, `SHIPPED`, `DELIVERED` or `CANCELLED`.
    pub status: String,
    /// `PENDING`, `RESERVED`, `REJECTED`, `RELEASED` or `COMMITTED`.
    pub stock_status: String,
    /// `UNPAID`, `PAID`, `REFUNDED` or `PARTIALLY_REFUNDED`.
    pub payment_status: String,
    /// `CUSTOMER_REQUEST`, `OUT_OF_STOCK` or `PAYMENT_TIMEOUT` once cancelled.
    pub cancellation_reason: Option<String>,
    /// Sum of the lines' subtotals, in minor units.
    pub total_amount: i64,
    /// ISO 4217 code of every amount of the order.
    pub currency: String,
    /// Where it ships.
    #[sqlx(json)]
    pub shipping_address: ShippingAddress,
    /// How the customer intends to pay.
    pub payment_method: String,
    /// The priced lines, in the order placed.
    #[sqlx(skip)]
    pub items: Vec<OrderItemView>,
    /// When placed.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A line of an order. Amounts are minor units of the order's currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct OrderItemView {
    /// The product.
    pub product_id: Uuid,
    /// Its name at ordering time.
    pub product_name: String,
    /// Units.
    pub quantity: i64,
    /// Unit price at ordering time.
    pub price: i64,
    /// `price × quantity`.
    pub subtotal: i64,
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    order_id: Uuid,
    #[sqlx(flatten)]
    item: OrderItemView,
}

/// Filters of [`list`]; `None` matches every order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only this customer's orders.
    pub user_id: Option<Uuid>,
    /// Only orders in this status.
    pub status: Option<OrderStatus>,
}

const COLUMNS: &str = "id, user_id, status, stock_status, payment_status, cancellation_reason, \
                       total_amount, currency, shipping_address, payment_method, created_at, updated_at";

/// Fills in the items of `orders` with one query.
async fn with_items(
    pool: &PgPool,
    mut orders: Vec<OrderView>,
) -> Result<Vec<OrderView>, sqlx::Error> {
    if orders.is_empty() {
        return Ok(orders);
    }
    let ids: Vec<Uuid> = orders.iter().map(|o| o.id).collect();
    let rows: Vec<ItemRow> = sqlx::query_as(
        "SELECT order_id, product_id, product_name, quantity, price, subtotal \
         FROM orders.order_items WHERE order_id = ANY($1) ORDER BY order_id, line_no",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut by_order: HashMap<Uuid, Vec<OrderItemView>> = HashMap::new();
    for row in rows {
        by_order.entry(row.order_id).or_default().push(row.item);
    }
    for order in &mut orders {
        order.items = by_order.remove(&order.id).unwrap_or_default();
    }
    Ok(orders)
}

/// One order by id, with its items.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<OrderView>, sqlx::Error> {
    let order: Option<OrderView> = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orders.orders WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(with_items(pool, order.into_iter().collect()).await?.pop())
}

/// A page of orders matching `filter`, newest first, with their items and the total count.
pub async fn list(
    pool: &PgPool,
    filter: &OrderFilter,
    page: Page,
) -> Result<(Vec<OrderView>, i64), sqlx::Error> {
    const WHERE: &str =
        "WHERE ($1::uuid IS NULL OR user_id = $1) AND ($2::text IS NULL OR status = $2)";
    let status = filter.status.map(OrderStatus::as_str);
    let orders = sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM orders.orders {WHERE} \
         ORDER BY created_at DESC, id LIMIT $3 OFFSET $4"
    ))
    .bind(filter.user_id)
    .bind(status)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(&format!("SELECT count(*) FROM orders.orders {WHERE}"))
        .bind(filter.user_id)
        .bind(status)
        .fetch_one(pool)
        .await?;
    Ok((with_items(pool, orders).await?, total))
}

/// Whether `user_id` has an order with `product_id` that reached `CONFIRMED` (or went on to
/// `SHIPPED`/`DELIVERED`) and was not cancelled: a review's `verified_purchase`.
pub async fn has_confirmed_order_with(
    pool: &PgPool,
    user_id: Uuid,
    product_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let reached = [
        OrderStatus::Confirmed,
        OrderStatus::Shipped,
        OrderStatus::Delivered,
    ]
    .map(OrderStatus::as_str);
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM orders.order_items i JOIN orders.orders o ON o.id = i.order_id \
         WHERE i.product_id = $2 AND o.user_id = $1 AND o.status = ANY($3))",
    )
    .bind(user_id)
    .bind(product_id)
    .bind(&reached[..])
    .fetch_one(pool)
    .await
}
