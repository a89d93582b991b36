//! Operations endpoints: liveness, readiness of every dependency, Prometheus metrics. They live
//! outside `/api/v1` and the OpenAPI document: they are for probes and scrapers, not clients.
//!
//! What `/metrics` carries, and who records it:
//! - `http_requests_total{method,route,status}`, `http_request_duration_seconds{method,route}`:
//!   rate, errors and latency per route template (`middleware::metrics`).
//! - `command_duration_seconds{aggregate,outcome}`, `events_appended_total{aggregate}`: the
//!   command side (`commerce_commands::dispatch`).
//! - `relay_lag_events`, `consumer_lag_events{consumer}`, `consumer_lag_seconds{consumer}`,
//!   `consumer_state{consumer,state}`: how far the relay and every consumer trail the log
//!   (refreshed every few seconds by the `serve` process).
//! - `projection_rebuilds_total{projection,outcome}`: rebuilds started from `/admin`.
//! - `ready` (1 when `/ready` would answer 200), `ready_check_up{check}`,
//!   `saga_deadlines_pending`: refreshed every few seconds by every API process.
//! - `rate_limit_shared` (1 while Redis holds the buckets, 0 while this process limits on its
//!   own), `rate_limit_local_fallbacks_total`: shared rate limits (`REDIS_URL`).
//!
//! Every `*_seconds` histogram is exported with buckets (see the binary's telemetry setup).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures::future::{join_all, BoxFuture};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

/// A dependency `/ready` checks (Postgres, RabbitMQ, migrations).
pub trait HealthCheck: Send + Sync + 'static {
    /// Shown in the readiness report.
    fn name(&self) -> &'static str;
    /// `Err` with a short reason when the dependency is not usable.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
    /// Whether the API is not ready without it; a failing non-critical check is reported as
    /// `degraded` and `/ready` stays 200 (Redis: limits fall back to per-process buckets).
    fn critical(&self) -> bool {
        true
    }
}

/// What the operations endpoints need.
#[derive(Clone)]
pub struct OpsState {
    /// Dependencies checked by `/ready`.
    pub checks: Arc<Vec<Box<dyn HealthCheck>>>,
    /// Renders `/metrics`; absent when no recorder is installed.
    pub metrics: Option<PrometheusHandle>,
}

impl std::fmt::Debug for OpsState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.checks.iter().map(|c| c.name()).collect();
        f.debug_struct("OpsState").field("checks", &names).finish()
    }
}

/// `/health`, `/ready` and `/metrics` (404 when `state.metrics` is `None`: no recorder, or
/// metrics served on their own listener by [`metrics_router`]).
pub fn router(state: OpsState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `/metrics` alone, for a listener of its own (`METRICS_ADDR`), so the scrape endpoint need not
/// face the internet with the API.
pub fn metrics_router(handle: PrometheusHandle) -> Router {
    let state = OpsState {
        checks: Arc::new(Vec::new()),
        metrics: Some(handle),
    };
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Runs every check at once, each bounded to 3 s: name, whether it is critical, outcome. What
/// `/ready` answers, the console's health header shows and the `ready` gauges export.
pub async fn run_checks(
    checks: &[Box<dyn HealthCheck>],
) -> Vec<(&'static str, bool, Result<(), String>)> {
    join_all(checks.iter().map(|c| async move {
        let result = tokio::time::timeout(std::time::Duration::from_secs(3), c.check())
            .await
            .unwrap_or_else(|_| Err("timed out".to_owned()));
        (c.name(), c.critical(), result)
    }))
    .await
}

async fn ready(State(state): State<OpsState>) -> Response {
    let results = run_checks(&state.checks).await;
    let ok = results
        .iter()
        .all(|(_, critical, r)| r.is_ok() || !critical);
    let checks: serde_json::Map<_, _> = results
        .into_iter()
        .map(|(name, critical, r)| {
            let v = match r {
                Ok(()) => json!({"status": "ok"}),
                Err(reason) if critical => json!({"status": "down", "reason": reason}),
                Err(reason) => json!({"status": "degraded", "reason": reason}),
            };
            (name.to_owned(), v)
        })
        .collect();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": if ok { "ready" } else { "not_ready" }, "checks": checks});
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<OpsState>) -> Response {
    match state.metrics {
        Some(handle) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    struct Fixed(&'static str, Result<(), String>);
    impl HealthCheck for Fixed {
        fn name(&self) -> &'static str {
            self.0
        }
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async move { self.1.clone() })
        }
    }

    fn app(checks: Vec<Box<dyn HealthCheck>>) -> Router {
        router(OpsState {
            checks: Arc::new(checks),
            metrics: None,
        })
    }

    async fn status_of(app: Router, path: &str) -> StatusCode {
        let req = Request::get(path).body(Body::empty()).unwrap();
        app.oneshot(req).await.unwrap().status()
    }

    #[tokio::test]
    async fn ready_is_503_when_any_dependency_is_down() {
        let checks: Vec<Box<dyn HealthCheck>> = vec![
            Box::new(Fixed("postgres", Ok(()))),
            Box::new(Fixed("rabbitmq", Err("connection refused".into()))),
        ];
        assert_eq!(
            status_of(app(checks), "/ready").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn ready_is_200_when_every_dependency_is_up() {
        let checks: Vec<Box<dyn HealthCheck>> = vec![Box::new(Fixed("postgres", Ok(())))];
        assert_eq!(status_of(app(checks), "/ready").await, StatusCode::OK);
        assert_eq!(status_of(app(vec![]), "/health").await, StatusCode::OK);
    }
}
