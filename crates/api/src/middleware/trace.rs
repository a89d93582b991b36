//! The HTTP request's span in its trace (`commerce_event_store::trace`): the root of everything
//! the request causes, through the log, when tracing is on; a disabled no-op otherwise.
//!
//! A request carrying a W3C `traceparent` (a gateway or a client that traces) continues that
//! trace; a malformed one is ignored and the request starts its own.

use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use commerce_event_store::trace;
use tracing::Span;

/// The server span of `req`, named by its method and route template.
pub(crate) fn span(req: &Request, route: Option<&MatchedPath>) -> Span {
    let route = route.map_or("unmatched", MatchedPath::as_str);
    let span = tracing::info_span!(
        target: trace::TARGET,
        "HTTP request",
        otel.name = %format_args!("{} {route}", req.method()),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        http.request.method = %req.method(),
        http.route = route,
        url.path = req.uri().path(),
        http.response.status_code = tracing::field::Empty,
    );
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    trace::follow_remote(&span, header("traceparent"), header("tracestate"));
    span
}

/// Records the answer's status on the request's span; a 5xx marks it failed.
pub(crate) fn answered(span: &Span, status: StatusCode) {
    span.record("http.response.status_code", status.as_u16());
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
}
