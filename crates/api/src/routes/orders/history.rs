//! `GET /orders/{id}/history`: every event of the order and of the payments and stock
//! reservations it caused, in log order, with who caused each and why.
//!
//! Read straight from the log (nothing here is a read model, so nothing to wait for). The
//! payments and inventory events of an order are found by the `order_id` in their payload
//! (`payload -> event_type ->> 'order_id'`, where cqrs-es keeps an event's fields), through the
//! partial expression index of migration `20261125000011`. Only `Order`, `Payment` and
//! `Inventory` streams are read: no user event, so no password hash, can appear.

use axum::extract::State;
use chrono::{DateTime, Utc};
use commerce_event_store::Position;
use serde::Serialize;
use sqlx::FromRow;
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

/// Both halves use the same filter as the index (`aggregate_type IN ('Payment', 'Inventory')`)
/// so the planner can pick it; the order's own stream comes by primary key.
const HISTORY_SQL: &str = "\
    SELECT transaction_id::text::bigint AS tx, global_position, recorded_at, aggregate_type, \
           aggregate_id, sequence, event_type, payload -> event_type AS data, payload, \
           metadata ->> 'actor' AS actor, metadata ->> 'correlation_id' AS correlation_id, \
           metadata ->> 'causation_id' AS causation_id \
    FROM ( \
        SELECT * FROM events WHERE aggregate_type = 'Order' AND aggregate_id = $1 \
        UNION ALL \
        SELECT * FROM events \
        WHERE aggregate_type IN ('Payment', 'Inventory') \
          AND payload -> event_type ->> 'order_id' = $1 \
    ) e \
    ORDER BY transaction_id, global_position \
    LIMIT $2";

#[derive(FromRow)]
struct Row {
    tx: i64,
    global_position: i64,
    recorded_at: DateTime<Utc>,
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    data: Option<serde_json::Value>,
    payload: serde_json::Value,
    actor: Option<String>,
    correlation_id: Option<String>,
    causation_id: Option<String>,
}

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

impl From<Row> for HistoryEntry {
    fn from(r: Row) -> Self {
        Self {
            position: Position::new(r.tx, r.global_position).token(),
            recorded_at: r.recorded_at,
            aggregate_type: r.aggregate_type,
            aggregate_id: r.aggregate_id,
            version: r.sequence,
            event_type: r.event_type,
            actor: r.actor,
            correlation_id: r.correlation_id,
            causation_id: r.causation_id,
            data: r.data.unwrap_or(r.payload),
        }
    }
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
    let rows: Vec<Row> = sqlx::query_as(HISTORY_SQL)
        .bind(id.to_string())
        .bind(MAX_EVENTS)
        .fetch_all(&state.pool)
        .await?;
    let owner = rows
        .iter()
        .find(|r| r.aggregate_type == "Order" && r.event_type == "OrderPlaced")
        .and_then(|r| {
            r.data
                .as_ref()?
                .get("user_id")?
                .as_str()?
                .parse::<Uuid>()
                .ok()
        });
    match owner {
        Some(owner) if visible_to(&caller, owner) => Ok(axum::Json(Data::new(
            rows.into_iter().map(Into::into).collect(),
        ))),
        _ => Err(ApiError::not_found(UNKNOWN_ORDER)),
    }
}
