//! Command dispatch: load, decide, append at the expected version; retry on conflict.
//!
//! Guarantee 1 (no lost update): two commands racing on one aggregate both load version N; the
//! store accepts only the first append of version N+1, and the loser is run again against the
//! new state (bounded, with jitter), where the domain may now reject it. Commands to one aggregate
//! from this process are also queued behind a striped lock, so a hot aggregate (a popular
//! product's inventory) costs retries only across processes.
//!
//! Snapshots: after a successful append the dispatcher holds the aggregate exactly at the new
//! version (the `EventSink` applied the new events to it; `handle` changes state only through the
//! sink), so it saves that state when the store's policy says one is due. A failed snapshot write
//! is only logged: events are the truth, and the next load simply folds more of them.
//!
//! Writes beside the events: a command may carry an [`Alongside`] write (a credential, guarantee
//! 9) that commits in the append's transaction, so the fact in the log and the state outside it
//! never disagree.
//!
//! Metrics: `command_duration_seconds{aggregate, outcome}` times every command end to end (lock
//! wait and retries included, which is what a caller waits for), and
//! `events_appended_total{aggregate}` counts the events it wrote.
//!
//! Tracing: every command runs in a span (`commerce_event_store::trace`), inside the request's or
//! the reacting process's, and the store's append span inside it.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use commerce_event_store::{
    trace, AggregateReader, EventMetadata, EventStore, Position, StoreError,
};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use futures::future::BoxFuture;
use rand::Rng;
use sqlx::PgConnection;
use tokio::sync::Mutex;
use tracing::Instrument;

const LOCK_STRIPES: usize = 1024;

/// What a command did, and what it left: the handler answers from this, never reading back
/// what it just wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Executed<A> {
    /// The aggregate the command ran against.
    pub aggregate_id: String,
    /// The aggregate as it stands after the command's events (shared with this process's cache,
    /// which copies it only if the next command comes while this is still held).
    pub aggregate: Arc<A>,
    /// The aggregate's version afterwards.
    pub version: i64,
    /// The log position of the last event written or, when the command wrote nothing (an
    /// idempotent repeat), of the aggregate's latest event (`Position::START` for none).
    pub position: Position,
    /// Whether the command wrote any event.
    pub wrote: bool,
}

/// Why a command did not run.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError<E: std::error::Error> {
    /// The domain refused the command (its error says which rule and what kind).
    #[error(transparent)]
    Rejected(E),
    /// Other writers kept winning the race for this aggregate; nothing was written.
    #[error("the aggregate stayed contended after {attempts} attempts")]
    Contention {
        /// How many times the command ran.
        attempts: u32,
    },
    /// The store failed; nothing is known to be written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Runs commands against aggregates stored in the event store.
#[derive(Clone)]
pub struct Dispatcher {
    store: EventStore,
    stripes: Arc<Vec<Mutex<()>>>,
    max_attempts: u32,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// The state a command is decided against, and whether it is known to be the log's current one.
struct Basis<A> {
    aggregate: A,
    version: i64,
    /// Read from the log for this attempt; otherwise cached or handed in by the caller, and only
    /// the append (which conflicts if the log moved on) checks it.
    fresh: bool,
}

/// A write of the caller's that must commit with a command's events or not at all (a password
/// hash beside the event recording its change): run in the append's transaction, after the
/// append, on every attempt that appends.
pub trait Alongside: Send + Sync {
    /// Writes through `conn`, inside the transaction the events are being appended in.
    fn write<'c>(&'c self, conn: &'c mut PgConnection) -> BoxFuture<'c, Result<(), sqlx::Error>>;
}

/// Bounds of a command's aggregate: every aggregate of ours is cloned into and out of the cache.
pub trait Dispatchable: Aggregate<Services = ()> + Clone + 'static {}

impl<A: Aggregate<Services = ()> + Clone + 'static> Dispatchable for A {}

impl Dispatcher {
    /// A dispatcher over `store`, trying each command up to 20 times.
    pub fn new(store: EventStore) -> Self {
        Self {
            store,
            stripes: Arc::new((0..LOCK_STRIPES).map(|_| Mutex::new(())).collect()),
            max_attempts: 20,
        }
    }

    /// The keyring this dispatcher's store seals personal data with, if any.
    pub fn privacy(&self) -> Option<&commerce_event_store::privacy::Privacy> {
        self.store.privacy()
    }

    /// Read-only access to the aggregates this dispatcher writes, sharing its cache.
    pub fn reader(&self) -> AggregateReader {
        self.store.reader()
    }

    /// The same dispatcher trying each command at most `attempts` times before giving up with
    /// [`DispatchError::Contention`].
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Runs `command` against aggregate `A` with id `aggregate_id`, appending its events with
    /// `metadata`. Conflicts are retried against the new state; a domain rejection is returned
    /// as [`DispatchError::Rejected`] and writes nothing.
    ///
    /// When this process holds the aggregate (it ran or loaded it lately), the command is decided
    /// against that state without reading the log: the append at its version is the check.
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Executed<A>, DispatchError<A::Error>>
    where
        A: Dispatchable,
        A::Command: Clone,
    {
        self.timed::<A>(aggregate_id, command, metadata, None, None)
            .await
    }

    /// Like [`Self::execute`], committing `alongside` in the same transaction as the command's
    /// events: both or neither. Nothing is written beside a command that emits no event.
    pub async fn execute_with<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        alongside: &dyn Alongside,
    ) -> Result<Executed<A>, DispatchError<A::Error>>
    where
        A: Dispatchable,
        A::Command: Clone,
    {
        self.timed::<A>(aggregate_id, command, metadata, None, Some(alongside))
            .await
    }

    /// Like [`Self::execute`] for an aggregate the caller has just made up a fresh id for (a
    /// random UUID): the first attempt skips loading and runs against the empty state. Should the
    /// id exist after all, the append conflicts and the command runs again against the stored
    /// state, exactly as [`Self::execute`] would.
    pub async fn create<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Executed<A>, DispatchError<A::Error>>
    where
        A: Dispatchable,
        A::Command: Clone,
    {
        self.timed::<A>(
            aggregate_id,
            command,
            metadata,
            Some((A::default(), 0)),
            None,
        )
        .await
    }

    /// Like [`Self::execute`], starting from `loaded`, a state at `version` the caller has just
    /// loaded (to check the command against it). Saves the second load; should the aggregate
    /// have moved on since, the append conflicts and the command runs again against the stored
    /// state.
    pub async fn execute_from<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        loaded: (A, i64),
    ) -> Result<Executed<A>, DispatchError<A::Error>>
    where
        A: Dispatchable,
        A::Command: Clone,
    {
        self.timed::<A>(aggregate_id, command, metadata, Some(loaded), None)
            .await
    }

    async fn timed<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        given: Option<(A, i64)>,
        alongside: Option<&dyn Alongside>,
    ) -> Result<Executed<A>, DispatchError<A::Error>>
    where
        A: Dispatchable,
        A::Command: Clone,
    {
        let started = Instant::now();
        let span = tracing::info_span!(
            target: trace::TARGET,
            "command",
            otel.name = %format_args!("{} command", A::TYPE),
            otel.status_code = tracing::field::Empty,
            "aggregate.type" = A::TYPE,
            "aggregate.id" = aggregate_id,
            outcome = tracing::field::Empty,
        );
        let result = self
            .run::<A>(aggregate_id, command, metadata, given, alongside)
            .instrument(span.clone())
            .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(DispatchError::Rejected(_)) => "rejected",
            Err(DispatchError::Contention { .. }) => "contention",
            Err(DispatchError::Store(_)) => "error",
        };
        span.record("outcome", outcome);
        if matches!(result, Err(DispatchError::Store(_))) {
            span.record("otel.status_code", "error");
        }
        metrics::histogram!("command_duration_seconds", "aggregate" => A::TYPE, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn run<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        given: Option<(A, i64)>,
        alongside: Option<&dyn Alongside>,
    ) -> Result<Executed<A>, DispatchError<A::Error>>
    where
        A: Dispatchable,
        A::Command: Clone,
    {
        let _local_turn = self.stripe(A::TYPE, aggregate_id).lock().await;
        let mut unchecked = given.or_else(|| self.store.take_cached::<A>(aggregate_id));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let basis = match unchecked.take() {
                Some((aggregate, version)) => Basis {
                    aggregate,
                    version,
                    fresh: false,
                },
                None => {
                    let (aggregate, version) = self.store.load_cached::<A>(aggregate_id).await?;
                    Basis {
                        aggregate,
                        version,
                        fresh: true,
                    }
                }
            };
            let Basis {
                mut aggregate,
                version,
                fresh,
            } = basis;
            let sink = EventSink::default();
            let decided = aggregate.handle(command.clone(), &(), &sink).await;
            let events = sink.collect().await;
            match decided {
                // A refusal or a no-op decided on a state the log has not confirmed may be stale:
                // decide again on the current one (the load is one statement from the cache).
                Err(_) if !fresh => continue,
                Ok(()) if events.is_empty() && !fresh => continue,
                Err(e) => return Err(DispatchError::Rejected(e)),
                Ok(()) if events.is_empty() => {
                    let position = self.store.position_at::<A>(aggregate_id, version).await?;
                    return Ok(Executed {
                        aggregate_id: aggregate_id.to_owned(),
                        aggregate: Arc::new(aggregate),
                        version,
                        position,
                        wrote: false,
                    });
                }
                Ok(()) => {}
            }
            match self
                .append::<A>(aggregate_id, version, &events, metadata, alongside)
                .await
            {
                Ok(Some(appended)) => {
                    metrics::counter!("events_appended_total", "aggregate" => A::TYPE)
                        .increment(events.len() as u64);
                    if self.store.snapshot_due(version, appended.version) {
                        self.save_snapshot(aggregate_id, appended.version, &aggregate)
                            .await;
                    }
                    let aggregate = Arc::new(aggregate);
                    self.store
                        .remember(aggregate_id, appended, Arc::clone(&aggregate));
                    return Ok(Executed {
                        aggregate_id: aggregate_id.to_owned(),
                        aggregate,
                        version: appended.version,
                        position: appended.position,
                        wrote: true,
                    });
                }
                Ok(None) => {
                    return Err(DispatchError::Store(StoreError::Repository(
                        "an append of events wrote nothing".into(),
                    )))
                }
                Err(StoreError::Conflict { .. }) if attempt < self.max_attempts => {
                    tracing::debug!(
                        aggregate = A::TYPE,
                        aggregate_id,
                        attempt,
                        fresh,
                        "conflict; retrying"
                    );
                    // A stale cache is expected to conflict once: go straight to the log. A race
                    // lost on a fresh state backs off, with jitter, before trying again.
                    if fresh {
                        let cap = 2_u64 << attempt.min(6);
                        let pause = rand::rng().random_range(1..=cap);
                        tokio::time::sleep(Duration::from_millis(pause)).await;
                    }
                }
                Err(StoreError::Conflict { .. }) => {
                    return Err(DispatchError::Contention { attempts: attempt })
                }
                Err(other) => return Err(other.into()),
            }
        }
    }

    /// Appends `events`, in one transaction with `alongside` when there is one.
    async fn append<A: Aggregate>(
        &self,
        aggregate_id: &str,
        version: i64,
        events: &[A::Event],
        metadata: &EventMetadata,
        alongside: Option<&dyn Alongside>,
    ) -> Result<Option<commerce_event_store::Appended>, StoreError> {
        let Some(alongside) = alongside else {
            return self
                .store
                .append::<A>(aggregate_id, version, events, metadata)
                .await;
        };
        let mut tx = self.store.pool().begin().await?;
        let appended = self
            .store
            .append_in::<A>(&mut tx, aggregate_id, version, events, metadata)
            .await?;
        alongside.write(&mut tx).await?;
        tx.commit().await?;
        Ok(appended)
    }

    /// Saves `aggregate` as the state at `version`; a failure never fails the command.
    async fn save_snapshot<A: Aggregate>(&self, aggregate_id: &str, version: i64, aggregate: &A) {
        if let Err(error) = self
            .store
            .save_snapshot(aggregate_id, version, aggregate)
            .await
        {
            tracing::warn!(
                aggregate = A::TYPE,
                aggregate_id,
                version,
                %error,
                "snapshot not saved; loads fold more events until the next one"
            );
        }
    }

    fn stripe(&self, aggregate_type: &str, aggregate_id: &str) -> &Mutex<()> {
        let mut hasher = DefaultHasher::new();
        (aggregate_type, aggregate_id).hash(&mut hasher);
        &self.stripes[(hasher.finish() as usize) % self.stripes.len()]
    }
}
