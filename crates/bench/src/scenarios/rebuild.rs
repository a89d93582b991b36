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
//! `orders` separately; both read the whole log (the rate counts events read; the note says how
//! many each applied).
//!
//! Baseline (documented in each row): a raw keyset-paged read of the same log in the same order
//! and batch size as the rebuild (`SELECT` of the same columns `ORDER BY transaction_id,
//! global_position LIMIT 2000` below the horizon, payloads decoded), plus, per batch, one bulk
//! `INSERT ... SELECT FROM unnest(...)` of one small row per event into a scratch table, in a
//! transaction with `synchronous_commit = off` like the rebuild's. It is the cheapest way to move
//! every event from the log into a table.

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use commerce_domain::inventory::InventoryEvent;
use commerce_domain::order::{OrderEvent, OrderLineItem, ShippingAddress};
use commerce_domain::product::ProductEvent;
use commerce_domain::{Currency, Money};
use commerce_projections::rebuild::Finish;
use commerce_projections::registry;
use serde::Serialize;
use sqlx::{PgPool, Row as _};
use uuid::Uuid;

use super::relay::Scratch;
use crate::ctx::Ctx;
use crate::report::Row;

/// Rebuild reads and applies the log in batches of this many events (`rebuild::BATCH`).
const BATCH: i64 = 2_000;
/// Placeholders in the templates, replaced in SQL per block.
const PRODUCT: Uuid = Uuid::from_u128(0x0000_0001_0000_4000_8000_0000_0000_0001);
const ORDER: Uuid = Uuid::from_u128(0x0000_0002_0000_4000_8000_0000_0000_0002);
const USER: Uuid = Uuid::from_u128(0x0000_0003_0000_4000_8000_0000_0000_0003);
const PAYMENT: Uuid = Uuid::from_u128(0x0000_0004_0000_4000_8000_0000_0000_0004);
const CATEGORY: Uuid = Uuid::from_u128(0x0000_0005_0000_4000_8000_0000_0000_0005);
const NUMBER: &str = "#N#";

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
    let read_rate = raw_events as f64 / raw_read.as_secs_f64().max(1e-3);
    let baseline = "raw paged read + bulk INSERT per batch";

    let mut rows = Vec::new();
    for name in ["catalog", "orders"] {
        ctx.progress(&format!("rebuild: {name}"));
        let mut last = Instant::now();
        let report = registry::rebuild(name, pool, Finish::Swap, |p| {
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
        let row = Row::measured(
            "rebuild",
            name,
            "events/s",
            u64::try_from(report.events)?,
            report.elapsed,
            &[],
        )
        .with_baseline(baseline, raw_events, raw_elapsed, &[]);
        let met = row.rate >= 50_000.0;
        rows.push(row.with_target("≥ 50,000 events/s", met).with_note(format!(
            "{} of {} events applied; log {size}; Finish::Swap; raw read alone {read_rate:.0} \
                 events/s",
            report.applied, report.events
        )));
    }
    Ok(rows)
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

/// One kind of event of a block: aggregate type, event type, sequence in its stream, and the
/// payload with placeholders.
struct Template {
    aggregate_type: &'static str,
    event_type: String,
    sequence: i64,
    payload: String,
}

fn template<E: Serialize>(
    aggregate_type: &'static str,
    sequence: i64,
    event: &E,
) -> anyhow::Result<Template> {
    let value = serde_json::to_value(event)?;
    let event_type = value
        .as_object()
        .and_then(|o| o.keys().next())
        .ok_or_else(|| anyhow::anyhow!("an event does not serialise as {{\"Variant\": ...}}"))?
        .clone();
    Ok(Template {
        aggregate_type,
        event_type,
        sequence,
        payload: value.to_string(),
    })
}

/// The ten events of one block: a product, its stock, one order of it through to shipping.
fn templates() -> anyhow::Result<Vec<Template>> {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
        .single()
        .ok_or_else(|| anyhow::anyhow!("bad template time"))?;
    let price = Money::new(1_999, Currency::USD);
    let total = Money::new(3_998, Currency::USD);
    let name = format!("Product {NUMBER}");
    let lines = vec![OrderLineItem {
        product_id: PRODUCT,
        product_name: name.clone(),
        quantity: 2,
        unit_price: price,
        subtotal: total,
    }];
    let (o, u, p, y) = (ORDER, USER, PRODUCT, PAYMENT);
    Ok(vec![
        template(
            "Product",
            1,
            &ProductEvent::ProductCreated {
                product_id: p,
                name,
                slug: format!("product-{NUMBER}"),
                description: format!(
                    "Product number {NUMBER}: a sturdy, well-reviewed item for everyday use, \
                     shipped in recyclable packaging with a two-year warranty."
                ),
                price,
                category_id: CATEGORY,
                image_url: Some(format!("https://cdn.example.com/products/{NUMBER}.jpg")),
                at,
            },
        )?,
        template(
            "Inventory",
            1,
            &InventoryEvent::StockAdjusted {
                product_id: p,
                delta: 100,
                available_before: 0,
                available_after: 100,
                reserved: 0,
                reason: Some("initial stock".to_owned()),
                at,
            },
        )?,
        template(
            "Order",
            1,
            &OrderEvent::OrderPlaced {
                order_id: o,
                user_id: u,
                lines: lines.clone(),
                total,
                shipping_address: ShippingAddress {
                    line1: format!("{NUMBER} Main Street"),
                    line2: None,
                    city: "Springfield".to_owned(),
                    postal_code: "12345".to_owned(),
                    country: "US".to_owned(),
                },
                payment_method: "card".to_owned(),
                at,
            },
        )?,
        template(
            "Inventory",
            2,
            &InventoryEvent::StockReserved {
                product_id: p,
                order_id: o,
                quantity: 2,
                available_after: 98,
                reserved_after: 2,
                at,
            },
        )?,
        template(
            "Order",
            2,
            &OrderEvent::OrderStockReserved { order_id: o, at },
        )?,
        template(
            "Order",
            3,
            &OrderEvent::OrderPaymentRequested {
                order_id: o,
                payment_id: y,
                amount: total,
                at,
            },
        )?,
        template(
            "Order",
            4,
            &OrderEvent::OrderPaid {
                order_id: o,
                user_id: u,
                payment_id: y,
                amount: total,
                at,
            },
        )?,
        template(
            "Order",
            5,
            &OrderEvent::OrderConfirmed {
                order_id: o,
                user_id: u,
                total,
                lines,
                at,
            },
        )?,
        template(
            "Inventory",
            3,
            &InventoryEvent::StockCommitted {
                product_id: p,
                order_id: o,
                quantity: 2,
                reserved_after: 0,
                at,
            },
        )?,
        template(
            "Order",
            6,
            &OrderEvent::OrderShipped {
                order_id: o,
                user_id: u,
                at,
            },
        )?,
    ])
}

/// Appends `n` realistic events (whole blocks of ten, see the module doc) to `pool`'s log with
/// `INSERT ... SELECT generate_series`, in chunks (one transaction each), showing progress.
/// Product, order, payment and user ids are derived from the block number (users repeat every
/// 5,000 blocks); every block's events share a correlation id.
pub(super) async fn generate_events(ctx: &Ctx, pool: &PgPool, n: u64) -> anyhow::Result<()> {
    let templates = templates()?;
    let aggregate_types: Vec<&str> = templates.iter().map(|t| t.aggregate_type).collect();
    let event_types: Vec<&str> = templates.iter().map(|t| t.event_type.as_str()).collect();
    let sequences: Vec<i64> = templates.iter().map(|t| t.sequence).collect();
    let payloads: Vec<&str> = templates.iter().map(|t| t.payload.as_str()).collect();
    let kinds = templates.len() as i64;
    let total = i64::try_from(n)?;
    let chunk = 50_000_i64;
    let started = Instant::now();
    let mut last_report = Instant::now();
    ctx.progress(&format!("generating {n} events (not measured)"));
    let mut from = 0_i64;
    while from < total {
        let to = (from + chunk).min(total) - 1;
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
               event_version, payload, metadata) \
             SELECT ($1::text[])[k + 1], \
               CASE WHEN ($1::text[])[k + 1] = 'Order' THEN o ELSE p END, \
               ($3::bigint[])[k + 1], ($2::text[])[k + 1], '1.0', \
               replace(replace(replace(replace(replace(($4::text[])[k + 1], \
                 $7, p), $8, o), $9, u), $10, y), $11, b::text)::jsonb, \
               jsonb_build_object('actor', u, 'correlation_id', 'bench-' || b) \
             FROM (SELECT g / $12 AS b, g % $12 AS k FROM generate_series($5::bigint, $6::bigint) g) s, \
             LATERAL (SELECT md5('p' || s.b)::uuid::text AS p, md5('o' || s.b)::uuid::text AS o, \
               md5('u' || (s.b % 5000))::uuid::text AS u, md5('y' || s.b)::uuid::text AS y) ids",
        )
        .bind(&aggregate_types)
        .bind(&event_types)
        .bind(&sequences)
        .bind(&payloads)
        .bind(from)
        .bind(to)
        .bind(PRODUCT.to_string())
        .bind(ORDER.to_string())
        .bind(USER.to_string())
        .bind(PAYMENT.to_string())
        .bind(NUMBER)
        .bind(kinds)
        .execute(pool)
        .await?;
        from = to + 1;
        if last_report.elapsed() >= Duration::from_secs(3) || from >= total {
            last_report = Instant::now();
            ctx.progress(&format!(
                "generated {from}/{total} events ({:.0}/s)",
                from as f64 / started.elapsed().as_secs_f64().max(1e-3)
            ));
        }
    }
    Ok(())
}
