//! Rebuilding a read model from the log (guarantee 6).
//!
//! The log is replayed into a shadow schema `<name>_rebuild`, a structural copy of the live one
//! (`CREATE TABLE ... (LIKE ... INCLUDING ALL)`, so the schema is still defined only by the
//! migrations), while the live projection keeps serving reads and applying new events. Once the
//! replay has caught up, one transaction locks the projection's checkpoint (pausing its consumer),
//! applies the last events, and either swaps the schemas and moves the cursor (a rebuild) or
//! compares both schemas row for row (a verification). Progress is written to the checkpoint row
//! as a heartbeat, so `projections status` shows `REBUILDING` with how far it got.
//!
//! The log is read in batches; each batch's wanted events go to [`Projection::apply_batch`] in one
//! transaction while the next batch is read. A batch that fails is redone one event at a time, so
//! the error names its event.

use std::time::{Duration, Instant};

use commerce_event_store::log::Scan;
use commerce_event_store::privacy::Privacy;
use commerce_event_store::{
    ConsumerConfig, HandlerError, LogReader, Position, StoreError, StoredEvent,
};
use sqlx::{PgConnection, PgPool};

use crate::projection::{use_schema, Projection};

/// How far a rebuild got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Events of the log read so far.
    pub done: i64,
    /// Events in the log when the rebuild started (the log may grow meanwhile).
    pub total: i64,
    /// Events read per second so far.
    pub rate: f64,
}

impl Progress {
    /// Percentage done, capped at 100.
    pub fn percent(&self) -> f64 {
        if self.total <= 0 {
            100.0
        } else {
            (self.done as f64 * 100.0 / self.total as f64).min(100.0)
        }
    }
}

/// The outcome of a finished rebuild or verification.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Events read from the log.
    pub events: i64,
    /// Events the projection applied (those matching its bindings).
    pub applied: i64,
    /// The log position the rebuilt model reflects.
    pub position: Position,
    /// Wall time.
    pub elapsed: Duration,
}

/// Why a rebuild stopped. The live read model is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    /// The projection's live schema does not exist (migrations not applied?).
    #[error("projection {0:?} has no schema; run `commerce migrate`")]
    NoSchema(String),
    /// The projection could not apply an event.
    #[error("event at {position} ({event_type}) failed: {error}")]
    Handler {
        /// Where.
        position: Position,
        /// What.
        event_type: String,
        /// Why.
        error: String,
    },
    /// Verification: the live model is behind the log, so the two cannot be compared yet.
    #[error(
        "the live projection is at {live}, the replay at {replayed}: wait until it catches up"
    )]
    LiveBehind {
        /// Live cursor.
        live: Position,
        /// Replay cursor.
        replayed: Position,
    },
    /// Verification: live and replayed read models differ.
    #[error("live and replayed read models differ: {0:?}")]
    Mismatch(Vec<String>),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RebuildError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Database(e))
    }
}

/// What to do once the replay caught up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Swap the replayed schema in and move the projection's cursor to it.
    Swap,
    /// Compare it with the live schema row for row, then drop it.
    Verify,
}

const BATCH: i64 = 2_000;

/// Replays the whole log into a shadow schema of `P`, then swaps it in or verifies it.
/// `on_progress` is called after every batch read from the log (every 2,000 events, so even a
/// replay of a few thousand events shows it rising) and once at the end; the heartbeat in the
/// checkpoint row is written about once a second.
pub async fn rebuild<P: Projection>(
    pool: &PgPool,
    privacy: Option<&Privacy>,
    projection: &P,
    finish: Finish,
    mut on_progress: impl FnMut(Progress) + Send,
) -> Result<Report, RebuildError> {
    let started = Instant::now();
    let name = P::NAME;
    let shadow = format!("{name}_rebuild");
    let config = ConsumerConfig::new(name, P::bindings());
    let log = LogReader::new(pool.clone()).with_privacy(privacy.cloned());

    let deferred_indexes = prepare_shadow(pool, name, &shadow).await?;
    sqlx::query(
        "INSERT INTO consumer_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .execute(pool)
    .await?;
    let (total, _) = log.backlog(Position::START).await?;
    sqlx::query(
        "UPDATE consumer_checkpoints SET rebuild_started_at = now(), rebuild_heartbeat_at = now(), \
         rebuild_applied = 0, rebuild_total = $2 WHERE name = $1",
    )
    .bind(name)
    .bind(total)
    .execute(pool)
    .await?;

    let result = async {
        let mut cursor = Position::START;
        let mut events = 0_i64;
        let mut applied = 0_i64;
        let mut last_heartbeat = Instant::now();
        // Events the projection does not handle are scanned without their payloads.
        let bindings = P::bindings();
        let mut batch = log.scan_after(cursor, BATCH, &bindings).await?;
        loop {
            let caught_up = (batch.scanned as i64) < BATCH;
            if let Some(last) = batch.last {
                // The next batch is read while this one is applied: the log is append-only and
                // the reader's cursor is already known, so the two cannot interfere.
                let read_next = async {
                    if caught_up {
                        Ok(Scan { events: Vec::new(), scanned: 0, last: None })
                    } else {
                        log.scan_after(last, BATCH, &bindings).await
                    }
                };
                let apply = async {
                    let mut tx = pool.begin().await?;
                    // A replay's writes can be redone from the log: no need to wait for the WAL
                    // flush.
                    sqlx::query("SET LOCAL synchronous_commit = off").execute(&mut *tx).await?;
                    use_schema(&mut tx, &shadow).await?;
                    let applied = apply_all(projection, &config, &mut tx, &batch.events).await?;
                    tx.commit().await?;
                    Ok::<_, RebuildError>(applied)
                };
                let (next, done) = tokio::join!(read_next, apply);
                applied += done?;
                events += batch.scanned as i64;
                cursor = last;
                batch = next?;
            }
            let rate = events as f64 / started.elapsed().as_secs_f64().max(1e-3);
            on_progress(Progress { done: events, total: total.max(events), rate });
            if last_heartbeat.elapsed() >= Duration::from_secs(1) || caught_up {
                last_heartbeat = Instant::now();
                sqlx::query(
                    "UPDATE consumer_checkpoints SET rebuild_heartbeat_at = now(), \
                     rebuild_applied = $2, rebuild_total = GREATEST(rebuild_total, $2) WHERE name = $1",
                )
                .bind(name)
                .bind(events)
                .execute(pool)
                .await?;
            }
            if caught_up {
                break;
            }
        }

        // The last stretch, with the live consumer paused on its checkpoint row.
        let mut tx = pool.begin().await?;
        let (live_tx, live_pos): (i64, i64) = sqlx::query_as(
            "SELECT transaction_id, global_position FROM consumer_checkpoints WHERE name = $1 FOR UPDATE",
        )
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        // Run as partitions: every partition is paused too, and the live model stands where
        // the furthest-behind one does.
        let partitions: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT transaction_id, global_position FROM consumer_checkpoints \
             WHERE partition_of = $1 ORDER BY name FOR UPDATE",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await?;
        let live = partitions
            .into_iter()
            .map(|(t, p)| Position::new(t, p))
            .min()
            .unwrap_or(Position::new(live_tx, live_pos));
        use_schema(&mut tx, &shadow).await?;
        loop {
            let batch = log.scan_after(cursor, BATCH, &bindings).await?;
            let Some(last) = batch.last else { break };
            applied += apply_all(projection, &config, &mut tx, &batch.events).await?;
            events += batch.scanned as i64;
            cursor = last;
        }
        // The secondary indexes, built once over the whole replay rather than row by row.
        for definition in &deferred_indexes {
            sqlx::query(definition).execute(&mut *tx).await?;
        }
        match finish {
            Finish::Swap => {
                let old = format!("{name}_old");
                sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{old}\" CASCADE")).execute(&mut *tx).await?;
                sqlx::query(&format!("ALTER SCHEMA \"{name}\" RENAME TO \"{old}\"")).execute(&mut *tx).await?;
                sqlx::query(&format!("ALTER SCHEMA \"{shadow}\" RENAME TO \"{name}\"")).execute(&mut *tx).await?;
                sqlx::query(&format!("DROP SCHEMA \"{old}\" CASCADE")).execute(&mut *tx).await?;
                sqlx::query(
                    "UPDATE consumer_checkpoints SET transaction_id = $2, global_position = $3, \
                     updated_at = now() WHERE name = $1 OR partition_of = $1",
                )
                .bind(name)
                .bind(cursor.transaction_id)
                .bind(cursor.global_position)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
            }
            Finish::Verify => {
                if live < cursor {
                    return Err(RebuildError::LiveBehind { live, replayed: cursor });
                }
                let differences = compare(&mut tx, name, &shadow).await?;
                tx.rollback().await?;
                if !differences.is_empty() {
                    return Err(RebuildError::Mismatch(differences));
                }
            }
        }
        on_progress(Progress { done: events, total: total.max(events), rate: events as f64 / started.elapsed().as_secs_f64().max(1e-3) });
        Ok(Report { events, applied, position: cursor, elapsed: started.elapsed() })
    }
    .await;

    // Whatever happened, the shadow goes and the heartbeat stops.
    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{shadow}\" CASCADE"))
        .execute(pool)
        .await;
    let _ = sqlx::query(
        "UPDATE consumer_checkpoints SET rebuild_started_at = NULL, rebuild_heartbeat_at = NULL, \
         rebuild_applied = NULL, rebuild_total = NULL WHERE name = $1",
    )
    .bind(name)
    .execute(pool)
    .await;
    result
}

/// Applies the events of `batch` that `config` wants as one [`Projection::apply_batch`]. If the
/// batch fails, it is rolled back to a savepoint and applied again one event at a time, so an error
/// names the event that caused it.
async fn apply_all<P: Projection>(
    projection: &P,
    config: &ConsumerConfig,
    conn: &mut PgConnection,
    batch: &[StoredEvent],
) -> Result<i64, RebuildError> {
    let wanted: Vec<&StoredEvent> = batch.iter().filter(|e| config.wants(e)).collect();
    let Some(first) = wanted.first().map(|e| e.position) else {
        return Ok(0);
    };
    sqlx::query("SAVEPOINT apply_batch")
        .execute(&mut *conn)
        .await?;
    match projection.apply_batch(conn, &wanted).await {
        Ok(()) => {
            sqlx::query("RELEASE SAVEPOINT apply_batch")
                .execute(&mut *conn)
                .await?;
        }
        Err(batch_error) => {
            sqlx::query("ROLLBACK TO SAVEPOINT apply_batch")
                .execute(&mut *conn)
                .await?;
            for event in &wanted {
                projection
                    .apply(conn, event)
                    .await
                    .map_err(|e: HandlerError| RebuildError::Handler {
                        position: event.position,
                        event_type: event.event_type.clone(),
                        error: e.to_string(),
                    })?;
            }
            // One by one is the reference result, so the replay goes on; a batch that fails where
            // single events do not is a bug of the projection's `apply_batch`.
            tracing::warn!(
                projection = P::NAME,
                from = %first,
                events = wanted.len(),
                error = %batch_error,
                "a batch failed but its events applied one by one"
            );
        }
    }
    Ok(wanted.len() as i64)
}

async fn tables(conn: impl sqlx::PgExecutor<'_>, schema: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY table_name",
    )
    .bind(schema)
    .fetch_all(conn)
    .await
}

/// A fresh, empty structural copy of the live schema.
/// Creates the empty shadow schema: every table of the live one, with its constraints and unique
/// indexes (what the projection's upserts rely on). Its other indexes are dropped and their
/// definitions returned, to be built once the replay is in (a bulk build is much cheaper than
/// maintaining a full-text or partial index row by row).
async fn prepare_shadow(
    pool: &PgPool,
    live: &str,
    shadow: &str,
) -> Result<Vec<String>, RebuildError> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)")
            .bind(live)
            .fetch_one(pool)
            .await?;
    if !exists {
        return Err(RebuildError::NoSchema(live.to_owned()));
    }
    let mut tx = pool.begin().await?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{shadow}\" CASCADE"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA \"{shadow}\""))
        .execute(&mut *tx)
        .await?;
    for table in tables(&mut *tx, live).await? {
        sqlx::query(&format!(
            "CREATE TABLE \"{shadow}\".\"{table}\" (LIKE \"{live}\".\"{table}\" INCLUDING ALL)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    let deferred: Vec<(String, String)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname), pg_get_indexdef(i.indexrelid) \
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND NOT i.indisunique AND NOT i.indisprimary \
           AND NOT i.indisexclusion \
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)",
    )
    .bind(shadow)
    .fetch_all(&mut *tx)
    .await?;
    for (index, _) in &deferred {
        sqlx::query(&format!("DROP INDEX {index}"))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(deferred
        .into_iter()
        .map(|(_, definition)| definition)
        .collect())
}

/// Tables whose rows differ between the two schemas, with the count of differing rows.
async fn compare(
    conn: &mut PgConnection,
    live: &str,
    shadow: &str,
) -> Result<Vec<String>, RebuildError> {
    let mut differences = Vec::new();
    for table in tables(&mut *conn, live).await? {
        let (a, b) = (
            format!("\"{live}\".\"{table}\""),
            format!("\"{shadow}\".\"{table}\""),
        );
        let differing: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM ((SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) \
             UNION ALL (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a})) d"
        ))
        .fetch_one(&mut *conn)
        .await?;
        if differing > 0 {
            differences.push(format!("{live}.{table}: {differing} rows differ"));
        }
    }
    Ok(differences)
}
