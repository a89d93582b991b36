//! Appending to and loading aggregates from the `events` table: postgres-es loads (and its
//! schema is ours), appends are one statement of our own; snapshots of our own in
//! `aggregate_snapshots`, and a cache of the aggregates this process last held.
//!
//! Plain event-store mode only: cqrs-es's snapshot and aggregate stores apply events twice (0.5.0),
//! and `CqrsFramework::execute` cannot tell us where our events landed. So we load, and append at an
//! expected version, ourselves; the unique `(aggregate_type, aggregate_id, sequence)` key turns a
//! racing writer into [`StoreError::Conflict`] (guarantee 1).
//!
//! # Appends
//!
//! All events of one command go in one multi-row `INSERT … RETURNING` (position and transaction
//! id), in an implicit transaction ([`EventStore::append`]) or the caller's
//! ([`EventStore::append_in`]): one round trip where postgres-es's `persist` takes BEGIN, an
//! INSERT per event, COMMIT and then a read of the position. The rows are exactly what `persist`
//! writes, so postgres-es loads them (`event-store/tests/store.rs` checks both directions).
//!
//! # The aggregate cache
//!
//! See `store/aggregate_cache.rs`: a load from it costs one statement (the events after the cached
//! version, [`EventStore::load_cached`]), and dispatch decides against it with no read at all, the append's primary key
//! checking that nobody wrote since.
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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use cqrs_es::persist::{PersistedEventRepository, PersistenceError};
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::PostgresEventRepository;
use sqlx::types::JsonRawValue;
use sqlx::{PgConnection, PgExecutor, PgPool, Row};
use tracing::Instrument;

use crate::privacy::Privacy;
use crate::{trace, EventMetadata, Position, StoreError};

mod aggregate_cache;
mod snapshot_cache;

use aggregate_cache::AggregateCache;
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
    /// Shared by clones of this store.
    aggregates: Arc<AggregateCache>,
    /// Events folded by loads, shared by clones.
    folded: Arc<AtomicU64>,
    reads: Arc<AtomicU64>,
    /// Seals personal fields on append and opens them on load (guarantee 9); `None` stores and
    /// loads payloads as they are (stores that never see personal data, e.g. in tests).
    privacy: Option<Privacy>,
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
            aggregates: Arc::default(),
            folded: Arc::default(),
            reads: Arc::default(),
            privacy: None,
        }
    }

    /// The same store sealing personal fields with `privacy` on append and opening them on load.
    pub fn with_privacy(mut self, privacy: Privacy) -> Self {
        self.privacy = Some(privacy);
        self
    }

    /// The keyring this store seals and opens personal data with, if any.
    pub fn privacy(&self) -> Option<&Privacy> {
        self.privacy.as_ref()
    }

    /// Opens the sealed personal fields of `events` (sequence, payload) of `A`, when this store
    /// has a keyring: one query for the keys, none when nothing is sealed.
    async fn open<A: Aggregate>(
        &self,
        events: &mut [(i64, serde_json::Value)],
    ) -> Result<(), StoreError> {
        if let Some(privacy) = &self.privacy {
            privacy
                .open(
                    &self.pool,
                    events.iter_mut().map(|(_, payload)| (A::TYPE, payload)),
                )
                .await?;
        }
        Ok(())
    }

    /// The payloads of `events` as stored: serialised, personal fields sealed. Keys a person does
    /// not have yet are created through `conn` when given (the caller's transaction), else the pool.
    async fn stored_payloads<A: Aggregate>(
        &self,
        mut conn: Option<&mut PgConnection>,
        events: &[A::Event],
    ) -> Result<Vec<String>, StoreError> {
        let mut payloads = Vec::with_capacity(events.len());
        for event in events {
            let event_type = event.event_type();
            // Most events carry nothing personal: serialised straight to text, as without a
            // keyring.
            let Some(privacy) = self
                .privacy
                .as_ref()
                .filter(|p| p.fields_of(A::TYPE, &event_type).is_some())
            else {
                payloads.push(serde_json::to_string(event)?);
                continue;
            };
            let mut payload = serde_json::to_value(event)?;
            match conn.as_deref_mut() {
                Some(conn) => {
                    privacy
                        .seal(conn, A::TYPE, &event_type, &mut payload)
                        .await?
                }
                None => {
                    privacy
                        .seal(&self.pool, A::TYPE, &event_type, &mut payload)
                        .await?
                }
            }
            payloads.push(payload.to_string());
        }
        Ok(payloads)
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

    /// Loads one aggregate as the log holds it now: the state and its version (0: no events yet).
    /// From its snapshot, if usable, plus the events after it, else every event through
    /// postgres-es: two statements.
    pub async fn load<A: Aggregate>(&self, aggregate_id: &str) -> Result<(A, i64), StoreError> {
        self.load_cold(aggregate_id).await
    }

    /// [`Self::load`] through this process's cache: when it holds the aggregate, one statement
    /// folds on whatever the log has after the cached version; otherwise a full load, whose
    /// result is cached.
    pub async fn load_cached<A: Aggregate + Clone + 'static>(
        &self,
        aggregate_id: &str,
    ) -> Result<(A, i64), StoreError> {
        if let Some(hit) = self.aggregates.get::<A>(A::TYPE, aggregate_id) {
            if let Some(loaded) = self
                .catch_up(aggregate_id, hit.aggregate, hit.version)
                .await?
            {
                return Ok(loaded);
            }
        }
        let (aggregate, version) = self.load_cold::<A>(aggregate_id).await?;
        self.aggregates
            .put(A::TYPE, aggregate_id, version, None, aggregate.clone());
        Ok((aggregate, version))
    }

    /// Takes the cached state of `aggregate_id` and its version out of the cache, without asking
    /// the log whether it is still current: only for a caller whose next write at that version
    /// the log checks, and who puts the state after it back with [`Self::remember`] (command
    /// dispatch). `None` when this process holds no state of it.
    pub fn take_cached<A: Aggregate + Clone + 'static>(
        &self,
        aggregate_id: &str,
    ) -> Option<(A, i64)> {
        self.aggregates
            .take::<A>(A::TYPE, aggregate_id)
            .map(|hit| (hit.aggregate, hit.version))
    }

    /// Records `aggregate` as the state of `aggregate_id` right after an append that committed
    /// at `appended`, so the next command or load here starts from it.
    pub fn remember<A: Aggregate + 'static>(
        &self,
        aggregate_id: &str,
        appended: Appended,
        aggregate: Arc<A>,
    ) {
        self.aggregates.put_shared(
            A::TYPE,
            aggregate_id,
            appended.version,
            Some(appended.position),
            aggregate,
        );
    }

    /// The log position of `aggregate_id`'s event at `version` (`Position::START` for 0): from
    /// the cache when it recorded it, else one read.
    pub async fn position_at<A: Aggregate + Clone + 'static>(
        &self,
        aggregate_id: &str,
        version: i64,
    ) -> Result<Position, StoreError> {
        if version <= 0 {
            return Ok(Position::START);
        }
        if let Some(position) = self
            .aggregates
            .get::<A>(A::TYPE, aggregate_id)
            .filter(|hit| hit.version == version)
            .and_then(|hit| hit.position)
        {
            return Ok(position);
        }
        self.count_read();
        let (tx, pos): (i64, i64) = sqlx::query_as(
            "SELECT transaction_id::text::bigint, global_position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = $3",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(version)
        .fetch_one(&self.pool)
        .await?;
        Ok(Position::new(tx, pos))
    }

    /// How many events loads through this store (and its clones) have folded so far.
    pub fn events_folded(&self) -> u64 {
        self.folded.load(Ordering::Relaxed)
    }

    /// How many statements loads and position lookups through this store (and its clones) have
    /// sent so far: the read round trips of the command path (appends are one each).
    pub fn read_statements(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    fn count_read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }

    /// `aggregate` (cached at `version`) brought up to date with the log in one statement, or
    /// `None` when the log does not hold that version (the cache is ahead of it: forgotten).
    async fn catch_up<A: Aggregate + Clone + 'static>(
        &self,
        aggregate_id: &str,
        aggregate: A,
        version: i64,
    ) -> Result<Option<(A, i64)>, StoreError> {
        // From the cached version's own event on, so its presence proves the cache is not ahead
        // of the log; only later events' payloads cross the wire.
        self.count_read();
        let rows = sqlx::query_as::<_, (i64, Option<serde_json::Value>)>(
            "SELECT sequence, CASE WHEN sequence > $3 THEN payload END FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence >= $3 ORDER BY sequence",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(version)
        .fetch_all(&self.pool)
        .await?;
        let mut rows = rows.into_iter().peekable();
        if version > 0 && rows.next().map(|(sequence, _)| sequence) != Some(version) {
            self.aggregates.remove(A::TYPE, aggregate_id);
            return Ok(None);
        }
        let mut later: Vec<(i64, serde_json::Value)> = rows
            .filter_map(|(sequence, payload)| payload.map(|p| (sequence, p)))
            .collect();
        if later.is_empty() {
            return Ok(Some((aggregate, version)));
        }
        self.open::<A>(&mut later).await?;
        let (aggregate, version) = self.fold(aggregate, version, later)?;
        self.aggregates
            .put(A::TYPE, aggregate_id, version, None, aggregate.clone());
        Ok(Some((aggregate, version)))
    }

    /// Loads without the cache: snapshot plus later events, else the whole stream. The snapshot
    /// lookup also reads where the stream ends, so a stream that is empty (an aggregate about to
    /// be created) or has nothing after its snapshot costs that one statement alone.
    async fn load_cold<A: Aggregate>(&self, aggregate_id: &str) -> Result<(A, i64), StoreError> {
        if self.snapshot_every > 0 {
            if let Some(loaded) = self.load_from_snapshot::<A>(aggregate_id).await? {
                return Ok(loaded);
            }
        }
        self.count_read();
        let events = self
            .repo
            .get_events::<A>(aggregate_id)
            .await
            .map_err(|e| repository_error::<A>(e, aggregate_id))?;
        let mut events = events
            .into_iter()
            .map(|event| Ok((i64::try_from(event.sequence)?, event.payload)))
            .collect::<Result<Vec<_>, std::num::TryFromIntError>>()
            .map_err(|_| StoreError::Repository("sequence out of range".into()))?;
        self.open::<A>(&mut events).await?;
        self.fold(A::default(), 0, events)
    }

    /// Applies `events` (sequence, payload) to `aggregate`, which is at `version`; returns the
    /// state and the new version.
    fn fold<A: Aggregate>(
        &self,
        mut aggregate: A,
        mut version: i64,
        events: impl IntoIterator<Item = (i64, serde_json::Value)>,
    ) -> Result<(A, i64), StoreError> {
        let mut folded = 0;
        for (sequence, payload) in events {
            version = sequence;
            aggregate.apply(serde_json::from_value(payload)?);
            folded += 1;
        }
        self.folded.fetch_add(folded, Ordering::Relaxed);
        metrics::counter!("events_folded_total", "aggregate" => A::TYPE).increment(folded);
        Ok((aggregate, version))
    }

    /// The snapshot plus the events after it; the empty aggregate when the stream has no event;
    /// `None` when there are events but no usable snapshot (the whole stream is to be folded).
    async fn load_from_snapshot<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Option<(A, i64)>, StoreError> {
        // One row always: the stream's last sequence (a backward step on the primary key), and
        // the snapshot's state only when this process has not read that very row yet (any write
        // changes `xmin`); as jsonb in binary, cheaper for Postgres than `state::text`.
        let cached = self.snapshot_cache.get(A::TYPE, aggregate_id);
        self.count_read();
        let row = sqlx::query(
            "SELECT (SELECT max(sequence) FROM events \
                     WHERE aggregate_type = $1 AND aggregate_id = $2) AS last, \
             s.version, s.xmin::text AS row_version, \
             CASE WHEN s.version = $3 AND s.xmin::text = $4 THEN NULL ELSE s.state END AS state \
             FROM (SELECT) AS one LEFT JOIN aggregate_snapshots s \
             ON s.aggregate_type = $1 AND s.aggregate_id = $2",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(cached.as_ref().map_or(0, |c| c.version))
        .bind(cached.as_ref().map(|c| c.row_version.as_str()))
        .fetch_one(&self.pool)
        .await?;
        let last: Option<i64> = row.try_get("last")?;
        let Some(version) = row.try_get::<Option<i64>, _>("version")? else {
            self.snapshot_cache.remove(A::TYPE, aggregate_id);
            // No event at all: nothing for postgres-es to fetch.
            return Ok(last.is_none().then(|| (A::default(), 0)));
        };
        if last.is_none_or(|last| last < version) {
            tracing::warn!(
                aggregate = A::TYPE,
                aggregate_id,
                version,
                "snapshot is ahead of the event log; ignoring it and replaying the whole stream"
            );
            return Ok(last.is_none().then(|| (A::default(), 0)));
        }
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
        self.snapshot_cache.put(
            A::TYPE,
            aggregate_id,
            Cached {
                version,
                row_version: row_version.clone(),
                state: Arc::clone(&state),
            },
        );
        if last == Some(version) {
            // Nothing after the snapshot.
            return Ok(Some((aggregate, version)));
        }
        // Read from the snapshot's own event on: its presence proves the snapshot is not ahead of
        // the log (events are the truth). Our own query rather than postgres-es's
        // `get_last_events`, which writes the version into the SQL text: every load would prepare
        // a statement of its own and churn sqlx's per-connection statement cache.
        self.count_read();
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
            self.snapshot_cache.remove(A::TYPE, aggregate_id);
            return Ok(None);
        }
        let mut events: Vec<_> = events.collect();
        self.open::<A>(&mut events).await?;
        self.fold(aggregate, version, events).map(Some)
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
        if self
            .privacy
            .as_ref()
            .is_some_and(|p| p.holds_personal_data(A::TYPE))
        {
            // A snapshot is a plaintext copy of the state: never one of personal data.
            return Ok(false);
        }
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

    /// Appends `events` after `expected_version` in one statement, with `metadata` on each, in
    /// an implicit transaction of its own.
    ///
    /// Returns `None` when there is nothing to append, else the new version and the log position
    /// of the last event. A concurrent append at the same version fails with
    /// [`StoreError::Conflict`] (the primary key, guarantee 1).
    pub async fn append<A: Aggregate>(
        &self,
        aggregate_id: &str,
        expected_version: i64,
        events: &[A::Event],
        metadata: &EventMetadata,
    ) -> Result<Option<Appended>, StoreError> {
        self.append_via::<A>(None, aggregate_id, expected_version, events, metadata)
            .await
    }

    /// [`Self::append`] inside the caller's open transaction: the events commit (or roll back)
    /// with it. A conflict aborts that transaction, as any failed statement does.
    pub async fn append_in<A: Aggregate>(
        &self,
        conn: &mut PgConnection,
        aggregate_id: &str,
        expected_version: i64,
        events: &[A::Event],
        metadata: &EventMetadata,
    ) -> Result<Option<Appended>, StoreError> {
        self.append_via::<A>(Some(conn), aggregate_id, expected_version, events, metadata)
            .await
    }

    /// [`Self::seal_and_insert`] in a span of its own, whose trace context the events' metadata
    /// records when tracing is on: what the log carries on from them continues this trace.
    async fn append_via<A: Aggregate>(
        &self,
        conn: Option<&mut PgConnection>,
        aggregate_id: &str,
        expected_version: i64,
        events: &[A::Event],
        metadata: &EventMetadata,
    ) -> Result<Option<Appended>, StoreError> {
        let span = tracing::info_span!(
            target: trace::TARGET,
            "append",
            otel.name = %format_args!("append {}", A::TYPE),
            otel.kind = "client",
            db.system.name = "postgresql",
            db.operation.name = "INSERT",
            db.collection.name = "events",
            "aggregate.type" = A::TYPE,
            aggregate.id = aggregate_id,
            aggregate.expected_version = expected_version,
            events = events.len(),
        );
        let stamped = trace::stamped(&span, metadata);
        let metadata = stamped.as_ref().unwrap_or(metadata);
        self.seal_and_insert::<A>(conn, aggregate_id, expected_version, events, metadata)
            .instrument(span)
            .await
    }

    /// Seals the events' personal fields, then appends them through `conn` (the caller's
    /// transaction) when given, else the pool.
    async fn seal_and_insert<A: Aggregate>(
        &self,
        mut conn: Option<&mut PgConnection>,
        aggregate_id: &str,
        expected_version: i64,
        events: &[A::Event],
        metadata: &EventMetadata,
    ) -> Result<Option<Appended>, StoreError> {
        let payloads = self
            .stored_payloads::<A>(conn.as_deref_mut(), events)
            .await?;
        let batch = (aggregate_id, expected_version, events, payloads, metadata);
        match conn {
            Some(conn) => append_with::<A, _>(conn, batch).await,
            None => append_with::<A, _>(&self.pool, batch).await,
        }
    }
}

/// What one append writes: aggregate id, expected version, events, their stored payloads and
/// the metadata of each.
type Batch<'a, E> = (&'a str, i64, &'a [E], Vec<String>, &'a EventMetadata);

/// All events of one command in one multi-row `INSERT … RETURNING`: no BEGIN/COMMIT round trips,
/// no read of the position afterwards. Columns as postgres-es writes them, so its repository
/// loads what this writes (and we load what it persists), plus each row's content hash
/// (guarantee 10), computed by the SQL function `verify` recomputes it with.
async fn append_with<'c, A: Aggregate, E: PgExecutor<'c>>(
    executor: E,
    (aggregate_id, expected_version, events, payloads, metadata): Batch<'_, A::Event>,
) -> Result<Option<Appended>, StoreError> {
    if events.is_empty() {
        return Ok(None);
    }
    if expected_version < 0 {
        return Err(StoreError::Repository("negative expected version".into()));
    }
    let metadata = serde_json::to_string(metadata)?;
    let mut types = Vec::with_capacity(events.len());
    let mut versions = Vec::with_capacity(events.len());
    for event in events {
        types.push(event.event_type());
        versions.push(event.event_version());
    }
    // Most commands write one event: a plain single-row INSERT costs Postgres less than
    // unpacking arrays, and writes the very same row.
    let written: Result<Vec<(i64, i64)>, sqlx::Error> = if let [event_type] = types.as_slice() {
        sqlx::query_as(
            "INSERT INTO events \
             (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, \
              content_hash) \
             VALUES ($1, $2, $3 + 1, $4, $5, $6::jsonb, $7::jsonb, \
                     event_content_hash($1, $2, $3 + 1, $4, $5, $6::jsonb, $7::jsonb)) \
             RETURNING transaction_id::text::bigint, global_position",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(expected_version)
        .bind(event_type)
        .bind(&versions[0])
        .bind(&payloads[0])
        .bind(&metadata)
        .fetch_all(executor)
        .await
    } else {
        sqlx::query_as(
            "INSERT INTO events \
             (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata, \
              content_hash) \
             SELECT $1, $2, $3 + e.n, e.event_type, e.event_version, e.payload::jsonb, $7::jsonb, \
             event_content_hash($1, $2, $3 + e.n, e.event_type, e.event_version, \
                                e.payload::jsonb, $7::jsonb) \
             FROM unnest($4::text[], $5::text[], $6::text[]) \
             WITH ORDINALITY AS e(event_type, event_version, payload, n) \
             RETURNING transaction_id::text::bigint, global_position",
        )
        .bind(A::TYPE)
        .bind(aggregate_id)
        .bind(expected_version)
        .bind(&types)
        .bind(&versions)
        .bind(&payloads)
        .bind(&metadata)
        .fetch_all(executor)
        .await
    };
    let written = match written {
        Ok(rows) => rows,
        Err(sqlx::Error::Database(e)) if e.constraint() == Some(EVENTS_PRIMARY_KEY) => {
            return Err(StoreError::Conflict {
                aggregate_type: A::TYPE.to_owned(),
                aggregate_id: aggregate_id.to_owned(),
            })
        }
        Err(e) => return Err(e.into()),
    };
    let (transaction_id, global_position) = written
        .into_iter()
        .max_by_key(|&(_, position)| position)
        .ok_or_else(|| StoreError::Repository("the append returned no rows".into()))?;
    Ok(Some(Appended {
        version: expected_version + events.len() as i64,
        position: Position::new(transaction_id, global_position),
    }))
}

/// The key two writers of one aggregate version collide on (guarantee 1).
const EVENTS_PRIMARY_KEY: &str = "events_pkey";

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

/// Read-only access to aggregates, for callers that check a command's preconditions or answer
/// from the write side (the API) but must never append: shares the store's caches.
#[derive(Debug, Clone)]
pub struct AggregateReader {
    store: EventStore,
}

impl AggregateReader {
    /// Loads one aggregate as the log holds it now (see [`EventStore::load_cached`]).
    pub async fn load<A: Aggregate + Clone + 'static>(
        &self,
        aggregate_id: &str,
    ) -> Result<(A, i64), StoreError> {
        self.store.load_cached::<A>(aggregate_id).await
    }
}

impl EventStore {
    /// A read-only handle on this store's aggregates.
    pub fn reader(&self) -> AggregateReader {
        AggregateReader {
            store: self.clone(),
        }
    }
}
