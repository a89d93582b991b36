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
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::backoff::{sleep_or_shutdown, Backoff};
use crate::checkpoint::{self, ConsumerState, OperatorDecision};
use crate::privacy::{Privacy, PrivacyError};
use crate::relay::POSITION_MARKER_KEY;
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
        }
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
            let result = match checkpoint::ensure(&self.pool, &name).await {
                Ok(()) => match self.wait_while_failed(&shutdown).await {
                    Ok(true) => self.session(&shutdown).await,
                    Ok(false) => Err(SessionError::Shutdown),
                    Err(e) => Err(e.into()),
                },
                Err(e) => Err(e.into()),
            };
            match result {
                Ok(()) | Err(SessionError::Shutdown) => break,
                Err(SessionError::Halted) => backoff.reset(),
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

    /// Returns once the consumer is not `FAILED` (true), or on shutdown (false).
    async fn wait_while_failed(&self, shutdown: &CancellationToken) -> Result<bool, sqlx::Error> {
        let name = &self.config.name;
        loop {
            match checkpoint::take_operator_action(&self.pool, name).await? {
                OperatorDecision::Resume => {
                    metrics::gauge!("consumer_failed", "consumer" => name.clone()).set(0.0);
                    return Ok(true);
                }
                OperatorDecision::Waiting => {
                    metrics::gauge!("consumer_failed", "consumer" => name.clone()).set(1.0);
                    if !sleep_or_shutdown(self.config.operator_poll, shutdown).await {
                        return Ok(false);
                    }
                }
            }
        }
    }

    async fn session(&self, shutdown: &CancellationToken) -> Result<(), SessionError> {
        let name = &self.config.name;
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

        // The session's own connection, outside the pool: every run is a transaction on it, and
        // none pays the pool's acquire and the round trip sqlx spends on every release.
        let mut db = self.pool.acquire().await?.detach();
        self.handler
            .prepare_session(&mut db)
            .await
            .map_err(|e| SessionError::Other(format!("preparing the session failed: {e}")))?;
        checkpoint::set_state(&self.pool, name, ConsumerState::CatchingUp).await?;
        self.catch_up(&mut db, shutdown).await?;
        checkpoint::set_state(&self.pool, name, ConsumerState::Live).await?;
        tracing::info!(consumer = %name, "caught up; following {queue}");

        let mut deliveries = channel
            .basic_consume(
                queue.as_str().into(),
                format!("{name}-{}", uuid::Uuid::new_v4()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let result = loop {
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
            match self.on_deliveries(&mut db, &run, shutdown).await {
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
        };
        let _ = connection.close(200, "consumer session ended".into()).await;
        result
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
        match self.apply(db, &mut events, &mut sealed, marker).await {
            Ok(()) => Ok(()),
            Err(ApplyError::Store(e)) => Err(e.into()),
            Err(ApplyError::Handler(_)) => {
                for event in &mut events {
                    self.apply_with_retry(db, event, sealed, shutdown).await?;
                }
                if marker.is_some() {
                    self.apply(db, &mut [], &mut false, marker)
                        .await
                        .map_err(|e| match e {
                            ApplyError::Store(e) => SessionError::from(e),
                            ApplyError::Handler(e) => SessionError::Other(e.to_string()),
                        })?;
                }
                Ok(())
            }
        }
    }

    async fn catch_up(
        &self,
        db: &mut PgConnection,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        loop {
            if shutdown.is_cancelled() {
                return Err(SessionError::Shutdown);
            }
            let cursor = checkpoint::position(&self.pool, &self.config.name).await?;
            let mut batch = self.log.read_after(cursor, self.config.batch_size).await?;
            if batch.is_empty() {
                return Ok(());
            }
            let mut sealed = true;
            match self.apply(db, &mut batch, &mut sealed, None).await {
                Ok(()) => {}
                Err(ApplyError::Store(e)) => return Err(e.into()),
                // Isolate the failing event: apply one by one, with retries.
                Err(ApplyError::Handler(_)) => {
                    for event in &mut batch {
                        self.apply_with_retry(db, event, sealed, shutdown).await?;
                    }
                }
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
        batch: &mut [StoredEvent],
        sealed: &mut bool,
        at_least: Option<Position>,
    ) -> Result<(), ApplyError> {
        let name = &self.config.name;
        let mut tx = db.begin().await.map_err(ApplyError::Store)?;
        let opened = match (&self.privacy, *sealed) {
            (Some(privacy), true) => privacy.open_events(&mut *tx, batch).await,
            _ => Ok(()),
        };
        let done = match opened {
            Ok(()) => {
                *sealed = false;
                self.apply_in(&mut tx, batch, at_least).await
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
            metrics::counter!("consumer_duplicates_ignored_total", "consumer" => name.clone())
                .increment(duplicates as u64);
        }
        if applied > 0 {
            metrics::counter!("consumer_events_applied_total", "consumer" => name.clone())
                .increment(applied as u64);
        }
        metrics::gauge!("consumer_position", "consumer" => name.clone())
            .set(last.global_position as f64);
        Ok(())
    }

    /// [`Self::apply`]'s work inside its transaction: events applied, duplicates ignored and the
    /// new cursor.
    async fn apply_in(
        &self,
        tx: &mut PgConnection,
        batch: &[StoredEvent],
        at_least: Option<Position>,
    ) -> Result<(usize, usize, Position), ApplyError> {
        let name = &self.config.name;
        let cursor = checkpoint::lock(tx, name)
            .await
            .map_err(ApplyError::Store)?;
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
            self.handler
                .handle_batch(tx, &wanted)
                .await
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
        event: &mut StoredEvent,
        mut sealed: bool,
        shutdown: &CancellationToken,
    ) -> Result<(), SessionError> {
        let name = &self.config.name;
        let mut backoff = Backoff::new(self.config.retry_initial, self.config.retry_max);
        let mut attempt = 0;
        loop {
            let once = std::slice::from_mut(event);
            let error = match self.apply(db, once, &mut sealed, None).await {
                Ok(()) => return Ok(()),
                Err(ApplyError::Store(e)) => return Err(e.into()),
                Err(ApplyError::Handler(e)) if is_transient(&e) => {
                    return Err(SessionError::Other(format!("database unavailable: {e}")))
                }
                Err(ApplyError::Handler(e)) => e,
            };
            attempt += 1;
            metrics::counter!("consumer_handler_errors_total", "consumer" => name.clone())
                .increment(1);
            if attempt >= self.config.max_attempts {
                let message = error.to_string();
                tracing::error!(
                    consumer = %name, position = %event.position, event_type = %event.event_type,
                    error = %message, attempts = attempt, "consumer halted: event cannot be applied"
                );
                checkpoint::mark_failed(&self.pool, name, event, &message).await?;
                metrics::gauge!("consumer_failed", "consumer" => name.clone()).set(1.0);
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
