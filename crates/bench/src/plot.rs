//! SVG plots of latency distributions: the cumulative distribution of one row's samples.

use std::path::Path;

use plotters::prelude::*;

use crate::report::Row;

/// Writes `<scenario>-<variant>.svg` into `dir`.
pub(crate) fn latency_svg(dir: &Path, row: &Row) -> anyhow::Result<()> {
    let slug: String = format!("{}-{}", row.scenario, row.variant)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let path = dir.join(format!("{slug}.svg"));
    let samples = &row.samples_ms;
    let max = samples.last().copied().unwrap_or(1.0).max(0.001);
    let n = samples.len() as f64;
    let root = SVGBackend::new(&path, (720, 420)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{} — {} (p50 {:.2} ms, p99 {:.2} ms)",
                row.scenario, row.variant, row.p50_ms, row.p99_ms
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max * 1.05, 0.0..100.0)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("latency (ms)")
        .y_desc("% of requests at or below")
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    chart
        .draw_series(LineSeries::new(
            samples
                .iter()
                .enumerate()
                .map(|(i, ms)| (*ms, (i as f64 + 1.0) * 100.0 / n)),
            &BLUE,
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}
