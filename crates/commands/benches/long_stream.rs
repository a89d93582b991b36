//! Long streams stay fast: the latency of one `ReserveStock` dispatch on a popular product whose
//! inventory stream holds 20,000 events, against a fresh product (one stock adjustment), with our
//! snapshots on and, for contrast, off.
//!
//! Creates its own database `commerce_bench_<random>` on DATABASE_URL's server (default
//! `postgres://postgres@127.0.0.1:5432`) and drops it at the end.
//! Run: `cargo bench -p commerce-commands --bench long_stream`
//! (`BENCH_EVENTS` and `BENCH_RUNS` override the stream length and the runs per measurement).
#![allow(clippy::print_stdout)]

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use chrono::Utc;
use commerce_commands::Dispatcher;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_event_store::{db, EventMetadata, EventStore};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::migrate::MigrateDatabase;
use sqlx::types::JsonRawValue;
use sqlx::{PgPool, Postgres, Row};
use uuid::Uuid;

const DEFAULT_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Events written per append while building the long stream (one transaction each).
const BUILD_BATCH: usize = 500;
const PROGRESS_EVERY: usize = 2_000;
const WARM_UP: usize = 10;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BenchResult<()> {
    let events = env_number("BENCH_EVENTS", 20_000);
    let runs = env_number("BENCH_RUNS", 200);
    let server = std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_SERVER.to_owned());
    let url = with_database(
        &server,
        &format!("commerce_bench_{}", Uuid::new_v4().simple()),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        println!("database {}", db::describe_database_url(&url));
        let pool = db::prepare(&url, 8).await?;
        let outcome = bench(&pool, events, runs).await;
        pool.close().await;
        // FORCE: a connection the pool just closed may still be ending on the server.
        Postgres::force_drop_database(&url).await?;
        outcome
    })
}

async fn bench(pool: &PgPool, events: usize, runs: usize) -> BenchResult<()> {
    let popular = Uuid::new_v4();
    let started = Instant::now();
    build_popular_stream(&EventStore::new(pool.clone()), popular, events).await?;
    println!(
        "built {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let (version, bytes): (i64, i32) = sqlx::query_as(
        "SELECT version, length(state::text) FROM aggregate_snapshots \
         WHERE aggregate_type = 'Inventory' AND aggregate_id = $1",
    )
    .bind(popular.to_string())
    .fetch_one(pool)
    .await?;
    println!("snapshot at version {version}, {bytes} bytes of JSON");
    breakdown(pool, popular, runs).await?;

    println!("\n{runs} ReserveStock dispatches per row (after {WARM_UP} warm-up runs), interleaved long/fresh\n");
    println!(
        "{:<14} {:<22} {:>10} {:>10}",
        "snapshots", "stream", "median", "p99"
    );
    let mut ratios = Vec::new();
    for (label, every) in [("on (every 100)", 100), ("off", 0)] {
        let store = EventStore::new(pool.clone()).with_snapshot_every(every);
        let (long, fresh) = measure(&Dispatcher::new(store), popular, runs).await?;
        let long_len = format!("long ({events}+ events)");
        println!(
            "{label:<14} {long_len:<22} {:>10} {:>10}",
            ms(long.median),
            ms(long.p99)
        );
        println!(
            "{label:<14} {:<22} {:>10} {:>10}",
            "fresh (1 event)",
            ms(fresh.median),
            ms(fresh.p99)
        );
        ratios.push((
            label,
            ratio(long.median, fresh.median),
            ratio(long.p99, fresh.p99),
        ));
    }
    println!();
    for (label, median, p99) in ratios {
        println!("ratio long/fresh, snapshots {label}: median {median:.2}x, p99 {p99:.2}x");
    }
    Ok(())
}

/// Writes `events` events of a popular product: restocks, reservations for distinct orders (some
/// rejected when stock runs short), most of them committed, some released, and last a big restock
/// for the measured reservations. Decided by the real aggregate, appended many per call,
/// snapshotted by the store's policy as dispatch would.
async fn build_popular_stream(store: &EventStore, product: Uuid, events: usize) -> BenchResult<()> {
    let mut rng = StdRng::seed_from_u64(20_000);
    let mut inventory = Inventory::default();
    let mut open: VecDeque<Uuid> = VecDeque::new();
    let mut batch = Vec::new();
    let (mut version, mut written) = (0_i64, 0_usize);
    let meta = EventMetadata::new("bench", "long-stream");
    let id = product.to_string();
    let mut mix = BTreeMap::new();
    while written + batch.len() < events {
        let at = Utc::now();
        let roll = rng.random_range(0..100);
        let restock = |units| InventoryCommand::AdjustStock {
            product_id: product,
            adjustment: StockAdjustment::Add(units),
            reason: Some("delivery".into()),
            at,
        };
        let mut reserving = None;
        let command = if written + batch.len() + 1 == events {
            restock(10_000)
        } else if !inventory.exists() || roll == 0 || (inventory.available() < 20 && roll < 10) {
            restock(rng.random_range(50..100))
        } else if let Some(order_id) = (open.len() > 40 || roll < 48)
            .then(|| open.pop_front())
            .flatten()
        {
            if rng.random_range(0..100) < 85 {
                InventoryCommand::CommitStock {
                    product_id: product,
                    order_id,
                    at,
                }
            } else {
                InventoryCommand::ReleaseStock {
                    product_id: product,
                    order_id,
                    at,
                }
            }
        } else {
            let order_id = Uuid::new_v4();
            reserving = Some(order_id);
            InventoryCommand::ReserveStock {
                product_id: product,
                order_id,
                quantity: rng.random_range(1..=3),
                at,
            }
        };
        let sink = EventSink::default();
        inventory.handle(command, &(), &sink).await?;
        let decided = sink.collect().await;
        for event in &decided {
            *mix.entry(event.event_type()).or_insert(0_usize) += 1;
        }
        batch.extend(decided);
        // Only a reservation that was not rejected is committed or released later.
        open.extend(reserving.filter(|&order| inventory.reservation(order).is_some()));

        if batch.len() >= BUILD_BATCH || written + batch.len() >= events {
            let appended = store
                .append::<Inventory>(&id, version, &batch, &meta)
                .await?
                .ok_or("nothing appended")?;
            if store.snapshot_due(version, appended.version) {
                store
                    .save_snapshot(&id, appended.version, &inventory)
                    .await?;
            }
            let before = written;
            written += batch.len();
            version = appended.version;
            batch.clear();
            if written / PROGRESS_EVERY > before / PROGRESS_EVERY {
                println!(
                    "  {written:>6} events  (available {}, reserved {}, open orders {})",
                    inventory.available(),
                    inventory.reserved(),
                    open.len()
                );
            }
        }
    }
    let mix: Vec<_> = mix.iter().map(|(kind, n)| format!("{kind} {n}")).collect();
    println!("  mix: {}", mix.join(", "));
    Ok(())
}

/// Where a load of the long stream spends its time: reading the snapshot row, deserialising it,
/// the whole load (snapshot, events after it, fold) by a store that read this snapshot before and
/// by a new one, and sending a snapshot (as dispatch does every 100 events).
async fn breakdown(pool: &PgPool, popular: Uuid, runs: usize) -> BenchResult<()> {
    let store = EventStore::new(pool.clone());
    let id = popular.to_string();
    let (mut fetch, mut parse, mut write) = (vec![], vec![], vec![]);
    let (mut load, mut cold_load) = (vec![], vec![]);
    for _ in 0..runs.min(50) {
        let started = Instant::now();
        let row = sqlx::query(
            "SELECT version, state FROM aggregate_snapshots \
             WHERE aggregate_type = 'Inventory' AND aggregate_id = $1",
        )
        .bind(&id)
        .fetch_one(pool)
        .await?;
        let version: i64 = row.try_get("version")?;
        let state: &JsonRawValue = row.try_get("state")?;
        fetch.push(started.elapsed());
        let started = Instant::now();
        let inventory: Inventory = serde_json::from_str(state.get())?;
        parse.push(started.elapsed());
        let started = Instant::now();
        store.load::<Inventory>(&id).await?;
        load.push(started.elapsed());
        let cold = EventStore::new(pool.clone());
        let started = Instant::now();
        cold.load::<Inventory>(&id).await?;
        cold_load.push(started.elapsed());
        let started = Instant::now();
        // Same version: the upsert's guard writes nothing, but the state is serialised and sent.
        store.save_snapshot(&id, version, &inventory).await?;
        write.push(started.elapsed());
    }
    println!("long stream, snapshots on, medians:");
    for (what, samples) in [
        ("read snapshot row", fetch),
        ("deserialise state", parse),
        ("whole load", load),
        ("whole load, cold", cold_load),
        ("send a snapshot", write),
    ] {
        println!("  {what:<20} {:>10}", ms(percentiles(samples).median));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy)]
struct Latency {
    median: Duration,
    p99: Duration,
}

/// `runs` reservations for new orders on the popular product, each followed by one on a brand-new
/// product (stocked first, untimed).
async fn measure(
    dispatcher: &Dispatcher,
    popular: Uuid,
    runs: usize,
) -> BenchResult<(Latency, Latency)> {
    let (mut long, mut fresh) = (Vec::new(), Vec::new());
    for run in 0..WARM_UP + runs {
        let long_took = reserve(dispatcher, popular).await?;
        let product = Uuid::new_v4();
        dispatcher
            .execute::<Inventory>(
                &product.to_string(),
                InventoryCommand::AdjustStock {
                    product_id: product,
                    adjustment: StockAdjustment::Add(100),
                    reason: None,
                    at: Utc::now(),
                },
                &EventMetadata::new("bench", "fresh"),
            )
            .await?;
        let fresh_took = reserve(dispatcher, product).await?;
        if run >= WARM_UP {
            long.push(long_took);
            fresh.push(fresh_took);
        }
    }
    Ok((percentiles(long), percentiles(fresh)))
}

async fn reserve(dispatcher: &Dispatcher, product: Uuid) -> BenchResult<Duration> {
    let command = InventoryCommand::ReserveStock {
        product_id: product,
        order_id: Uuid::new_v4(),
        quantity: 1,
        at: Utc::now(),
    };
    let meta = EventMetadata::new("bench", Uuid::new_v4().to_string());
    let started = Instant::now();
    let executed = dispatcher
        .execute::<Inventory>(&product.to_string(), command, &meta)
        .await?;
    let took = started.elapsed();
    if !executed.wrote {
        return Err("the reservation wrote nothing".into());
    }
    Ok(took)
}

fn percentiles(mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    Latency {
        median: at(0.5),
        p99: at(0.99),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `url` with its database replaced by `database` (query parameters kept).
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{database}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}
