//! Scenario `append`: the command path's write throughput on distinct aggregates.
//!
//! # Measured
//! `InventoryCommand::AdjustStock { Add(1) }` on a fresh product id per command, through
//! `commerce_commands::Dispatcher::execute` (a product this process has not held: a cold load,
//! which for a stream with no event yet is the snapshot lookup alone; decide; append in one
//! `INSERT … RETURNING` the log position), with 1, 16 and 64
//! concurrent callers sharing a pool of as many connections. Each command writes exactly one
//! `StockAdjusted` event, so events/s = commands/s; latency is per command.
//!
//! # Baseline
//! Raw single-row INSERTs of the same event shape, as the same seven bound parameters postgres-es
//! binds (aggregate type and id, sequence 1, event type and version, the payload and metadata
//! built from the very `InventoryEvent::StockAdjusted` and `EventMetadata` the command writes, so
//! the JSON sizes match), each its own autocommit statement, with the same number of callers on the
//! very same pool (one pool of `callers` connections per level serves both sides).
//!
//! The target table `bench_raw_events` is `CREATE TABLE … (LIKE events INCLUDING ALL)`: the same
//! columns, `CHECK (sequence >= 1)`, defaults (`transaction_id xid8 DEFAULT pg_current_xact_id()`,
//! `recorded_at DEFAULT clock_timestamp()`, `event_id DEFAULT gen_random_uuid()`), identity
//! `global_position` (its own sequence), the primary key on `(aggregate_type, aggregate_id,
//! sequence)` and every index of `events` (global position, event id, log order, correlation id,
//! recorded at, event type). What differs: no immutability triggers (they fire only on UPDATE,
//! DELETE and TRUNCATE, so they cost an INSERT nothing), and the table starts empty while `events`
//! holds what earlier levels wrote (both grow by about the same amount per level).
//!
//! Each level warms up both sides briefly (discarded), then measures platform, raw, raw, platform
//! for half the time each, so both get ~3 s (quick) or ~20 s (full) and load drifting in from
//! elsewhere on the machine weighs on both alike.
//!
//! `hot` reuses [`drive`], the closed-loop load generator defined here.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::Utc;
use commerce_commands::personal;
use commerce_commands::Dispatcher;
use commerce_domain::inventory::{Inventory, InventoryCommand, InventoryEvent, StockAdjustment};
use commerce_domain::user::{Role, User, UserCommand};
use commerce_event_store::privacy::Privacy;
use commerce_event_store::{EventMetadata, EventStore};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::ctx::Ctx;
use crate::report::Row;

const SCENARIO: &str = "append";
const LEVELS: [usize; 3] = [1, 16, 64];
const TARGET: &str = "≥60% of raw at 16";
const REASON: &str = "bench";
const ACTOR: &str = "bench";
/// The same row our append writes, content hash included (the column is `NOT NULL`, and
/// computing it is part of storing an event since guarantee 10).
const RAW_INSERT: &str = "INSERT INTO bench_raw_events \
     (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, \
      content_hash) \
     VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, \
             event_content_hash($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb))";

/// When a [`drive`] run ends.
#[derive(Debug, Clone, Copy)]
pub(super) enum Stop {
    /// After this much time (callers finish the operation they are in).
    After(Duration),
    /// After this many operations in total.
    Count(u64),
}

/// What a [`drive`] run did: each operation's output and latency, and the wall time.
#[derive(Debug)]
pub(super) struct Run<T> {
    pub(super) elapsed: Duration,
    pub(super) done: Vec<(T, Duration)>,
}

impl<T> Run<T> {
    /// Adds another run's operations and time to this one.
    pub(super) fn merge(&mut self, mut other: Self) {
        self.elapsed += other.elapsed;
        self.done.append(&mut other.done);
    }

    /// Operations completed.
    pub(super) fn ops(&self) -> u64 {
        self.done.len() as u64
    }

    /// Latencies of the operations whose output satisfies `keep`.
    pub(super) fn latencies(&self, keep: impl Fn(&T) -> bool) -> Vec<Duration> {
        self.done
            .iter()
            .filter(|(out, _)| keep(out))
            .map(|(_, latency)| *latency)
            .collect()
    }
}

/// Closed-loop load: `callers` tasks each run `op(i)` back to back (`i` counts operations across
/// callers from 0) until `stop`. Prints progress every 2 s. The first failing operation fails the
/// run (the other callers are aborted).
pub(super) async fn drive<T, F, Fut>(
    ctx: &Ctx,
    label: String,
    callers: usize,
    stop: Stop,
    op: F,
) -> anyhow::Result<Run<T>>
where
    T: Send + 'static,
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let (deadline, limit) = match stop {
        Stop::After(d) => (Some(started + d), u64::MAX),
        Stop::Count(n) => (None, n),
    };
    let mut callers_set = JoinSet::new();
    for _ in 0..callers {
        let (op, next, finished) = (op.clone(), next.clone(), finished.clone());
        callers_set.spawn(async move {
            let mut done = Vec::new();
            while deadline.is_none_or(|d| Instant::now() < d) {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit {
                    break;
                }
                let t = Instant::now();
                let out = op(i).await?;
                done.push((out, t.elapsed()));
                finished.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(done)
        });
    }
    let mut done = Vec::new();
    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    ticker.tick().await;
    loop {
        tokio::select! {
            joined = callers_set.join_next() => match joined {
                None => break,
                Some(result) => done.append(&mut result.context("a caller panicked")??),
            },
            _ = ticker.tick() => ctx.progress(&format!(
                "{label}: {} done in {:.0} s",
                finished.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            )),
        }
    }
    Ok(Run {
        elapsed: started.elapsed(),
        done,
    })
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let warm_up = ctx.pick(Duration::from_millis(500), Duration::from_secs(2));
    let measure = ctx.pick(Duration::from_secs(3), Duration::from_secs(20));
    create_raw_table(&ctx.pool).await?;
    let mut rows = Vec::new();
    for callers in LEVELS {
        let pool = ctx.pool(u32::try_from(callers)?).await?;
        let variant = if callers == 1 {
            "1 caller".to_owned()
        } else {
            format!("{callers} callers")
        };
        let op = Kind::Stock(platform_op(&pool));
        let level = level(ctx, &pool, callers, &variant, op, (warm_up, measure)).await;
        pool.close().await;
        rows.push(level?);
    }
    // The same at 16 callers for events with personal data (guarantee 9): a new person each, so
    // the worst case: their data key is created (one statement more) before the sealed append.
    let pool = ctx.pool(16).await?;
    let master = personal::stored_or_generated_master(&pool).await?;
    let privacy = personal::keyring(&pool, master).await?;
    let op = Kind::Sealed(sealed_op(&pool, privacy));
    let sealed = level(
        ctx,
        &pool,
        16,
        "16 callers, personal data sealed",
        op,
        (warm_up, measure),
    )
    .await;
    pool.close().await;
    rows.push(sealed?);
    sqlx::query("DROP TABLE bench_raw_events")
        .execute(&ctx.pool)
        .await?;
    Ok(rows)
}

/// The raw baseline alone, for another scenario (`checkout`): single-event autocommit INSERTs
/// into a fresh `bench_raw_events` on `pool` by `callers` callers, warmed up, then measured for
/// `measure`; the table is dropped afterwards.
pub(super) async fn raw_insert_only(
    ctx: &Ctx,
    pool: &PgPool,
    callers: usize,
    warm_up: Duration,
    measure: Duration,
) -> anyhow::Result<Run<()>> {
    create_raw_table(pool).await?;
    let op = raw_op(pool);
    let run = |label: &'static str, stop: Stop| drive_raw(ctx, &op, callers, label, stop);
    let measured = async {
        run("warm-up", Stop::After(warm_up)).await?;
        run("measured", Stop::After(measure)).await
    }
    .await;
    sqlx::query("DROP TABLE bench_raw_events")
        .execute(pool)
        .await?;
    measured
}

/// One concurrency level: both sides on one pool of `callers` connections, warmed up, then
/// measured in the order platform, raw, raw, platform (`measure / 2` each), so drifting load
/// from elsewhere on the machine weighs on both alike.
async fn level(
    ctx: &Ctx,
    pool: &PgPool,
    callers: usize,
    variant: &str,
    kind: Kind,
    (warm_up, measure): (Duration, Duration),
) -> anyhow::Result<Row> {
    let raw_op = raw_op(pool);
    let note = kind.note();
    let platform_op = kind.op();
    let platform = |label: &'static str, stop: Stop| {
        let op = platform_op.clone();
        drive(
            ctx,
            format!("append {variant} {label}"),
            callers,
            stop,
            move |_| op(),
        )
    };
    let raw = |label: &'static str, stop: Stop| drive_raw(ctx, &raw_op, callers, label, stop);
    let half = Stop::After(measure / 2);
    platform("warm-up", Stop::After(warm_up)).await?;
    raw("warm-up", Stop::After(warm_up)).await?;
    let mut measured = platform("1/2", half).await?;
    let mut baseline = raw("1/2", half).await?;
    baseline.merge(raw("2/2", half).await?);
    measured.merge(platform("2/2", half).await?);

    let mut row = Row::measured(
        SCENARIO,
        variant,
        "events/s",
        measured.ops(),
        measured.elapsed,
        &measured.latencies(|_| true),
    )
    .with_baseline(
        "raw INSERT (autocommit)",
        baseline.ops(),
        baseline.elapsed,
        &baseline.latencies(|_| true),
    )
    .with_note(note);
    if callers == 16 && note == STOCK_NOTE {
        let met = row.ratio.is_some_and(|r| r >= 0.6);
        row = row.with_target(TARGET, met);
    }
    ctx.progress(&format!(
        "{variant}: {:.0} events/s vs raw {:.0}/s",
        row.rate,
        row.baseline.as_ref().map_or(0.0, |b| b.rate)
    ));
    Ok(row)
}

/// The raw baseline's load: `callers` running `op` back to back until `stop`.
fn drive_raw<'a, F>(
    ctx: &'a Ctx,
    op: &Arc<F>,
    callers: usize,
    label: &str,
    stop: Stop,
) -> impl Future<Output = anyhow::Result<Run<()>>> + 'a
where
    F: Fn() -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync + 'static,
{
    let op = Arc::clone(op);
    drive(
        ctx,
        format!("raw INSERT {callers} {label}"),
        callers,
        stop,
        move |_| op(),
    )
}

/// One command of a level, as a boxed closure.
type Op = Arc<dyn Fn() -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

const STOCK_NOTE: &str = "AdjustStock on a fresh product each; 1 event per command";

/// What a level's platform side runs.
enum Kind {
    /// `AdjustStock` on a fresh product (no personal data).
    Stock(Op),
    /// `RegisterUser` of a new person, sealed.
    Sealed(Op),
}

impl Kind {
    fn note(&self) -> &'static str {
        match self {
            Self::Stock(_) => STOCK_NOTE,
            Self::Sealed(_) => {
                "RegisterUser of a new person each (store with a keyring): the person's data key \
                 created and wrapped (1 statement), then email and name sealed with AES-256-GCM \
                 in the one INSERT; 1 event per command"
            }
        }
    }

    fn op(self) -> Op {
        match self {
            Self::Stock(op) | Self::Sealed(op) => op,
        }
    }
}

/// One command through a dispatcher whose store seals personal data: a new person registers.
fn sealed_op(pool: &PgPool, privacy: Privacy) -> Op {
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()).with_privacy(privacy.clone()));
    Arc::new(move || {
        let (dispatcher, privacy) = (dispatcher.clone(), privacy.clone());
        async move {
            let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
            let user_id = privacy.user_id_for_email(&email);
            let command = UserCommand::RegisterUser {
                user_id,
                email,
                name: "Bench Person".to_owned(),
                phone: None,
                roles: vec![Role::Customer],
                at: Utc::now(),
            };
            let metadata = EventMetadata::new(ACTOR, Uuid::new_v4().to_string());
            let executed = dispatcher
                .execute::<User>(&user_id.to_string(), command, &metadata)
                .await?;
            anyhow::ensure!(executed.wrote, "RegisterUser wrote no event");
            Ok(())
        }
        .boxed()
    })
}

/// One command through the dispatcher: `AdjustStock Add(1)` on a fresh product.
fn platform_op(pool: &PgPool) -> Op {
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
    Arc::new(move || {
        let dispatcher = dispatcher.clone();
        async move {
            let product_id = Uuid::new_v4();
            let command = InventoryCommand::AdjustStock {
                product_id,
                adjustment: StockAdjustment::Add(1),
                reason: Some(REASON.to_owned()),
                at: Utc::now(),
            };
            let metadata = EventMetadata::new(ACTOR, Uuid::new_v4().to_string());
            let executed = dispatcher
                .execute::<Inventory>(&product_id.to_string(), command, &metadata)
                .await?;
            anyhow::ensure!(
                executed.version == 1 && executed.wrote,
                "AdjustStock on a fresh product wrote no event"
            );
            Ok(())
        }
        .boxed()
    })
}

/// One raw INSERT of the same event shape, as postgres-es binds it.
fn raw_op(pool: &PgPool) -> Arc<impl Fn() -> BoxFuture<'static, anyhow::Result<()>>> {
    let pool = pool.clone();
    Arc::new(move || {
        let pool = pool.clone();
        async move {
            let product_id = Uuid::new_v4();
            let (payload, metadata) = event_json(product_id)?;
            sqlx::query(RAW_INSERT)
                .bind("Inventory")
                .bind(product_id.to_string())
                .bind(1_i64)
                .bind("StockAdjusted")
                .bind("1.0")
                .bind(payload)
                .bind(metadata)
                .execute(&pool)
                .await?;
            Ok(())
        }
        .boxed()
    })
}

/// Payload and metadata exactly as the dispatcher writes them for `AdjustStock Add(1)` on a
/// fresh product.
fn event_json(product_id: Uuid) -> anyhow::Result<(serde_json::Value, serde_json::Value)> {
    let event = InventoryEvent::StockAdjusted {
        product_id,
        delta: 1,
        available_before: 0,
        available_after: 1,
        reserved: 0,
        reason: Some(REASON.to_owned()),
        at: Utc::now(),
    };
    let metadata = EventMetadata::new(ACTOR, Uuid::new_v4().to_string());
    Ok((
        serde_json::to_value(event)?,
        serde_json::to_value(metadata)?,
    ))
}

/// `bench_raw_events`: `events` without its triggers; checks that the indexes came along.
async fn create_raw_table(pool: &PgPool) -> anyhow::Result<()> {
    sqlx::query("DROP TABLE IF EXISTS bench_raw_events")
        .execute(pool)
        .await?;
    sqlx::query("CREATE TABLE bench_raw_events (LIKE events INCLUDING ALL)")
        .execute(pool)
        .await?;
    let (events, raw): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE tablename = 'events'), \
                count(*) FILTER (WHERE tablename = 'bench_raw_events') \
         FROM pg_indexes WHERE schemaname = current_schema()",
    )
    .fetch_one(pool)
    .await?;
    anyhow::ensure!(
        events == raw && events > 0,
        "bench_raw_events has {raw} indexes, events {events}"
    );
    Ok(())
}
