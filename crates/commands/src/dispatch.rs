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
//! Metrics: `command_duration_seconds{aggregate, outcome}` times every command end to end (lock
//! wait and retries included, which is what a caller waits for), and
//! `events_appended_total{aggregate}` counts the events it wrote.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use commerce_event_store::{EventMetadata, EventStore, Position, StoreError};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use rand::Rng;
use tokio::sync::Mutex;

const LOCK_STRIPES: usize = 1024;

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Executed {
    /// The aggregate the command ran against.
    pub aggregate_id: String,
    /// The aggregate's version afterwards.
    pub version: i64,
    /// The log position of the last event written; `None` when the command wrote nothing (an
    /// idempotent repeat) or ran through [`Dispatcher::execute_unpositioned`].
    pub position: Option<Position>,
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

impl Dispatcher {
    /// A dispatcher over `store`, trying each command up to 20 times.
    pub fn new(store: EventStore) -> Self {
        Self {
            store,
            stripes: Arc::new((0..LOCK_STRIPES).map(|_| Mutex::new(())).collect()),
            max_attempts: 20,
        }
    }

    /// The store behind this dispatcher.
    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Runs `command` against aggregate `A` with id `aggregate_id`, appending its events with
    /// `metadata`. Conflicts are retried against the new state; a domain rejection is returned
    /// as [`DispatchError::Rejected`] and writes nothing.
    pub async fn execute<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Executed, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()>,
        A::Command: Clone,
    {
        self.timed::<A>(aggregate_id, command, metadata, None, true)
            .await
    }

    /// Like [`Self::execute`] for a caller that needs no log position (a saga's command): the
    /// append skips reading it back, so the returned [`Executed::position`] is always `None`.
    pub async fn execute_unpositioned<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
    ) -> Result<Executed, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()>,
        A::Command: Clone,
    {
        self.timed::<A>(aggregate_id, command, metadata, None, false)
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
    ) -> Result<Executed, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()>,
        A::Command: Clone,
    {
        self.timed::<A>(
            aggregate_id,
            command,
            metadata,
            Some((A::default(), 0)),
            true,
        )
        .await
    }

    /// Like [`Self::execute`], starting from `loaded`, a state at `version` the caller has just
    /// loaded from this store (to check the command against it). Saves the second load; should the
    /// aggregate have moved on since, the append conflicts and the command runs again against the
    /// stored state.
    pub async fn execute_from<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        loaded: (A, i64),
    ) -> Result<Executed, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()>,
        A::Command: Clone,
    {
        self.timed::<A>(aggregate_id, command, metadata, Some(loaded), true)
            .await
    }

    async fn timed<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        first: Option<(A, i64)>,
        positioned: bool,
    ) -> Result<Executed, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()>,
        A::Command: Clone,
    {
        let started = Instant::now();
        let result = self
            .run::<A>(aggregate_id, command, metadata, first, positioned)
            .await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(DispatchError::Rejected(_)) => "rejected",
            Err(DispatchError::Contention { .. }) => "contention",
            Err(DispatchError::Store(_)) => "error",
        };
        metrics::histogram!("command_duration_seconds", "aggregate" => A::TYPE, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }

    async fn run<A>(
        &self,
        aggregate_id: &str,
        command: A::Command,
        metadata: &EventMetadata,
        mut first: Option<(A, i64)>,
        positioned: bool,
    ) -> Result<Executed, DispatchError<A::Error>>
    where
        A: Aggregate<Services = ()>,
        A::Command: Clone,
    {
        let _local_turn = self.stripe(A::TYPE, aggregate_id).lock().await;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (mut aggregate, version) = match first.take() {
                Some(given) => given,
                None => self.store.load::<A>(aggregate_id).await?,
            };
            let sink = EventSink::default();
            aggregate
                .handle(command.clone(), &(), &sink)
                .await
                .map_err(DispatchError::Rejected)?;
            let events = sink.collect().await;
            let appended = if positioned {
                self.store
                    .append::<A>(aggregate_id, version, &events, metadata)
                    .await
                    .map(|a| a.map(|a| (a.version, Some(a.position))))
            } else {
                self.store
                    .append_unpositioned::<A>(aggregate_id, version, &events, metadata)
                    .await
                    .map(|v| v.map(|v| (v, None)))
            };
            match appended {
                Ok(appended) => {
                    if appended.is_some() {
                        metrics::counter!("events_appended_total", "aggregate" => A::TYPE)
                            .increment(events.len() as u64);
                    }
                    let new_version = appended.map_or(version, |(v, _)| v);
                    if self.store.snapshot_due(version, new_version) {
                        self.save_snapshot(aggregate_id, new_version, &aggregate)
                            .await;
                    }
                    return Ok(Executed {
                        aggregate_id: aggregate_id.to_owned(),
                        version: new_version,
                        position: appended.and_then(|(_, p)| p),
                    });
                }
                Err(StoreError::Conflict { .. }) if attempt < self.max_attempts => {
                    tracing::debug!(
                        aggregate = A::TYPE,
                        aggregate_id,
                        attempt,
                        "conflict; retrying"
                    );
                    let cap = 2_u64 << attempt.min(6);
                    let pause = rand::rng().random_range(1..=cap);
                    tokio::time::sleep(Duration::from_millis(pause)).await;
                }
                Err(StoreError::Conflict { .. }) => {
                    return Err(DispatchError::Contention { attempts: attempt })
                }
                Err(other) => return Err(other.into()),
            }
        }
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
