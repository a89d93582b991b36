//! The `commerce` binary: parses the command line, starts tracing, hands over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = commerce::cli::Cli::parse();
    let telemetry = match commerce::telemetry::init(&cli.global, cli.command.service_name()) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    let result = commerce::run(cli).await;
    // The last spans leave before the process does.
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // What failed and the underlying reason, without a backtrace. (Drivers repeat their
            // causes inside their own messages, so the middle of the chain adds only noise.)
            let root = error.root_cause().to_string();
            if root == error.to_string() {
                eprintln!("error: {error}");
            } else {
                eprintln!("error: {error}: {root}");
            }
            ExitCode::FAILURE
        }
    }
}
