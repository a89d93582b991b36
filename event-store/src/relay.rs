//! The relay: tails the log and publishes every event to RabbitMQ (guarantee 3).
//!
//! The `events` table is the outbox. The relay reads it in cursor order, publishes each event as a
//! persistent message with publisher confirms, and stores its cursor only after the broker
//! confirmed the whole batch: at-least-once, never a lost event. One relay per namespace is active,
//! holding a Postgres advisory lock on a dedicated connection (the cursor is saved through that
//! connection, so a relay that lost its lock cannot save); the others stand by and take over when
//! the lock is released (process death closes the connection, which releases it).

use std::time::{Duration, Instant};

use chrono::SecondsFormat;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel};
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use crate::backoff::{sleep_or_shutdown, stand_by_for_lock, Backoff};
use crate::{trace, BrokerConfig, BrokerError, LogReader, Position, StoreError, StoredEvent};

/// The routing key of the position markers the relay sends after each batch. Every consumer queue
/// is bound to it, so a consumer learns it has seen everything up to a position even when none of
/// the events were for it.
pub const POSITION_MARKER_KEY: &str = "_log.position";

/// How often an idle relay proves its lock connection alive.
const LOCK_CHECK_EVERY: Duration = Duration::from_secs(1);

/// Tuning of the relay.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Events read and published per round.
    pub batch_size: i64,
    /// Pause when the log has nothing new.
    pub poll_interval: Duration,
    /// Pause between attempts to take the lock while another relay is active.
    pub standby_interval: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(10),
            standby_interval: Duration::from_millis(500),
        }
    }
}

/// Why one relay session ended.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// Postgres failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// RabbitMQ failed.
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

impl From<sqlx::Error> for RelayError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

impl From<lapin::Error> for RelayError {
    fn from(e: lapin::Error) -> Self {
        Self::Broker(BrokerError::Amqp(e))
    }
}

/// Publishes the log to `<ns>.events`.
#[derive(Debug, Clone)]
pub struct Relay {
    pool: PgPool,
    broker: BrokerConfig,
    config: RelayConfig,
}

impl Relay {
    /// A relay over `pool`'s log, publishing to `broker`'s namespace.
    pub fn new(pool: PgPool, broker: BrokerConfig, config: RelayConfig) -> Self {
        Self {
            pool,
            broker,
            config,
        }
    }

    /// Runs until `shutdown`: stands by for the lock, publishes, and after any failure of Postgres
    /// or RabbitMQ reconnects with backoff and resumes from the stored cursor.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !shutdown.is_cancelled() {
            match self.session(&shutdown, &mut backoff).await {
                Ok(()) => break,
                Err(error) => {
                    metrics::gauge!("relay_active").set(0.0);
                    metrics::counter!("relay_errors_total").increment(1);
                    tracing::warn!(%error, "relay interrupted; reconnecting");
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                }
            }
        }
        metrics::gauge!("relay_active").set(0.0);
        tracing::info!("relay stopped");
    }

    /// One session: take the lock, connect to the broker, publish until an error or shutdown.
    async fn session(
        &self,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), RelayError> {
        let mut lock_conn = self.pool.acquire().await?.detach();
        let lock_name = format!("commerce-relay:{}", self.broker.namespace);
        let standby = self.config.standby_interval;
        if !stand_by_for_lock(&mut lock_conn, &lock_name, standby, shutdown).await? {
            return Ok(());
        }
        tracing::info!(namespace = %self.broker.namespace, "relay active");

        let connection = self.broker.connect("relay").await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.broker.declare_exchange(&channel).await?;
        metrics::gauge!("relay_active").set(1.0);

        let mut cursor = load_cursor(&mut lock_conn, &self.broker.namespace).await?;
        let log = LogReader::new(self.pool.clone());
        let exchange = self.broker.exchange();
        let mut lock_checked = Instant::now();
        loop {
            if shutdown.is_cancelled() {
                let _ = lock_conn.close().await;
                let _ = connection.close(200, "shutdown".into()).await;
                return Ok(());
            }
            let batch = log.read_after(cursor, self.config.batch_size).await?;
            let Some(last) = batch.last() else {
                // Idle: prove the lock connection is alive (about once a second), so a dead one,
                // and with it the lost lock, is noticed early.
                if lock_checked.elapsed() >= LOCK_CHECK_EVERY {
                    sqlx::query("SELECT 1").execute(&mut lock_conn).await?;
                    lock_checked = Instant::now();
                }
                sleep_or_shutdown(self.config.poll_interval, shutdown).await;
                continue;
            };
            let last = last.position;
            publish_batch(&channel, &exchange, &batch).await?;
            save_cursor(&mut lock_conn, &self.broker.namespace, last, batch.len()).await?;
            lock_checked = Instant::now();
            cursor = last;
            backoff.reset();
            metrics::counter!("relay_published_total").increment(batch.len() as u64);
            metrics::gauge!("relay_position").set(last.global_position as f64);
            if let Some(newest) = batch.iter().map(|e| e.recorded_at).max() {
                let lag = (chrono::Utc::now() - newest).num_milliseconds().max(0);
                metrics::gauge!("relay_lag_seconds").set(lag as f64 / 1000.0);
            }
        }
    }
}

/// Publishes every event of `batch`, then a position marker, and waits for all confirms.
async fn publish_batch(
    channel: &Channel,
    exchange: &str,
    batch: &[StoredEvent],
) -> Result<(), RelayError> {
    let mut confirms = Vec::with_capacity(batch.len() + 1);
    for event in batch {
        let body = serde_json::to_vec(event).map_err(StoreError::Serde)?;
        // Ends once the broker confirmed: a child of the trace that appended the event.
        let span = trace::publish_span(exchange, event);
        let confirm = channel
            .basic_publish(
                exchange.into(),
                event.routing_key().into(),
                BasicPublishOptions::default(),
                &body,
                properties(event),
            )
            .instrument(span.clone())
            .await?;
        confirms.push((event.event_id.to_string(), confirm, span));
    }
    if let Some(last) = batch.last() {
        let marker = serde_json::to_vec(&last.position).map_err(StoreError::Serde)?;
        let confirm = channel
            .basic_publish(
                exchange.into(),
                POSITION_MARKER_KEY.into(),
                BasicPublishOptions::default(),
                &marker,
                // Transient: a marker lost with a broker restart costs nothing (every consumer
                // reconnects and catches up from the log), and persisting one to every queue on
                // every batch is disk work for no guarantee.
                BasicProperties::default()
                    .with_delivery_mode(1)
                    .with_content_type("application/json".into())
                    .with_type(POSITION_MARKER_KEY.into()),
            )
            .await?;
        confirms.push((format!("marker {}", last.position), confirm, Span::none()));
    }
    for (id, confirm, span) in confirms {
        if !confirm.instrument(span).await?.is_ack() {
            return Err(BrokerError::Nacked(id).into());
        }
    }
    Ok(())
}

/// The AMQP properties the relay publishes `event` with: persistent, JSON, message id = event
/// id, and the position, aggregate, version, type, correlation and time as headers. Public so a
/// benchmark can publish raw messages identical to the relay's.
pub fn properties(event: &StoredEvent) -> BasicProperties {
    let mut headers = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    headers.insert("position".into(), text(&event.position.token()));
    headers.insert("aggregate_type".into(), text(&event.aggregate_type));
    headers.insert("aggregate_id".into(), text(&event.aggregate_id));
    headers.insert("version".into(), AMQPValue::LongLongInt(event.sequence));
    headers.insert("event_type".into(), text(&event.event_type));
    headers.insert(
        "correlation_id".into(),
        text(&event.metadata.correlation_id),
    );
    headers.insert(
        "recorded_at".into(),
        text(
            &event
                .recorded_at
                .to_rfc3339_opts(SecondsFormat::Micros, true),
        ),
    );
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(ShortString::from(event.event_id.to_string()))
        .with_correlation_id(ShortString::from(event.metadata.correlation_id.as_str()))
        .with_type(ShortString::from(event.event_type.as_str()))
        .with_timestamp(u64::try_from(event.recorded_at.timestamp()).unwrap_or(0))
        .with_headers(headers)
}

async fn load_cursor(conn: &mut PgConnection, name: &str) -> Result<Position, sqlx::Error> {
    sqlx::query(
        "INSERT INTO relay_cursors (name, transaction_id, global_position) VALUES ($1, 0, 0) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .execute(&mut *conn)
    .await?;
    let (tx, pos): (i64, i64) =
        sqlx::query_as("SELECT transaction_id, global_position FROM relay_cursors WHERE name = $1")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
    Ok(Position::new(tx, pos))
}

async fn save_cursor(
    conn: &mut PgConnection,
    name: &str,
    position: Position,
    published: usize,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE relay_cursors SET transaction_id = $2, global_position = $3, \
         published = published + $4, updated_at = now() WHERE name = $1",
    )
    .bind(name)
    .bind(position.transaction_id)
    .bind(position.global_position)
    .bind(published as i64)
    .execute(conn)
    .await?;
    Ok(())
}

/// The relay's stored cursor for `namespace` and how many messages it has published.
pub async fn relay_cursor(
    pool: &PgPool,
    namespace: &str,
) -> Result<Option<(Position, i64)>, StoreError> {
    let row: Option<(i64, i64, i64)> = sqlx::query_as(
        "SELECT transaction_id, global_position, published FROM relay_cursors WHERE name = $1",
    )
    .bind(namespace)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(tx, pos, n)| (Position::new(tx, pos), n)))
}
