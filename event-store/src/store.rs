//! Appending to and loading aggregates from the `events` table, through postgres-es, with
//! snapshots of our own in `aggregate_snapshots`.
//!
//! Plain event-store mode only: cqrs-es's snapshot and aggregate stores apply events twice (0.5.0),
//! and `CqrsFramework::execute` cannot tell us where our events landed. So we load, and append at an
//! expected version, ourselves; the unique `(aggregate_type, aggregate_id, sequence)` key turns a
//! racing writer into [`StoreError::Conflict`] (guarantee 1).
//!
//! # Snapshots
//!
//! Invariant: a snapshot row `(version, state)` holds exactly the state folded from the aggregate's
//! events `1..=version`. Events are the truth; a snapshot is a shortcut that may be dropped at any
//! time. So:
//! - [`EventStore::load`] starts from the snapshot and folds only the later events. A snapshot that
//!   does not deserialise (the aggregate's struct changed) or is ahead of the log is ignored and the
//!   whole stream replayed: a bad snapshot costs time, never an error or a wrong state.
//! - [`EventStore::save_snapshot`] only moves a snapshot forward, so writers racing with older
//!   states cannot undo a newer one.
//! - The policy ([`EventStore::with_snapshot_every`], default [`DEFAULT_SNAPSHOT_EVERY`]) lives
//!   here; the caller that holds the state right after a successful append (command dispatch) asks
//!   [`EventStore::snapshot_due`] and saves. Only a state known to be at that version may be saved.
//! - An aggregate whose state changes meaning without changing shape must make old snapshots fail
//!   to deserialise (rename a field) or have its rows deleted; otherwise they would be trusted.
//! - A snapshot that cannot move forward stays put: one ahead of the log (only a hand-written row
//!   can be) is ignored on every load until an operator deletes it.
//! - Each store (and its clones) remembers the snapshot texts it read or wrote, checked against
//!   the row's `xmin` on every load, so a hot aggregate's big snapshot crosses the wire once per
//!   snapshot rather than once per command (`store/snapshot_cache.rs`).

use std::sync::Arc;

use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::PostgresEventRepository;
use sqlx::types::JsonRawValue;
use sqlx::{PgPool, Row};

use crate::{EventMetadata, Position, StoreError};

mod snapshot_cache;

use snapshot_cache::{Cached, SnapshotCache};

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The aggregate's version after the append.
    pub version: i64,
    /// The log position of the last appended event.
    pub position: Position,
}

/// How many events apart snapshots are taken unless [`EventStore::with_snapshot_every`] says
/// otherwise: a load then folds at most about this many events after its snapshot.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100;

/// The event store: load an aggregate, append its new events at an expected version.
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    repo: Arc<PostgresEventRepository>,
    snapshot_every: u64,
    /// Shared by clones of this store.
    snapshot_cache: Arc<SnapshotCache>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore")
            .field("snapshot_every", &self.snapshot_every)
            .finish_non_exhaustive()
    }
}

impl EventStore {
    /// An event store over the `events` table of `pool`'s database, snapshotting every
    /// [`DEFAULT_SNAPSHOT_EVERY`] events.
    pub fn new(pool: PgPool) -> Self {
        let repo = PostgresEventRepository::new(pool.clone());
        Self {
            pool,
            repo: Arc::new(repo),
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            snapshot_cache: Arc::default(),
        }
    }

    /// The same store with a snapshot due whenever an append crosses a multiple of `n` events.
    /// `0` turns snapshots off: loads ignore existing snapshots and replay every event, and
    /// [`Self::snapshot_due`] is never true.
    pub fn with_snapshot_every(mut self, n: u64) -> Self {
        self.snapshot_every = n;
        self
    }

    /// Events between snapshots; `0` when snapshots are off.
    pub fn snapshot_every(&self) -> u64 {
        self.snapshot_every
    }

    /// Whether an append that took an aggregate from version `before` to `after` crossed a
    /// multiple of [`Self::snapshot_every`], so the state at `after` should be saved.
    pub fn snapshot_due(&self, before: i64, after: i64) -> bool {
        let Ok(every) = i64::try_from(self.snapshot_every) else {
            return false;
        };
        every > 0 && before >= 0 && after > before && after / every > before / every
    }

    /// The pool behind this store.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Loads one aggregate: its snapshot, if usable, plus the events after it; else every event.
    /// Returns the state and its version (0: no events yet).
    pub async fn load<A: Aggregate>(&self, aggregate_id: &str) -> Result<(A, i64), StoreError> {
        if self.snapshot_every > 0 {
            if let Some(loaded) = self.load_from_snapshot::<A>(aggregate_id).await? {
                return Ok(loaded);
            }
        }
        let events = self
            .repo
            .get_events::<A>(aggregate_id)
            .await
            .map_err(|e| repository_error::<A>(e, aggregate_id))?;
        let events = events
            .into_iter()
            .map(|event| Ok((i64::try_from(event.sequence)?, event.payload)))
            .collect::<Result<Vec<_>, std::num::TryFromIntError>>()
            .map_err(|_| StoreError::Repository("sequence out of range".into()))?;
        fold(A::default(), 0, events)
    }

    /// The snapshot plus the events after it, or `None` when there is no usable snapshot.
    async fn load_from_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<(A, i64)>, StoreError> {
        // The state only when this process has not read that very row yet (any write changes
        // `xmin`); as jsonb in binary, cheaper for Postgres than `state::text`.
        let cached = self.snapshot_cache.get(A::TYPE, aggregate_id);
        let row = sqlx::query(
            "SELECT version, xmin::text AS row_version, \
             CASE WHEN version = $3 AND xmin::text = $4 THEN NULL ELSE state END AS state \
             FROM aggregate_snapshots WHERE aggregate_type = $1 AND aggregate_id = $2",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(cached.as_ref().map_or(0, |c| c.version))
        .bind(cached.as_ref().map(|c| c.row_version.as_str()))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            self.snapshot_cache.remove(A::TYPE, aggregate_id);
            return Ok(None);
        };
        let version: i64 = row.try_get("version")?;
        let row_version: String = row.try_get("row_version")?;
        let state = match (row.try_get::<Option<&JsonRawValue>, _>("state")?, cached) {
            (Some(fresh), _) => Arc::<str>::from(fresh.get()),
            (None, Some(cached)) => cached.state,
            (None, None) => return Ok(None),
        };
        let aggregate: A = match serde_json::from_str(&state) {
            Ok(aggregate) => aggregate,
            Err(error) => {
                self.snapshot_cache.remove(A::TYPE, aggregate_id);
                // Expected for a while after the aggregate's struct changed; the next snapshot
                // (at most `snapshot_every` events away) replaces it.
                tracing::info!(
                    aggregate = A::TYPE,
                    aggregate_id,
                    version,
                    %error,
                    "snapshot does not deserialise; replaying the whole stream"
                );
                return Ok(None);
            }
        };
        // Read from the snapshot's own event on: its presence proves the snapshot is not ahead of
        // the log (events are the truth). Our own query rather than postgres-es's
        // `get_last_events`, which writes the version into the SQL text: every load would prepare
        // a statement of its own and churn sqlx's per-connection statement cache.
        let mut events = sqlx::query_as::<_, (i64, serde_json::Value)>(
            "SELECT sequence, payload FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence >= $3 ORDER BY sequence",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(version)
        .fetch_all(&self.pool)
        .await?
        .into_iter();
        if events.next().map(|(sequence, _)| sequence) != Some(version) {
            tracing::warn!(
                aggregate = A::TYPE,
                aggregate_id,
                version,
                "snapshot is ahead of the event log; ignoring it and replaying the whole stream"
            );
            return Ok(None);
        }
        self.snapshot_cache.put(
            A::TYPE,
            aggregate_id,
            Cached {
                version,
                row_version,
                state,
            },
        );
        fold(aggregate, version, events).map(Some)
    }

    /// Records `aggregate` as the state of `aggregate_id` folded up to `version`.
    ///
    /// The caller must know the state is exactly that (e.g. it just appended the events that
    /// led to it). A snapshot never moves backwards: returns `false`, writing nothing, when one at
    /// `version` or later exists already.
    pub async fn save_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
        version: i64,
        aggregate: &A,
    ) -> Result<bool, StoreError> {
        let state: Arc<str> = serde_json::to_string(aggregate)?.into();
        let written: Option<String> = sqlx::query_scalar(
            "INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, version, state) \
             VALUES ($1, $2, $3, $4::jsonb) \
             ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE \
             SET version = EXCLUDED.version, state = EXCLUDED.state, taken_at = now() \
             WHERE aggregate_snapshots.version < EXCLUDED.version \
             RETURNING xmin::text",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(version)
        .bind(&*state)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row_version) = written else {
            return Ok(false);
        };
        // The next load here need not fetch what was just written.
        self.snapshot_cache.put(
            A::TYPE,
            aggregate_id,
            Cached {
                version,
                row_version,
                state,
            },
        );
        Ok(true)
    }

    /// Appends `events` after `expected_version` in one transaction, with `metadata` on each.
    ///
    /// Returns `None` when there is nothing to append, else the new version and log position.
    /// A concurrent append at the same version fails with [`StoreError::Conflict`].
    pub async fn append<A: Aggregate>(
        &self,
        aggregate_id: &str,
        expected_version: i64,
        events: &[A::Event],
        metadata: &EventMetadata,
    ) -> Result<Option<Appended>, StoreError> {
        let Some(version) = self
            .append_unpositioned::<A>(aggregate_id, expected_version, events, metadata)
            .await?
        else {
            return Ok(None);
        };
        // postgres-es does not say where the events landed: one more read.
        let (tx, pos): (i64, i64) = sqlx::query_as(
            "SELECT transaction_id::text::bigint, global_position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(version)
        .fetch_one(&self.pool)
        .await?;
        Ok(Some(Appended {
            version,
            position: Position::new(tx, pos),
        }))
    }

    /// [`Self::append`] for a caller that needs no log position (a saga's command): saves the
    /// read of it. Returns the new version, `None` when there is nothing to append.
    pub async fn append_unpositioned<A: Aggregate>(
        &self,
        aggregate_id: &str,
        expected_version: i64,
        events: &[A::Event],
        metadata: &EventMetadata,
    ) -> Result<Option<i64>, StoreError> {
        if events.is_empty() {
            return Ok(None);
        }
        let metadata = serde_json::to_value(metadata)?;
        let first = usize::try_from(expected_version + 1)
            .map_err(|_| StoreError::Repository("negative expected version".into()))?;
        let serialized = events
            .iter()
            .enumerate()
            .map(|(i, event)| {
                Ok(SerializedEvent::new(
                    aggregate_id.to_owned(),
                    first + i,
                    A::TYPE.to_owned(),
                    event.event_type(),
                    event.event_version(),
                    serde_json::to_value(event)?,
                    metadata.clone(),
                ))
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        self.repo
            .persist::<A>(&serialized, None)
            .await
            .map_err(|e| repository_error::<A>(e, aggregate_id))?;
        Ok(Some(expected_version + events.len() as i64))
    }
}

/// Applies `events` (sequence, payload) to `aggregate`, which is at `version`; returns the state
/// and the new version.
fn fold<A: Aggregate>(
    mut aggregate: A,
    mut version: i64,
    events: impl IntoIterator<Item = (i64, serde_json::Value)>,
) -> Result<(A, i64), StoreError> {
    for (sequence, payload) in events {
        version = sequence;
        aggregate.apply(serde_json::from_value(payload)?);
    }
    Ok((aggregate, version))
}

/// A postgres-es failure as a [`StoreError`], keeping its cause: postgres-es boxes the driver's
/// error (and files a pool timeout or a terminated session as "unknown"), so a database outage
/// while loading or appending must be unboxed back into [`StoreError::Database`], where callers
/// tell it from a bug (the API answers 503, not 500).
fn repository_error<A: Aggregate>(error: PersistenceError, aggregate_id: &str) -> StoreError {
    let cause = match error {
        PersistenceError::OptimisticLockError => {
            return StoreError::Conflict {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
            }
        }
        PersistenceError::ConnectionError(cause)
        | PersistenceError::DeserializationError(cause)
        | PersistenceError::UnknownError(cause) => cause,
    };
    match cause.downcast::<sqlx::Error>() {
        Ok(database) => StoreError::Database(*database),
        Err(cause) => match cause.downcast::<serde_json::Error>() {
            Ok(serde) => StoreError::Serde(*serde),
            Err(cause) => StoreError::Repository(cause),
        },
    }
}
