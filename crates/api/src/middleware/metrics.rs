//! HTTP metrics per route (the matched path template, never the raw path, so ids do not explode
//! the label set): `http_requests_total{method,route,status}` and
//! `http_request_duration_seconds{method,route}`.

use std::time::Duration;

use axum::http::{Method, StatusCode};

/// Records one request's outcome. `route` is the matched path template (`unmatched` for none).
pub fn record(method: &Method, route: String, status: StatusCode, took: Duration) {
    let method = label(method);
    metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route.clone())
        .record(took.as_secs_f64());
    metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status.as_u16().to_string())
        .increment(1);
}

/// The method as a label without allocating (the router only serves these; anything else is
/// one label).
fn label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
