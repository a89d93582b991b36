//! The event log: the global log newest or oldest first, paged by position token and filtered by
//! aggregate type, event type, correlation id and time range; one event with its JSON, actor,
//! correlation and causation, linked to its stream, its cause and what it caused; one stream.
//!
//! Every read goes through the same filter as `GET /api/v1/admin/events` (`order`, `before`,
//! `after`, `causation_id`, `event_id`) and `GET /api/v1/admin/streams/{type}/{id}`, and every
//! event through the same redaction (`entry`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use commerce_domain::order::Order;
use commerce_event_store::{LogFilter, Position, StoredEvent};
use cqrs_es::Aggregate;
use maud::{html, Markup};
use uuid::Uuid;

use super::page::{self, Nav};
use super::session::Viewer;
use crate::error::ApiError;
use crate::routes::admin::entry;
use crate::routes::admin::log::EventsQuery;
use crate::state::AppState;

/// Events per page.
const PAGE: i64 = 50;
/// The aggregate types the platform writes, offered by the filter.
const AGGREGATE_TYPES: &[&str] = &[
    "User",
    "Category",
    "Product",
    "Inventory",
    "Cart",
    "Order",
    "Payment",
    "PaymentMethod",
    "Review",
];

/// A link to event `position`.
pub(crate) fn event_link(position: &str) -> Markup {
    html! { a.mono href=(format!("/console/events/{position}")) { (position) } }
}

/// A link to a stream.
pub(crate) fn stream_link(aggregate_type: &str, aggregate_id: &str) -> Markup {
    let href = format!(
        "/console/streams/{}/{}",
        page::query_value(aggregate_type),
        page::query_value(aggregate_id)
    );
    html! { a.mono href=(href) { (aggregate_type) " " (short(aggregate_id)) } }
}

/// A link to the log filtered by a correlation id.
pub(crate) fn correlation_link(correlation_id: &str) -> Markup {
    let href = format!(
        "/console/events?correlation_id={}",
        page::query_value(correlation_id)
    );
    html! { a.mono href=(href) title=(correlation_id) { (short(correlation_id)) } }
}

/// The start of a long id (the whole id is in the link and its title).
pub(crate) fn short(id: &str) -> &str {
    if id.len() > 13 && id.is_char_boundary(13) {
        &id[..13]
    } else {
        id
    }
}

/// Events as a table: position, time, stream, event, actor, correlation.
pub(crate) fn events_table(events: &[StoredEvent], id: &str) -> Markup {
    html! {
        table.grid.events id=(id) {
            thead { tr {
                th scope="col" { "Position" } th scope="col" { "Recorded (UTC)" }
                th scope="col" { "Stream" } th scope="col" { "Event" }
                th scope="col" { "Actor" } th scope="col" { "Correlation" }
            } }
            tbody {
                @for e in events {
                    tr data-position=(e.position.token()) data-event-type=(e.event_type)
                        data-correlation=(e.metadata.correlation_id) {
                        td data-label="position" { (event_link(&e.position.token())) }
                        td data-label="recorded" { (page::instant(e.recorded_at)) }
                        td data-label="stream" { (stream_link(&e.aggregate_type, &e.aggregate_id)) " v" (e.sequence) }
                        td data-label="event" { strong { (e.event_type) } }
                        td.mono data-label="actor" title=(e.metadata.actor) { (short(&e.metadata.actor)) }
                        td data-label="correlation" { (correlation_link(&e.metadata.correlation_id)) }
                    }
                }
            }
        }
    }
}

fn filter_form(pairs: &[(String, String)]) -> Markup {
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let newest = value("order") != "oldest";
    html! {
        form #log-filter.filters method="get" action="/console/events" {
            label { "Order"
                select name="order" {
                    option value="newest" selected[newest] { "Newest first" }
                    option value="oldest" selected[!newest] { "Oldest first" }
                }
            }
            label { "Aggregate type"
                select name="aggregate_type" {
                    option value="" { "any" }
                    @for t in AGGREGATE_TYPES {
                        option value=(t) selected[value("aggregate_type") == *t] { (t) }
                    }
                }
            }
            label { "Event type" input name="event_type" value=(value("event_type")) placeholder="OrderPlaced"; }
            label { "Correlation id" input #correlation_id name="correlation_id" value=(value("correlation_id")) placeholder="a request id"; }
            label { "From (UTC)" input name="from" value=(value("from")) placeholder="2026-12-05T10:00:00Z"; }
            label { "To (UTC)" input name="to" value=(value("to")) placeholder="2026-12-05T11:00:00Z"; }
            div.buttons {
                button #apply-filter type="submit" { "Filter" }
                a href="/console/events" { "Clear" }
            }
        }
    }
}

/// The query string of this page with the paging parameters replaced.
fn page_link(pairs: &[(String, String)], key: &str, token: &str) -> String {
    let mut out: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| !matches!(k.as_str(), "after" | "before") && !v.is_empty())
        .map(|(k, v)| format!("{}={}", page::query_value(k), page::query_value(v)))
        .collect();
    out.push(format!("{key}={}", page::query_value(token)));
    format!("/console/events?{}", out.join("&"))
}

/// `GET /console/events`.
pub(crate) async fn events(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, QueryRejection>,
    pairs: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let pairs = pairs.map(|p| p.0).unwrap_or_default();
    let read = async {
        let query = query
            .map_err(|e| ApiError::invalid_field("query", e.body_text()))?
            .0
            .read_as_form();
        let newest = query.newest_first();
        let mut filter = query.filter()?;
        filter.limit = PAGE;
        let events = state.log.query(&filter).await?;
        Ok::<_, ApiError>((events, newest))
    }
    .await;
    let body = match read {
        Ok((events, newest)) => {
            let next = (events.len() as i64 == PAGE)
                .then(|| events.last().map(|e| e.position.token()))
                .flatten();
            html! {
                (filter_form(&pairs))
                p.count #event-count data-count=(events.len()) {
                    @if events.is_empty() { "No event matches." }
                    @else { (events.len()) " events, " (if newest { "newest" } else { "oldest" }) " first." }
                }
                (events_table(&events, "log"))
                nav.pager {
                    @if let Some(token) = next {
                        a #next-page href=(page_link(&pairs, if newest { "before" } else { "after" }, &token)) {
                            (if newest { "Older events" } else { "Newer events" }) " →"
                        }
                    }
                }
            }
        }
        Err(error) => {
            let status = error.status();
            let body = html! {
                (filter_form(&pairs))
                p.message.error role="alert" { (page::explain(&error)) }
            };
            let markup = page::render(&state, &viewer, "Event log", Nav::Log, body).await;
            let _ = headers;
            return (status, markup).into_response();
        }
    };
    page::render(&state, &viewer, "Event log", Nav::Log, body)
        .await
        .into_response()
}

/// The event `key` names: a position token (`812.40`) or an event id.
async fn find(state: &AppState, key: &str) -> Result<StoredEvent, ApiError> {
    let key = key.trim();
    let (filter, position) = if let Ok(id) = Uuid::parse_str(key) {
        let filter = LogFilter {
            event_id: Some(id),
            limit: 1,
            ..LogFilter::default()
        };
        (filter, None)
    } else {
        let position: Position = key.parse().map_err(|_| {
            ApiError::invalid_field(
                "event",
                "must be a position token like 812.40 or an event id (a UUID)",
            )
        })?;
        // Positions are unique: the one event strictly between its two neighbours.
        let (tx, at) = (position.transaction_id, position.global_position);
        let filter = LogFilter {
            after: Position::new(tx, at.saturating_sub(1)),
            before: Some(Position::new(tx, at.saturating_add(1))),
            limit: 1,
            ..LogFilter::default()
        };
        (filter, Some(position))
    };
    let found = state.log.query(&filter).await?;
    found
        .into_iter()
        .next()
        .filter(|e| position.is_none_or(|p| e.position == p))
        .ok_or_else(|| ApiError::NotFound(format!("no event {key} in the log")))
}

/// `GET /console/events/{position or event id}`.
pub(crate) async fn event(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> Response {
    let event = match find(&state, &key).await {
        Ok(e) => e,
        Err(error) => return page::error_page(&state, &viewer, &headers, error).await,
    };
    let caused = state
        .log
        .query(&LogFilter {
            causation_id: Some(event.event_id.to_string()),
            limit: 1_000,
            ..LogFilter::default()
        })
        .await;
    let caused = match caused {
        Ok(c) => c,
        Err(error) => return page::error_page(&state, &viewer, &headers, error.into()).await,
    };
    let shown = entry(&event);
    let is_order = event.aggregate_type == Order::TYPE;
    let body = html! {
        dl.facts #event data-event-id=(event.event_id) data-position=(event.position.token()) {
            dt { "Event" } dd { strong { (event.event_type) } " (schema " (event.event_version) ")" }
            dt { "Position" } dd.mono { (event.position.token()) }
            dt { "Event id" } dd.mono { (event.event_id) }
            dt { "Recorded" } dd { (page::instant(event.recorded_at)) }
            dt { "Stream" } dd {
                (stream_link(&event.aggregate_type, &event.aggregate_id)) " version " (event.sequence)
                @if is_order {
                    " · " a href=(format!("/console/orders/{}", event.aggregate_id)) { "order audit" }
                }
            }
            dt { "Actor" } dd.mono #actor { (event.metadata.actor) }
            dt { "Correlation" } dd #correlation { (correlation_link(&event.metadata.correlation_id)) " (every event of the same request)" }
            dt { "Caused by" } dd #caused-by {
                @match &event.metadata.causation_id {
                    Some(cause) => a.mono href=(format!("/console/events/{}", page::query_value(cause))) { "event " (cause) },
                    None => "a request (no causing event)",
                }
            }
            dt { "Caused" } dd #caused {
                @if caused.is_empty() { "no event" }
                @else {
                    ul.plain { @for c in &caused {
                        li { (event_link(&c.position.token())) " " strong { (c.event_type) } " on " (stream_link(&c.aggregate_type, &c.aggregate_id)) }
                    } }
                }
            }
        }
        h2 { "Data" }
        (page::json(&shown.data))
        p.hint { "The same as " code { (format!("GET /api/v1/admin/events?event_id={}", event.event_id)) } "; what it caused: " code { (format!("?causation_id={}", event.event_id)) } "." }
    };
    let title = format!("{} at {}", event.event_type, event.position.token());
    page::render(&state, &viewer, &title, Nav::Log, body)
        .await
        .into_response()
}

/// `GET /console/streams/{aggregate_type}/{aggregate_id}`.
pub(crate) async fn stream(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((aggregate_type, aggregate_id)): Path<(String, String)>,
) -> Response {
    let events = match state.log.stream(&aggregate_type, &aggregate_id).await {
        Ok(e) if e.is_empty() => {
            let error = ApiError::NotFound(format!("no stream {aggregate_type} {aggregate_id}"));
            return page::error_page(&state, &viewer, &headers, error).await;
        }
        Ok(e) => e,
        Err(error) => return page::error_page(&state, &viewer, &headers, error.into()).await,
    };
    let body = html! {
        @if aggregate_type == Order::TYPE {
            p { a href=(format!("/console/orders/{}", page::query_value(&aggregate_id))) { "Audit this order (timeline and as-of)" } }
        }
        p.count { (events.len()) " events, by version." }
        (events_table(&events, "stream"))
    };
    let title = format!("{aggregate_type} {aggregate_id}");
    page::render(&state, &viewer, &title, Nav::Log, body)
        .await
        .into_response()
}
