//! `/payments`: paying an order, confirming, refunding, and reading payments.
//!
//! Rules kept here: a customer pays only their own order, for exactly its total, and sees only
//! their own payments (someone else's is a 404, so ids cannot be probed); admins and auditors read
//! every payment; only admins refund. Two payments for one order never both capture: the
//! `Order` aggregate's `RequestPayment` lets one payment in flight at a time.
//!
//! # Layout
//! - `create`: `POST /payments` (with `Idempotency-Key`).
//! - `gateway`: the built-in payment gateway simulator.
//! - `manage`: `POST /payments/{id}/confirm` and `POST /payments/{id}/refund`.
//! - `read`: `GET /payments`, `GET /payments/{id}`, `GET /payments/order/{order_id}`.

mod create;
mod gateway;
mod manage;
mod read;

use chrono::{DateTime, Utc};
use commerce_domain::payment::Payment;
use commerce_projections::payments::PaymentView;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::money::Amount;
use crate::routes::{as_stored, left_no};
use crate::state::AppState;

/// The read model behind every payment query.
const READ_MODEL: &[&str] = &["payments"];

/// A payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentBody {
    id: Uuid,
    order_id: Uuid,
    user_id: Uuid,
    amount: Amount,
    /// ISO 4217 code of `amount` and `refunded_amount`.
    currency: String,
    method: String,
    /// `COMPLETED`, `FAILED`, `REFUNDED` or `PARTIALLY_REFUNDED`.
    #[schema(example = "COMPLETED")]
    status: String,
    /// The gateway's reason, when `FAILED`.
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<String>,
    /// The gateway's reference, when captured.
    gateway_transaction_id: Option<String>,
    refunded_amount: Amount,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<PaymentView> for PaymentBody {
    fn from(v: PaymentView) -> Self {
        Self {
            id: v.id,
            order_id: v.order_id,
            user_id: v.user_id,
            amount: Amount(v.amount),
            currency: v.currency,
            method: v.method,
            status: v.status,
            failure_reason: v.failure_reason,
            gateway_transaction_id: v.gateway_transaction_id,
            refunded_amount: Amount(v.refunded_amount),
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

impl PaymentBody {
    /// The answer for payment `id` as a command left it; `None` before it was processed.
    fn of(id: Uuid, payment: &Payment) -> Option<Self> {
        let (Some(order_id), Some(user_id), Some(amount), Some(status)) = (
            payment.order_id(),
            payment.user_id(),
            payment.amount(),
            payment.status(),
        ) else {
            return None;
        };
        let (Some(method), Some(refunded), Some((created_at, updated_at))) =
            (payment.method(), payment.refunded(), payment.times())
        else {
            return None;
        };
        Some(Self {
            id,
            order_id,
            user_id,
            amount: Amount(amount.amount_minor),
            currency: amount.currency.to_string(),
            method: method.to_owned(),
            status: status.as_str().to_owned(),
            failure_reason: payment.failure_reason().map(str::to_owned),
            gateway_transaction_id: payment.gateway_transaction_id().map(str::to_owned),
            refunded_amount: Amount(refunded.amount_minor),
            created_at: as_stored(created_at),
            updated_at: as_stored(updated_at),
        })
    }

    /// The answer for the payment a command just ran on.
    fn written(id: Uuid, payment: &Payment) -> ApiResult<Self> {
        Self::of(id, payment).ok_or_else(|| left_no("payment"))
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(read::list, create::create))
        .routes(routes!(read::get_one))
        .routes(routes!(read::for_order))
        .routes(routes!(manage::confirm))
        .routes(routes!(manage::refund))
}

/// Whether `caller` may read a payment (or order) of `owner`.
fn may_read(caller: &Caller, owner: Uuid) -> bool {
    owner == caller.user_id || caller.reads_everything()
}

/// The answer when `caller` acts on something of `owner` that only the owner may act on: 403 for
/// those who may see it anyway (admins, auditors), 404 for other customers so ids cannot be
/// probed.
fn not_yours(caller: &Caller, what: &str) -> ApiError {
    if caller.reads_everything() {
        ApiError::Forbidden(format!(
            "only the customer who owns this {what} may do this"
        ))
    } else {
        ApiError::not_found(what)
    }
}
