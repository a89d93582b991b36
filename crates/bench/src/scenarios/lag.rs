//! Scenario `lag` (being written).

use crate::ctx::Ctx;
use crate::report::Row;

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    ctx.progress("not written yet");
    Ok(Vec::new())
}
