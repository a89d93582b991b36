//! The operators' and auditors' console at `/console/`: server-rendered pages (maud), refreshed
//! and driven by htmx, which is vendored and embedded in the binary like the stylesheet. No page
//! loads anything from another origin, and no page carries an inline script or style, so the
//! console's content security policy allows scripts and styles of its own origin only.
//!
//! - `session`: sign-in with the API's credentials (admins and auditors only), the session
//!   cookie, CSRF tokens, expiry.
//! - `health`: the header every page carries, refreshed every 2 seconds.
//! - `projections`: every consumer's state, rebuild progress, rebuild/retry/skip.
//! - `log`: the global log, one event with its causes and effects, one stream.
//! - `orders`: an order's timeline and its state at any instant; a customer's orders; erasure.
//!
//! Everything here is also an API call or a CLI command (README, "Console"): the console reads
//! through the same functions as `/api/v1/admin` and `/api/v1/orders`.

mod health;
mod log;
mod orders;
mod page;
mod projections;
mod session;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

pub use health::ConsoleCache;

/// Where the console lives.
pub const PREFIX: &str = "/console";

/// The vendored htmx (2.0.8, BSD Zero-Clause, `assets/htmx-LICENSE`).
const HTMX: &[u8] = include_bytes!("../../assets/htmx-2.0.8.min.js");
/// The console's stylesheet.
const CSS: &[u8] = include_bytes!("../../assets/console.css");

/// Every console route (state-changing ones are POSTs carrying the session's CSRF token).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/console", get(home))
        .route("/console/", get(home))
        .route("/console/assets/htmx-2.0.8.min.js", get(htmx))
        .route("/console/assets/console.css", get(css))
        .route(
            "/console/login",
            get(session::login_page).post(session::login),
        )
        .route("/console/logout", post(session::logout))
        .route("/console/health", get(health::fragment))
        .route("/console/projections", get(projections::page))
        .route(
            "/console/projections/table",
            get(projections::table_fragment),
        )
        .route(
            "/console/projections/{name}/{action}",
            post(projections::act),
        )
        .route("/console/events", get(log::events))
        .route("/console/events/{key}", get(log::event))
        .route(
            "/console/streams/{aggregate_type}/{aggregate_id}",
            get(log::stream),
        )
        .route("/console/verify", get(health::verify_page))
        .route("/console/orders", get(orders::search))
        .route("/console/orders/{id}", get(orders::audit))
        .route("/console/orders/{id}/as-of", get(orders::as_of))
        .route("/console/users/{id}/erase", post(orders::erase))
        .route("/console/{*rest}", get(not_found).post(not_found))
        .with_state(state)
}

async fn home(viewer: session::MaybeViewer) -> Redirect {
    match viewer.0 {
        Some(_) => Redirect::to("/console/projections"),
        None => Redirect::to("/console/login"),
    }
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            // The file name carries the version; the stylesheet changes only with the binary.
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

async fn htmx() -> Response {
    asset("text/javascript; charset=utf-8", HTMX)
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", CSS)
}

async fn not_found(State(_): State<AppState>, headers: HeaderMap) -> Response {
    page::message_page(
        &headers,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no console page at this address.",
    )
}
