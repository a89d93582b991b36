//! The page shell every console page shares (head, navigation, the health header) and the pages
//! that only say something (not found, refused, errors).

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup, DOCTYPE};

use super::health;
use super::session::Viewer;
use crate::error::ApiError;
use crate::state::AppState;

/// htmx settings: no `eval`, no inline styles of its own (the policy would refuse them), no
/// scripts from swapped content, no history snapshots of pages that refresh themselves.
const HTMX_CONFIG: &str = r#"{"allowEval":false,"includeIndicatorStyles":false,"allowScriptTags":false,"historyCacheSize":0,"defaultSwapStyle":"innerHTML"}"#;

/// Which section of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nav {
    Projections,
    Log,
    Orders,
    None,
}

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            meta name="htmx-config" content=(HTMX_CONFIG);
            meta name="referrer" content="no-referrer";
            title { (title) " · Commerce console" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/htmx-2.0.8.min.js" defer {}
        }
    }
}

/// A whole page for a signed-in viewer: navigation, health header, then `body`.
pub(crate) async fn render(
    state: &AppState,
    viewer: &Viewer,
    title: &str,
    nav: Nav,
    body: Markup,
) -> Markup {
    let health = health::header(state).await;
    shell(viewer, title, nav, health, body)
}

fn shell(viewer: &Viewer, title: &str, nav: Nav, health: Markup, body: Markup) -> Markup {
    let link = |href: &str, label: &str, this: Nav| {
        html! { a href=(href) aria-current=[(nav == this).then_some("page")] { (label) } }
    };
    // Every htmx request carries the session's CSRF token (state-changing ones are checked).
    let headers = serde_json::json!({ "X-CSRF-Token": viewer.csrf }).to_string();
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body hx-headers=(headers) {
                header.top {
                    a.brand href="/console/projections" { "Commerce console" }
                    nav {
                        (link("/console/projections", "Projections", Nav::Projections))
                        (link("/console/events", "Event log", Nav::Log))
                        (link("/console/orders", "Orders", Nav::Orders))
                    }
                    div.who {
                        span #viewer data-role=(viewer.role()) {
                            (viewer.label) " · " (viewer.role())
                        }
                        form method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(viewer.csrf);
                            button.link type="submit" { "Sign out" }
                        }
                    }
                }
                (health)
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page with a title and one paragraph, for someone who may not be signed in.
pub(crate) fn message_page(
    _headers: &HeaderMap,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body.bare {
                main #main {
                    h1 { (title) }
                    p.message { (text) }
                    p { a href="/console/" { "Back to the console" } }
                }
            }
        }
    };
    (status, page).into_response()
}

/// `error` as a console page (or, for an htmx request, as a fragment htmx swaps in).
pub(crate) async fn error_page(
    state: &AppState,
    viewer: &Viewer,
    headers: &HeaderMap,
    error: ApiError,
) -> Response {
    let status = error.status();
    let text = explain(&error);
    if is_htmx(headers) {
        // htmx swaps only 2xx answers; the message is the content.
        return (
            StatusCode::OK,
            html! { p.outcome.error role="alert" { (text) } },
        )
            .into_response();
    }
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::FORBIDDEN => "Not allowed",
        StatusCode::CONFLICT => "Not possible now",
        s if s.is_client_error() => "Cannot read that",
        _ => "Something went wrong",
    };
    let body = html! { p.message.error role="alert" { (text) } };
    (status, render(state, viewer, title, Nav::None, body).await).into_response()
}

/// What to tell a person about `error`: the API's own message, with per-field details; a 5xx
/// only says it is logged (its cause is logged, never shown).
pub(crate) fn explain(error: &ApiError) -> String {
    match error {
        ApiError::Internal(cause) => {
            tracing::error!(error = %crate::error::error_chain(cause.as_ref()), "console request failed");
            "The server failed to answer; the cause is in its log. Try again.".to_owned()
        }
        ApiError::BadRequest {
            message,
            details: Some(details),
            ..
        } => {
            let fields: Vec<String> = details.iter().map(|(k, v)| format!("{k} {v}")).collect();
            format!("{message}: {}", fields.join("; "))
        }
        other => capitalised(&other.to_string()),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Whether htmx sent the request (it swaps the answer into the page).
pub(crate) fn is_htmx(headers: &HeaderMap) -> bool {
    headers.contains_key("hx-request")
}

/// An instant as the console shows it: UTC, to the millisecond, with the `Z`.
pub(crate) fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An instant to the microsecond, as `as_of` and the time filters take it back.
pub(crate) fn exact(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `value` as indented JSON, escaped for a `<pre>`.
pub(crate) fn json(value: &serde_json::Value) -> Markup {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    html! { pre.json { (text) } }
}

/// `text` percent-encoded for a query string.
pub(crate) fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}
