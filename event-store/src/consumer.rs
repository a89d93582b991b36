//! Durable consumers: what projections and process managers are built on (guarantees 4 and 5).
//!
//! A consumer owns a durable single-active-consumer queue `<ns>.<name>`, bound to its routing keys
//! and to the relay's position markers. Each session binds the queue first, then catches up from
//! the log, then follows the queue, so nothing falls between the two. Every event is applied in a
//! transaction that also locks and advances the consumer's cursor: a redelivered event (at or
//! behind the cursor) is acknowledged and ignored. An event whose handler keeps failing is retried
//! with backoff, then the consumer halts as `FAILED`; it never skips on its own.

use std::future::Future;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::backoff::{sleep_or_shutdown, Backoff};
use crate::checkpoint::{self, ConsumerState, OperatorDecision};
use crate::privacy::{Privacy, PrivacyError};
use crate::relay::POSITION_MARKER_KEY;
use crate::trace::ApplySpans;
use crate::{BrokerConfig, BrokerError, LogReader, Position, StoreError, StoredEvent};

/// How long a run of deliveries that does not end with the relay's position marker waits for the
/// rest of its batch (the marker is published right behind the batch's events).
const REST_OF_BATCH: Duration = Duration::from_millis(2);

/// The error a handler returns; the consumer retries, then halts with its text.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Applies events to a read model or reacts to them (process managers).
pub trait EventHandler: Send + Sync + 'static {
    /// Prepares a consumer session's own connection once, before any transaction on it (e.g.
    /// sets its `search_path` for the session).
    fn prepare_session(
        &self,
        conn: &mut PgConnection,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        let _ = conn;
        async { Ok(()) }
    }

    /// Applies `event` using `conn`, which is inside the transaction that also advances the
    /// cursor: commit and rollback are the consumer's. Only events matching the bindings arrive.
    fn handle(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Applies `events` in order, with the same effect as [`EventHandler::handle`] on each in
    /// turn. The consumer's transaction is the only writer meanwhile. The default is one by one.
    fn handle_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            for event in events {
                self.handle(conn, event).await?;
            }
            Ok(())
        }
    }
}

/// What a consumer is called, what it listens to and how hard it tries.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Queue `<ns>.<name>` and checkpoint name.
    pub name: String,
    /// Topic patterns (`Order.*`, `Inventory.StockReserved`, `#`).
    pub bindings: Vec<String>,
    /// Attempts at one event before halting.
    pub max_attempts: u32,
    /// First wait between attempts; doubles up to `retry_max`.
    pub retry_initial: Duration,
    /// Longest wait between attempts.
    pub retry_max: Duration,
    /// Events per transaction while catching up.
    pub batch_size: i64,
    /// Unacknowledged deliveries in flight.
    pub prefetch: u16,
    /// How often a halted consumer looks for an operator's decision.
    pub operator_poll: Duration,
}

impl ConsumerConfig {
    /// Defaults: 5 attempts from 100 ms to 5 s, batches of 500, prefetch 256.
    pub fn new(
        name: impl Into<String>,
        bindings: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self {
            name: name.into(),
            bindings: bindings.into_iter().map(Into::into).collect(),
            max_attempts: 5,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            batch_size: 500,
            prefetch: 256,
            operator_poll: Duration::from_millis(500),
        }
    }

    /// Whether an event's routing key matches one of the bindings.
    pub fn wants(&self, event: &StoredEvent) -> bool {
        let key = event.routing_key();
        self.bindings.iter().any(|p| topic_matches(p, &key))
    }
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("halted on a failing event")]
    Halted,
    #[error("shutting down")]
    Shutdown,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error("{0}")]
    Other(String),
    /// This unpartitioned consumer's projection now runs as `0` partitions.
    #[error("now runs as {0} partitions")]
    Partitioned(u32),
    /// A configuration that cannot work; retrying would not help.
    #[error("{0}")]
    Misconfigured(String),
}

impl From<sqlx::Error> for SessionError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

impl From<lapin::Error> for SessionError {
    fn from(e: lapin::Error) -> Self {
        Self::Broker(BrokerError::Amqp(e))
    }
}

/// Why applying a batch failed.
enum ApplyError {
    /// The handler refused an event.
    Handler(HandlerError),
    /// Postgres failed around the handler.
    Store(sqlx::Error),
    /// The consumer's row says it now runs as this many partitions: this (unpartitioned)
    /// consumer must not apply anything any more.
    Partitioned(u32),
}

impl ApplyError {
    /// The session's error for anything but a handler's refusal, which callers isolate first.
    fn into_session(self) -> SessionError {
        match self {
            Self::Store(e) => SessionError::from(e),
            Self::Handler(e) => SessionError::Other(e.to_string()),
            Self::Partitioned(n) => SessionError::Partitioned(n),
        }
    }
}

/// Which partition of a partitioned consumer this one is.
#[derive(Debug, Clone)]
struct Partition {
    /// The consumer's own name (`orders`); `config.name` is the partition's (`orders.p0`).
    base: String,
    index: u32,
    count: u32,
}

/// The most partitions a consumer may be split into.
pub const MAX_PARTITIONS: u32 = 64;

/// A partition request that cannot be honoured.
#[derive(Debug, thiserror::Error)]
pub enum PartitionError {
    /// N outside 2..=64.
    #[error(
        "--partitions must be between 2 and {MAX_PARTITIONS} (1 means unpartitioned), not {0}"
    )]
    Count(u32),
    /// K not below N.
    #[error("partition {index} is out of range: with {count} partitions they are 0 to {last}", last = count.saturating_sub(1))]
    Index {
        /// Asked for.
        index: u32,
        /// Of.
        count: u32,
    },
    /// The group already runs with another N.
    #[error(
        "{name} already runs as {running} partitions, not {asked}: start every partition with \
         --partitions {running} (changing the number of partitions is not supported)"
    )]
    Disagree {
        /// The consumer.
        name: String,
        /// Its recorded N.
        running: u32,
        /// The N asked for.
        asked: u32,
    },
    /// Postgres failed while checking.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many partitions consumer `name` runs as (`None`: unpartitioned, or never run).
pub async fn partition_count(pool: &PgPool, name: &str) -> Result<Option<u32>, StoreError> {
    let count: Option<Option<i32>> =
        sqlx::query_scalar("SELECT partitions FROM consumer_checkpoints WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?;
    Ok(count.flatten().and_then(|n| u32::try_from(n).ok()))
}

/// Checks that `count` is a partition count and `index` one of its partitions.
fn validate_partition(count: u32, index: u32) -> Result<(), PartitionError> {
    if !(2..=MAX_PARTITIONS).contains(&count) {
        return Err(PartitionError::Count(count));
    }
    if index >= count {
        return Err(PartitionError::Index { index, count });
    }
    Ok(())
}

/// Checks a request to run partitions `indexes` of `count` against what is recorded, before
/// anything starts: N in range, every K below N, and N the same as the group's if it already
/// runs as partitions (one query). Changes nothing.
pub async fn check_partitions(
    pool: &PgPool,
    name: &str,
    count: u32,
    indexes: &[u32],
) -> Result<(), PartitionError> {
    validate_partition(count, 0)?;
    for index in indexes {
        validate_partition(count, *index)?;
    }
    match partition_count(pool, name).await? {
        Some(running) if running != count => Err(PartitionError::Disagree {
            name: name.to_owned(),
            running,
            asked: count,
        }),
        _ => Ok(()),
    }
}

/// A named, durable, exactly-once-in-effect consumer of the log.
#[derive(Debug)]
pub struct DurableConsumer<H> {
    pool: PgPool,
    broker: BrokerConfig,
    config: ConsumerConfig,
    handler: H,
    log: LogReader,
    /// Opens personal fields before the handler sees them; `None` for handlers that read none.
    privacy: Option<Privacy>,
    /// Set when this consumer is one partition of a partitioned consumer.
    partition: Option<Partition>,
}

impl<H: EventHandler> DurableConsumer<H> {
    /// A consumer applying `handler` to the events of `pool`'s log, delivered through `broker`.
    pub fn new(pool: PgPool, broker: BrokerConfig, config: ConsumerConfig, handler: H) -> Self {
        let log = LogReader::new(pool.clone());
        Self {
            pool,
            broker,
            config,
            handler,
            log,
            privacy: None,
            partition: None,
        }
    }

    /// The same consumer run as partition `index` of `count` (see [`crate::broker`]'s
    /// `declare_partitions`): its checkpoint and queue are `<name>.p<index>`, and it applies the
    /// events of the aggregates RabbitMQ's consistent-hash exchange routes to that queue.
    ///
    /// The first partition to start splits the consumer: under an advisory lock it declares
    /// every partition's queue, catches the consumer's own cursor up with the log (so whatever
    /// was published before the queues existed is applied), then in one transaction gives every
    /// partition that cursor and marks the consumer `PARTITIONED`; an unpartitioned instance
    /// still running stops at its next transaction. From then on a partition reads only its
    /// queue: an event at or behind its cursor is a duplicate, as for any consumer.
    pub fn partitioned(mut self, count: u32, index: u32) -> Result<Self, PartitionError> {
        validate_partition(count, index)?;
        let own = crate::broker::partition_name(&self.config.name, index);
        let base = std::mem::replace(&mut self.config.name, own);
        self.partition = Some(Partition { base, index, count });
        Ok(self)
    }

    /// The same consumer handing its handler events with their personal fields opened (a
    /// destroyed key reads as [`crate::privacy::ERASED`]), from the broker and from the log alike:
    /// the keys are read inside the transaction that applies the events.
    pub fn with_privacy(mut self, privacy: Privacy) -> Self {
        self.privacy = Some(privacy);
        self
    }

    /// Runs until `shutdown`: reconnects after failures, waits for an operator while halted.
    pub async fn run(self, shutdown: CancellationToken) {
        let name = self.config.name.clone();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !shutdown.is_cancelled() {
            // A partition's row is created when the consumer is split, with the cursor it starts
            // from; before that there is none to wait on.
            let ensured = match self.partition {
                None => checkpoint::ensure(&self.pool, &name).await,
                Some(_) => Ok(()),
            };
            let result = match ensured {
                Ok(()) => match self.wait_while_failed(&name, &shutdown).await {
                    Ok(true) => match &self.partition {
                        None => self.session(&shutdown).await,
                        Some(partition) => self.partition_session(partition, &shutdown).await,
                    },
                    Ok(false) => Err(SessionError::Shutdown),
                    Err(e) => Err(e.into()),
                },
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(()) | Err(SessionError::Shutdown) => break,
                Err(SessionError::Halted) => backoff.reset(),
                Err(SessionError::Partitioned(count)) => {
                    tracing::info!(
                        consumer = %name, partitions = count,
                        "this consumer now runs as partitions (`commerce project --only {name} \
                         --partitions {count}`); its unpartitioned instance stops"
                    );
                    self.delete_own_queue().await;
                    break;
                }
                Err(SessionError::Misconfigured(message)) => {
                    tracing::error!(consumer = %name, "{message}");
                    break;
                }
                Err(error) => {
                    metrics::counter!("consumer_errors_total", "consumer" => name.clone())
                        .increment(1);
                    tracing::warn!(consumer = %name, %error, "consumer interrupted; reconnecting");
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                }
            }
        }
        tracing::info!(consumer = %name, "consumer stopped");
    }

    /// Returns once consumer `name` is not `FAILED` (true), or on shutdown (false).
    async fn wait_while_failed(
        &self,
        name: &str,
        shutdown: &CancellationToken,
    ) -> Result<bool, sqlx::Error> {
        loop {
            match checkpoint::take_operator_action(&self.pool, name).await? {
                OperatorDecision::Resume => {
                    metrics::gauge!("consumer_failed", "consumer" => name.to_owned()).set(0.0);
                    return Ok(true);
                }
                OperatorDecision::Waiting => {
                    metrics::gauge!("consumer_failed", "consumer" => name.to_owned()).set(1.0);
                    if !sleep_or_shutdown(self.config.operator_poll, shutdown).await {
                        return Ok(false);
                    }
                }
            }
        }
    }

    async fn session(&self, shutdown: &CancellationToken) -> Result<(), SessionError> {
        let name = &self.config.name;
        if let Some(count) = partition_count(&self.pool, name).await? {
            return Err(SessionError::Partitioned(count));
        }
        let connection = self.broker.connect(name).await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let mut bindings = self.config.bindings.clone();
        bindings.push(POSITION_MARKER_KEY.to_owned());
        // Bind before catching up: whatever the relay publishes from now on waits in the queue.
        let queue = self
            .broker
            .declare_consumer_queue(&channel, name, &bindings)
            .await?;

        let mut db = self.session_connection().await?;
        checkpoint::set_state(&self.pool, name, ConsumerState::CatchingUp).await?;
        self.catch_up(&mut db, name, shutdown).await?;
        checkpoint::set_state(&self.pool, name, ConsumerState::Live).await?;
        tracing::info!(consumer = %name, "caught up; following {queue}");

        let result = self.follow(&mut db, &channel, &queue, 0, shutdown).await;
        let _ = connection.close(200, "consumer session ended".into()).await;
        result
    }

    /// The session's own connection, outside the pool: every run is a transaction on it, and
    /// none pays the pool's acquire and the round trip sqlx spends on every release.
    async fn session_connection(&self) -> Result<PgConnection, SessionError> {
        let mut db = self.pool.acquire().await?.detach();
        self.handler
            .prepare_session(&mut db)
            .await
            .map_err(|e| SessionError::Other(format!("preparing the session failed: {e}")))?;
        Ok(db)
    }

    /// A partition's session: split the consumer if no partition has yet, then follow the
    /// partition's queue (what waits in it is its catch-up).
    async fn partition_session(
        &self,
        partition: &Partition,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let name = &self.config.name;
        let connection = self.broker.connect(name).await?;
        let channel = connection.create_channel().await?;
        channel
            .basic_qos(self.config.prefetch, BasicQosOptions::default())
            .await?;
        let mut db = self.session_connection().await?;
        self.split(&mut db, &channel, partition, shutdown).await?;

        let queue = self.broker.queue(name);
        let backlog = match self.broker.queue_backlog(&connection, name).await? {
            Some(backlog) => backlog,
            None => {
                // Declared again so the events from now on are kept, but those routed while it
                // was gone are lost to it: only a rebuild from the log restores them.
                self.broker
                    .declare_consumer_queue(&channel, name, &[POSITION_MARKER_KEY.to_owned()])
                    .await?;
                let message = format!(
                    "queue {queue} was missing (deleted?): the events routed to it meanwhile are \
                     not in it. Rebuild the projection (`commerce replay {base}`), then \
                     `commerce projections retry {name}`",
                    base = partition.base
                );
                tracing::error!(consumer = %name, "{message}");
                checkpoint::mark_halted(&self.pool, name, &message).await?;
                let _ = connection.close(200, "consumer session ended".into()).await;
                return Err(SessionError::Halted);
            }
        };
        let state = if backlog == 0 {
            ConsumerState::Live
        } else {
            ConsumerState::CatchingUp
        };
        checkpoint::set_state(&self.pool, name, state).await?;
        tracing::info!(
            consumer = %name, partition = partition.index, partitions = partition.count, backlog,
            "following {queue}"
        );
        let result = self
            .follow(&mut db, &channel, &queue, backlog as usize, shutdown)
            .await;
        let _ = connection.close(200, "consumer session ended".into()).await;
        result
    }

    /// Splits the consumer into its partitions unless that has been done (see
    /// [`Self::partitioned`]); refuses if it was split into another number of partitions.
    async fn split(
        &self,
        db: &mut PgConnection,
        channel: &lapin::Channel,
        partition: &Partition,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let base = &partition.base;
        let disagree = |running: u32| {
            SessionError::Misconfigured(
                PartitionError::Disagree {
                    name: base.clone(),
                    running,
                    asked: partition.count,
                }
                .to_string(),
            )
        };
        match partition_count(&self.pool, base).await? {
            Some(running) if running == partition.count => return Ok(()),
            Some(running) => return Err(disagree(running)),
            None => {}
        }
        // One splitter at a time; the lock is the connection's, so it goes with it.
        let mut lock = self.pool.acquire().await?.detach();
        sqlx::query("SELECT pg_advisory_lock(hashtextextended($1, 0))")
            .bind(format!("commerce.partitions.{base}"))
            .execute(&mut lock)
            .await?;
        let split = async {
            match partition_count(&self.pool, base).await? {
                Some(running) if running == partition.count => return Ok(()),
                Some(running) => return Err(disagree(running)),
                None => {}
            }
            checkpoint::ensure(&self.pool, base).await?;
            if !self.wait_while_failed(base, shutdown).await? {
                return Err(SessionError::Shutdown);
            }
            // Queues first: what the relay publishes from now on reaches them; what it
            // published before is in the log, which the consumer's own cursor catches up with.
            self.broker
                .declare_partitions(channel, base, partition.count, &self.config.bindings)
                .await?;
            checkpoint::set_state(&self.pool, base, ConsumerState::CatchingUp).await?;
            self.catch_up(db, base, shutdown).await?;
            let mut tx = db.begin().await?;
            let (cursor, running) = checkpoint::lock(&mut tx, base).await?;
            if let Some(running) = running {
                return Err(disagree(running));
            }
            checkpoint::split(&mut tx, base, partition.count, cursor).await?;
            tx.commit().await?;
            tracing::info!(
                consumer = %base, partitions = partition.count, position = %cursor,
                "split into partitions"
            );
            Ok(())
        }
        .await;
        let _ = lock.close().await;
        split?;
        let _ = channel
            .queue_delete(
                self.broker.queue(base).as_str().into(),
                QueueDeleteOptions::default(),
            )
            .await;
        Ok(())
    }

    /// Deletes this consumer's queue (once it runs as partitions, nobody reads it).
    async fn delete_own_queue(&self) {
        let name = &self.config.name;
        if let Ok(connection) = self.broker.connect(name).await {
            if let Ok(channel) = connection.create_channel().await {
                let _ = channel
                    .queue_delete(
                        self.broker.queue(name).as_str().into(),
                        QueueDeleteOptions::default(),
                    )
                    .await;
            }
            let _ = connection.close(200, "queue deleted".into()).await;
        }
    }

    /// Follows `queue` until shutdown or a failure. The first `backlog` deliveries are the
    /// consumer still catching up (a partition's queue holds its catch-up): once they are
    /// applied, it is `LIVE`.
    async fn follow(
        &self,
        db: &mut PgConnection,
        channel: &lapin::Channel,
        queue: &str,
        mut backlog: usize,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let name = &self.config.name;
        let mut deliveries = channel
            .basic_consume(
                queue.into(),
                format!("{name}-{}", uuid::Uuid::new_v4()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        loop {
            let next = tokio::select! {
                () = shutdown.cancelled() => break Ok(()),
                next = deliveries.next() => next,
            };
            let mut run = match next {
                None => {
                    break Err(SessionError::Other(
                        "the broker cancelled the consumer".into(),
                    ))
                }
                Some(Err(e)) => break Err(e.into()),
                Some(Ok(delivery)) => vec![delivery],
            };
            // Whatever else is already waiting goes into the same transaction and the same ack.
            let mut interrupted = None;
            // The relay ends every batch with a position marker: a run that stops short of one
            // waits a moment for the rest of the batch, so one batch is one transaction here.
            let mut wait_for_marker = true;
            while run.len() < usize::from(self.config.prefetch.max(1)) {
                let ends_with_marker = run
                    .last()
                    .is_some_and(|d| d.routing_key.as_str() == POSITION_MARKER_KEY);
                let next = match deliveries.next().now_or_never() {
                    None if wait_for_marker && !ends_with_marker => {
                        wait_for_marker = false;
                        tokio::time::timeout(REST_OF_BATCH, deliveries.next())
                            .await
                            .ok()
                    }
                    next => next,
                };
                match next {
                    Some(Some(Ok(delivery))) => run.push(delivery),
                    Some(Some(Err(e))) => {
                        interrupted = Some(SessionError::from(e));
                        break;
                    }
                    Some(None) => {
                        interrupted = Some(SessionError::Other(
                            "the broker cancelled the consumer".into(),
                        ));
                        break;
                    }
                    None => break,
                }
            }
            let Some(last) = run.last() else { continue };
            match self.on_deliveries(db, &run, shutdown).await {
                Ok(()) => {
                    last.acker.ack(BasicAckOptions { multiple: true }).await?;
                }
                Err(e) => {
                    // Leave them in the queue; the next session (or a standby) sees them again.
                    let _ = last
                        .acker
                        .nack(BasicNackOptions {
                            multiple: true,
                            requeue: true,
                        })
                        .await;
                    break Err(e);
                }
            }
            if let Some(e) = interrupted {
                break Err(e);
            }
            if backlog > 0 {
                backlog = backlog.saturating_sub(run.len());
                if backlog == 0 {
                    checkpoint::set_state(&self.pool, name, ConsumerState::Live).await?;
                }
            }
        }
    }

    /// Applies a run of deliveries in one transaction; if a handler refuses, one by one with
    /// retries, so the failing event is isolated and named.
    async fn on_deliveries(
        &self,
        db: &mut PgConnection,
        run: &[Delivery],
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let mut events = Vec::with_capacity(run.len());
        let mut marker: Option<Position> = None;
        for delivery in run {
            if delivery.routing_key.as_str() == POSITION_MARKER_KEY {
                // Everything up to this position that matches our bindings came before it.
                match serde_json::from_slice::<Position>(&delivery.data) {
                    Ok(position) => marker = marker.max(Some(position)),
                    Err(_) => tracing::warn!(
                        consumer = %self.config.name, "ignored a malformed position marker"
                    ),
                }
                continue;
            }
            match serde_json::from_slice::<StoredEvent>(&delivery.data) {
                Ok(event) => events.push(event),
                // Not one of the relay's messages: resynchronise from the log rather than guess.
                Err(e) => return Err(SessionError::Other(format!("undecodable message: {e}"))),
            }
        }
        if events.is_empty() {
            // Only markers: nothing to apply, the cursor moves on in one statement.
            if let Some(marker) = marker {
                checkpoint::advance(&mut *db, &self.config.name, marker, 0).await?;
                metrics::gauge!("consumer_position", "consumer" => self.config.name.clone())
                    .set(marker.global_position as f64);
            }
            return Ok(());
        }
        let mut sealed = true;
        let name = &self.config.name;
        match self.apply(db, name, &mut events, &mut sealed, marker).await {
            Ok(()) => Ok(()),
            Err(ApplyError::Handler(_)) => {
                for event in &mut events {
                    self.apply_with_retry(db, name, event, sealed, shutdown)
                        .await?;
                }
                if marker.is_some() {
                    self.apply(db, name, &mut [], &mut false, marker)
                        .await
                        .map_err(ApplyError::into_session)?;
                }
                Ok(())
            }
            Err(other) => Err(other.into_session()),
        }
    }

    /// Applies the log after consumer `name`'s cursor (its own, or, while splitting into
    /// partitions, the consumer's) until the log has nothing more.
    async fn catch_up(
        &self,
        db: &mut PgConnection,
        name: &str,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        loop {
            if shutdown.is_cancelled() {
                return Err(SessionError::Shutdown);
            }
            let cursor = checkpoint::position(&self.pool, name).await?;
            let mut batch = self.log.read_after(cursor, self.config.batch_size).await?;
            if batch.is_empty() {
                return Ok(());
            }
            let mut sealed = true;
            match self.apply(db, name, &mut batch, &mut sealed, None).await {
                Ok(()) => {}
                // Isolate the failing event: apply one by one, with retries.
                Err(ApplyError::Handler(_)) => {
                    for event in &mut batch {
                        self.apply_with_retry(db, name, event, sealed, shutdown)
                            .await?;
                    }
                }
                Err(other) => return Err(other.into_session()),
            }
        }
    }

    /// Applies the events of `batch` after the cursor, and advances it (to `at_least` if that is
    /// further: a position marker), in one transaction. While `sealed`, the events' personal
    /// fields are opened first, in place and in that transaction (then `sealed` turns false, so
    /// a retry of the same events never opens them twice).
    async fn apply(
        &self,
        db: &mut PgConnection,
        name: &str,
        batch: &mut [StoredEvent],
        sealed: &mut bool,
        at_least: Option<Position>,
    ) -> Result<(), ApplyError> {
        let mut tx = db.begin().await.map_err(ApplyError::Store)?;
        let opened = match (&self.privacy, *sealed) {
            (Some(privacy), true) => privacy.open_events(&mut *tx, batch).await,
            _ => Ok(()),
        };
        let done = match opened {
            Ok(()) => {
                *sealed = false;
                self.apply_in(&mut tx, name, batch, at_least).await
            }
            Err(PrivacyError::Database(e)) => Err(ApplyError::Store(e)),
            // An altered key or ciphertext: the event's failure, shown like any other.
            Err(other) => Err(ApplyError::Handler(Box::new(other))),
        };
        let done = match done {
            Ok(done) => done,
            Err(e) => {
                // Rolled back now, not when the session's connection is next used: the failed
                // transaction holds the checkpoint's row lock, which marking the consumer FAILED
                // (on another connection) waits for.
                let _ = tx.rollback().await;
                return Err(e);
            }
        };
        tx.commit().await.map_err(ApplyError::Store)?;
        let (applied, duplicates, last) = done;
        if duplicates > 0 {
            metrics::counter!("consumer_duplicates_ignored_total", "consumer" => name.to_owned())
                .increment(duplicates as u64);
        }
        if applied > 0 {
            metrics::counter!("consumer_events_applied_total", "consumer" => name.to_owned())
                .increment(applied as u64);
        }
        metrics::gauge!("consumer_position", "consumer" => name.to_owned())
            .set(last.global_position as f64);
        Ok(())
    }

    /// [`Self::apply`]'s work inside its transaction: events applied, duplicates ignored and the
    /// new cursor.
    async fn apply_in(
        &self,
        tx: &mut PgConnection,
        name: &str,
        batch: &[StoredEvent],
        at_least: Option<Position>,
    ) -> Result<(usize, usize, Position), ApplyError> {
        let (cursor, partitions) = checkpoint::lock(tx, name)
            .await
            .map_err(ApplyError::Store)?;
        if let Some(count) = partitions {
            // Split while this (unpartitioned) consumer ran: the partitions own its events now.
            return Err(ApplyError::Partitioned(count));
        }
        let fresh: Vec<&StoredEvent> = batch.iter().filter(|e| e.position > cursor).collect();
        // Guarantee 4: an event at or before the cursor was applied already; it is acknowledged
        // with the run and only counted, so operators (and tests) see the duplicates arrive.
        let duplicates = batch.len() - fresh.len();
        let wanted: Vec<&StoredEvent> = fresh
            .iter()
            .copied()
            .filter(|e| self.config.wants(e))
            .collect();
        let mut last = fresh.last().map_or(cursor, |e| e.position);
        if let Some(marker) = at_least {
            last = last.max(marker);
        }
        let applied = wanted.len();
        if !wanted.is_empty() {
            let spans = ApplySpans::new(name, &wanted);
            self.handler
                .handle_batch(tx, &wanted)
                .instrument(spans.current())
                .await
                .inspect_err(|_| spans.failed())
                .map_err(ApplyError::Handler)?;
        }
        if last > cursor {
            checkpoint::advance(tx, name, last, applied as i64)
                .await
                .map_err(ApplyError::Store)?;
        }
        if duplicates > 0 {
            checkpoint::count_duplicates(tx, name, duplicates as i64)
                .await
                .map_err(ApplyError::Store)?;
        }
        Ok((applied, duplicates, last.max(cursor)))
    }

    async fn apply_with_retry(
        &self,
        db: &mut PgConnection,
        name: &str,
        event: &mut StoredEvent,
        mut sealed: bool,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let mut backoff = Backoff::new(self.config.retry_initial, self.config.retry_max);
        let mut attempt = 0;
        loop {
            let once = std::slice::from_mut(event);
            let error = match self.apply(db, name, once, &mut sealed, None).await {
                Ok(()) => return Ok(()),
                Err(ApplyError::Store(e)) => return Err(e.into()),
                Err(ApplyError::Partitioned(count)) => {
                    return Err(SessionError::Partitioned(count))
                }
                Err(ApplyError::Handler(e)) if is_transient(&e) => {
                    return Err(SessionError::Other(format!("database unavailable: {e}")))
                }
                Err(ApplyError::Handler(e)) => e,
            };
            attempt += 1;
            metrics::counter!("consumer_handler_errors_total", "consumer" => name.to_owned())
                .increment(1);
            if attempt >= self.config.max_attempts {
                let message = error.to_string();
                tracing::error!(
                    consumer = %name, position = %event.position, event_type = %event.event_type,
                    error = %message, attempts = attempt, "consumer halted: event cannot be applied"
                );
                checkpoint::mark_failed(&self.pool, name, event, &message).await?;
                metrics::gauge!("consumer_failed", "consumer" => name.to_owned()).set(1.0);
                return Err(SessionError::Halted);
            }
            tracing::warn!(
                consumer = %name, position = %event.position, attempt, error = %error,
                "handler failed; retrying"
            );
            if !backoff.wait(shutdown).await {
                return Err(SessionError::Shutdown);
            }
        }
    }
}

/// Connection-level failures are the infrastructure's, not the event's: they never count as
/// attempts, so an outage cannot halt a healthy consumer.
fn is_transient(error: &HandlerError) -> bool {
    match error.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => true,
        Some(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
            code.starts_with("08") || code.starts_with("57P") || code == "40001" || code == "40P01"
        }),
        _ => false,
    }
}

/// AMQP topic matching: words split on `.`, `*` is one word, `#` is zero or more.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn go(p: &[&str], k: &[&str]) -> bool {
        match (p.first(), k.first()) {
            (None, None) => true,
            (Some(&"#"), _) => go(&p[1..], k) || (!k.is_empty() && go(p, &k[1..])),
            (Some(&"*"), Some(_)) => go(&p[1..], &k[1..]),
            (Some(w), Some(v)) if w == v => go(&p[1..], &k[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    go(&p, &k)
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn topic_patterns_match_like_rabbitmq() {
        assert!(topic_matches("#", "Order.OrderPlaced"));
        assert!(topic_matches("Order.*", "Order.OrderPlaced"));
        assert!(topic_matches("Order.#", "Order.OrderPlaced"));
        assert!(topic_matches("*.OrderPlaced", "Order.OrderPlaced"));
        assert!(!topic_matches("Order.*", "Inventory.StockReserved"));
        assert!(!topic_matches("Order", "Order.OrderPlaced"));
        assert!(!topic_matches("*", "Order.OrderPlaced"));
        assert!(topic_matches(
            "Inventory.StockReserved",
            "Inventory.StockReserved"
        ));
    }
}
