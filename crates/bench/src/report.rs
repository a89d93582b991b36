//! Result rows, the printed table and `results.json`.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::stats::{percentile, sorted_ms};

/// The raw baseline a figure is compared with.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Baseline {
    /// What was measured raw, e.g. `raw INSERT`.
    pub(crate) name: String,
    /// Operations per second.
    pub(crate) rate: f64,
    /// Median latency.
    pub(crate) p50_ms: f64,
    /// 99th percentile latency.
    pub(crate) p99_ms: f64,
}

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    /// Scenario, e.g. `append`.
    pub(crate) scenario: String,
    /// Variant, e.g. `16 callers`.
    pub(crate) variant: String,
    /// Unit of `rate`, e.g. `events/s`.
    pub(crate) unit: String,
    /// Operations done.
    pub(crate) ops: u64,
    /// Wall time.
    pub(crate) seconds: f64,
    /// Operations per second.
    pub(crate) rate: f64,
    /// Median latency (0 when not measured).
    pub(crate) p50_ms: f64,
    /// 99th percentile latency.
    pub(crate) p99_ms: f64,
    /// The raw baseline of the same run.
    pub(crate) baseline: Option<Baseline>,
    /// `rate / baseline.rate`, or for a latency row (`ratio_of_p99`) `p99 / baseline.p99`.
    pub(crate) ratio: Option<f64>,
    /// The ratio compares p99 latencies (lower is better) rather than rates.
    pub(crate) ratio_of_p99: bool,
    /// The target, in words.
    pub(crate) target: Option<String>,
    /// Whether the target was met.
    pub(crate) met: Option<bool>,
    /// Anything else worth knowing (e.g. `oversold 0`).
    pub(crate) note: String,
    /// Latency samples in ms, sorted (plotted, not written to JSON).
    #[serde(skip)]
    pub(crate) samples_ms: Vec<f64>,
}

impl Row {
    /// `ops` done in `elapsed`, with per-operation latencies `samples` (may be empty).
    pub(crate) fn measured(
        scenario: &str,
        variant: &str,
        unit: &str,
        ops: u64,
        elapsed: Duration,
        samples: &[Duration],
    ) -> Self {
        let ms = sorted_ms(samples);
        let seconds = elapsed.as_secs_f64();
        Self {
            scenario: scenario.to_owned(),
            variant: variant.to_owned(),
            unit: unit.to_owned(),
            ops,
            seconds,
            rate: if seconds > 0.0 {
                ops as f64 / seconds
            } else {
                0.0
            },
            p50_ms: percentile(&ms, 50.0),
            p99_ms: percentile(&ms, 99.0),
            baseline: None,
            ratio: None,
            ratio_of_p99: false,
            target: None,
            met: None,
            note: String::new(),
            samples_ms: ms,
        }
    }

    /// A scenario that could not run.
    pub(crate) fn failed(scenario: &str, error: &str) -> Self {
        let mut row = Self::measured(scenario, "FAILED", "", 0, Duration::ZERO, &[]);
        row.note = error.to_owned();
        row
    }

    /// Adds the raw baseline: `ops` in `elapsed` with latencies `samples`.
    pub(crate) fn with_baseline(
        mut self,
        name: &str,
        ops: u64,
        elapsed: Duration,
        samples: &[Duration],
    ) -> Self {
        let ms = sorted_ms(samples);
        let seconds = elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            ops as f64 / seconds
        } else {
            0.0
        };
        self.ratio = (rate > 0.0).then(|| self.rate / rate);
        self.baseline = Some(Baseline {
            name: name.to_owned(),
            rate,
            p50_ms: percentile(&ms, 50.0),
            p99_ms: percentile(&ms, 99.0),
        });
        self
    }

    /// Makes the ratio our p99 over the baseline's p99 (for a latency row, where rates are
    /// set by the load and say nothing).
    pub(crate) fn with_p99_ratio(mut self) -> Self {
        self.ratio_of_p99 = true;
        self.ratio = self
            .baseline
            .as_ref()
            .and_then(|b| (b.p99_ms > 0.0).then(|| self.p99_ms / b.p99_ms));
        self
    }

    /// States the target and whether it was met.
    pub(crate) fn with_target(mut self, target: &str, met: bool) -> Self {
        self.target = Some(target.to_owned());
        self.met = Some(met);
        self
    }

    /// Adds a note.
    pub(crate) fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }
}

/// The machine the run happened on.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    pub(crate) cores: usize,
    pub(crate) memory_gib: f64,
    pub(crate) postgres: String,
    pub(crate) rabbitmq: String,
}

impl Machine {
    /// Reads cores, memory and the server versions.
    pub(crate) async fn read(database_url: &str, amqp_url: &str) -> Self {
        let cores = std::thread::available_parallelism().map_or(0, usize::from);
        let memory_gib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
        let postgres = match sqlx::PgPool::connect(database_url).await {
            Ok(pool) => sqlx::query_scalar::<_, String>("SHOW server_version")
                .fetch_one(&pool)
                .await
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        // The AMQP handshake's server properties are not exposed by lapin; the local CLI reports
        // the installed broker's version. The URL is only used to say where the broker was.
        let rabbitmq = std::process::Command::new("rabbitmqctl")
            .arg("version")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let _ = amqp_url;
        Self {
            cores,
            memory_gib,
            postgres,
            rabbitmq,
        }
    }
}

fn fmt_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else {
        format!("{rate:.1}")
    }
}

/// Prints the table to stdout.
pub(crate) fn print_table(machine: &Machine, rows: &[Row], elapsed: Duration) {
    println!(
        "\nmachine: {} cores, {:.1} GiB, Postgres {}, RabbitMQ {}; run took {:.0} s\n",
        machine.cores,
        machine.memory_gib,
        machine.postgres,
        machine.rabbitmq,
        elapsed.as_secs_f64()
    );
    println!(
        "| scenario | variant | rate | p50 ms | p99 ms | raw baseline | raw rate | raw p99 ms | ratio | target | met | note |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let (bname, brate, bp99) = r
            .baseline
            .as_ref()
            .map_or((String::new(), String::new(), String::new()), |b| {
                (b.name.clone(), fmt_rate(b.rate), format!("{:.2}", b.p99_ms))
            });
        println!(
            "| {} | {} | {} {} | {:.2} | {:.2} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.variant,
            fmt_rate(r.rate),
            r.unit,
            r.p50_ms,
            r.p99_ms,
            bname,
            brate,
            bp99,
            r.ratio.map_or(String::new(), |x| if r.ratio_of_p99 {
                format!("{x:.1}× raw p99")
            } else {
                format!("{:.0}%", x * 100.0)
            }),
            r.target.clone().unwrap_or_default(),
            r.met.map_or("", |m| if m { "yes" } else { "**no**" }),
            r.note,
        );
    }
}

/// Writes `results.json`.
pub(crate) fn write_json(
    path: &Path,
    machine: &Machine,
    rows: &[Row],
    quick: bool,
) -> anyhow::Result<()> {
    let doc = serde_json::json!({
        "generated_at": chrono::Utc::now(),
        "quick": quick,
        "machine": machine,
        "rows": rows,
    });
    std::fs::write(path, serde_json::to_vec_pretty(&doc)?)?;
    Ok(())
}
