//! `commerce events tail|stream|verify`: read the log, check it against its seals.

use std::time::Duration;

use commerce_event_store::sealer::hex;
use commerce_event_store::verify::{self, Verification};
use commerce_event_store::{db, LogReader, Position};

use crate::cli::EventsCommand;
use crate::config::Settings;
use crate::output;

pub(crate) async fn run(settings: &Settings, command: EventsCommand) -> anyhow::Result<()> {
    let pool = db::connect(&settings.database_url, 2).await?;
    if let EventsCommand::Verify { from } = command {
        let outcome = verify::verify(&pool, from).await?;
        return report(&outcome);
    }
    let privacy = settings.keyring_for_tool(&pool).await?;
    let log = LogReader::new(pool).with_privacy(Some(privacy));
    match command {
        EventsCommand::Tail {
            follow,
            after,
            last,
            json,
        } => {
            // Show everything committed before the command started, even if a slow transaction
            // elsewhere holds the horizon back for a moment.
            if !log.settle(Duration::from_secs(5)).await? {
                tracing::warn!("a long-running transaction holds the log horizon back");
            }
            let mut cursor = match (after, last) {
                (Some(token), _) => token.parse::<Position>()?,
                (None, Some(n)) => start_of_last(&log, n).await?,
                (None, None) => Position::START,
            };
            loop {
                let batch = log.read_after(cursor, 1000).await?;
                for event in &batch {
                    output::event(event, json)?;
                }
                match batch.last() {
                    Some(event) => cursor = event.position,
                    None if follow => tokio::time::sleep(Duration::from_millis(200)).await,
                    None => break,
                }
            }
        }
        EventsCommand::Stream {
            aggregate_type,
            aggregate_id,
            json,
        } => {
            let events = log.stream(&aggregate_type, &aggregate_id).await?;
            if events.is_empty() {
                anyhow::bail!("no events for {aggregate_type} {aggregate_id}");
            }
            for event in &events {
                output::event(event, json)?;
            }
        }
        EventsCommand::Verify { .. } => {}
    }
    Ok(())
}

/// Prints what `verify` found; an error (exit status 1) when something does not match.
fn report(outcome: &Verification) -> anyhow::Result<()> {
    match &outcome.latest_seal {
        Some(seal) => output::line(&format!(
            "latest seal: #{} through {} = {}",
            seal.seal_id,
            seal.through,
            hex(&seal.seal)
        ))?,
        None => output::line("latest seal: none yet")?,
    }
    output::line(&format!(
        "checked {} seals ({} events) and {} unsealed events; verified through {}",
        outcome.seals_checked,
        outcome.events_sealed,
        outcome.events_unsealed,
        outcome
            .verified_through
            .map_or_else(|| "nothing sealed yet".to_owned(), |p| p.token()),
    ))?;
    match &outcome.first_mismatch {
        None => {
            output::line("ok")?;
            Ok(())
        }
        Some(mismatch) => {
            let seal = mismatch
                .seal_id
                .map_or_else(String::new, |id| format!(" (seal #{id})"));
            anyhow::bail!(
                "first mismatch at position {}{seal}: {} [{}]",
                mismatch.position,
                mismatch.kind.describe(),
                mismatch.kind.code()
            )
        }
    }
}

/// The position just before the last `n` events of the log.
async fn start_of_last(log: &LogReader, n: i64) -> anyhow::Result<Position> {
    let (total, _) = log.backlog(Position::START).await?;
    let skip = (total - n.max(0)).max(0);
    let mut cursor = Position::START;
    let mut skipped = 0;
    while skipped < skip {
        let batch = log.read_after(cursor, (skip - skipped).min(10_000)).await?;
        let Some(last) = batch.last() else { break };
        cursor = last.position;
        skipped += batch.len() as i64;
    }
    Ok(cursor)
}
