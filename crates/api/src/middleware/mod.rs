//! Everything every request passes through, outermost first: request id, metrics, security
//! headers, CORS, rate limit, timeout, body limit.
//!
//! - [`request_id`]: `X-Request-Id` echoed or created, and a tracing span carrying it.
//! - [`metrics`]: request count, errors and latency per route.
//! - [`security`]: security headers on every response.
//! - [`rate_limit`]: per-client token buckets with `X-RateLimit-*` and `Retry-After`.
//! - [`client_ip`]: the client address, trusting `X-Forwarded-For` only from configured proxies.

pub mod client_ip;
pub mod metrics;
pub mod rate_limit;
pub mod request_id;
pub mod security;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::{from_fn, from_fn_with_state};
use axum::Router;
use tower_http::cors::{AllowOrigin, Any, CorsLayer};

use crate::error::ApiError;
use crate::extract::BODY_LIMIT;
use crate::state::AppState;

/// Wraps `router` in every layer.
pub fn apply(router: Router, state: &AppState) -> Router {
    let timeout = state.config.request_timeout;
    router
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn(
            move |req, next: axum::middleware::Next| async move {
                match tokio::time::timeout(timeout, next.run(req)).await {
                    Ok(response) => response,
                    Err(_) => axum::response::IntoResponse::into_response(ApiError::Unavailable(
                        "the request took too long".to_owned(),
                    )),
                }
            },
        ))
        .layer(from_fn_with_state(state.clone(), rate_limit::limit))
        .layer(cors(&state.config.cors_origins))
        .layer(from_fn(security::headers))
        .layer(from_fn(metrics::record))
        .layer(from_fn_with_state(state.clone(), request_id::assign))
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
