//! Scenario `hot`: many callers reserving stock of ONE product, and proof nothing is oversold.
//!
//! # Measured
//! 64 concurrent callers send `InventoryCommand::ReserveStock { quantity: 1 }`, each with its own
//! order id, through `commerce_commands::Dispatcher::execute` to one inventory created with
//! `stock` units, for `2 × stock` commands in total (2,000 quick, 12,000 full): the first half can
//! succeed (`StockReserved`), the rest must be refused (`StockReservationRejected`). Reported:
//! commands/s and reservations/s (both over the same wall time), with p50/p99 latency per command
//! as a caller sees it (waiting for its turn on the aggregate included), and per successful
//! reservation.
//!
//! Afterwards the inventory's stream is read back: the `StockReserved` events and their units,
//! the rejections, and the aggregate folded from every event (snapshots off, so the log alone
//! decides). `oversold = max(0, reserved units − stock, aggregate reserved − stock, −available)`;
//! the target `oversold = 0` fails otherwise. Anything else odd (a command without exactly one
//! event, units left unsold while orders were refused) goes into the note.
//!
//! # Baseline
//! The same number of attempts by the same number of callers (pool of 64) as raw autocommit
//! `UPDATE bench_hot_stock SET available = available - 1 WHERE id = $1 AND available > 0` on a
//! scratch one-row table holding the same stock: Postgres's own row lock serialising a
//! decrement, without events, history or idempotency. A row updated counts as a success. Its final
//! `available` is checked too (0, never negative).
//!
//! Both sides warm up briefly (on another product / another row) before measuring.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use commerce_commands::Dispatcher;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_event_store::{EventMetadata, EventStore};
use sqlx::PgPool;
use uuid::Uuid;

use super::append::{drive, Run, Stop};
use crate::ctx::Ctx;
use crate::report::Row;

const SCENARIO: &str = "hot";
const CALLERS: usize = 64;
const TARGET: &str = "oversold = 0";
const RAW_UPDATE: &str =
    "UPDATE bench_hot_stock SET available = available - 1 WHERE id = $1 AND available > 0";

/// The platform's run and what its stream says afterwards.
#[derive(Debug)]
struct Platform {
    /// Per command: the global position of the event it wrote.
    run: Run<Option<i64>>,
    /// Global positions of the `StockReserved` events.
    reserved_at: HashSet<i64>,
    reserved_units: i64,
    rejected: i64,
    oversold: i64,
    anomalies: Vec<String>,
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let attempts: u64 = ctx.pick(2_000, 12_000);
    let stock = attempts / 2;
    let warm_up = ctx.pick(Duration::from_millis(500), Duration::from_secs(2));
    let size = u32::try_from(CALLERS)?;

    let pool = ctx.pool(size).await?;
    let platform = platform(ctx, &pool, attempts, stock, warm_up).await;
    pool.close().await;
    let p = platform?;

    let pool = ctx.pool(size).await?;
    let raw = raw(ctx, &pool, attempts, stock, warm_up).await;
    pool.close().await;
    let (raw, raw_left) = raw?;
    let raw_updated = raw.latencies(|updated| *updated);

    let successes = p
        .run
        .latencies(|pos| pos.is_some_and(|g| p.reserved_at.contains(&g)));
    let mut note = format!(
        "oversold {}; {} of {stock} units reserved, {} refused; raw: {} updated, {raw_left} left",
        p.oversold,
        p.reserved_units,
        p.rejected,
        raw_updated.len(),
    );
    if raw_left < 0 || raw_updated.len() as u64 > stock {
        note.push_str(" (raw baseline oversold!)");
    }
    for anomaly in &p.anomalies {
        note.push_str("; ");
        note.push_str(anomaly);
    }
    let all = Row::measured(
        SCENARIO,
        "64 callers, 1 product: all commands",
        "commands/s",
        p.run.ops(),
        p.run.elapsed,
        &p.run.latencies(|_| true),
    )
    .with_baseline(
        "raw UPDATE … AND available > 0",
        raw.ops(),
        raw.elapsed,
        &raw.latencies(|_| true),
    )
    .with_target(TARGET, p.oversold == 0)
    .with_note(note);
    let reserved = Row::measured(
        SCENARIO,
        "64 callers, 1 product: reservations",
        "reserved/s",
        successes.len() as u64,
        p.run.elapsed,
        &successes,
    )
    .with_baseline(
        "raw UPDATE, rows updated",
        raw_updated.len() as u64,
        raw.elapsed,
        &raw_updated,
    )
    .with_note("StockReserved only (same wall time as all commands)");
    ctx.progress(&format!(
        "{:.0} commands/s ({:.0} reserved/s) vs raw {:.0}/s; oversold {}",
        all.rate,
        reserved.rate,
        all.baseline.as_ref().map_or(0.0, |b| b.rate),
        p.oversold
    ));
    Ok(vec![all, reserved])
}

/// `ReserveStock` through the dispatcher on one product holding `stock` units.
async fn platform(
    ctx: &Ctx,
    pool: &PgPool,
    attempts: u64,
    stock: u64,
    warm_up: Duration,
) -> anyhow::Result<Platform> {
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
    let warm_product = Uuid::new_v4();
    let product = Uuid::new_v4();
    add_stock(&dispatcher, warm_product, 1_000_000).await?;
    add_stock(&dispatcher, product, u32::try_from(stock)?).await?;

    let reserve = Arc::new(move |product_id: Uuid| {
        let dispatcher = dispatcher.clone();
        async move {
            let command = InventoryCommand::ReserveStock {
                product_id,
                order_id: Uuid::new_v4(),
                quantity: 1,
                at: Utc::now(),
            };
            let metadata = EventMetadata::new("bench", Uuid::new_v4().to_string());
            let executed = dispatcher
                .execute::<Inventory>(&product_id.to_string(), command, &metadata)
                .await?;
            Ok(executed.wrote.then_some(executed.position.global_position))
        }
    });
    let r = reserve.clone();
    drive(
        ctx,
        "hot warm-up".into(),
        CALLERS,
        Stop::After(warm_up),
        move |_| r(warm_product),
    )
    .await?;
    let run = drive(
        ctx,
        "hot reserve".into(),
        CALLERS,
        Stop::Count(attempts),
        move |_| reserve(product),
    )
    .await?;
    verify(ctx, run, product, attempts, stock).await
}

/// Reads the product's stream back and counts what was reserved.
async fn verify(
    ctx: &Ctx,
    run: Run<Option<i64>>,
    product: Uuid,
    attempts: u64,
    stock: u64,
) -> anyhow::Result<Platform> {
    let stock = i64::try_from(stock)?;
    let events: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT event_type, global_position, \
                COALESCE((payload -> 'StockReserved' ->> 'quantity')::bigint, 0) \
         FROM events WHERE aggregate_type = 'Inventory' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(product.to_string())
    .fetch_all(&ctx.pool)
    .await?;
    let mut reserved_at = HashSet::new();
    let (mut reserved_units, mut rejected, mut refused_early) = (0_i64, 0_i64, false);
    for (event_type, position, units) in &events {
        match event_type.as_str() {
            "StockReserved" => {
                reserved_at.insert(*position);
                reserved_units += units;
            }
            "StockReservationRejected" => {
                rejected += 1;
                refused_early |= reserved_units < stock;
            }
            _ => {}
        }
    }
    let (inventory, _) = EventStore::new(ctx.pool.clone())
        .with_snapshot_every(0)
        .load::<Inventory>(&product.to_string())
        .await?;
    let oversold = [
        reserved_units - stock,
        inventory.reserved() - stock,
        -inventory.available(),
        0,
    ]
    .into_iter()
    .max()
    .unwrap_or(0);

    let mut anomalies = Vec::new();
    let written = reserved_at.len() as u64 + u64::try_from(rejected)?;
    if written != attempts {
        anomalies.push(format!("{attempts} commands wrote {written} events"));
    }
    if run.done.iter().any(|(pos, _)| pos.is_none()) {
        anomalies.push("a command wrote nothing".to_owned());
    }
    if inventory.reserved() != reserved_units || inventory.total() != stock {
        anomalies.push(format!(
            "aggregate: {} available + {} reserved ≠ {stock}",
            inventory.available(),
            inventory.reserved()
        ));
    }
    if refused_early {
        anomalies.push("an order was refused while stock remained".to_owned());
    }
    Ok(Platform {
        run,
        reserved_at,
        reserved_units,
        rejected,
        oversold,
        anomalies,
    })
}

async fn add_stock(dispatcher: &Dispatcher, product_id: Uuid, units: u32) -> anyhow::Result<()> {
    let command = InventoryCommand::AdjustStock {
        product_id,
        adjustment: StockAdjustment::Add(units),
        reason: Some("bench".to_owned()),
        at: Utc::now(),
    };
    let metadata = EventMetadata::new("bench", Uuid::new_v4().to_string());
    dispatcher
        .execute::<Inventory>(&product_id.to_string(), command, &metadata)
        .await?;
    Ok(())
}

/// Raw conditional decrements of one row holding `stock`; returns the run (per attempt: whether
/// a row was updated) and what is left.
async fn raw(
    ctx: &Ctx,
    pool: &PgPool,
    attempts: u64,
    stock: u64,
    warm_up: Duration,
) -> anyhow::Result<(Run<bool>, i64)> {
    sqlx::query("DROP TABLE IF EXISTS bench_hot_stock")
        .execute(pool)
        .await?;
    sqlx::query("CREATE TABLE bench_hot_stock (id bigint PRIMARY KEY, available bigint NOT NULL)")
        .execute(pool)
        .await?;
    sqlx::query("INSERT INTO bench_hot_stock (id, available) VALUES (1, $1), (2, 1000000000)")
        .bind(i64::try_from(stock)?)
        .execute(pool)
        .await?;
    let decrement = {
        let pool = pool.clone();
        Arc::new(move |id: i64| {
            let pool = pool.clone();
            async move {
                let done = sqlx::query(RAW_UPDATE).bind(id).execute(&pool).await?;
                Ok(done.rows_affected() == 1)
            }
        })
    };
    let d = decrement.clone();
    drive(
        ctx,
        "raw UPDATE warm-up".into(),
        CALLERS,
        Stop::After(warm_up),
        move |_| d(2),
    )
    .await?;
    let run = drive(
        ctx,
        "raw UPDATE".into(),
        CALLERS,
        Stop::Count(attempts),
        move |_| decrement(1),
    )
    .await?;
    let left: i64 = sqlx::query_scalar("SELECT available FROM bench_hot_stock WHERE id = 1")
        .fetch_one(pool)
        .await?;
    sqlx::query("DROP TABLE bench_hot_stock")
        .execute(pool)
        .await?;
    Ok((run, left))
}
