//! `POST /payments/{id}/confirm` (the payer) and `POST /payments/{id}/refund` (admins).
//!
//! Confirming is idempotent for a completed payment and never revives a failed or refunded one
//! (409). Refunds may be partial; their sum never exceeds what was captured (409), which the
//! `Payment` aggregate guarantees even for concurrent refunds.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use commerce_domain::money::Money;
use commerce_domain::payment::{Payment, PaymentCommand};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{not_yours, PaymentBody};
use crate::auth::Caller;
use crate::consistency::Written;
use crate::context::RequestId;
use crate::envelope::Data;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::money::Amount;
use crate::state::AppState;

/// A client-side confirmation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfirmInput {
    /// The gateway's payment intent, 1 to 255 characters (trimmed).
    // 1 to 255 characters once trimmed (the length is checked after trimming, so it is
    // in the pattern, not a `maxLength` of the untrimmed text); no NUL.
    #[schema(pattern = r"^\s*[^\s\u0000]([^\u0000]{0,253}[^\s\u0000])?\s*$")]
    payment_intent_id: String,
}

/// A refund.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefundInput {
    /// More than zero, at most what remains captured; in the payment's currency.
    #[schema(value_type = crate::money::PositiveAmount)]
    amount: Amount,
    /// Why, at most 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    reason: String,
}

async fn load(state: &AppState, id: Uuid) -> ApiResult<(Payment, i64)> {
    let (payment, version) = state.aggregates.load::<Payment>(&id.to_string()).await?;
    if payment.status().is_none() {
        return Err(ApiError::not_found("payment"));
    }
    Ok((payment, version))
}

/// Confirm a payment (its payer): idempotent for a completed payment; a failed or refunded one
/// is a 409.
#[utoipa::path(post, path = "/payments/{id}/confirm", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ConfirmInput,
    responses((status = 200, body = Data<PaymentBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub(super) async fn confirm(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
    Json(input): Json<ConfirmInput>,
) -> ApiResult<Written<PaymentBody>> {
    if !(1..=255).contains(&input.payment_intent_id.trim().chars().count()) {
        return Err(ApiError::invalid_field(
            "payment_intent_id",
            "must have 1 to 255 characters",
        ));
    }
    let (payment, version) = load(&state, id).await?;
    if payment.user_id() != Some(caller.user_id) {
        return Err(not_yours(&caller, "payment"));
    }
    let executed = state
        .dispatcher
        .execute_from::<Payment>(
            &id.to_string(),
            PaymentCommand::ConfirmPayment { at: Utc::now() },
            &request_id.metadata(&caller),
            (payment, version),
        )
        .await?;
    let body = PaymentBody::written(id, &executed.aggregate)?;
    Ok(Written::new(StatusCode::OK, executed.position, body))
}

/// Refund part or all of a payment (admin).
#[utoipa::path(post, path = "/payments/{id}/refund", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RefundInput,
    responses((status = 200, body = Data<PaymentBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub(super) async fn refund(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
    Json(input): Json<RefundInput>,
) -> ApiResult<Written<PaymentBody>> {
    caller.require_admin()?;
    let (payment, version) = load(&state, id).await?;
    let Some(captured) = payment.amount() else {
        return Err(ApiError::not_found("payment"));
    };
    let command = PaymentCommand::RefundPayment {
        refund_id: Uuid::new_v4(),
        amount: Money::new(input.amount.0, captured.currency),
        reason: input.reason.trim().to_owned(),
        at: Utc::now(),
    };
    let executed = state
        .dispatcher
        .execute_from::<Payment>(
            &id.to_string(),
            command,
            &request_id.metadata(&caller),
            (payment, version),
        )
        .await?;
    let body = PaymentBody::written(id, &executed.aggregate)?;
    Ok(Written::new(StatusCode::OK, executed.position, body))
}
