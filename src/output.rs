//! What the CLI prints on standard output (the only place allowed to).
#![allow(clippy::print_stdout)]

use std::io::Write;

use commerce_event_store::{ConsumerStatus, Position, StoredEvent};
use serde::Serialize;

/// The relay's line in `projections status`.
#[derive(Debug, Serialize)]
pub(crate) struct RelayStatus {
    pub(crate) namespace: String,
    pub(crate) position: Position,
    pub(crate) published: i64,
    pub(crate) lag_events: i64,
}

pub(crate) fn line(text: &str) -> std::io::Result<()> {
    writeln!(std::io::stdout().lock(), "{text}")
}

pub(crate) fn event(event: &StoredEvent, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string(event).map_err(std::io::Error::other)?;
        writeln!(out, "{text}")
    } else {
        writeln!(
            out,
            "{:<14} {} {}/{} v{} {} actor={} correlation={}",
            event.position.token(),
            event.recorded_at.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            event.aggregate_type,
            event.aggregate_id,
            event.sequence,
            event.event_type,
            event.metadata.actor,
            event.metadata.correlation_id,
        )
    }
}

pub(crate) fn statuses(
    consumers: &[ConsumerStatus],
    relay: Option<&RelayStatus>,
    json: bool,
) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let doc = serde_json::json!({ "relay": relay, "consumers": consumers });
        let text = serde_json::to_string_pretty(&doc).map_err(std::io::Error::other)?;
        return writeln!(out, "{text}");
    }
    match relay {
        Some(r) => writeln!(
            out,
            "relay {}: position {} published {} lag {} events",
            r.namespace,
            r.position.token(),
            r.published,
            r.lag_events
        )?,
        None => writeln!(out, "relay: never ran")?,
    }
    writeln!(
        out,
        "{:<28} {:<12} {:>16} {:>16} {:>10} {:>10} {:>10}  LAST ERROR",
        "NAME", "STATUS", "POSITION", "HEAD", "LAG", "LAG(s)", "DUPLICATES"
    )?;
    for c in consumers {
        writeln!(
            out,
            "{:<28} {:<12} {:>16} {:>16} {:>10} {:>10.1} {:>10}  {}",
            c.name,
            c.status.as_str(),
            c.position.token(),
            c.head.token(),
            c.lag_events,
            c.lag_seconds,
            c.duplicates_ignored,
            c.last_error.as_deref().unwrap_or("")
        )?;
    }
    Ok(())
}
