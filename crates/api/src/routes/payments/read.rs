//! `GET /payments`, `GET /payments/{id}`, `GET /payments/order/{order_id}`, from the payments read
//! model. Customers see their own payments; admins and auditors see all; anyone else's is a 404.

use axum::extract::State;
use commerce_projections::payments;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{may_read, PaymentBody, READ_MODEL};
use crate::auth::Caller;
use crate::consistency::MinPosition;
use crate::envelope::{Data, PageQuery, Paginated};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::state::AppState;

/// `page`, `page_size`, and for admins and auditors a payer filter.
#[derive(Debug, Clone, Copy, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PaymentListQuery {
    /// Page number, from 1.
    #[param(minimum = 1)]
    page: Option<i64>,
    /// Items per page, 1 to 100.
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<i64>,
    /// Only this payer's payments (admins and auditors; customers always see their own).
    user_id: Option<Uuid>,
}

/// List payments, newest first: the caller's own, or everyone's for admins and auditors.
#[utoipa::path(get, path = "/payments", tag = "payments", security(("bearer" = [])),
    params(PaymentListQuery),
    responses((status = 200, body = Paginated<PaymentBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)))]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
    Query(q): Query<PaymentListQuery>,
) -> ApiResult<axum::Json<Paginated<PaymentBody>>> {
    let page = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .page()?;
    let payer = if caller.reads_everything() {
        q.user_id
    } else {
        Some(caller.user_id)
    };
    min.wait(&state, READ_MODEL).await?;
    let (rows, total) = payments::list_payments(&state.pool, payer, page).await?;
    Ok(axum::Json(Paginated::new(
        rows.into_iter().map(Into::into).collect(),
        page,
        total,
    )))
}

/// One payment (its payer, admins, auditors).
#[utoipa::path(get, path = "/payments/{id}", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Data<PaymentBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub(super) async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Data<PaymentBody>>> {
    min.wait(&state, READ_MODEL).await?;
    let view = payments::get_payment(&state.pool, id)
        .await?
        .filter(|v| may_read(&caller, v.user_id))
        .ok_or_else(|| ApiError::not_found("payment"))?;
    Ok(axum::Json(Data::new(view.into())))
}

/// The payment of an order: the one that paid it, else its latest attempt (its customer, admins,
/// auditors). Every attempt is in `GET /payments`.
#[utoipa::path(get, path = "/payments/order/{order_id}", tag = "payments", security(("bearer" = [])),
    params(("order_id" = Uuid, Path)),
    responses((status = 200, body = Data<PaymentBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub(super) async fn for_order(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
    Path(order_id): Path<Uuid>,
) -> ApiResult<axum::Json<Data<PaymentBody>>> {
    min.wait(&state, READ_MODEL).await?;
    let attempts = payments::payments_for_order(&state.pool, order_id).await?;
    // Newest first; a FAILED attempt counts only when nothing was captured.
    let view = attempts
        .iter()
        .find(|v| v.status != "FAILED")
        .or_else(|| attempts.first())
        .cloned()
        .filter(|v| may_read(&caller, v.user_id))
        .ok_or_else(|| ApiError::not_found("payment of this order"))?;
    Ok(axum::Json(Data::new(view.into())))
}
