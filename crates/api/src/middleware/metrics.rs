//! HTTP metrics per route (the matched path template, never the raw path, so ids do not explode
//! the label set): `http_requests_total{method,route,status}` and
//! `http_request_duration_seconds{method,route}`.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use metrics::{Counter, Histogram};

/// The metric handles of each (route, method, status) met so far, registered once: building a
/// labelled key and looking it up in the recorder is paid on a route's first request, not on
/// every one. Held by the application state, so handles come from the recorder installed when
/// the state was made.
#[derive(Default)]
pub struct HttpMetrics {
    routes: RwLock<HashMap<String, ByOutcome>>,
}

/// A route's handles by method and status.
type ByOutcome = HashMap<(&'static str, u16), Handles>;

#[derive(Clone)]
struct Handles {
    duration: Histogram,
    requests: Counter,
}

impl HttpMetrics {
    /// Records one request's outcome. `route` is the matched path template (`unmatched` for
    /// none).
    pub fn record(&self, method: &Method, route: &str, status: StatusCode, took: Duration) {
        let key = (label(method), status.as_u16());
        let known = self
            .routes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(route)
            .and_then(|by| by.get(&key))
            .cloned();
        let handles = known.unwrap_or_else(|| self.register(route, key));
        handles.duration.record(took.as_secs_f64());
        handles.requests.increment(1);
    }

    fn register(&self, route: &str, (method, status): (&'static str, u16)) -> Handles {
        let route_label = route.to_owned();
        let handles = Handles {
            duration: metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route_label.clone()),
            requests: metrics::counter!("http_requests_total", "method" => method, "route" => route_label, "status" => status.to_string()),
        };
        self.routes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(route.to_owned())
            .or_default()
            .insert((method, status), handles.clone());
        handles
    }
}

impl std::fmt::Debug for HttpMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpMetrics").finish_non_exhaustive()
    }
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
