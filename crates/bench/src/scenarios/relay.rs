//! Scenario `relay`: events per second from the log to RabbitMQ.
//!
//! N events (quick 20,000, full 200,000; the realistic product/stock/order mix of
//! [`super::mix::generate_events`]) are bulk-inserted, unmeasured, into the log of a scratch
//! database ([`Scratch`]: later scenarios start relays on fresh namespaces of the bench database,
//! which must not have to republish these). Then the project's [`Relay`] (default
//! [`RelayConfig`]: batches of 500) starts on a fresh namespace, and we time until its stored
//! cursor ([`relay_cursor`]) reaches the log's head.
//!
//! Baseline: the same messages published raw. Every event is read and turned, before the clock
//! starts, into exactly what the relay sends (body = the event's JSON, routing key
//! `<Aggregate>.<Event>`, the same headers and properties, persistent); then they are published
//! on one confirm channel with the relay's strategy: a batch of 500, a position marker, then a
//! wait for every confirm of the batch. So the ratio is the cost of reading the log, encoding and
//! storing the cursor, over the broker's own cost. Half the raw batches are published before the
//! relay runs and half after, so a drift in the (shared) machine's load weighs on both alike. In both runs a classic durable queue bound to
//! `#` on the exchange receives and persists every message; it is purged between the runs and
//! deleted with the exchange at the end.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use commerce_event_store::relay::{relay_cursor, POSITION_MARKER_KEY};
use commerce_event_store::{BrokerConfig, LogReader, Position, QueueType, Relay, RelayConfig};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgPool};
use tokio_util::sync::CancellationToken;

use crate::ctx::Ctx;
use crate::report::Row;

/// The queue that receives every message of the namespace's exchange.
const SINK: &str = "bench-sink";

/// A database of its own on the bench's Postgres server (migrated), dropped at the end: keeps
/// generated data and scenario side effects away from the bench database the other scenarios
/// share.
#[derive(Debug)]
pub(super) struct Scratch {
    /// Its URL.
    pub(super) url: String,
    /// A pool on it.
    pub(super) pool: PgPool,
    name: String,
    admin: PgConnectOptions,
}

impl Scratch {
    /// Creates and migrates `<bench database>_<suffix>`.
    pub(super) async fn create(ctx: &Ctx, suffix: &str) -> anyhow::Result<Self> {
        let base: PgConnectOptions = ctx.database_url.parse().context("bench database URL")?;
        let name = format!(
            "{}_{suffix}",
            base.get_database().unwrap_or("commerce_bench")
        );
        let url = base.clone().database(&name).to_url_lossy().to_string();
        let pool = commerce_event_store::db::prepare(&url, 20).await?;
        Ok(Self {
            url,
            pool,
            name,
            admin: base.database("postgres"),
        })
    }

    /// Drops the database.
    pub(super) async fn drop(self) -> anyhow::Result<()> {
        self.pool.close().await;
        let mut conn = self.admin.connect().await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

/// Deletes `queues` (`<ns>.<name>`) and the exchange of `broker`'s namespace.
pub(super) async fn delete_topology(broker: &BrokerConfig, queues: &[&str]) -> anyhow::Result<()> {
    let connection = broker.connect("bench-cleanup").await?;
    let channel = connection.create_channel().await?;
    for queue in queues {
        channel
            .queue_delete(
                broker.queue(queue).as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await?;
    }
    channel
        .exchange_delete(
            broker.exchange().as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await?;
    let _ = connection.close(200, "bench cleanup".into()).await;
    Ok(())
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let scratch = Scratch::create(ctx, "relay").await?;
    let broker = BrokerConfig {
        queue_type: QueueType::Classic,
        ..BrokerConfig::new(&ctx.amqp_url, ctx.fresh_namespace())
    };
    let result = measure(ctx, &scratch.pool, &broker).await;
    let cleaned = delete_topology(&broker, &[SINK]).await;
    let dropped = scratch.drop().await;
    let rows = result?;
    cleaned?;
    dropped?;
    Ok(rows)
}

async fn measure(ctx: &Ctx, pool: &PgPool, broker: &BrokerConfig) -> anyhow::Result<Vec<Row>> {
    let n = ctx.pick(20_000, 200_000);
    super::mix::generate_events(ctx, pool, n).await?;
    let log = LogReader::new(pool.clone());
    let head = log.head().await?;
    let config = RelayConfig::default();
    let batch_size = config.batch_size;
    ctx.progress("relay: preparing the raw messages (not measured)");
    let batches = prepare_messages(&log, batch_size).await?;

    let connection = broker.connect("bench-sink").await?;
    let channel = connection.create_channel().await?;
    let sink = declare_classic_queue(broker, &channel, SINK, "#").await?;
    let purge = || channel.queue_purge(sink.as_str().into(), QueuePurgeOptions::default());
    let publisher = connection.create_channel().await?;
    publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;

    // The baseline runs half before and half after the relay, so a change in the machine's load
    // (it is shared) weighs on both figures alike.
    let (first, second) = batches.split_at(batches.len() / 2);
    ctx.progress("relay baseline: first half");
    let (mut raw_events, mut raw_elapsed) = publish_raw(ctx, broker, &publisher, first).await?;
    purge().await?;

    ctx.progress(&format!("relay: publishing {n} events"));
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let task = tokio::spawn(Relay::new(pool.clone(), broker.clone(), config).run(shutdown.clone()));
    let mut last_report = Instant::now();
    let outcome = loop {
        match relay_cursor(pool, &broker.namespace).await {
            Err(error) => break Err(error.into()),
            Ok(Some((position, published))) if position >= head => break Ok(published),
            Ok(progress) => {
                if last_report.elapsed() >= Duration::from_secs(3) {
                    last_report = Instant::now();
                    let done = progress.map_or(0, |(_, p)| p);
                    ctx.progress(&format!("relay: {done}/{n} published"));
                }
            }
        }
        if task.is_finished() {
            break Err(anyhow::anyhow!(
                "the relay stopped before reaching the head"
            ));
        }
        if started.elapsed() > Duration::from_secs(600) {
            break Err(anyhow::anyhow!(
                "the relay did not reach the head in 10 minutes"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let relay_elapsed = started.elapsed();
    shutdown.cancel();
    let _ = task.await;
    let published = outcome?;
    let routed = purge().await?;

    ctx.progress("relay baseline: second half");
    let (events, elapsed) = publish_raw(ctx, broker, &publisher, second).await?;
    raw_events += events;
    raw_elapsed += elapsed;
    purge().await?;
    let _ = connection.close(200, "bench done".into()).await;

    let row = Row::measured(
        "relay",
        &format!("{n} events, batch {batch_size}"),
        "events/s",
        u64::try_from(published)?,
        relay_elapsed,
        &[],
    )
    .with_baseline(
        "raw publish, same messages, confirm per batch",
        raw_events,
        raw_elapsed,
        &[],
    );
    let met = row.ratio.is_some_and(|r| r >= 0.5);
    Ok(vec![row.with_target("≥50% of raw", met).with_note(
        format!(
            "persistent, confirms; classic queue bound to # got {routed} messages (events + \
         markers) from the relay; raw run half before, half after it"
        ),
    )])
}

/// Publishes `batches` on the confirm channel `publisher`, waiting for every confirm of a batch
/// before the next (the relay's strategy); returns the events published (markers excluded) and
/// the time it took.
async fn publish_raw(
    ctx: &Ctx,
    broker: &BrokerConfig,
    publisher: &Channel,
    batches: &[Vec<Message>],
) -> anyhow::Result<(u64, Duration)> {
    let exchange = broker.exchange();
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut events = 0_u64;
    for batch in batches {
        let mut confirms = Vec::with_capacity(batch.len());
        for (key, body, properties) in batch {
            confirms.push(
                publisher
                    .basic_publish(
                        exchange.as_str().into(),
                        key.as_str().into(),
                        BasicPublishOptions::default(),
                        body,
                        properties.clone(),
                    )
                    .await?,
            );
        }
        for confirm in confirms {
            anyhow::ensure!(confirm.await?.is_ack(), "the broker nacked a message");
        }
        // Each batch ends with its position marker, which is not an event.
        events += batch.len() as u64 - 1;
        if last_report.elapsed() >= Duration::from_secs(3) {
            last_report = Instant::now();
            ctx.progress(&format!("relay baseline: {events} published"));
        }
    }
    Ok((events, started.elapsed()))
}

/// Declares the namespace's exchange and a classic durable queue `<ns>.<name>` bound to it with
/// `binding`; returns the queue's name.
pub(super) async fn declare_classic_queue(
    broker: &BrokerConfig,
    channel: &Channel,
    name: &str,
    binding: &str,
) -> anyhow::Result<String> {
    broker.declare_exchange(channel).await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    let queue = broker.queue(name);
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            broker.exchange().as_str().into(),
            binding.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(queue)
}

type Message = (String, Vec<u8>, BasicProperties);

/// Every event of the log as the relay would publish it, in batches of `batch_size`, each
/// followed by its position marker.
async fn prepare_messages(log: &LogReader, batch_size: i64) -> anyhow::Result<Vec<Vec<Message>>> {
    let mut batches = Vec::new();
    let mut cursor = Position::START;
    loop {
        let events = log.read_after(cursor, batch_size).await?;
        let Some(last) = events.last() else {
            return Ok(batches);
        };
        cursor = last.position;
        let mut batch = Vec::with_capacity(events.len() + 1);
        for event in &events {
            batch.push((
                event.routing_key(),
                serde_json::to_vec(event)?,
                commerce_event_store::relay::properties(event),
            ));
        }
        batch.push((
            POSITION_MARKER_KEY.to_owned(),
            serde_json::to_vec(&cursor)?,
            // Transient, as the relay's markers are.
            BasicProperties::default()
                .with_delivery_mode(1)
                .with_content_type("application/json".into())
                .with_type(POSITION_MARKER_KEY.into()),
        ));
        batches.push(batch);
    }
}
