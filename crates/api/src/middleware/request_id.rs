//! `X-Request-Id`: the client's value when it is a sane token (1..=128 visible ASCII characters),
//! else a fresh UUID; echoed on the response and put in the request's tracing span. Handlers read
//! it as [`crate::context::RequestId`] and store it as the correlation id of every event.

use axum::extract::Request;
use axum::http::HeaderName;

/// The header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn sane(value: &str) -> bool {
    (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
}

/// The request's id: the client's `X-Request-Id` when sane, else a fresh UUID.
pub fn of(req: &Request) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned)
}
