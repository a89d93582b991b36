//! Order audit: find an order by id (admins also a customer's orders by email); its timeline
//! (the order's events and those of the payments and stock reservations it caused, with who did
//! what); a time control showing the order as it stood at any instant (the `as_of` answer) beside
//! its current state. Admins can erase a customer's personal data from here, after confirming.
//!
//! The same reads as `GET /api/v1/orders/{id}/history`, `GET /api/v1/orders/{id}?as_of=`,
//! `GET /api/v1/orders?email=` and the same command as `DELETE /api/v1/users/{id}/personal-data`.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use chrono::{DateTime, Utc};
use commerce_domain::order::{Order, OrderEvent};
use commerce_event_store::StoredEvent;
use commerce_projections::orders::{self as read_model, OrderFilter};
use commerce_projections::page::Page;
use cqrs_es::Aggregate;
use maud::{html, Markup};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use super::log::{correlation_link, event_link, short, stream_link};
use super::page::{self, Nav};
use super::session::{admin_action, CsrfForm, Viewer};
use crate::context::RequestId;
use crate::error::ApiError;
use crate::routes::orders::as_of::{order_from_log, parse_as_of, Until};
use crate::routes::orders::body::OrderBody;
use crate::routes::orders::history::order_events;
use crate::state::AppState;

/// `?id=`, `?email=`, `?user_id=` of the search page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchQuery {
    id: Option<String>,
    email: Option<String>,
    user_id: Option<String>,
}

/// `?as_of=` or `?step=` of the audit page and its time control.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct AsOfQuery {
    as_of: Option<String>,
    step: Option<String>,
}

fn search_forms(viewer: &Viewer, q: &SearchQuery) -> Markup {
    html! {
        div.search {
            form #find-order method="get" action="/console/orders" {
                label { "Order id" input #order-id name="id" value=(q.id.as_deref().unwrap_or("")) placeholder="a UUID" required; }
                button type="submit" { "Open" }
            }
            @if viewer.is_admin() {
                form #find-customer method="get" action="/console/orders" {
                    label { "Customer email" input #customer-email type="email" name="email" value=(q.email.as_deref().unwrap_or("")) required; }
                    button type="submit" { "Find orders" }
                }
            }
        }
    }
}

fn orders_table(orders: &[OrderBody]) -> Markup {
    let rows: Vec<Value> = orders
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect();
    html! {
        table.grid #customer-orders {
            thead { tr { th { "Order" } th { "Status" } th { "Total" } th { "Placed (UTC)" } } }
            tbody { @for o in &rows {
                @let id = text(o, "id");
                tr data-order=(id) {
                    td data-label="order" { a.mono href=(format!("/console/orders/{id}")) { (id) } }
                    td data-label="status" { (text(o, "status")) }
                    td data-label="total" { (text(o, "total_amount")) " " (text(o, "currency")) }
                    td data-label="placed" { (text(o, "created_at")) }
                }
            } }
        }
    }
}

fn text(v: &Value, field: &str) -> String {
    match v.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

fn erase_button(viewer: &Viewer, user_id: Uuid) -> Markup {
    let url = format!("/console/users/{user_id}/erase");
    html! {
        form.inline method="post" action=(url) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            button.action.danger #erase type="submit" hx-post=(url) hx-target="#outcome" hx-swap="innerHTML"
                hx-confirm=(format!("Erase the personal data of customer {user_id}? Their email, name, phone, addresses and review texts become unreadable in the log and every read model, and the account can no longer sign in. This cannot be undone.")) {
                "Erase personal data"
            }
        }
    }
}

async fn customer_orders(state: &AppState, user_id: Uuid) -> Result<Vec<OrderBody>, ApiError> {
    let filter = OrderFilter {
        user_id: Some(user_id),
        status: None,
    };
    let (rows, _) = read_model::list(&state.pool, &filter, Page::new(1, 100)).await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// `GET /console/orders`: the search forms, an order by id, a customer's orders.
pub(crate) async fn search(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|q| q.0).unwrap_or_default();
    let blank = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    };
    let found = async {
        if let Some(id) = blank(&q.id) {
            let id = Uuid::parse_str(&id)
                .map_err(|_| ApiError::invalid_field("order id", "must be a UUID like 0b6f…-…"))?;
            return Ok(Err(Redirect::to(&format!("/console/orders/{id}"))));
        }
        let customer = if let Some(email) = blank(&q.email) {
            viewer.require_admin().map_err(|_| {
                ApiError::Forbidden("only admins may look customers up by email".to_owned())
            })?;
            match crate::routes::auth::find_by_email(&state, &email).await? {
                Some((id, _)) => Some(id),
                None => {
                    return Err(ApiError::NotFound(
                        "no account is registered with this email".to_owned(),
                    ))
                }
            }
        } else if let Some(id) = blank(&q.user_id) {
            Some(
                Uuid::parse_str(&id)
                    .map_err(|_| ApiError::invalid_field("customer id", "must be a UUID"))?,
            )
        } else {
            None
        };
        let orders = match customer {
            Some(id) => Some((id, customer_orders(&state, id).await?)),
            None => None,
        };
        Ok(Ok(orders))
    }
    .await;
    let results = match found {
        Ok(Err(redirect)) => return redirect.into_response(),
        Ok(Ok(None)) => html! {},
        Ok(Ok(Some((user_id, orders)))) => html! {
            section #customer data-user-id=(user_id) {
                h2 { "Customer " span.mono { (user_id) } }
                div #outcome aria-live="polite" {}
                @if viewer.is_admin() { (erase_button(&viewer, user_id)) }
                @if orders.is_empty() { p { "No orders." } } @else { (orders_table(&orders)) }
            }
        },
        Err(error) => {
            let status = error.status();
            let body = html! {
                (search_forms(&viewer, &q))
                p.message.error role="alert" { (page::explain(&error)) }
            };
            let _ = &headers;
            return (
                status,
                page::render(&state, &viewer, "Orders", Nav::Orders, body).await,
            )
                .into_response();
        }
    };
    let body = html! {
        (search_forms(&viewer, &q))
        (results)
        p.hint { "Also: " code { "GET /api/v1/orders/{id}/history" } ", " code { "GET /api/v1/orders/{id}?as_of=" } ", " code { "GET /api/v1/orders?email=" } " (admins)." }
    };
    page::render(&state, &viewer, "Orders", Nav::Orders, body)
        .await
        .into_response()
}

/// What the audit page shows of one order.
struct Audit {
    id: Uuid,
    owner: Uuid,
    events: Vec<StoredEvent>,
    /// For each event of the timeline, the instant that shows the order just after it.
    instants: Vec<DateTime<Utc>>,
}

async fn load(state: &AppState, id: &str) -> Result<Audit, ApiError> {
    let id = Uuid::parse_str(id.trim())
        .map_err(|_| ApiError::invalid_field("order id", "must be a UUID"))?;
    let (events, owner) = order_events(state, id).await?;
    let owner = owner.ok_or_else(|| ApiError::NotFound(format!("no order {id}")))?;
    // An order event's own time may be a hair after the row's: the later of the two, carried
    // forward, so each step shows at least everything up to its event.
    let mut latest = DateTime::<Utc>::MIN_UTC;
    let instants = events
        .iter()
        .map(|e| {
            let own = (e.aggregate_type == Order::TYPE)
                .then(|| e.payload_as::<OrderEvent>().ok().map(|o| o.at()))
                .flatten()
                .unwrap_or(e.recorded_at);
            latest = latest.max(own).max(e.recorded_at);
            crate::routes::as_stored(latest)
        })
        .collect();
    Ok(Audit {
        id,
        owner,
        events,
        instants,
    })
}

impl Audit {
    /// The instant asked for: `as_of` if given, else step `step`, else the last step; and the
    /// step that instant falls on.
    fn instant(&self, q: &AsOfQuery) -> Result<(DateTime<Utc>, usize), ApiError> {
        let last = self.instants.len().saturating_sub(1);
        let at = match (
            q.as_of.as_deref().map(str::trim).filter(|t| !t.is_empty()),
            q.step.as_deref(),
        ) {
            (Some(text), _) => parse_as_of(text)?,
            (None, Some(step)) => {
                let step: usize =
                    step.trim()
                        .parse()
                        .ok()
                        .filter(|s| *s <= last)
                        .ok_or_else(|| {
                            ApiError::invalid_field(
                                "step",
                                format!("must be a step from 0 to {last}"),
                            )
                        })?;
                self.instants[step]
            }
            (None, None) => self.instants.last().copied().unwrap_or_else(Utc::now),
        };
        let step = self.instants.iter().rposition(|i| *i <= at).unwrap_or(0);
        Ok((at, step))
    }
}

fn order_card(order: Option<&OrderBody>, id: &str) -> Markup {
    let Some(v) = order.and_then(|o| serde_json::to_value(o).ok()) else {
        return html! { p.empty id=(format!("{id}-none")) data-status="NONE" { "Not placed yet at this instant." } };
    };
    let address = match v.get("shipping_address") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(fields)) => fields
            .values()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    };
    let items = v
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    html! {
        dl.facts.order data-status=(text(&v, "status")) {
            dt { "Status" } dd data-field="status" { strong { (text(&v, "status")) } }
            dt { "Stock" } dd data-field="stock_status" { (text(&v, "stock_status")) }
            dt { "Payment" } dd data-field="payment_status" { (text(&v, "payment_status")) }
            @let reason = text(&v, "cancellation_reason");
            @if !reason.is_empty() { dt { "Cancelled because" } dd data-field="cancellation_reason" { (reason) } }
            dt { "Total" } dd data-field="total_amount" { (text(&v, "total_amount")) " " (text(&v, "currency")) }
            dt { "Ship to" } dd data-field="shipping_address" { (address) }
            dt { "Paid with" } dd data-field="payment_method" { (text(&v, "payment_method")) }
            dt { "Items" } dd data-field="items" {
                ul.plain { @for item in &items {
                    li { (text(item, "quantity")) " × " (text(item, "product_name")) " at " (text(item, "price")) }
                } }
            }
            dt { "Last change" } dd data-field="updated_at" { (text(&v, "updated_at")) }
        }
    }
}

fn timeline(audit: &Audit, step: usize, oob: bool) -> Markup {
    html! {
        table.grid.timeline #timeline hx-swap-oob=[oob.then_some("true")] {
            thead { tr {
                th scope="col" { "#" } th scope="col" { "Recorded (UTC)" } th scope="col" { "Stream" }
                th scope="col" { "Event" } th scope="col" { "Who" } th scope="col" { "Request" }
            } }
            tbody {
                @for (i, e) in audit.events.iter().enumerate() {
                    tr class=(if i > step { "later" } else { "" }) data-step=(i) data-event-type=(e.event_type) {
                        td data-label="step" { (i) }
                        td data-label="recorded" { (event_link(&e.position.token())) " " (page::instant(e.recorded_at)) }
                        td data-label="stream" { (stream_link(&e.aggregate_type, &e.aggregate_id)) }
                        td data-label="event" { strong { (e.event_type) } }
                        td.mono data-label="who" title=(e.metadata.actor) { (who(&e.metadata.actor, audit.owner)) }
                        td data-label="request" { (correlation_link(&e.metadata.correlation_id)) }
                    }
                }
            }
        }
    }
}

fn who(actor: &str, owner: Uuid) -> String {
    if actor == owner.to_string() {
        "the customer".to_owned()
    } else if actor.starts_with("system:") {
        actor.to_owned()
    } else {
        format!("user {}", short(actor))
    }
}

async fn as_of_card(
    state: &AppState,
    audit: &Audit,
    at: DateTime<Utc>,
    step: usize,
) -> Result<Markup, ApiError> {
    let then = order_from_log(state, audit.id, Until::Instant(at)).await?;
    Ok(html! {
        h2 { "As of " time #as-of-instant datetime=(page::exact(at)) { (page::exact(at)) } }
        p.hint #as-of-step data-step=(step) { "Step " (step) " of " (audit.events.len().saturating_sub(1)) ": after " strong { (audit.events.get(step).map_or("", |e| e.event_type.as_str())) } }
        (order_card(then.as_ref(), "as-of"))
    })
}

/// Order `id`'s audit, the instant `q` asks for, its step and the as-of column.
async fn at_instant(
    state: &AppState,
    id: &str,
    q: &AsOfQuery,
) -> Result<(Audit, DateTime<Utc>, usize, Markup), ApiError> {
    let audit = load(state, id).await?;
    let (at, step) = audit.instant(q)?;
    let card = as_of_card(state, &audit, at, step).await?;
    Ok((audit, at, step, card))
}

/// `GET /console/orders/{id}`.
pub(crate) async fn audit(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<AsOfQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|q| q.0).unwrap_or_default();
    let built = async {
        let (audit, at, step, card) = at_instant(&state, &id, &q).await?;
        let current: Option<OrderBody> = match read_model::get(&state.pool, audit.id).await? {
            Some(view) => Some(view.into()),
            None => order_from_log(&state, audit.id, Until::Version(i64::MAX)).await?,
        };
        Ok::<_, ApiError>((audit, at, step, current, card))
    }
    .await;
    let (audit, at, step, current, card) = match built {
        Ok(parts) => parts,
        Err(error) => return page::error_page(&state, &viewer, &headers, error).await,
    };
    let last = audit.events.len().saturating_sub(1);
    let base = format!("/console/orders/{}", audit.id);
    let body = html! {
        p.customer {
            "Customer " a.mono href=(format!("/console/orders?user_id={}", audit.owner)) { (audit.owner) }
            " · " a href=(format!("/console/streams/Order/{}", audit.id)) { "order stream" }
        }
        div #outcome aria-live="polite" {}
        @if viewer.is_admin() { (erase_button(&viewer, audit.owner)) }
        section.time-control aria-label="Time control" {
            label for="step" { "Step through the history (0 = first event, " (last) " = latest)" }
            input #step type="range" name="step" min="0" max=(last) value=(step)
                hx-get=(format!("{base}/as-of")) hx-trigger="input changed delay:80ms, change"
                hx-target="#as-of" hx-swap="innerHTML" hx-sync="this:replace";
            form #at-form method="get" action=(base) hx-get=(format!("{base}/as-of")) hx-target="#as-of" hx-swap="innerHTML" {
                label { "or any instant (RFC 3339, UTC if no offset)"
                    input #as-of-input name="as_of" value=(page::exact(at)); }
                button type="submit" { "Show" }
            }
        }
        div.columns {
            section #current.card aria-label="Current state" {
                h2 { "Now" }
                (order_card(current.as_ref(), "current"))
            }
            section #as-of.card aria-label="State as of the chosen instant" { (card) }
        }
        h2 { "Timeline" }
        (timeline(&audit, step, false))
    };
    let title = format!("Order {}", audit.id);
    page::render(&state, &viewer, &title, Nav::Orders, body)
        .await
        .into_response()
}

/// `GET /console/orders/{id}/as-of`: the as-of column and the timeline's marks, for htmx.
pub(crate) async fn as_of(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path(id): Path<String>,
    query: Result<Query<AsOfQuery>, QueryRejection>,
) -> Response {
    let q = query.map(|q| q.0).unwrap_or_default();
    let built = async {
        let (audit, _, step, card) = at_instant(&state, &id, &q).await?;
        Ok::<_, ApiError>(html! { (card) (timeline(&audit, step, true)) })
    }
    .await;
    match built {
        Ok(markup) => markup.into_response(),
        Err(error) => page::error_page(&state, &viewer, &headers, error).await,
    }
}

/// `POST /console/users/{id}/erase` (admins, with the CSRF token).
pub(crate) async fn erase(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    request_id: RequestId,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let done = async {
        admin_action(&viewer, &headers, form)?;
        let id = Uuid::parse_str(id.trim())
            .map_err(|_| ApiError::invalid_field("customer id", "must be a UUID"))?;
        crate::routes::users::erase(&state, &viewer.caller, &request_id, id).await?;
        Ok::<_, ApiError>(id)
    }
    .await;
    match done {
        Ok(id) => {
            let text = format!(
                "Personal data of {id} erased: it reads [erased] everywhere, and the account can no longer sign in."
            );
            let outcome = html! { p.outcome.ok role="status" { (text) } };
            if page::is_htmx(&headers) {
                outcome.into_response()
            } else {
                page::render(&state, &viewer, "Erased", Nav::Orders, outcome)
                    .await
                    .into_response()
            }
        }
        Err(error) => page::error_page(&state, &viewer, &headers, error).await,
    }
}
