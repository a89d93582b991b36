//! `GET /orders/{id}/history`: every event of the order and of the payments and stock
//! reservations it caused, in log order, with who caused each and why.
//!
//! Read straight from the log through the log reader (nothing here is a read model, so nothing to
//! wait for). The payments and inventory events of an order are found by the `order_id` in their
//! payload ([`commerce_event_store::LogReader::stream_with_references`]), through the partial
//! expression index of migration `20261125000011`. Only `Order`, `Payment` and
//! `Inventory` streams are read: no user event, so no password hash, can appear.

use axum::extract::State;
use chrono::{DateTime, Utc};
use commerce_domain::inventory::Inventory;
use commerce_domain::order::{Order, OrderEvent};
use commerce_domain::payment::Payment;
use commerce_event_store::StoredEvent;
use cqrs_es::Aggregate;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{visible_to, UNKNOWN_ORDER};
use crate::auth::Caller;
use crate::envelope::Data;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::Path;
use crate::state::AppState;

/// More events than any order's history holds; a bound, not a page.
const MAX_EVENTS: i64 = 10_000;

/// One event of an order's history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// Where the event sits in the log (an `X-Min-Position` token).
    position: String,
    recorded_at: DateTime<Utc>,
    /// `Order`, `Payment` or `Inventory`.
    aggregate_type: String,
    aggregate_id: String,
    /// The aggregate's version after this event.
    version: i64,
    /// e.g. `OrderPlaced`, `StockReserved`, `PaymentCaptured`.
    event_type: String,
    /// The user id, or `system:<process>` for the fulfilment saga.
    actor: Option<String>,
    /// The request id of the HTTP request that started it all.
    correlation_id: Option<String>,
    /// The event that led to this one, for the saga's events.
    causation_id: Option<String>,
    /// The event's fields as stored.
    #[schema(value_type = Object)]
    data: serde_json::Value,
}

impl From<StoredEvent> for HistoryEntry {
    fn from(e: StoredEvent) -> Self {
        let data = e.payload.get(&e.event_type).cloned();
        Self {
            position: e.position.token(),
            recorded_at: e.recorded_at,
            aggregate_type: e.aggregate_type,
            aggregate_id: e.aggregate_id,
            version: e.sequence,
            event_type: e.event_type,
            actor: Some(e.metadata.actor),
            correlation_id: Some(e.metadata.correlation_id),
            causation_id: e.metadata.causation_id,
            data: data.unwrap_or(e.payload),
        }
    }
}

/// Order `id`'s events and those of the payments and stock reservations it caused, in log
/// order, and the customer who placed it (`None`: no such order).
pub(crate) async fn order_events(
    state: &AppState,
    id: Uuid,
) -> ApiResult<(Vec<StoredEvent>, Option<Uuid>)> {
    // The partial index of migration `20261125000011` covers exactly these referring types.
    let rows = state
        .log
        .stream_with_references(
            Order::TYPE,
            &id.to_string(),
            &[Payment::TYPE, Inventory::TYPE],
            "order_id",
            MAX_EVENTS,
        )
        .await?;
    let owner = rows
        .iter()
        .filter(|e| e.aggregate_type == Order::TYPE)
        .find_map(|e| match e.payload_as::<OrderEvent>() {
            Ok(OrderEvent::OrderPlaced { user_id, .. }) => Some(user_id),
            _ => None,
        });
    Ok((rows, owner))
}

/// The order's events and those of the payments and stock reservations it caused, in log order.
#[utoipa::path(get, path = "/orders/{id}/history", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Data<Vec<HistoryEntry>>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(super) async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Data<Vec<HistoryEntry>>>> {
    let (rows, owner) = order_events(&state, id).await?;
    match owner {
        Some(owner) if visible_to(&caller, owner) => Ok(axum::Json(Data::new(
            rows.into_iter().map(Into::into).collect(),
        ))),
        _ => Err(ApiError::not_found(UNKNOWN_ORDER)),
    }
}
