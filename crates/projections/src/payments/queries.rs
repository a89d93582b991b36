//! Queries of the payments read model and the views they return.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::Page;

/// A payment as the API shows it. Amounts are minor units of `currency`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PaymentView {
    /// Payment id.
    pub id: Uuid,
    /// The order paid.
    pub order_id: Uuid,
    /// The payer.
    pub user_id: Uuid,
    /// Amount captured (or attempted, when failed).
    pub amount: i64,
    /// ISO 4217 code of `amount` and `refunded_amount`.
    pub currency: String,
    /// Method name (e.g. `card`).
    pub method: String,
    /// `COMPLETED`, `FAILED`, `REFUNDED` or `PARTIALLY_REFUNDED`.
    pub status: String,
    /// The gateway's reason, when failed.
    pub failure_reason: Option<String>,
    /// The gateway's reference, when captured.
    pub gateway_transaction_id: Option<String>,
    /// Sum of the refunds so far.
    pub refunded_amount: i64,
    /// When captured or declined.
    pub created_at: DateTime<Utc>,
    /// Last change (the last refund).
    pub updated_at: DateTime<Utc>,
}

/// A saved payment method as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct PaymentMethodView {
    /// Method id.
    pub id: Uuid,
    /// The owner.
    pub user_id: Uuid,
    /// Kind, e.g. `card`.
    pub method_type: String,
    /// The gateway's token for it.
    pub gateway_method_id: String,
    /// Whether it is the owner's default (exactly one is, while any is saved).
    pub is_default: bool,
    /// When saved.
    pub created_at: DateTime<Utc>,
}

const PAYMENT_COLUMNS: &str = "id, order_id, user_id, amount, currency, method, status, \
                               failure_reason, gateway_transaction_id, refunded_amount, \
                               created_at, updated_at";

/// One payment by id.
pub async fn get_payment(pool: &PgPool, id: Uuid) -> Result<Option<PaymentView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments.payments WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// Every payment (attempt) of an order, newest first.
pub async fn payments_for_order(
    pool: &PgPool,
    order_id: Uuid,
) -> Result<Vec<PaymentView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments.payments WHERE order_id = $1 \
         ORDER BY created_at DESC, id"
    ))
    .bind(order_id)
    .fetch_all(pool)
    .await
}

/// A page of payments (of one payer, or of everyone), newest first, with the total count.
pub async fn list_payments(
    pool: &PgPool,
    user_id: Option<Uuid>,
    page: Page,
) -> Result<(Vec<PaymentView>, i64), sqlx::Error> {
    let rows = sqlx::query_as(&format!(
        "SELECT {PAYMENT_COLUMNS} FROM payments.payments WHERE ($1::uuid IS NULL OR user_id = $1) \
         ORDER BY created_at DESC, id LIMIT $2 OFFSET $3"
    ))
    .bind(user_id)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(
        "SELECT count(*) FROM payments.payments WHERE ($1::uuid IS NULL OR user_id = $1)",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

/// A user's saved payment methods: the default first, then newest first.
pub async fn list_methods(
    pool: &PgPool,
    user_id: Uuid,
) -> Result<Vec<PaymentMethodView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, user_id, method_type, gateway_method_id, is_default, created_at \
         FROM payments.payment_methods WHERE user_id = $1 AND removed_at IS NULL \
         ORDER BY is_default DESC, created_at DESC, id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await
}
