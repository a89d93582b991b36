//! `X-Request-Id`: the client's value when it is a sane token (1..=128 visible ASCII characters),
//! else a fresh UUID; echoed on the response and put in the request's tracing span. Handlers read
//! it as [`crate::context::RequestId`] and store it as the correlation id of every event.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::context::RequestId;
use crate::middleware::client_ip::ClientIp;
use crate::state::AppState;

/// The header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn sane(value: &str) -> bool {
    (1..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_graphic())
}

/// Assigns the request id and the client address.
pub async fn assign(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let ip = ClientIp::of(&req, &state.config.trusted_proxies);
    req.extensions_mut().insert(RequestId(id.clone()));
    req.extensions_mut().insert(ip);
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut response = next.run(req).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
