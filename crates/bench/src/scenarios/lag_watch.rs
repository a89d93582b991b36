//! The `lag` scenario's instruments: waiting for the projection to go live, the watcher that
//! resolves each write once the read model shows it, and the raw RabbitMQ round trip.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use commerce_event_store::{BrokerConfig, Position};
use commerce_projections::registry;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use sqlx::PgPool;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use super::lag::{PROJECTION, RATE, RTT};
use super::relay::declare_classic_queue;

/// Waits until every projection has caught up and follows its queue.
pub(super) async fn wait_until_live(pool: &PgPool) -> anyhow::Result<()> {
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
pub(super) async fn watch(
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
pub(super) async fn round_trips(
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
