//! `commerce-bench`: measures the platform against the real Postgres and RabbitMQ, each figure
//! beside a raw baseline taken in the same run (machines here are shared and noisy, so only the
//! ratios travel). Runs in its own database and broker namespace, shows progress on stderr,
//! prints a table, writes `results.json` and SVG latency plots.
//!
//! # Layout
//! - [`ctx`]: the bench database, namespace and settings shared by the scenarios.
//! - [`stats`]: latency samples and percentiles.
//! - [`report`]: result rows, the table, the JSON file.
//! - [`plot`]: SVG latency distributions.
//! - [`scenarios`]: one module per measured path.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod ctx;
mod plot;
mod report;
mod scenarios;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Benchmarks of the commerce pipeline.
#[derive(Debug, Parser)]
#[command(name = "commerce-bench", version, about)]
struct Args {
    /// A short run (under 2 minutes): fewer operations per scenario.
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios (comma-separated): append, hot, relay, lag, rebuild, checkout, reads, own-writes, partitions.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where results.json and the plots go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// Postgres server (the bench creates and drops its own database there).
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/commerce",
        hide_env_values = true,
        hide_default_value = true
    )]
    database_url: String,
    /// RabbitMQ.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true,
        hide_default_value = true
    )]
    amqp_url: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let ctx = ctx::Ctx::create(&args.database_url, &args.amqp_url, args.quick).await?;
    let selected = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let mut rows = Vec::new();
    let started = std::time::Instant::now();
    for (name, scenario) in scenarios::ALL {
        if !selected(name) {
            continue;
        }
        ctx.progress(&format!("== {name}"));
        match scenario(&ctx).await {
            Ok(mut r) => rows.append(&mut r),
            Err(error) => {
                ctx.progress(&format!("{name} failed: {error:#}"));
                rows.push(report::Row::failed(name, &format!("{error:#}")));
            }
        }
    }
    ctx.drop_database().await?;
    let machine = report::Machine::read(&args.database_url, &args.amqp_url).await;
    report::print_table(&machine, &rows, started.elapsed());
    std::fs::create_dir_all(&args.out)?;
    report::write_json(&args.out.join("results.json"), &machine, &rows, args.quick)?;
    for row in &rows {
        if !row.samples_ms.is_empty() {
            plot::latency_svg(&args.out, row)?;
        }
    }
    eprintln!("results in {}", args.out.display());
    Ok(())
}
