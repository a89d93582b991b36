//! `commerce projections status|retry|skip`: consumer health and repair.

use commerce_event_store::{checkpoint, db, relay, LogReader};

use crate::cli::ProjectionsCommand;
use crate::config::Settings;
use crate::output;

pub(crate) async fn run(settings: &Settings, command: ProjectionsCommand) -> anyhow::Result<()> {
    let pool = db::connect(&settings.database_url, 2).await?;
    match command {
        ProjectionsCommand::Status { json } => {
            let consumers = checkpoint::consumer_statuses(&pool).await?;
            let relay = relay::relay_cursor(&pool, &settings.broker.namespace).await?;
            let log = LogReader::new(pool.clone());
            let relay = match relay {
                Some((position, published)) => {
                    let (lag, _) = log.backlog(position).await?;
                    Some(output::RelayStatus {
                        namespace: settings.broker.namespace.clone(),
                        position,
                        published,
                        lag_events: lag,
                    })
                }
                None => None,
            };
            output::statuses(&consumers, relay.as_ref(), json)?;
        }
        ProjectionsCommand::Retry { name } => {
            checkpoint::request_retry(&pool, &name).await?;
            output::line(&format!("retry requested for {name}"))?;
        }
        ProjectionsCommand::Skip { name } => {
            checkpoint::request_skip(&pool, &name).await?;
            output::line(&format!(
                "skip requested for {name}; the skipped event is recorded"
            ))?;
        }
    }
    Ok(())
}
