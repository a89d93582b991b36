//! The `commerce` application: wires the event store, relay, consumers and HTTP API together.
//!
//! # Layout
//! - [`cli`]: the command line (every option also an environment variable).
//! - [`config`]: settings resolved from the command line.
//! - [`app`]: starts the long-running parts (`serve` and the end-to-end tests use it).
//! - [`telemetry`]: tracing and metrics setup.
//! - `cmd`: one module per subcommand.
//! - `output`: what the CLI prints.

pub mod app;
pub mod cli;
mod cmd;
pub mod config;
mod output;
pub mod telemetry;

/// Runs the subcommand `cli` names.
pub async fn run(cli: cli::Cli) -> anyhow::Result<()> {
    cmd::dispatch(cli).await
}
