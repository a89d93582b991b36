//! Logging (tracing) and metrics (Prometheus) setup.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

use crate::cli::GlobalArgs;

/// Installs the tracing subscriber: `RUST_LOG` filter (default `info`), JSON lines when
/// `LOG_FORMAT=json`.
pub fn init(args: &GlobalArgs) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if args.log_format == "json" {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Upper bounds of the latency buckets (seconds): 1 ms to 30 s, the span between a cached read
/// and the request timeout.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often recorded samples are folded into the exported distributions.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use.
///
/// Every `*_seconds` histogram is exported as a true Prometheus histogram (buckets, `_sum`,
/// `_count`) rather than the exporter's default summary: buckets aggregate across instances and
/// over time windows in PromQL (`histogram_quantile`), per-instance quantiles do not.
pub fn metrics_handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE.get_or_init(install).clone()
}

fn install() -> Option<PrometheusHandle> {
    let installed = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), SECONDS_BUCKETS)
        .and_then(PrometheusBuilder::install_recorder);
    match installed {
        Ok(handle) => {
            describe();
            // Without upkeep, samples recorded between scrapes pile up unbounded in memory.
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".to_owned())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                });
            if let Err(error) = spawned {
                tracing::warn!(%error, "metrics upkeep not started; samples fold only on scrape");
            }
            Some(handle)
        }
        Err(error) => {
            tracing::warn!(%error, "metrics recorder not installed");
            None
        }
    }
}

/// Help text and units of the metrics operators alert on.
fn describe() {
    metrics::describe_counter!(
        "http_requests_total",
        "HTTP requests by method, route template and status"
    );
    metrics::describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by method and route template"
    );
    metrics::describe_histogram!(
        "command_duration_seconds",
        Unit::Seconds,
        "Command latency by aggregate and outcome (ok, rejected, contention, error)"
    );
    metrics::describe_counter!(
        "events_appended_total",
        "Events appended to the log by aggregate"
    );
    metrics::describe_gauge!(
        "relay_lag_events",
        "Events of the log the relay has not published yet"
    );
    metrics::describe_gauge!(
        "consumer_lag_events",
        "Events of the log a consumer has not applied yet"
    );
    metrics::describe_gauge!(
        "consumer_lag_seconds",
        Unit::Seconds,
        "Age of the oldest event a consumer has not applied yet"
    );
}
