//! `commerce replay NAME | --all [--verify]`: rebuild read models from the log, with progress.

use std::io::Write;

use commerce_event_store::db;
use commerce_projections::rebuild::{Finish, Progress};
use commerce_projections::registry;

use crate::config::Settings;
use crate::output;

pub(crate) async fn run(
    settings: &Settings,
    name: Option<String>,
    all: bool,
    verify: bool,
) -> anyhow::Result<()> {
    let names: Vec<String> = if all {
        registry::NAMES.iter().map(|n| (*n).to_owned()).collect()
    } else {
        let name = name.unwrap_or_default();
        registry::validate(&name)?;
        vec![name]
    };
    let pool = db::prepare(&settings.database_url, 4).await?;
    let privacy = settings.keyring_for_tool(&pool).await?;
    let finish = if verify { Finish::Verify } else { Finish::Swap };
    for name in names {
        let report = registry::rebuild(&name, &pool, Some(&privacy), finish, |p: Progress| {
            // Progress goes to stderr, so stdout stays the result.
            let _ = write!(
                std::io::stderr(),
                "\r{name}: {:5.1}% ({}/{} events, {:.0} events/s)   ",
                p.percent(),
                p.done,
                p.total,
                p.rate
            );
        })
        .await;
        let _ = writeln!(std::io::stderr());
        let report = report?;
        output::line(&format!(
            "{name}: {} {} events ({} applied) up to {} in {:.1}s",
            if verify {
                "verified against"
            } else {
                "rebuilt from"
            },
            report.events,
            report.applied,
            report.position.token(),
            report.elapsed.as_secs_f64(),
        ))?;
    }
    Ok(())
}
