//! Appending to and loading aggregates from the `events` table, through postgres-es.
//!
//! Plain event-store mode only: cqrs-es's snapshot and aggregate stores apply events twice (0.5.0),
//! and `CqrsFramework::execute` cannot tell us where our events landed. So we load, and append at an
//! expected version, ourselves; the unique `(aggregate_type, aggregate_id, sequence)` key turns a
//! racing writer into [`StoreError::Conflict`] (guarantee 1).

use cqrs_es::persist::{PersistedEventRepository, PersistenceError, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;

use crate::{EventMetadata, Position, StoreError};

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The aggregate's version after the append.
    pub version: i64,
    /// The log position of the last appended event.
    pub position: Position,
}

/// The event store: load an aggregate, append its new events at an expected version.
#[derive(Clone)]
pub struct EventStore {
    pool: PgPool,
    repo: std::sync::Arc<PostgresEventRepository>,
}

impl std::fmt::Debug for EventStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStore").finish_non_exhaustive()
    }
}

impl EventStore {
    /// An event store over the `events` table of `pool`'s database.
    pub fn new(pool: PgPool) -> Self {
        let repo = PostgresEventRepository::new(pool.clone());
        Self {
            pool,
            repo: std::sync::Arc::new(repo),
        }
    }

    /// The pool behind this store.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Folds every event of one aggregate. Returns the state and its version (0: no events yet).
    pub async fn load<A: Aggregate>(&self, aggregate_id: &str) -> Result<(A, i64), StoreError> {
        let events = self
            .repo
            .get_events::<A>(aggregate_id)
            .await
            .map_err(|e| repository_error::<A>(e, aggregate_id))?;
        let mut aggregate = A::default();
        let mut version = 0;
        for event in events {
            version = i64::try_from(event.sequence)
                .map_err(|_| StoreError::Repository("sequence out of range".into()))?;
            aggregate.apply(serde_json::from_value(event.payload)?);
        }
        Ok((aggregate, version))
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
        let version = expected_version + events.len() as i64;
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
}

fn repository_error<A: Aggregate>(error: PersistenceError, aggregate_id: &str) -> StoreError {
    match error {
        PersistenceError::OptimisticLockError => StoreError::Conflict {
            aggregate_type: A::TYPE.to_owned(),
            aggregate_id: aggregate_id.to_owned(),
        },
        other => StoreError::Repository(other.to_string()),
    }
}
