//! Consumer checkpoints: the cursor and health of every durable consumer, and operator repair.
//!
//! Guarantee 4: a consumer's cursor row is locked and advanced inside the same transaction as its
//! handler's writes. Guarantee 5: a consumer that cannot apply an event is recorded as `FAILED` with
//! the error and position, and stays halted until an operator asks for a retry or a skip.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{LogReader, Position, StoreError, StoredEvent};

/// The lifecycle state of a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsumerState {
    /// Reading the log to reach its head.
    CatchingUp,
    /// Following its queue.
    Live,
    /// Being rebuilt from the log.
    Rebuilding,
    /// Halted on an event it cannot apply.
    Failed,
    /// Run as partitions, each with a row of its own: this row only names the group, and
    /// shows the position of its furthest-behind partition.
    Partitioned,
}

impl ConsumerState {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CatchingUp => "CATCHING_UP",
            Self::Live => "LIVE",
            Self::Rebuilding => "REBUILDING",
            Self::Failed => "FAILED",
            Self::Partitioned => "PARTITIONED",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "LIVE" => Self::Live,
            "REBUILDING" => Self::Rebuilding,
            "FAILED" => Self::Failed,
            "PARTITIONED" => Self::Partitioned,
            _ => Self::CatchingUp,
        }
    }
}

/// What an operator sees of one consumer.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumerStatus {
    /// The consumer's name (queue `<ns>.<name>`).
    pub name: String,
    /// Lifecycle state.
    pub status: ConsumerState,
    /// The last position it applied.
    pub position: Position,
    /// The last position of the log.
    pub head: Position,
    /// Events of the log after its position.
    pub lag_events: i64,
    /// Age of the oldest event it has not applied yet (0 when caught up).
    pub lag_seconds: f64,
    /// Why it halted, when `FAILED`.
    pub last_error: Option<String>,
    /// The event it halted on, when `FAILED`.
    pub failed_position: Option<Position>,
    /// Events applied since it was created.
    pub applied: i64,
    /// Deliveries of events it had already applied, acknowledged and ignored, since it was
    /// created (guarantee 4: at-least-once delivery, exactly-once in effect).
    pub duplicates_ignored: i64,
    /// While a rebuild runs: events replayed so far and the log's size when it started.
    pub rebuild: Option<RebuildProgress>,
    /// For a partitioned consumer's own row: how many partitions it runs as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partitions: Option<u32>,
    /// For a partition's row: the consumer it is a partition of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition_of: Option<String>,
    /// Last change of its row.
    pub updated_at: DateTime<Utc>,
}

/// How far a running rebuild got.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RebuildProgress {
    /// Events replayed.
    pub done: i64,
    /// Events to replay.
    pub total: i64,
    /// When the rebuild started.
    pub started_at: Option<DateTime<Utc>>,
}

impl RebuildProgress {
    /// Events replayed per second since the start, as of `now` (`None` before a second's worth
    /// of time has passed to measure).
    pub fn rate(&self, now: DateTime<Utc>) -> Option<f64> {
        let seconds = (now - self.started_at?).num_milliseconds() as f64 / 1000.0;
        (seconds >= 0.5).then(|| self.done as f64 / seconds)
    }

    /// Seconds until the rest is replayed at the rate so far.
    pub fn seconds_left(&self, now: DateTime<Utc>) -> Option<f64> {
        let rate = self.rate(now).filter(|r| *r > 0.0)?;
        Some((self.total - self.done).max(0) as f64 / rate)
    }
}

/// An operator request that cannot be honoured.
#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    /// No consumer of that name has ever run.
    #[error("no consumer named {0:?}")]
    Unknown(String),
    /// Retry and skip only apply to a halted consumer.
    #[error("consumer {0:?} is not FAILED")]
    NotFailed(String),
    /// Postgres failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(crate) async fn ensure(pool: &PgPool, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO consumer_checkpoints (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn position(pool: &PgPool, name: &str) -> Result<Position, sqlx::Error> {
    let (tx, pos): (i64, i64) = sqlx::query_as(
        "SELECT transaction_id, global_position FROM consumer_checkpoints WHERE name = $1",
    )
    .bind(name)
    .fetch_one(pool)
    .await?;
    Ok(Position::new(tx, pos))
}

/// Locks the row for the rest of `conn`'s transaction and returns the cursor, and the number of
/// partitions when the consumer has been split into partitions (its row is no longer a cursor).
pub(crate) async fn lock(
    conn: &mut PgConnection,
    name: &str,
) -> Result<(Position, Option<u32>), sqlx::Error> {
    let (tx, pos, partitions): (i64, i64, Option<i32>) = sqlx::query_as(
        "SELECT transaction_id, global_position, partitions FROM consumer_checkpoints \
         WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_one(conn)
    .await?;
    Ok((
        Position::new(tx, pos),
        partitions.and_then(|n| u32::try_from(n).ok()),
    ))
}

/// Moves the cursor forward to `to`, counting `applied` events. Never backwards: a run of
/// position markers only (nothing to apply up to `to`) calls it without a transaction or the
/// row lock, and cannot undo an apply that committed first; an apply that locks the row after it
/// starts from the new cursor.
pub(crate) async fn advance(
    conn: &mut PgConnection,
    name: &str,
    to: Position,
    applied: i64,
) -> Result<(), sqlx::Error> {
    // Passing the failed event (another instance applied it once its cause was fixed) clears the
    // halt, so the status never shows a stale failure.
    sqlx::query(
        "UPDATE consumer_checkpoints SET transaction_id = $2, global_position = $3, \
         applied = applied + $4, updated_at = now(), \
         status = CASE WHEN status = 'FAILED' AND (failed_transaction_id, failed_position) <= ($2, $3) \
                       THEN 'LIVE' ELSE status END, \
         last_error = CASE WHEN status = 'FAILED' AND (failed_transaction_id, failed_position) <= ($2, $3) \
                           THEN NULL ELSE last_error END \
         WHERE name = $1 AND (transaction_id, global_position) < ($2, $3)",
    )
    .bind(name)
    .bind(to.transaction_id)
    .bind(to.global_position)
    .bind(applied)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts `n` deliveries of events at or before the cursor, ignored, in the caller's transaction
/// (the one that holds the row's lock), so the count is exact whatever fails afterwards.
pub(crate) async fn count_duplicates(
    conn: &mut PgConnection,
    name: &str,
    n: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE consumer_checkpoints SET duplicates_ignored = duplicates_ignored + $2 \
         WHERE name = $1",
    )
    .bind(name)
    .bind(n)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets the state, unless the consumer is halted (only an operator's action clears `FAILED`) or
/// split into partitions (for good).
pub(crate) async fn set_state(
    pool: &PgPool,
    name: &str,
    state: ConsumerState,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE consumer_checkpoints SET status = $2, updated_at = now() \
         WHERE name = $1 AND status NOT IN ('FAILED', 'PARTITIONED')",
    )
    .bind(name)
    .bind(state.as_str())
    .execute(pool)
    .await?;
    Ok(())
}

/// Splits consumer `base` (whose row the caller's transaction has locked) into `count`
/// partitions `<base>.p<k>`, each starting at `cursor`, the position the consumer has applied
/// everything up to. A partition row left from an earlier split is reset.
pub(crate) async fn split(
    conn: &mut PgConnection,
    base: &str,
    count: u32,
    cursor: Position,
) -> Result<(), sqlx::Error> {
    let names: Vec<String> = (0..count)
        .map(|k| crate::broker::partition_name(base, k))
        .collect();
    let indexes: Vec<i32> = (0..count).filter_map(|k| i32::try_from(k).ok()).collect();
    sqlx::query(
        "INSERT INTO consumer_checkpoints (name, transaction_id, global_position, status, \
             partition_of, partition_index) \
         SELECT n, $2, $3, 'CATCHING_UP', $1, k FROM unnest($4::text[], $5::int[]) AS p(n, k) \
         ON CONFLICT (name) DO UPDATE SET transaction_id = EXCLUDED.transaction_id, \
             global_position = EXCLUDED.global_position, status = 'CATCHING_UP', \
             partition_of = EXCLUDED.partition_of, partition_index = EXCLUDED.partition_index, \
             last_error = NULL, failed_transaction_id = NULL, failed_position = NULL, \
             failed_event_id = NULL, requested_action = NULL, updated_at = now()",
    )
    .bind(base)
    .bind(cursor.transaction_id)
    .bind(cursor.global_position)
    .bind(&names)
    .bind(&indexes)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE consumer_checkpoints SET partitions = $2, status = 'PARTITIONED', \
         updated_at = now() WHERE name = $1",
    )
    .bind(base)
    .bind(i32::try_from(count).unwrap_or(i32::MAX))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Halts consumer `name` as `FAILED` for a reason that is no event's (its queue went missing).
pub(crate) async fn mark_halted(pool: &PgPool, name: &str, error: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE consumer_checkpoints SET status = 'FAILED', last_error = $2, \
         failed_transaction_id = NULL, failed_position = NULL, failed_event_id = NULL, \
         requested_action = NULL, updated_at = now() WHERE name = $1",
    )
    .bind(name)
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

pub(crate) async fn mark_failed(
    pool: &PgPool,
    name: &str,
    event: &StoredEvent,
    error: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE consumer_checkpoints SET status = 'FAILED', last_error = $2, \
         failed_transaction_id = $3, failed_position = $4, failed_event_id = $5, \
         requested_action = NULL, updated_at = now() WHERE name = $1",
    )
    .bind(name)
    .bind(error)
    .bind(event.position.transaction_id)
    .bind(event.position.global_position)
    .bind(event.event_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The outcome of looking at a halted consumer's row.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum OperatorDecision {
    /// Still failed, nobody has acted yet.
    Waiting,
    /// Resume (after a retry request, a skip, or because another instance already resumed).
    Resume,
}

#[derive(sqlx::FromRow)]
struct HaltRow {
    status: String,
    requested_action: Option<String>,
    failed_transaction_id: Option<i64>,
    failed_position: Option<i64>,
    failed_event_id: Option<Uuid>,
    last_error: Option<String>,
}

/// Carries out a pending retry or skip request, if any. Safe when several instances poll at once:
/// the request is claimed by one `UPDATE ... RETURNING`.
pub(crate) async fn take_operator_action(
    pool: &PgPool,
    name: &str,
) -> Result<OperatorDecision, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let row: Option<HaltRow> = sqlx::query_as(
        "SELECT status, requested_action, failed_transaction_id, failed_position, \
         failed_event_id, last_error FROM consumer_checkpoints WHERE name = $1 FOR UPDATE",
    )
    .bind(name)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(HaltRow {
        status,
        requested_action: action,
        failed_transaction_id: failed_tx,
        failed_position: failed_pos,
        failed_event_id: failed_event,
        last_error: error,
    }) = row
    else {
        return Ok(OperatorDecision::Resume);
    };
    if status != ConsumerState::Failed.as_str() {
        return Ok(OperatorDecision::Resume);
    }
    match action.as_deref() {
        Some("SKIP") => {
            let (Some(ftx), Some(fpos)) = (failed_tx, failed_pos) else {
                return Ok(OperatorDecision::Waiting);
            };
            sqlx::query(
                "INSERT INTO consumer_skips (consumer, transaction_id, global_position, event_id, error) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(name)
            .bind(ftx)
            .bind(fpos)
            .bind(failed_event)
            .bind(error)
            .execute(&mut *tx)
            .await?;
            // The cursor moves onto the skipped event, so the next read starts after it.
            sqlx::query(
                "UPDATE consumer_checkpoints SET transaction_id = $2, global_position = $3 \
                 WHERE name = $1 AND (transaction_id, global_position) < ($2, $3)",
            )
            .bind(name)
            .bind(ftx)
            .bind(fpos)
            .execute(&mut *tx)
            .await?;
            tracing::warn!(consumer = name, position = %Position::new(ftx, fpos), "event skipped by operator");
        }
        Some("RETRY") => {
            tracing::info!(consumer = name, "retry requested by operator");
        }
        _ => return Ok(OperatorDecision::Waiting),
    }
    sqlx::query(
        "UPDATE consumer_checkpoints SET status = 'CATCHING_UP', requested_action = NULL, \
         last_error = NULL, failed_transaction_id = NULL, failed_position = NULL, \
         failed_event_id = NULL, updated_at = now() WHERE name = $1",
    )
    .bind(name)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(OperatorDecision::Resume)
}

async fn request(pool: &PgPool, name: &str, action: &str) -> Result<(), RepairError> {
    let updated = sqlx::query(
        "UPDATE consumer_checkpoints SET requested_action = $2, updated_at = now() \
         WHERE name = $1 AND status = 'FAILED'",
    )
    .bind(name)
    .bind(action)
    .execute(pool)
    .await
    .map_err(StoreError::from)?;
    if updated.rows_affected() == 1 {
        return Ok(());
    }
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM consumer_checkpoints WHERE name = $1)")
            .bind(name)
            .fetch_one(pool)
            .await
            .map_err(StoreError::from)?;
    Err(if exists {
        RepairError::NotFailed(name.to_owned())
    } else {
        RepairError::Unknown(name.to_owned())
    })
}

/// Asks a halted consumer to try its failed event again.
pub async fn request_retry(pool: &PgPool, name: &str) -> Result<(), RepairError> {
    request(pool, name, "RETRY").await
}

/// Asks a halted consumer to pass over its failed event (recorded in `consumer_skips`).
pub async fn request_skip(pool: &PgPool, name: &str) -> Result<(), RepairError> {
    request(pool, name, "SKIP").await
}

#[derive(sqlx::FromRow)]
struct StatusRow {
    name: String,
    transaction_id: i64,
    global_position: i64,
    status: String,
    last_error: Option<String>,
    failed_transaction_id: Option<i64>,
    failed_position: Option<i64>,
    applied: i64,
    duplicates_ignored: i64,
    updated_at: DateTime<Utc>,
    /// Set while a rebuild's heartbeat is fresh.
    rebuilding: bool,
    rebuild_applied: Option<i64>,
    rebuild_total: Option<i64>,
    rebuild_started_at: Option<DateTime<Utc>>,
    partitions: Option<i32>,
    partition_of: Option<String>,
}

/// Position, lag and health of every consumer, by name. A partitioned consumer's own row shows
/// the position of its furthest-behind partition; each partition has a row of its own.
pub async fn consumer_statuses(pool: &PgPool) -> Result<Vec<ConsumerStatus>, StoreError> {
    let rows: Vec<StatusRow> = sqlx::query_as(
        "SELECT name, transaction_id, global_position, status, last_error, \
         failed_transaction_id, failed_position, applied, duplicates_ignored, updated_at, \
         coalesce(rebuild_heartbeat_at > now() - interval '30 seconds', false) AS rebuilding, \
         rebuild_applied, rebuild_total, rebuild_started_at, partitions, partition_of \
         FROM consumer_checkpoints ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    let log = LogReader::new(pool.clone());
    let head = log.head().await?;
    let now = Utc::now();
    let mut out = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut position = Position::new(row.transaction_id, row.global_position);
        if row.partitions.is_some() {
            if let Some(least) = rows
                .iter()
                .filter(|p| p.partition_of.as_deref() == Some(row.name.as_str()))
                .map(|p| Position::new(p.transaction_id, p.global_position))
                .min()
            {
                position = least;
            }
        }
        let (lag_events, oldest) = log.backlog(position).await?;
        let lag_seconds =
            oldest.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
        let mut status = ConsumerState::parse(&row.status);
        let rebuild = if row.rebuilding {
            if status != ConsumerState::Failed {
                status = ConsumerState::Rebuilding;
            }
            Some(RebuildProgress {
                done: row.rebuild_applied.unwrap_or(0),
                total: row.rebuild_total.unwrap_or(0),
                started_at: row.rebuild_started_at,
            })
        } else {
            None
        };
        out.push(ConsumerStatus {
            name: row.name.clone(),
            status,
            position,
            head,
            lag_events,
            lag_seconds,
            last_error: row.last_error.clone(),
            failed_position: row
                .failed_transaction_id
                .zip(row.failed_position)
                .map(|(t, p)| Position::new(t, p)),
            applied: row.applied,
            duplicates_ignored: row.duplicates_ignored,
            updated_at: row.updated_at,
            rebuild,
            partitions: row.partitions.and_then(|n| u32::try_from(n).ok()),
            partition_of: row.partition_of.clone(),
        });
    }
    Ok(out)
}

/// Whether consumer `name` has applied everything up to `position` (every partition of it, when
/// it runs as partitions).
pub async fn has_reached(
    pool: &PgPool,
    name: &str,
    position: Position,
) -> Result<bool, StoreError> {
    let current = sqlx::query_as::<_, (i64, i64)>(
        "SELECT transaction_id, global_position FROM consumer_cursors WHERE name = $1",
    )
    .bind(name)
    .fetch_optional(pool)
    .await?;
    Ok(current.is_some_and(|(tx, pos)| Position::new(tx, pos) >= position))
}
