//! Everything every request passes through, outermost first: request id, metrics, security
//! headers (`edge`); CORS; rate limit and timeout (`guard`); body limit. Two layers of our
//! own rather than one per concern: each layer costs every request a boxed future and a clone
//! of the service stack.
//!
//! - [`request_id`]: `X-Request-Id` echoed or created, and a tracing span carrying it.
//! - [`metrics`]: request count, errors and latency per route.
//! - [`security`]: security headers on every response.
//! - [`rate_limit`]: per-client token buckets with `X-RateLimit-*` and `Retry-After`.
//! - [`shared_limit`]: the same buckets shared by every instance through Redis.
//! - [`client_ip`]: the client address, trusting `X-Forwarded-For` only from configured proxies.
//! - `trace`: the request's span in its trace, when tracing is on.

pub mod client_ip;
pub mod metrics;
pub mod rate_limit;
pub mod request_id;
pub mod security;
pub mod shared_limit;
mod trace;

use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};
use tracing::Instrument;

use crate::context::RequestId;
use crate::error::ApiError;
use crate::extract::BODY_LIMIT;
use crate::state::AppState;
use client_ip::ClientIp;

/// Wraps `router` in every layer.
pub fn apply(router: Router, state: &AppState) -> Router {
    router
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn_with_state(state.clone(), guard))
        .layer(cors(&state.config.cors_origins))
        .layer(from_fn_with_state(state.clone(), edge))
}

/// The outer layer: assigns the request id and the client address, runs the request in a span
/// carrying the id (inside the request's trace span), adds the security headers and echoes the id, and records the request's
/// metrics.
async fn edge(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id::of(&req);
    let ip = ClientIp::of(&req, &state.config.trusted_proxies);
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let surface = security::Surface::of(req.uri().path());
    let traced = trace::span(&req, route.as_ref());
    let span = traced.in_scope(|| {
        tracing::info_span!("request", request_id = %id, method = %method, path = %req.uri().path())
    });
    let header = HeaderValue::from_str(&id).ok();
    req.extensions_mut().insert(RequestId(id));
    req.extensions_mut().insert(ip);
    let mut response = next
        .run(req)
        .instrument(span)
        .instrument(traced.clone())
        .await;
    trace::answered(&traced, response.status());
    let headers = response.headers_mut();
    security::add(surface, headers);
    if let Some(value) = header {
        headers.insert(request_id::REQUEST_ID, value);
    }
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    state
        .http_metrics
        .record(&method, route, response.status(), started.elapsed());
    response
}

/// The inner layer: the client's rate limit (429 with `Retry-After` when spent; `X-RateLimit-*`
/// on every answer), then the request's time limit (503 when it runs out).
async fn guard(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let client = rate_limit::client_of(&req);
    let (refusal, limits) = rate_limit::check(&state, client).await;
    let mut response = match refusal {
        Some(refusal) => refusal,
        None => match tokio::time::timeout(state.config.request_timeout, next.run(req)).await {
            Ok(response) => response,
            Err(_) => ApiError::Unavailable("the request took too long".to_owned()).into_response(),
        },
    };
    let headers = response.headers_mut();
    // Room for every header the layers add on the way out (these three, CORS's, the security
    // headers, the request id), so the map grows once rather than at each layer.
    headers.reserve(16);
    for (name, value) in limits {
        headers.insert(name, value);
    }
    response
}

fn cors(origins: &[String]) -> CorsLayer {
    let layer = CorsLayer::new()
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            HeaderName::from_static("idempotency-key"),
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-min-position"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            HeaderName::from_static("x-event-position"),
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
            HeaderName::from_static("retry-after"),
        ]);
    if origins.iter().any(|o| o == "*") {
        layer.allow_origin(Any)
    } else {
        let list: Vec<HeaderValue> = origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        layer.allow_origin(AllowOrigin::list(list))
    }
}
