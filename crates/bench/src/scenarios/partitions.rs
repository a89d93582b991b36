//! Scenario `partitions`: how fast the `inventory` projection works off a backlog in its queue,
//! run as one consumer and as 4 partitions (`project --only inventory --partitions 4`), on the
//! same machine.
//!
//! Each variant gets a scratch database and a fresh namespace. Its consumer (or partitions) runs
//! once on the empty log, which declares the queues (and splits the group), and is stopped. Then
//! `AdjustStock` commands over 1,000 products append the backlog (full: 30,000 events; quick:
//! 6,000) while the relay publishes it into the queues. The consumer (or the 4 partitions, in
//! this one process) starts again, and the time until the projection has applied the log's head
//! (for partitions: every partition has) is the figure: events applied per second.
//!
//! Baseline: the one-consumer row; the 4-partition row's ratio is its speed-up. Both are bound
//! by Postgres on this machine's 2 cores, where the consumer, RabbitMQ and Postgres share them.

use std::time::{Duration, Instant};

use chrono::Utc;
use commerce_commands::Dispatcher;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_event_store::broker::partition_name;
use commerce_event_store::relay::relay_cursor;
use commerce_event_store::{
    checkpoint, ConsumerState, EventMetadata, EventStore, LogReader, Relay, RelayConfig,
};
use commerce_projections::registry;
use futures::StreamExt;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::relay::{delete_topology, Scratch};
use crate::ctx::Ctx;
use crate::report::Row;

const PROJECTION: &str = "inventory";
const PRODUCTS: usize = 1_000;
const PARTITIONS: u32 = 4;
/// Commands in flight while the backlog is appended.
const WRITERS: usize = 16;

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let events = ctx.pick(6_000, 30_000);
    let one = drain(ctx, None, events).await?;
    let four = drain(ctx, Some(PARTITIONS), events).await?;
    let note = |what: &str| {
        format!(
            "{events} StockAdjusted over {PRODUCTS} products already in the queue(s) when the \
             clock starts; {what}; 2 cores shared with Postgres and RabbitMQ"
        )
    };
    let baseline = "1 consumer";
    Ok(vec![
        Row::measured(
            "partitions",
            &format!("{PROJECTION} backlog drain, 1 consumer"),
            "events/s",
            events as u64,
            one,
            &[],
        )
        .with_note(note("one single-active-consumer queue")),
        Row::measured(
            "partitions",
            &format!("{PROJECTION} backlog drain, {PARTITIONS} partitions"),
            "events/s",
            events as u64,
            four,
            &[],
        )
        .with_baseline(baseline, events as u64, one, &[])
        .with_note(note(
            "4 partition queues behind the consistent-hash exchange, all 4 in this process",
        )),
    ])
}

/// Appends `events` while the projection is stopped, then times it working them off.
async fn drain(ctx: &Ctx, partitions: Option<u32>, events: usize) -> anyhow::Result<Duration> {
    let label = partitions.map_or("1".to_owned(), |n| n.to_string());
    let namespace = ctx.fresh_namespace();
    let settings = ctx.settings(&namespace, &[("--queue-type", "classic")])?;
    let scratch = Scratch::create(ctx, &format!("partitions{label}")).await?;
    let pool = scratch.pool.clone();
    let broker = settings.broker.clone();
    let shutdown = CancellationToken::new();
    let result = async {
        // First run on the empty log: declares the queue(s) (and splits the group).
        let first = shutdown.child_token();
        let mut tasks = start(&pool, &settings, partitions, &first).await?;
        wait_live(&pool, partitions).await?;
        first.cancel();
        while tasks.join_next().await.is_some() {}

        let relay = Relay::new(pool.clone(), broker.clone(), RelayConfig::default());
        let relay_token = shutdown.child_token();
        let relay_task = tokio::spawn(relay.run(relay_token.clone()));
        append(ctx, &pool, events, &label).await?;
        let log = LogReader::new(pool.clone());
        let head = log.head().await?;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let published = relay_cursor(&pool, &broker.namespace).await?;
            if published.is_some_and(|(position, _)| position >= head) {
                break;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the relay did not publish the backlog"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        relay_token.cancel();
        let _ = relay_task.await;

        ctx.progress(&format!(
            "partitions: {label} consumer(s) working off {events} events"
        ));
        let second = shutdown.child_token();
        let started = Instant::now();
        let mut tasks = start(&pool, &settings, partitions, &second).await?;
        let mut last_report = Instant::now();
        loop {
            if commerce_projections::wait::wait_for(
                &pool,
                &[PROJECTION],
                head,
                Duration::from_millis(5),
            )
            .await?
            {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "the backlog was not worked off in 10 minutes"
            );
            if last_report.elapsed() >= Duration::from_secs(2) {
                last_report = Instant::now();
                let applied: i64 = sqlx::query_scalar(
                    "SELECT coalesce(sum(applied), 0)::bigint FROM consumer_checkpoints \
                     WHERE name = $1 OR partition_of = $1",
                )
                .bind(PROJECTION)
                .fetch_one(&pool)
                .await?;
                ctx.progress(&format!("partitions: {label}: {applied} applied in all"));
            }
        }
        let elapsed = started.elapsed();
        second.cancel();
        while tasks.join_next().await.is_some() {}
        anyhow::Ok(elapsed)
    }
    .await;
    shutdown.cancel();
    let mut queues: Vec<String> = vec![PROJECTION.to_owned()];
    queues.extend((0..PARTITIONS).map(|k| partition_name(PROJECTION, k)));
    let queues: Vec<&str> = queues.iter().map(String::as_str).collect();
    let cleaned = cleanup(&settings.broker, &queues).await;
    let dropped = scratch.drop().await;
    let elapsed = result?;
    cleaned?;
    dropped?;
    Ok(elapsed)
}

async fn start(
    pool: &PgPool,
    settings: &commerce::config::Settings,
    partitions: Option<u32>,
    token: &CancellationToken,
) -> anyhow::Result<JoinSet<()>> {
    let mut tasks = JoinSet::new();
    match partitions {
        None => registry::spawn(
            &mut tasks,
            pool,
            None,
            &settings.broker,
            Some(PROJECTION),
            token,
        )?,
        Some(count) => {
            let indexes: Vec<u32> = (0..count).collect();
            registry::spawn_partitions(
                &mut tasks,
                pool,
                None,
                &settings.broker,
                PROJECTION,
                count,
                &indexes,
                token,
            )
            .await?;
        }
    }
    Ok(tasks)
}

/// Waits until the consumer (every partition) is LIVE.
async fn wait_live(pool: &PgPool, partitions: Option<u32>) -> anyhow::Result<()> {
    let want = partitions.map_or(1, |n| n as usize);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let live = checkpoint::consumer_statuses(pool)
            .await?
            .into_iter()
            .filter(|s| {
                s.status == ConsumerState::Live
                    && (s.name == PROJECTION || s.partition_of.as_deref() == Some(PROJECTION))
            })
            .count();
        if live >= want {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "{PROJECTION} never went LIVE");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `events` `AdjustStock` commands over [`PRODUCTS`] products, [`WRITERS`] at a time.
async fn append(ctx: &Ctx, pool: &PgPool, events: usize, label: &str) -> anyhow::Result<()> {
    ctx.progress(&format!(
        "partitions: {label}: appending {events} events while the projection is stopped"
    ));
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
    let products: Vec<Uuid> = (0..PRODUCTS).map(|_| Uuid::new_v4()).collect();
    let mut done = 0_usize;
    let mut last_report = Instant::now();
    let mut commands = futures::stream::iter(0..events)
        .map(|i| {
            let dispatcher = dispatcher.clone();
            let product = products[i % PRODUCTS];
            async move {
                let command = InventoryCommand::AdjustStock {
                    product_id: product,
                    adjustment: StockAdjustment::Add(1),
                    reason: Some("bench".to_owned()),
                    at: Utc::now(),
                };
                let metadata = EventMetadata::new("bench", format!("partitions-{i}"));
                dispatcher
                    .execute::<Inventory>(&product.to_string(), command, &metadata)
                    .await
            }
        })
        .buffer_unordered(WRITERS);
    while let Some(executed) = commands.next().await {
        executed?;
        done += 1;
        if last_report.elapsed() >= Duration::from_secs(3) {
            last_report = Instant::now();
            ctx.progress(&format!("partitions: {label}: {done}/{events} appended"));
        }
    }
    Ok(())
}

/// Deletes the queues, the namespace's exchange and the partition exchange.
async fn cleanup(
    broker: &commerce_event_store::BrokerConfig,
    queues: &[&str],
) -> anyhow::Result<()> {
    let connection = broker.connect("bench-cleanup").await?;
    let channel = connection.create_channel().await?;
    let _ = channel
        .exchange_delete(
            broker.partition_exchange(PROJECTION).as_str().into(),
            Default::default(),
        )
        .await;
    let _ = connection.close(200, "bench cleanup".into()).await;
    delete_topology(broker, queues).await
}
