//! Scenario `rebuild`: events per second replaying the log into the `catalog` and `orders` read
//! models.
//!
//! A scratch database (see [`super::relay::Scratch`]; the bench database stays small for the
//! scenarios that run after this one) gets 1,000,000 events (quick: 100,000) bulk-inserted by
//! [`generate_events`]: blocks of ten events telling one product's life and one order of it
//! (`ProductCreated`, `StockAdjusted`, `OrderPlaced`, `StockReserved`, `OrderStockReserved`,
//! `OrderPaymentRequested`, `OrderPaid`, `OrderConfirmed`, `StockCommitted`, `OrderShipped`).
//! Payloads are real `commerce_domain` event values serialised by serde exactly as the event
//! store writes them (`{"VariantName": {...}}`), with ids and names varied in SQL. Then
//! `commerce_projections::registry::rebuild(name, Finish::Swap)` is timed for `catalog` and
//! `orders` separately. Each gives two rows: log events scanned per second (every event of the
//! log is read) and events applied per second (those the projection handles; the rest are
//! skipped after reading).
//!
//! Baselines, measured once before the rebuilds on the same log:
//! - for events scanned, a raw keyset-paged read of the same log in the same order and batch size
//!   as the rebuild (`SELECT` of the same columns `ORDER BY transaction_id, global_position LIMIT
//!   2000` below the horizon, payloads decoded), reading time only;
//! - for events applied, the same read plus, per batch, one bulk `INSERT ... SELECT FROM
//!   unnest(...)` of one small row for every event into a scratch table, in a transaction with
//!   `synchronous_commit = off` like the rebuild's: the cheapest way to move every event from the
//!   log into a table (it writes a row for every event, where a projection writes for some).

use std::time::{Duration, Instant};

use chrono::Utc;
use commerce_event_store::{Sealer, SealerConfig};
use commerce_projections::rebuild::Finish;
use commerce_projections::registry;
use sqlx::{PgPool, Row as _};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::mix::generate_events;
use super::relay::Scratch;
use crate::ctx::Ctx;
use crate::report::Row;

/// Rebuild reads and applies the log in batches of this many events (`rebuild::BATCH`).
const BATCH: i64 = 2_000;

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let scratch = Scratch::create(ctx, "rebuild").await?;
    let result = measure(ctx, &scratch.pool).await;
    let dropped = scratch.drop().await;
    let rows = result?;
    dropped?;
    Ok(rows)
}

async fn measure(ctx: &Ctx, pool: &PgPool) -> anyhow::Result<Vec<Row>> {
    let n = ctx.pick(100_000, 1_000_000);
    generate_events(ctx, pool, n).await?;
    ctx.progress("rebuild: VACUUM ANALYZE events (not measured)");
    sqlx::query("VACUUM (ANALYZE) events").execute(pool).await?;
    let size: String =
        sqlx::query_scalar("SELECT pg_size_pretty(pg_total_relation_size('events'))")
            .fetch_one(pool)
            .await?;

    ctx.progress("rebuild: baseline, raw read + bulk insert");
    let (raw_events, raw_elapsed, raw_read) = raw_baseline(ctx, pool).await?;

    let mut rows = Vec::new();
    for name in ["catalog", "orders"] {
        ctx.progress(&format!("rebuild: {name}"));
        let mut last = Instant::now();
        let report = registry::rebuild(name, pool, None, Finish::Swap, |p| {
            if last.elapsed() >= Duration::from_secs(3) {
                last = Instant::now();
                ctx.progress(&format!(
                    "rebuild {name}: {}/{} events ({:.0}%), {:.0} events/s",
                    p.done,
                    p.total,
                    p.percent(),
                    p.rate
                ));
            }
        })
        .await?;
        let note = format!(
            "{} of {} events applied; log {size}; Finish::Swap",
            report.applied, report.events
        );
        let scanned = Row::measured(
            "rebuild",
            &format!("{name}: log events scanned"),
            "events/s",
            u64::try_from(report.events)?,
            report.elapsed,
            &[],
        )
        .with_baseline("raw keyset-paged read", raw_events, raw_read, &[])
        .with_note(note.clone());
        let applied = Row::measured(
            "rebuild",
            &format!("{name}: events applied"),
            "events/s",
            u64::try_from(report.applied)?,
            report.elapsed,
            &[],
        )
        .with_baseline(
            "raw paged read + bulk INSERT of every event",
            raw_events,
            raw_elapsed,
            &[],
        );
        let met = applied.rate >= 50_000.0;
        rows.push(scanned);
        rows.push(
            applied
                .with_target("≥ 50,000 events/s applied", met)
                .with_note(note),
        );
    }

    ctx.progress("rebuild: the sealer over the same log");
    let (sealed, sealing) = seal_all(ctx, pool).await?;
    rows.push(
        Row::measured(
            "rebuild",
            "sealer: events sealed",
            "events/s",
            sealed,
            sealing,
            &[],
        )
        .with_baseline("raw keyset-paged read", raw_events, raw_read, &[])
        .with_note(
            "one active sealer from an empty chain to the head: reads the events' positions and \
             content hashes in log order, chains them, writes a seal per 1000 events",
        ),
    );
    Ok(rows)
}

/// Runs a sealer over the whole log until every event is sealed; returns the events sealed and
/// the time it took.
async fn seal_all(ctx: &Ctx, pool: &PgPool) -> anyhow::Result<(u64, Duration)> {
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let stop = CancellationToken::new();
    let started = Instant::now();
    let sealer = tokio::spawn(Sealer::new(pool.clone(), SealerConfig::default()).run(stop.clone()));
    let mut last_report = Instant::now();
    let outcome = loop {
        let sealed: i64 = sqlx::query_scalar(
            "SELECT coalesce(sum(cardinality(positions)), 0)::bigint FROM log_seals",
        )
        .fetch_one(pool)
        .await?;
        if sealed >= total {
            break Ok((u64::try_from(sealed)?, started.elapsed()));
        }
        if started.elapsed() > Duration::from_secs(600) {
            break Err(anyhow::anyhow!(
                "the sealer sealed {sealed} of {total} events in 10 minutes"
            ));
        }
        if last_report.elapsed() >= Duration::from_secs(3) {
            last_report = Instant::now();
            ctx.progress(&format!("rebuild: sealer {sealed}/{total} events"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    stop.cancel();
    sealer.await?;
    outcome
}

/// Reads the whole log as the rebuild does and writes one small row per event in bulk; returns
/// the events, the whole time and the time spent reading.
async fn raw_baseline(ctx: &Ctx, pool: &PgPool) -> anyhow::Result<(u64, Duration, Duration)> {
    sqlx::query(
        "CREATE TABLE bench_raw_rebuild (global_position bigint PRIMARY KEY, \
         aggregate_id text NOT NULL, event_type text NOT NULL)",
    )
    .execute(pool)
    .await?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let (mut tx_id, mut position, mut events) = (0_i64, 0_i64, 0_u64);
    let mut reading = Duration::ZERO;
    loop {
        let read_started = Instant::now();
        let rows = sqlx::query(
            "SELECT event_id, transaction_id::text::bigint AS tx, global_position, recorded_at, \
             aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata \
             FROM events WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
               AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY transaction_id, global_position LIMIT $3",
        )
        .bind(tx_id.to_string())
        .bind(position)
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        let (mut positions, mut ids, mut types) = (Vec::new(), Vec::new(), Vec::new());
        for row in &rows {
            let _: (Uuid, chrono::DateTime<Utc>, String, i64, String) = (
                row.try_get("event_id")?,
                row.try_get("recorded_at")?,
                row.try_get("aggregate_type")?,
                row.try_get("sequence")?,
                row.try_get("event_version")?,
            );
            let _: (serde_json::Value, serde_json::Value) =
                (row.try_get("payload")?, row.try_get("metadata")?);
            tx_id = row.try_get("tx")?;
            position = row.try_get("global_position")?;
            positions.push(position);
            ids.push(row.try_get::<String, _>("aggregate_id")?);
            types.push(row.try_get::<String, _>("event_type")?);
        }
        reading += read_started.elapsed();
        if !rows.is_empty() {
            let mut tx = pool.begin().await?;
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO bench_raw_rebuild SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[])",
            )
            .bind(&positions)
            .bind(&ids)
            .bind(&types)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            events += rows.len() as u64;
        }
        if last_report.elapsed() >= Duration::from_secs(3) {
            last_report = Instant::now();
            ctx.progress(&format!("rebuild baseline: {events} events"));
        }
        if (rows.len() as i64) < BATCH {
            break;
        }
    }
    let elapsed = started.elapsed();
    sqlx::query("DROP TABLE bench_raw_rebuild")
        .execute(pool)
        .await?;
    Ok((events, elapsed, reading))
}
