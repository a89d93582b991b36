//! `/admin/events` and `/admin/streams`: the log itself, for admins and auditors.
//!
//! The global log is read below the horizon of running transactions (guarantee 2), so paging with
//! `after` set to the previous page's `next` never skips an event that committed late. With
//! `X-Min-Position`, a read first waits (bounded) until every transaction running at the request
//! has ended, so the caller's own write is visible.

use axum::extract::State;
use chrono::{DateTime, Utc};
use commerce_domain::user::Role;
use commerce_event_store::{LogFilter, Position};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{entry, EventEntry};
use crate::auth::Caller;
use crate::consistency::MinPosition;
use crate::envelope::Data;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Path, Query};
use crate::state::AppState;

const DEFAULT_LIMIT: i64 = 100;
const MAX_LIMIT: i64 = 1_000;
/// Longer than any aggregate type, id, event type or request id the platform writes.
const MAX_TEXT: usize = 200;

/// Filters of the global log, all optional and combined.
#[derive(Debug, Default, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Only events after this position token (the `next` of the previous page, or an
    /// `X-Event-Position`).
    #[param(pattern = r"^[0-9]{1,18}\.[0-9]{1,18}$", example = "812.40")]
    after: Option<String>,
    /// Only events before this position token (with `order=newest`, the `next` of the previous
    /// page).
    #[param(pattern = r"^[0-9]{1,18}\.[0-9]{1,18}$", example = "812.40")]
    before: Option<String>,
    /// `oldest` (log order, the default) or `newest` (newest first; page on with `before`).
    #[param(pattern = "^(oldest|newest)$")]
    order: Option<String>,
    /// Events per page, 1 to 1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// Only this aggregate type, e.g. `Order`.
    #[param(min_length = 1, max_length = 200)]
    aggregate_type: Option<String>,
    /// Only this event type, e.g. `OrderPlaced`.
    #[param(min_length = 1, max_length = 200)]
    event_type: Option<String>,
    /// Only events caused by this request id.
    #[param(min_length = 1, max_length = 200)]
    correlation_id: Option<String>,
    /// Only the events a process wrote in reaction to the event with this id.
    #[param(min_length = 1, max_length = 200)]
    causation_id: Option<String>,
    /// Only the event with this id.
    event_id: Option<Uuid>,
    /// Only events recorded at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<String>,
    /// Only events recorded before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<String>,
}

/// A page of the global log.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct EventsPage {
    /// Events in log order (newest first with `order=newest`).
    data: Vec<EventEntry>,
    /// Position token of the last event of this page, to pass as `after` for the next page
    /// (as `before` with `order=newest`); `null` when the page is empty.
    next: Option<String>,
}

impl EventsQuery {
    /// The query as a form sends it: blank fields mean "any", and an instant without an offset
    /// (what a `datetime-local` field gives) is UTC; without an order, newest first.
    pub(crate) fn read_as_form(mut self) -> Self {
        let blank = |v: Option<String>| v.filter(|t| !t.trim().is_empty());
        let utc = |v: Option<String>| {
            blank(v).map(|t| {
                let t = t.trim().to_owned();
                let naive = chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M")
                    .or_else(|_| chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%dT%H:%M:%S%.f"));
                match naive {
                    Ok(n) => n.and_utc().to_rfc3339(),
                    Err(_) => t,
                }
            })
        };
        self.after = blank(self.after);
        self.before = blank(self.before);
        self.order = blank(self.order).or_else(|| Some("newest".to_owned()));
        self.limit = blank(self.limit);
        self.aggregate_type = blank(self.aggregate_type);
        self.event_type = blank(self.event_type).map(|t| t.trim().to_owned());
        self.correlation_id = blank(self.correlation_id).map(|t| t.trim().to_owned());
        self.causation_id = blank(self.causation_id).map(|t| t.trim().to_owned());
        self.from = utc(self.from);
        self.to = utc(self.to);
        self
    }

    /// Whether the log is asked newest first.
    pub(crate) fn newest_first(&self) -> bool {
        self.order.as_deref().map(str::trim) == Some("newest")
    }

    /// The filter asked for; anything malformed is a 400 naming the parameter.
    pub(crate) fn filter(self) -> Result<LogFilter, ApiError> {
        let after = position("after", self.after)?.unwrap_or(Position::START);
        let before = position("before", self.before)?;
        let newest_first = match self.order.as_deref().map(str::trim) {
            None | Some("oldest") => false,
            Some("newest") => true,
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "order",
                    "must be `oldest` or `newest`",
                ))
            }
        };
        let limit = match self.limit {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .trim()
                .parse::<i64>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid_field("limit", format!("must be between 1 and {MAX_LIMIT}"))
                })?,
        };
        let from = instant("from", self.from)?;
        // `to` before `from` is an empty range: it matches nothing.
        let to = instant("to", self.to)?;
        Ok(LogFilter {
            after,
            before,
            newest_first,
            limit,
            aggregate_type: text("aggregate_type", self.aggregate_type)?,
            event_type: text("event_type", self.event_type)?,
            correlation_id: text("correlation_id", self.correlation_id)?,
            causation_id: text("causation_id", self.causation_id)?,
            event_id: self.event_id,
            from,
            to,
        })
    }
}

fn position(field: &str, token: Option<String>) -> Result<Option<Position>, ApiError> {
    token
        .map(|t| {
            t.trim().parse().map_err(|_| {
                ApiError::invalid_field(field, "must be a position token, e.g. from `next`")
            })
        })
        .transpose()
}

fn instant(field: &str, value: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v.trim())
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| {
                    ApiError::invalid_field(field, "must be an RFC 3339 timestamp with offset")
                })
        })
        .transpose()
}

fn text(field: &str, value: Option<String>) -> Result<Option<String>, ApiError> {
    match value {
        Some(v) if v.is_empty() => Err(ApiError::invalid_field(field, "must not be empty")),
        Some(v) if v.chars().count() > MAX_TEXT => Err(ApiError::invalid_field(
            field,
            format!("must be at most {MAX_TEXT} characters"),
        )),
        other => Ok(other),
    }
}

/// Waits, when asked with `X-Min-Position`, until everything committed before this request is
/// readable from the log.
async fn reach(state: &AppState, min: MinPosition) -> Result<(), ApiError> {
    if min.position.is_none() {
        return Ok(());
    }
    if state.log.settle(state.config.read_wait).await? {
        Ok(())
    } else {
        Err(ApiError::Unavailable(
            "the log is held back by a long transaction; retry shortly".to_owned(),
        ))
    }
}

/// The global log, filtered and paged (admin, auditor).
#[utoipa::path(get, path = "/admin/events", tag = "admin", security(("bearer" = [])),
    params(EventsQuery),
    responses((status = 200, body = EventsPage), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(super) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
    Query(q): Query<EventsQuery>,
) -> ApiResult<axum::Json<EventsPage>> {
    caller.require_any(&[Role::Admin, Role::Auditor])?;
    let filter = q.filter()?;
    reach(&state, min).await?;
    let events = state.log.query(&filter).await?;
    let next = events.last().map(|e| e.position.token());
    Ok(axum::Json(EventsPage {
        data: events.iter().map(entry).collect(),
        next,
    }))
}

/// Every event of one aggregate, by version (admin, auditor).
#[utoipa::path(get, path = "/admin/streams/{aggregate_type}/{aggregate_id}", tag = "admin",
    security(("bearer" = [])),
    params(("aggregate_type" = String, Path, description = "e.g. `Order`", min_length = 1, max_length = 200),
        ("aggregate_id" = String, Path, description = "The aggregate's id", min_length = 1, max_length = 200)),
    responses((status = 200, body = Data<Vec<EventEntry>>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
pub(super) async fn stream(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
) -> ApiResult<axum::Json<Data<Vec<EventEntry>>>> {
    caller.require_any(&[Role::Admin, Role::Auditor])?;
    text("aggregate_type", Some(aggregate_type.clone()))?;
    text("aggregate_id", Some(aggregate_id.clone()))?;
    reach(&state, min).await?;
    let events = state.log.stream(&aggregate_type, &aggregate_id).await?;
    if events.is_empty() {
        return Err(ApiError::not_found("stream"));
    }
    Ok(axum::Json(Data::new(events.iter().map(entry).collect())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> EventsQuery {
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let uri: axum::http::Uri = format!("/?{}", text.join("&")).parse().unwrap();
        axum::extract::Query::<EventsQuery>::try_from_uri(&uri)
            .unwrap()
            .0
    }

    fn status(pairs: &[(&str, &str)]) -> Option<u16> {
        query(pairs).filter().err().map(|e| e.status().as_u16())
    }

    #[test]
    fn defaults_read_from_the_start_a_hundred_at_a_time() {
        let filter = query(&[]).filter().unwrap();
        assert_eq!(filter.after, Position::START);
        assert_eq!(filter.limit, 100);
    }

    #[test]
    fn malformed_parameters_are_rejected() {
        for bad in [
            ("after", "12"),
            ("after", "x.y"),
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "ten"),
            ("from", "yesterday"),
            ("to", "2024-01-01"),
            ("aggregate_type", ""),
            ("before", "1"),
            ("order", "latest"),
            ("causation_id", ""),
        ] {
            assert_eq!(status(&[bad]), Some(400), "{bad:?}");
        }
        // A range that ends before it starts is empty, not malformed.
        assert_eq!(
            status(&[
                ("from", "2024-02-01T00:00:00Z"),
                ("to", "2024-01-01T00:00:00Z")
            ]),
            None
        );
    }

    #[test]
    fn well_formed_parameters_become_the_filter() {
        let filter = query(&[
            ("after", "12.34"),
            ("limit", "1000"),
            ("from", "2024-01-01T00:00:00%2B02:00"),
            ("correlation_id", "req-1"),
        ])
        .filter()
        .unwrap();
        assert_eq!(filter.after, Position::new(12, 34));
        assert_eq!(filter.limit, 1000);
        assert_eq!(filter.correlation_id.as_deref(), Some("req-1"));
        assert_eq!(
            filter.from.map(|t| t.to_rfc3339()),
            Some("2023-12-31T22:00:00+00:00".to_owned())
        );
    }
}
