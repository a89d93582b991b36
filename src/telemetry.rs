//! Logging (tracing), distributed tracing (OpenTelemetry) and metrics (Prometheus) setup.
//!
//! Two layers over one registry: the log (`RUST_LOG`, text or JSON lines on stderr) and, only
//! when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, the trace exporter. The spans of a request's path
//! through the log (`commerce_event_store::trace::TARGET`) go to the exporter only: the log reads
//! the same with tracing on or off, and with it off nothing enables those spans at all, so they
//! cost a disabled callsite check.

use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use commerce_event_store::trace;
use metrics::Unit;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::Key;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::Level;
use tracing_subscriber::filter::{filter_fn, FilterExt, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::cli::GlobalArgs;

/// The trace pipeline of this process, if tracing is on: [`Tracing::shutdown`] exports what is
/// still queued.
#[derive(Debug, Default)]
#[must_use = "shut it down on exit, or the last spans are lost"]
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

impl Tracing {
    /// Exports the spans still queued (bounded by the exporter's timeout) and stops the
    /// exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider {
            if let Err(error) = provider.shutdown() {
                tracing::warn!(%error, "the last spans were not exported");
            }
        }
    }
}

/// Installs logging and, with `--otlp-endpoint` (`OTEL_EXPORTER_OTLP_ENDPOINT`), the OTLP trace
/// exporter under `service` (unless `OTEL_SERVICE_NAME` names it): `RUST_LOG` filter (default
/// `info`), JSON lines when `LOG_FORMAT=json`. Fails only on an unusable exporter setting.
pub fn init(args: &GlobalArgs, service: &str) -> anyhow::Result<Tracing> {
    let provider = match args
        .otlp_endpoint
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        Some(endpoint) => Some(otlp_provider(endpoint, service)?),
        None => None,
    };
    Ok(init_with(args, provider))
}

/// Installs logging and, with `provider`, tracing through it (tests pass an in-memory one).
/// A subscriber installed before stays (the first one wins).
pub fn init_with(args: &GlobalArgs, provider: Option<SdkTracerProvider>) -> Tracing {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn"));
    let log = if args.log_format == "json" {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed()
    };
    // The level hints keep the global maximum level at what the filters let through (`info` by
    // default), so disabled `debug!`s (and the `log` records of dependencies) stay cheap.
    let not_traces =
        filter_fn(|meta| meta.target() != trace::TARGET).with_max_level_hint(LevelFilter::TRACE);
    let log = log.with_filter(filter.and(not_traces));
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("commerce"))
            // Every span has the one target; thread ids mean little in async code.
            .with_target(false)
            .with_threads(false)
            // The trace's own spans, and warnings and errors raised inside them (as span events).
            .with_filter(
                filter_fn(|meta| {
                    meta.target() == trace::TARGET
                        || (meta.is_event() && *meta.level() <= Level::WARN)
                })
                .with_max_level_hint(LevelFilter::INFO),
            )
    });
    let _ = tracing_subscriber::registry()
        .with(log)
        .with(traces)
        .try_init();
    Tracing { provider }
}

/// The OTLP (HTTP/protobuf) exporter to `endpoint`'s `/v1/traces` (or to
/// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is), batched; the rest of its settings from the
/// standard `OTEL_*` variables (headers, timeout, sampler, batch sizes).
fn otlp_provider(endpoint: &str, service: &str) -> anyhow::Result<SdkTracerProvider> {
    let mut exporter = SpanExporter::builder().with_http();
    if std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() {
        exporter = exporter.with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')));
    }
    let exporter = exporter.build().map_err(|error| {
        // The exporter's message quotes the endpoint, which may carry credentials.
        let why = if endpoint.contains('@') {
            "not a usable URL".to_owned()
        } else {
            error.to_string()
        };
        anyhow::anyhow!("cannot export traces to OTEL_EXPORTER_OTLP_ENDPOINT: {why}")
    })?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(service))
        .build())
}

/// The process's resource: `OTEL_SERVICE_NAME` (or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`)
/// when set, else `service`, the name of this process kind.
fn resource(service: &str) -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&Key::from_static_str("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        Resource::builder()
            .with_service_name(service.to_owned())
            .build()
    }
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
