//! The projections page: every durable consumer (projections, the saga, notifications) with its
//! state, position, lag and last error, refreshed every second; a running rebuild as a progress
//! bar with its rate and time left; rebuild, retry and skip for admins, each confirmed first.
//!
//! The same data and actions as `GET /api/v1/admin/projections` and
//! `POST /api/v1/admin/projections/{name}/{rebuild,retry,skip}` (one code path), and as
//! `commerce projections status|retry|skip` and `commerce replay`.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Form;
use commerce_projections::registry;
use maud::{html, Markup};

use super::page::{self, Nav};
use super::session::{admin_action, CsrfForm, Viewer};
use crate::error::ApiError;
use crate::routes::admin::projections::{self as api, ProjectionBody};
use crate::state::AppState;

fn seconds(s: f64) -> String {
    if s < 1.0 {
        "0 s".to_owned()
    } else if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

fn status_class(status: &str) -> &'static str {
    match status {
        "LIVE" => "pill ok",
        "FAILED" => "pill bad",
        _ => "pill warn",
    }
}

fn row(viewer: &Viewer, p: &ProjectionBody) -> Markup {
    let rebuildable = registry::NAMES.contains(&p.name.as_str());
    let failed = p.status == "FAILED";
    html! {
        tr id=(format!("consumer-{}", p.name)) data-name=(p.name) data-status=(p.status) data-lag=(p.lag_events) {
            th scope="row" { (p.name) }
            td { span class=(status_class(p.status)) { (p.status) } }
            td.num data-label="position" { (p.position) }
            td.num data-label="head" { (p.head) }
            td.num.lag data-label="lag (events)" { (p.lag_events) }
            td.num data-label="lag (time)" { (seconds(p.lag_seconds)) }
            td.error-text data-label="last error" {
                @if let Some(e) = &p.last_error {
                    (e)
                    @if let Some(at) = &p.failed_position {
                        " (at " a href=(format!("/console/events/{at}")) { (at) } ")"
                    }
                }
            }
            td.actions {
                @if viewer.is_admin() {
                    @if rebuildable {
                        (button(viewer, &p.name, "rebuild", "Rebuild",
                            &format!("Rebuild projection {} from the whole log? The live read model keeps serving until the rebuilt one replaces it.", p.name),
                            p.rebuild.is_some()))
                    }
                    @if failed {
                        (button(viewer, &p.name, "retry", "Retry",
                            &format!("Retry the event {} halted on?", p.name), false))
                        (button(viewer, &p.name, "skip", "Skip",
                            &format!("Skip the event {} halted on? It will never be applied; the skip is recorded.", p.name), false))
                    }
                }
            }
        }
        @if let Some(r) = &p.rebuild {
            tr.rebuild id=(format!("rebuild-{}", p.name)) data-done=(r.done) data-total=(r.total) {
                td colspan="8" {
                    label {
                        "Rebuilding " (p.name) ": "
                        progress value=(r.done) max=(r.total.max(1)) { (r.done) " of " (r.total) }
                        " " (r.done) " of " (r.total) " events"
                        @if let Some(rate) = r.events_per_second { " · " (format!("{rate:.0}")) " events/s" }
                        @if let Some(left) = r.seconds_left { " · " (seconds(left)) " left" }
                    }
                }
            }
        }
    }
}

fn button(
    viewer: &Viewer,
    name: &str,
    action: &str,
    label: &str,
    confirm: &str,
    disabled: bool,
) -> Markup {
    let url = format!("/console/projections/{name}/{action}");
    html! {
        form.inline method="post" action=(url) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            button type="submit" class=(format!("action {action}")) data-action=(action) data-name=(name)
                hx-post=(url) hx-confirm=(confirm) hx-target="#outcome" hx-swap="innerHTML"
                disabled[disabled] {
                (label)
            }
        }
    }
}

/// The table, which reloads itself every second.
fn table(viewer: &Viewer, rows: &[ProjectionBody]) -> Markup {
    html! {
        section #projections hx-get="/console/projections/table" hx-trigger="every 1s"
            hx-swap="outerHTML" {
            table.grid {
                thead { tr {
                    th scope="col" { "Consumer" } th scope="col" { "Status" }
                    th scope="col" { "Position" } th scope="col" { "Head" }
                    th scope="col" { "Lag (events)" } th scope="col" { "Lag (time)" }
                    th scope="col" { "Last error" } th scope="col" { span.sr { "Actions" } }
                } }
                tbody { @for p in rows { (row(viewer, p)) } }
            }
        }
    }
}

async fn whole(state: &AppState, viewer: &Viewer, outcome: Option<Markup>) -> Response {
    let rows = match api::statuses(state).await {
        Ok(rows) => rows,
        Err(e) => return page::error_page(state, viewer, &HeaderMap::new(), e).await,
    };
    let body = html! {
        div #outcome aria-live="polite" { @if let Some(o) = outcome { (o) } }
        (table(viewer, &rows))
        p.hint {
            "Also: " code { "GET /api/v1/admin/projections" } ", " code { "commerce projections status" }
            @if viewer.is_admin() { ", " code { "commerce replay NAME" } ", " code { "commerce projections retry|skip NAME" } }
            "."
        }
    };
    page::render(state, viewer, "Projections", Nav::Projections, body)
        .await
        .into_response()
}

/// `GET /console/projections`.
pub(crate) async fn page(State(state): State<AppState>, viewer: Viewer) -> Response {
    whole(&state, &viewer, None).await
}

/// `GET /console/projections/table`: the table alone.
pub(crate) async fn table_fragment(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Response {
    match api::statuses(&state).await {
        Ok(rows) => table(&viewer, &rows).into_response(),
        Err(e) => page::error_page(&state, &viewer, &headers, e).await,
    }
}

/// `POST /console/projections/{name}/{rebuild|retry|skip}` (admins, with the CSRF token).
pub(crate) async fn act(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let done = async {
        admin_action(&viewer, &headers, form)?;
        match action.as_str() {
            "rebuild" => {
                let name = api::start_rebuild(&state, &name).await?;
                Ok(format!(
                    "Rebuild of {name} started; its progress shows in the table."
                ))
            }
            "retry" => {
                api::repair(&state, &name, "RETRY").await?;
                Ok(format!(
                    "Retry requested for {name}; it applies the event again within a second."
                ))
            }
            "skip" => {
                api::repair(&state, &name, "SKIP").await?;
                Ok(format!(
                    "Skip requested for {name}; it passes over the event within a second, and the skip is recorded."
                ))
            }
            _ => Err(ApiError::NotFound(format!(
                "no action {action:?}; rebuild, retry and skip exist"
            ))),
        }
    }
    .await;
    match done {
        Ok(text) => {
            let outcome = html! { p.outcome.ok role="status" { (text) } };
            if page::is_htmx(&headers) {
                outcome.into_response()
            } else {
                whole(&state, &viewer, Some(outcome)).await
            }
        }
        Err(error) => page::error_page(&state, &viewer, &headers, error).await,
    }
}
