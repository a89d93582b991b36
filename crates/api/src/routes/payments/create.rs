//! `POST /payments`: pay an order. The order is claimed (`RequestPayment`: one payment in flight,
//! for exactly the total), the gateway is called, and its answer is recorded (`CapturePayment`).
//! The saga turns a capture into a paid, then confirmed, order.
//!
//! The answer is built from the command and the gateway's outcome, not read back from a
//! projection: this path is hot. `Idempotency-Key` makes a retried request return the first
//! answer without charging again.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use commerce_domain::money::{Currency, Money};
use commerce_domain::order::{Order, OrderCommand, OrderPaymentStatus, OrderStatus};
use commerce_domain::payment::{GatewayOutcome, Payment, PaymentCommand};
use commerce_domain::payment_method::PaymentMethod;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{gateway, not_yours, PaymentBody};
use crate::auth::Caller;
use crate::consistency::Written;
use crate::context::RequestId;
use crate::envelope::Data;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::idempotency::{self, IdempotencyKey};
use crate::money::Amount;
use crate::state::AppState;

/// The route name idempotency keys are scoped to.
const ROUTE: &str = "POST /payments";

/// A payment of an order.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PaymentInput {
    /// The order to pay; it must be the caller's, pending and unpaid.
    order_id: Uuid,
    /// Exactly the order's total.
    amount: Amount,
    /// ISO 4217 code, the order's currency; `USD` when absent.
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: Option<String>,
    /// Method name or gateway token, 1 to 50 characters (e.g. `card`).
    #[schema(min_length = 1, max_length = 50)]
    method: String,
    /// A saved payment method's id, or a gateway token (at most 255 characters).
    /// `pm_card_declined` is declined by the simulator.
    #[serde(default)]
    #[schema(max_length = 255)]
    payment_method_id: Option<String>,
}

/// Pay an order (the order's customer). The answer is `COMPLETED` or `FAILED`; a failed payment
/// leaves the order payable.
#[utoipa::path(post, path = "/payments", tag = "payments", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
        description = "Repeat a request safely: the same key and body return the first answer")),
    request_body = PaymentInput,
    responses((status = 201, body = Data<PaymentBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody),
        (status = 503, body = crate::error::ErrorBody)))]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    key: IdempotencyKey,
    Json(input): Json<PaymentInput>,
) -> Response {
    let fingerprint = match serde_json::to_vec(&input) {
        Ok(bytes) => bytes,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let user_id = caller.user_id;
    let state_ref = &state;
    idempotency::once(
        &state,
        user_id,
        ROUTE,
        &key,
        &fingerprint,
        move || async move {
            pay(state_ref, &caller, &request_id, input)
                .await
                .map(IntoResponse::into_response)
        },
    )
    .await
}

/// The input, checked before anything is written.
struct Checked {
    order_id: Uuid,
    amount: Money,
    method: String,
    payment_method_id: Option<String>,
}

fn check(input: PaymentInput) -> ApiResult<Checked> {
    let method = input.method.trim().to_owned();
    if !(1..=50).contains(&method.chars().count()) {
        return Err(ApiError::invalid_field(
            "method",
            "must have 1 to 50 characters",
        ));
    }
    let payment_method_id = match input.payment_method_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(id) if id.chars().count() > 255 => {
            return Err(ApiError::invalid_field(
                "payment_method_id",
                "must have at most 255 characters",
            ))
        }
        Some(id) => Some(id.to_owned()),
    };
    let currency = match input.currency.as_deref().map(str::trim) {
        None => Currency::USD,
        Some(code) => Currency::new(&code.to_ascii_uppercase()).map_err(|_| {
            ApiError::invalid_field("currency", "must be an ISO 4217 code like USD")
        })?,
    };
    Ok(Checked {
        order_id: input.order_id,
        amount: Money::new(input.amount.0, currency),
        method,
        payment_method_id,
    })
}

/// 404/403 unless the caller owns the order, 409 unless it is pending and unpaid, 400 unless
/// `amount` is its total. `RequestPayment` checks the same again, atomically; checking here
/// first gives each case its own answer.
fn check_payable(order: &Order, caller: &Caller, amount: Money) -> ApiResult<()> {
    let owner = order
        .user_id()
        .ok_or_else(|| ApiError::not_found("order"))?;
    if owner != caller.user_id {
        return Err(not_yours(caller, "order"));
    }
    if order.paid_by().is_some() || order.payment_status() != Some(OrderPaymentStatus::Unpaid) {
        return Err(ApiError::Conflict {
            code: "already_paid",
            message: "this order is already paid".to_owned(),
        });
    }
    match order.status() {
        Some(OrderStatus::Pending) => {}
        Some(OrderStatus::Cancelled) => {
            return Err(ApiError::Conflict {
                code: "order_cancelled",
                message: "this order is cancelled".to_owned(),
            })
        }
        _ => {
            return Err(ApiError::Conflict {
                code: "not_payable",
                message: "only a pending order can be paid".to_owned(),
            })
        }
    }
    let Some(total) = order.total() else {
        return Err(ApiError::not_found("order"));
    };
    if amount.currency != total.currency {
        return Err(ApiError::invalid_field(
            "currency",
            format!("must be the order's currency, {}", total.currency),
        ));
    }
    if amount.amount_minor != total.amount_minor {
        return Err(ApiError::invalid_field(
            "amount",
            format!("must equal the order total, {}", Amount(total.amount_minor)),
        ));
    }
    Ok(())
}

/// The gateway token of `payment_method_id`: a saved method's token when it names one of the
/// caller's saved methods, else the value itself.
async fn gateway_token(
    state: &AppState,
    caller: &Caller,
    payment_method_id: Option<&str>,
) -> ApiResult<Option<String>> {
    let Some(given) = payment_method_id else {
        return Ok(None);
    };
    if let Ok(method_id) = given.parse::<Uuid>() {
        let (saved, _) = state
            .aggregates
            .load::<PaymentMethod>(&caller.user_id.to_string())
            .await?;
        if let Some(m) = saved.methods().iter().find(|m| m.method_id == method_id) {
            return Ok(Some(m.gateway_method_id.clone()));
        }
    }
    Ok(Some(given.to_owned()))
}

async fn pay(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    input: PaymentInput,
) -> ApiResult<Written<PaymentBody>> {
    let input = check(input)?;
    let order_key = input.order_id.to_string();
    let (order, version) = state.aggregates.load::<Order>(&order_key).await?;
    check_payable(&order, caller, input.amount)?;
    let token = gateway_token(state, caller, input.payment_method_id.as_deref()).await?;

    let metadata = request_id.metadata(caller);
    let payment_id = Uuid::new_v4();
    let request = OrderCommand::RequestPayment {
        payment_id,
        amount: input.amount,
        at: Utc::now(),
    };
    // Runs against the state just checked; should the order have moved on since, the append
    // conflicts and the command is decided again against the stored state.
    state
        .dispatcher
        .execute_from::<Order>(&order_key, request, &metadata, (order, version))
        .await?;

    let outcome = gateway::charge(&input.method, token.as_deref());
    let at = Utc::now();
    let capture = PaymentCommand::CapturePayment {
        payment_id,
        order_id: input.order_id,
        user_id: caller.user_id,
        amount: input.amount,
        method: input.method.clone(),
        payment_method_id: token,
        outcome: outcome.clone(),
        at,
    };
    let captured = state
        .dispatcher
        .create::<Payment>(&payment_id.to_string(), capture, &metadata)
        .await?;
    let mut position = captured.position;

    if let GatewayOutcome::Declined { reason } = outcome {
        // The saga tells the order too, but only after the event has travelled the broker;
        // telling it now frees the order at once, so the customer can retry with another
        // card straight away. The saga's repeat is a no-op.
        let failed = OrderCommand::MarkPaymentFailed {
            payment_id,
            reason: reason.clone(),
            at,
        };
        match state
            .dispatcher
            .execute::<Order>(&order_key, failed, &metadata)
            .await
        {
            Ok(executed) => position = position.max(executed.position),
            Err(error) => {
                tracing::warn!(%payment_id, %error, "order not told of the declined payment; the saga will")
            }
        }
    }
    let body = PaymentBody::written(payment_id, &captured.aggregate)?;
    Ok(Written::new(StatusCode::CREATED, position, body))
}
