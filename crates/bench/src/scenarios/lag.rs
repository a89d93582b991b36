//! Scenario `lag`: projection lag (commit → visible in the read model) under a steady load.
//!
//! The platform runs in-process (`commerce::app::start` with the relay and every projection, no
//! API, no process managers, classic queues) on a fresh namespace and a scratch database
//! ([`Scratch`]: an empty log, so neither the relay nor the projections start with a backlog left
//! by earlier scenarios). After a warm-up that creates the inventories of 100 products, commands
//! are dispatched with `Dispatcher` at a steady 500 `AdjustStock` per second (paced with
//! `tokio::time::interval`, each command in its own task) for 10 s (full: 60 s); a first row, for
//! reference, does the same at 100 per second for 3 s (full: 20 s). For each command the lag runs
//! from its commit (dispatch returned its position) until the `inventory` projection's checkpoint
//! has passed that position: the checkpoint moves in the same transaction as the read-model rows,
//! so that is when a reader sees the write. One watcher, on its own connection, polls the
//! checkpoint every 2 ms (the read `checkpoint::has_reached` does, once per poll rather than once
//! per pending write) and resolves every pending write it covers. The note also gives the rate at
//! which the read model kept pace (writes seen / time until the last became visible).
//!
//! Baseline: Postgres's own commit-to-visible time is ~0, so the raw figure is a RabbitMQ round
//! trip at the same 500 msg/s: a persistent message (600 bytes, about a `StockAdjusted` event's
//! size) published with confirms to the namespace's topic exchange, routed to a classic durable
//! queue and consumed with acks on another connection; latency per message from publish to
//! delivery. The note gives our p99 over the raw p99.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use commerce::app::{self, Parts};
use commerce::config::Settings;
use commerce_commands::Dispatcher;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_event_store::{BrokerConfig, EventMetadata, EventStore, Position};
use commerce_projections::registry;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;
use uuid::Uuid;

use super::relay::{declare_classic_queue, delete_topology, Scratch};
use crate::ctx::Ctx;
use crate::report::Row;
use crate::stats::{percentile, sorted_ms};

/// The target rate.
const RATE: u32 = 500;
/// A rate the projections keep up with.
const LOW_RATE: u32 = 100;
/// How long writes may take to show up once the load stopped, beyond the load's own duration;
/// later ones count with the lag they had by then.
const DRAIN_EXTRA: Duration = Duration::from_secs(10);
const PRODUCTS: usize = 100;
const PROJECTION: &str = "inventory";
/// The raw round trip's queue.
const RTT: &str = "bench-rtt";

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let namespace = ctx.fresh_namespace();
    let mut settings = ctx.settings(&namespace, &[("--queue-type", "classic")])?;
    let scratch = Scratch::create(ctx, "lag").await?;
    settings.database_url.clone_from(&scratch.url);
    let result = measure(ctx, &settings, &scratch.pool).await;
    let mut queues = registry::NAMES.to_vec();
    queues.push(RTT);
    let cleaned = delete_topology(&settings.broker, &queues).await;
    let dropped = scratch.drop().await;
    let rows = result?;
    cleaned?;
    dropped?;
    Ok(rows)
}

async fn measure(ctx: &Ctx, settings: &Settings, pool: &PgPool) -> anyhow::Result<Vec<Row>> {
    let parts = Parts {
        relay: true,
        projections: true,
        ..Parts::NONE
    };
    // The watcher's own connection: commands queueing for the pool must not delay (or time out)
    // the observation.
    let watch_pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&settings.database_url)
        .await?;
    let platform = app::start(settings, parts).await?;
    let result = async {
        wait_until_live(pool).await?;
        let products = warm_up(ctx, pool).await?;
        // A low rate first (what the pipeline costs when it keeps up), then the target rate.
        let low = load(ctx, pool, &watch_pool, &products, LOW_RATE, ctx.pick(3, 20)).await?;
        let high = load(ctx, pool, &watch_pool, &products, RATE, ctx.pick(10, 60)).await?;
        anyhow::Ok([(LOW_RATE, low), (RATE, high)])
    }
    .await;
    platform.stop().await;
    watch_pool.close().await;
    let loads = result?;

    let raw_seconds = ctx.pick(3, 20);
    ctx.progress(&format!(
        "lag baseline: RabbitMQ round trips at {RATE}/s for {raw_seconds} s"
    ));
    let (raw, raw_elapsed) = round_trips(&settings.broker, RATE * raw_seconds).await?;
    let raw_p99 = percentile(&sorted_ms(&raw), 99.0);

    let mut rows = Vec::new();
    for (rate, load) in loads {
        let p99 = percentile(&sorted_ms(&load.lags), 99.0);
        let achieved = load.lags.len() as f64 / load.elapsed.as_secs_f64().max(1e-3);
        let met = p99 < 100.0 && achieved >= f64::from(RATE) * 0.95 && load.unresolved == 0;
        let commands = sorted_ms(&load.commands);
        let seen = load.lags.len() - load.unresolved;
        let kept = seen as f64 / load.until_visible.as_secs_f64().max(1e-3);
        let note = format!(
            "p99 {p99:.1} ms = {:.1}× raw p99; {achieved:.0} events/s achieved of {rate} offered; \
             read model kept pace at {kept:.0} events/s; \
             command p50/p99 {:.1}/{:.1} ms; {} failed{}; {} not visible in time (counted \
             at the lag they had); relay + {} projections, classic queues",
            p99 / raw_p99.max(1e-3),
            percentile(&commands, 50.0),
            percentile(&commands, 99.0),
            load.failures.count,
            load.failures
                .first
                .as_ref()
                .map_or(String::new(), |e| format!(" (first: {e})")),
            load.unresolved,
            registry::NAMES.len(),
        );
        let row = Row::measured(
            "lag",
            &format!("{PROJECTION} read model, {rate} events/s"),
            "events/s",
            load.lags.len() as u64,
            load.elapsed,
            &load.lags,
        )
        .with_baseline(
            &format!("RabbitMQ publish→consume, {RATE} msg/s"),
            raw.len() as u64,
            raw_elapsed,
            &raw,
        )
        .with_note(note);
        // The target is stated at 500 events/s; the low rate is for reference.
        rows.push(if rate == RATE {
            row.with_target("p99 < 100 ms at 500 events/s", met)
        } else {
            row
        });
    }
    Ok(rows)
}

/// What the steady load saw.
struct Load {
    /// Commit → visible, per command.
    lags: Vec<Duration>,
    /// Dispatch time per command.
    commands: Vec<Duration>,
    /// Time the load ran.
    elapsed: Duration,
    /// Commands that failed.
    failures: Failures,
    /// Writes never seen in the read model.
    unresolved: usize,
    /// From the start of the load until the last write seen became visible.
    until_visible: Duration,
}

/// Creates the inventories of [`PRODUCTS`] products and waits until the projection has them.
async fn warm_up(ctx: &Ctx, pool: &PgPool) -> anyhow::Result<Arc<Vec<Uuid>>> {
    ctx.progress(&format!("lag: warm-up, {PRODUCTS} inventories"));
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
    let products: Vec<Uuid> = (0..PRODUCTS).map(|_| Uuid::new_v4()).collect();
    let mut last = Position::START;
    for product in &products {
        last = last.max(adjust(&dispatcher, *product, "warm-up").await?.0);
    }
    anyhow::ensure!(
        commerce_projections::wait::wait_for(pool, &[PROJECTION], last, Duration::from_secs(30))
            .await?,
        "the {PROJECTION} projection did not catch up with the warm-up"
    );
    Ok(Arc::new(products))
}

/// `rate` commands a second for `seconds`, each waited for in the read model.
async fn load(
    ctx: &Ctx,
    pool: &PgPool,
    watch_pool: &PgPool,
    products: &Arc<Vec<Uuid>>,
    rate: u32,
    seconds: u32,
) -> anyhow::Result<Load> {
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
    ctx.progress(&format!(
        "lag: {rate} AdjustStock/s for {seconds} s, each waited for in the read model"
    ));
    let (tx, rx) = mpsc::unbounded_channel::<(Position, Instant)>();
    let drain = Duration::from_secs(seconds.into()) + DRAIN_EXTRA;
    let watcher = tokio::spawn(watch(watch_pool.clone(), rx, drain));
    let mut failures = Failures::default();
    let mut tasks: JoinSet<Result<Duration, String>> = JoinSet::new();
    let mut commands = Vec::new();
    let mut interval = tokio::time::interval(Duration::from_secs(1) / rate);
    interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let total = rate * seconds;
    let started = Instant::now();
    let mut last_report = Instant::now();
    for i in 0..total {
        interval.tick().await;
        let (dispatcher, products, tx) = (dispatcher.clone(), Arc::clone(products), tx.clone());
        tasks.spawn(async move {
            let product = products[i as usize % products.len()];
            let sent = Instant::now();
            match adjust(&dispatcher, product, &format!("lag-{i}")).await {
                Ok((position, committed)) => {
                    let _ = tx.send((position, committed));
                    Ok(committed - sent)
                }
                Err(error) => Err(format!("{error:#}")),
            }
        });
        while let Some(done) = tasks.try_join_next() {
            failures.collect(done, &mut commands);
        }
        if last_report.elapsed() >= Duration::from_secs(3) {
            last_report = Instant::now();
            ctx.progress(&format!(
                "lag: {}/{total} sent, {} in flight",
                i + 1,
                tasks.len()
            ));
        }
    }
    while let Some(done) = tasks.join_next().await {
        failures.collect(done, &mut commands);
    }
    let elapsed = started.elapsed();
    drop(tx);
    let (lags, unresolved, last_seen) = watcher.await??;
    Ok(Load {
        lags,
        commands,
        elapsed,
        failures,
        unresolved,
        until_visible: last_seen.saturating_duration_since(started),
    })
}

/// Commands that failed, and why the first did.
#[derive(Debug, Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

impl Failures {
    /// Records a finished command: its dispatch time, or its failure.
    fn collect(
        &mut self,
        done: Result<Result<Duration, String>, tokio::task::JoinError>,
        commands: &mut Vec<Duration>,
    ) {
        match done {
            Ok(Ok(took)) => commands.push(took),
            Ok(Err(error)) => {
                self.count += 1;
                self.first.get_or_insert(error);
            }
            Err(error) => {
                self.count += 1;
                self.first.get_or_insert(error.to_string());
            }
        }
    }
}

/// Adds one unit to `product`'s stock; returns the event's position and when it was committed.
async fn adjust(
    dispatcher: &Dispatcher,
    product: Uuid,
    correlation: &str,
) -> anyhow::Result<(Position, Instant)> {
    let command = InventoryCommand::AdjustStock {
        product_id: product,
        adjustment: StockAdjustment::Add(1),
        reason: Some("bench".to_owned()),
        at: Utc::now(),
    };
    let metadata = EventMetadata::new("bench", correlation);
    let executed = dispatcher
        .execute::<Inventory>(&product.to_string(), command, &metadata)
        .await?;
    let committed = Instant::now();
    let position = executed
        .position
        .ok_or_else(|| anyhow::anyhow!("AdjustStock wrote nothing"))?;
    Ok((position, committed))
}

/// Waits until every projection has caught up and follows its queue.
async fn wait_until_live(pool: &PgPool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let live: i64 =
            sqlx::query_scalar("SELECT count(*) FROM consumer_checkpoints WHERE status = 'LIVE'")
                .fetch_one(pool)
                .await?;
        if live >= registry::NAMES.len() as i64 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {live} projections live after 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Resolves pending writes as the projection's checkpoint passes them; returns the lags, how
/// many writes were still pending `drain` after the last one arrived (their lag is counted as
/// of then: a lower bound), and when the last write seen became visible.
async fn watch(
    pool: PgPool,
    mut rx: mpsc::UnboundedReceiver<(Position, Instant)>,
    drain: Duration,
) -> anyhow::Result<(Vec<Duration>, usize, Instant)> {
    let mut last_seen = Instant::now();
    let mut pending: BTreeMap<Position, Vec<Instant>> = BTreeMap::new();
    let mut lags = Vec::new();
    let mut closed_at: Option<Instant> = None;
    loop {
        loop {
            match rx.try_recv() {
                Ok((position, committed)) => pending.entry(position).or_default().push(committed),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed_at.get_or_insert_with(Instant::now);
                    break;
                }
            }
        }
        if !pending.is_empty() {
            let (tx, pos): (i64, i64) = sqlx::query_as(
                "SELECT transaction_id, global_position FROM consumer_checkpoints WHERE name = $1",
            )
            .bind(PROJECTION)
            .fetch_one(&pool)
            .await?;
            let reached = Position::new(tx, pos);
            let now = Instant::now();
            while let Some(entry) = pending.first_entry() {
                if *entry.key() > reached {
                    break;
                }
                lags.extend(entry.remove().into_iter().map(|t| now - t));
                last_seen = now;
            }
        }
        if let Some(closed) = closed_at {
            if pending.is_empty() || closed.elapsed() > drain {
                let now = Instant::now();
                let unresolved = pending.values().map(Vec::len).sum();
                lags.extend(pending.into_values().flatten().map(|t| now - t));
                return Ok((lags, unresolved, last_seen));
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `count` persistent messages at [`RATE`]/s through the exchange to a queue consumed on another
/// connection; the publish → delivery time of each, and the time the publishing took.
async fn round_trips(
    broker: &BrokerConfig,
    count: u32,
) -> anyhow::Result<(Vec<Duration>, Duration)> {
    let publisher = broker.connect("bench-rtt-pub").await?;
    let subscriber = broker.connect("bench-rtt-sub").await?;
    let out = publisher.create_channel().await?;
    out.confirm_select(ConfirmSelectOptions::default()).await?;
    let inbox = subscriber.create_channel().await?;
    inbox.basic_qos(256, BasicQosOptions::default()).await?;
    let key = "Bench.RoundTrip";
    let queue = declare_classic_queue(broker, &inbox, RTT, key).await?;
    let mut consumer = inbox
        .basic_consume(
            queue.as_str().into(),
            "bench-rtt".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let base = Instant::now();
    let expected = count as usize;
    let receiver = tokio::spawn(async move {
        let mut lags = Vec::with_capacity(expected);
        while lags.len() < expected {
            let Ok(Some(delivery)) =
                tokio::time::timeout(Duration::from_secs(10), consumer.next()).await
            else {
                break;
            };
            let delivery = delivery?;
            let sent = delivery
                .data
                .first_chunk::<8>()
                .map_or(0, |b| u64::from_le_bytes(*b));
            lags.push(base.elapsed().saturating_sub(Duration::from_nanos(sent)));
            delivery.ack(BasicAckOptions::default()).await?;
        }
        anyhow::Ok(lags)
    });

    let exchange = broker.exchange();
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into());
    let mut body = vec![b'x'; 600];
    let mut confirms = Vec::with_capacity(expected);
    let mut interval = tokio::time::interval(Duration::from_secs(1) / RATE);
    interval.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    for _ in 0..count {
        interval.tick().await;
        let sent = u64::try_from(base.elapsed().as_nanos())?;
        body[..8].copy_from_slice(&sent.to_le_bytes());
        confirms.push(
            out.basic_publish(
                exchange.as_str().into(),
                key.into(),
                BasicPublishOptions::default(),
                &body,
                properties.clone(),
            )
            .await?,
        );
    }
    let elapsed = started.elapsed();
    for confirm in confirms {
        anyhow::ensure!(confirm.await?.is_ack(), "the broker nacked a message");
    }
    let lags = receiver.await??;
    let _ = publisher.close(200, "bench done".into()).await;
    let _ = subscriber.close(200, "bench done".into()).await;
    anyhow::ensure!(
        lags.len() == expected,
        "{} of {expected} round trips arrived",
        lags.len()
    );
    Ok((lags, elapsed))
}
