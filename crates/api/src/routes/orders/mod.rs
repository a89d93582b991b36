//! `/orders`: placing, reading, cancelling, shipping and delivering orders, an order as it was
//! at an instant, and its audit history.
//!
//! Rules kept here: a customer reaches only their own orders, and someone else's order is a 404
//! (never a 403), so ids cannot be probed; admins and auditors read every order; only the owner
//! or an admin cancels, only an admin ships and delivers. Ownership for a write is checked on
//! the `Order` aggregate, not a read model, so an order placed a moment ago can be cancelled at
//! once. Order commands answer with the order folded from its own events (`as_of.rs`);
//! `DELETE /orders/{id}` cancels and answers 200 with the cancelled order.
//!
//! - `place.rs`: `POST /orders` (prices, cart checkout, `Idempotency-Key`).
//! - `as_of.rs`: an order folded from the log, up to an instant or a version.
//! - `history.rs`: `GET /orders/{id}/history`.
//! - `body.rs`: the order's wire shape.

pub(crate) mod as_of;
pub(crate) mod body;
pub(crate) mod history;
mod place;

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use commerce_domain::order::{CancellationReason, Order, OrderCommand, OrderStatus};
use commerce_projections::orders::{self, OrderFilter};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use body::{Address, OrderBody, OrderItemBody};
pub use history::HistoryEntry;
pub use place::{OrderItemInput, PlaceOrderInput};

use self::as_of::{order_body, order_from_log, parse_as_of, Until};
use crate::auth::Caller;
use crate::consistency::{MinPosition, Written};
use crate::context::RequestId;
use crate::envelope::{Data, PageQuery, Paginated};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Path, Query};
use crate::state::AppState;

const READ_MODEL: &[&str] = &["orders"];
/// What a 404 names, for an unknown order and for someone else's alike.
const UNKNOWN_ORDER: &str = "order";

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, place::place_order))
        .routes(routes!(get_one, cancel))
        .routes(routes!(ship))
        .routes(routes!(deliver))
        .routes(routes!(history::history))
}

/// Whether `caller` may read an order of `owner`.
fn visible_to(caller: &Caller, owner: Uuid) -> bool {
    owner == caller.user_id || caller.reads_everything()
}

/// `?as_of=` of `GET /orders/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct OrderQuery {
    /// An RFC 3339 instant: answer the order as it was then, computed from the log.
    #[param(format = DateTime)]
    as_of: Option<String>,
}

/// One order: the caller's own, or any for admins and auditors.
#[utoipa::path(get, path = "/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path), OrderQuery),
    responses((status = 200, body = Data<OrderBody>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
    Path(id): Path<Uuid>,
    Query(q): Query<OrderQuery>,
) -> ApiResult<axum::Json<Data<OrderBody>>> {
    let order = match q.as_of.as_deref() {
        Some(text) => {
            let at = parse_as_of(text)?;
            order_from_log(&state, id, Until::Instant(at)).await?
        }
        None => {
            min.wait(&state, READ_MODEL).await?;
            orders::get(&state.pool, id).await?.map(Into::into)
        }
    };
    match order {
        Some(order) if visible_to(&caller, order.user_id) => Ok(axum::Json(Data::new(order))),
        _ => Err(ApiError::not_found(UNKNOWN_ORDER)),
    }
}

/// Filters of `GET /orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page number, from 1.
    #[param(minimum = 1)]
    page: Option<i64>,
    /// Items per page, 1 to 100.
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<i64>,
    /// `PENDING`, `CONFIRMED`, `SHIPPED`, `DELIVERED` or `CANCELLED`.
    #[param(schema_with = status_schema)]
    status: Option<String>,
    /// Only this customer's orders (admins and auditors; a customer sees only their own).
    user_id: Option<Uuid>,
    /// Only the orders of the customer registered with this email (admins only: 403 for anyone
    /// else); an email nobody registered with has no orders.
    #[param(min_length = 1, max_length = 254)]
    email: Option<String>,
}

fn status_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::string_enum(&["PENDING", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"])
}

fn parse_status(text: &str) -> ApiResult<OrderStatus> {
    serde_json::from_value(serde_json::Value::String(text.trim().to_ascii_uppercase())).map_err(
        |_| {
            ApiError::invalid_field(
                "status",
                "must be one of PENDING, CONFIRMED, SHIPPED, DELIVERED, CANCELLED",
            )
        },
    )
}

/// Orders, newest first: a customer's own; every order for admins and auditors.
#[utoipa::path(get, path = "/orders", tag = "orders", security(("bearer" = [])),
    params(ListQuery),
    responses((status = 200, body = Paginated<OrderBody>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
    Query(q): Query<ListQuery>,
) -> ApiResult<axum::Json<Paginated<OrderBody>>> {
    let page = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .page()?;
    let status = q.status.as_deref().map(parse_status).transpose()?;
    let user_id = if let Some(email) = q.email.as_deref() {
        if email.is_empty() || email.chars().count() > 254 {
            return Err(ApiError::invalid_field(
                "email",
                "must be 1 to 254 characters",
            ));
        }
        caller.require_admin()?;
        match crate::routes::auth::find_by_email(&state, email.trim()).await? {
            Some((id, _)) if q.user_id.is_none_or(|u| u == id) => Some(id),
            _ => return Ok(axum::Json(Paginated::new(Vec::new(), page, 0))),
        }
    } else if caller.reads_everything() {
        q.user_id
    } else {
        // A customer asking for someone else's orders gets none of them.
        if q.user_id.is_some_and(|u| u != caller.user_id) {
            return Ok(axum::Json(Paginated::new(Vec::new(), page, 0)));
        }
        Some(caller.user_id)
    };
    min.wait(&state, READ_MODEL).await?;
    let (rows, total) = orders::list(&state.pool, &OrderFilter { user_id, status }, page).await?;
    Ok(axum::Json(Paginated::new(
        rows.into_iter().map(Into::into).collect(),
        page,
        total,
    )))
}

/// Runs `command` on order `id` and answers 200 with the order as that command left it.
async fn write(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    id: Uuid,
    command: OrderCommand,
) -> ApiResult<Written<OrderBody>> {
    let executed = state
        .dispatcher
        .execute::<Order>(&id.to_string(), command, &request_id.metadata(caller))
        .await?;
    let order =
        order_body(id, &executed.aggregate).ok_or_else(|| ApiError::not_found(UNKNOWN_ORDER))?;
    Ok(Written::new(StatusCode::OK, executed.position, order))
}

/// Cancel an order (owner or admin) until it ships; the saga then releases its stock and
/// refunds a captured payment. Cancelling a cancelled order again changes nothing.
#[utoipa::path(delete, path = "/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Data<OrderBody>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
) -> ApiResult<Written<OrderBody>> {
    let (order, _) = state.aggregates.load::<Order>(&id.to_string()).await?;
    match order.user_id() {
        Some(owner) if owner == caller.user_id || caller.is_admin() => {}
        // An auditor sees the order but may not change it.
        Some(_) if caller.reads_everything() => {
            return Err(ApiError::Forbidden(
                "only the customer or an admin can cancel an order".to_owned(),
            ))
        }
        _ => return Err(ApiError::not_found(UNKNOWN_ORDER)),
    }
    let command = OrderCommand::CancelOrder {
        reason: CancellationReason::CustomerRequest,
        at: Utc::now(),
    };
    write(&state, &caller, &request_id, id, command).await
}

/// Ship a confirmed order (admin).
#[utoipa::path(post, path = "/orders/{id}/ship", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Data<OrderBody>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn ship(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
) -> ApiResult<Written<OrderBody>> {
    caller.require_admin()?;
    let command = OrderCommand::ShipOrder { at: Utc::now() };
    write(&state, &caller, &request_id, id, command).await
}

/// Deliver a shipped order (admin).
#[utoipa::path(post, path = "/orders/{id}/deliver", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Data<OrderBody>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn deliver(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
) -> ApiResult<Written<OrderBody>> {
    caller.require_admin()?;
    let command = OrderCommand::DeliverOrder { at: Utc::now() };
    write(&state, &caller, &request_id, id, command).await
}
