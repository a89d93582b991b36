//! The `commerce` binary: parses the command line, starts tracing, hands over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = commerce::cli::Cli::parse();
    commerce::telemetry::init(&cli.global);
    match commerce::run(cli).await {
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
