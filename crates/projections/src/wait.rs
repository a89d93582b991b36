//! Read-your-writes (guarantee 7): wait, with a bound, until projections have applied a position.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commerce_event_store::{checkpoint, Position, StoreError};
use sqlx::PgPool;
use tokio::sync::oneshot;

/// Waits until every projection in `names` has applied `position`, polling every few
/// milliseconds, for at most `timeout`. Returns whether they got there.
pub async fn wait_for(
    pool: &PgPool,
    names: &[&str],
    position: Position,
    timeout: Duration,
) -> Result<bool, StoreError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        let mut all = true;
        for name in names {
            if !checkpoint::has_reached(pool, name, position).await? {
                all = false;
                break;
            }
        }
        if all {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(25));
    }
}

/// The position of `actor`'s latest event when some projection in `names` has not applied it
/// yet; `None` when they all have (or the actor wrote nothing). One statement: what a signed-in
/// caller's read costs when the caller's own writes are already visible.
pub async fn own_writes_pending(
    pool: &PgPool,
    names: &[&str],
    actor: &str,
) -> Result<Option<Position>, StoreError> {
    let pending: Option<(i64, i64)> = sqlx::query_as(
        "WITH last AS ( \
             SELECT transaction_id::text::bigint AS tx, global_position AS pos FROM events \
             WHERE metadata ->> 'actor' = $1 \
             ORDER BY transaction_id DESC, global_position DESC LIMIT 1) \
         SELECT last.tx, last.pos FROM last \
         WHERE EXISTS ( \
             SELECT 1 FROM unnest($2::text[]) AS n(name) \
             LEFT JOIN consumer_cursors c ON c.name = n.name \
             WHERE c.name IS NULL OR (c.transaction_id, c.global_position) < (last.tx, last.pos))",
    )
    .bind(actor)
    .bind(names)
    .fetch_optional(pool)
    .await?;
    Ok(pending.map(|(tx, pos)| Position::new(tx, pos)))
}

/// What one [`OwnWrites`] poll saw, in one snapshot: the latest position of each actor asked
/// about (absent: the actor has written nothing) and every consumer's checkpoint.
#[derive(Debug, Default)]
struct Seen {
    latest: HashMap<String, Position>,
    checkpoints: HashMap<String, Position>,
}

/// Readers waiting for the next poll: their actors, and where to send what it saw (`None` when
/// it failed).
#[derive(Debug, Default)]
struct Next {
    actors: HashSet<String>,
    waiters: Vec<oneshot::Sender<Option<Arc<Seen>>>>,
}

#[derive(Debug, Default)]
struct GateState {
    /// Who the next poll answers.
    next: Next,
    /// Whether a poll loop is running.
    polling: bool,
}

/// [`own_writes_pending`] for many readers at once: concurrent signed-in reads share one
/// statement (their actors' latest positions and every checkpoint), however many there are, so
/// reading your own writes costs a busy API one statement per round trip to Postgres rather
/// than one per read. A reader is answered by the first poll that starts after it asked, so the
/// poll sees every write the reader's caller had been answered for.
#[derive(Debug, Clone)]
pub struct OwnWrites(Arc<Gate>);

#[derive(Debug)]
struct Gate {
    pool: PgPool,
    state: Mutex<GateState>,
}

/// How long a reader waits for a shared poll before it asks on its own.
const GATE_WAIT: Duration = Duration::from_secs(1);

impl OwnWrites {
    /// Polls over `pool`; they run only while readers ask (no task while idle).
    pub fn new(pool: PgPool) -> Self {
        Self(Arc::new(Gate {
            pool,
            state: Mutex::new(GateState::default()),
        }))
    }

    /// The position of `actor`'s latest event when some projection in `names` has not applied
    /// it yet; `None` when they all have (or the actor wrote nothing). The same answer as
    /// [`own_writes_pending`] asked now.
    pub async fn pending(
        &self,
        names: &[&str],
        actor: &str,
    ) -> Result<Option<Position>, StoreError> {
        let (answer, seen) = oneshot::channel();
        {
            let mut state = self.0.lock();
            state.next.actors.insert(actor.to_owned());
            state.next.waiters.push(answer);
            if !state.polling {
                state.polling = true;
                tokio::spawn(Arc::clone(&self.0).poll_while_asked());
            }
        }
        let seen = tokio::time::timeout(GATE_WAIT, seen)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten();
        let Some(seen) = seen else {
            // The shared poll failed or is stuck: ask alone.
            return own_writes_pending(&self.0.pool, names, actor).await;
        };
        let Some(&latest) = seen.latest.get(actor) else {
            return Ok(None);
        };
        let applied = names
            .iter()
            .all(|name| seen.checkpoints.get(*name).is_some_and(|c| *c >= latest));
        Ok((!applied).then_some(latest))
    }
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // Every change to the state is a single assignment, push or take: a panic elsewhere
        // while holding the lock leaves nothing half-done.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Polls while readers wait for a poll that has not started yet.
    async fn poll_while_asked(self: Arc<Self>) {
        loop {
            let next = {
                let mut state = self.lock();
                if state.next.waiters.is_empty() {
                    state.polling = false;
                    return;
                }
                std::mem::take(&mut state.next)
            };
            let seen = match self.poll(next.actors).await {
                Ok(seen) => Some(Arc::new(seen)),
                Err(error) => {
                    tracing::warn!(%error, "could not read the callers' latest writes");
                    None
                }
            };
            for waiter in next.waiters {
                // A reader that gave up is gone; the others still get their answer.
                let _ = waiter.send(seen.clone());
            }
        }
    }

    async fn poll(&self, actors: HashSet<String>) -> Result<Seen, sqlx::Error> {
        let actors: Vec<String> = actors.into_iter().collect();
        let rows: Vec<(bool, String, i64, i64)> = sqlx::query_as(
            "SELECT true, a.actor, l.tx, l.pos FROM unnest($1::text[]) AS a(actor) \
             CROSS JOIN LATERAL (SELECT transaction_id::text::bigint AS tx, global_position AS pos \
                 FROM events WHERE metadata ->> 'actor' = a.actor \
                 ORDER BY transaction_id DESC, global_position DESC LIMIT 1) l \
             UNION ALL \
             SELECT false, coalesce(partition_of, name), transaction_id, global_position \
             FROM consumer_checkpoints WHERE partitions IS NULL",
        )
        .bind(&actors)
        .fetch_all(&self.pool)
        .await?;
        let mut seen = Seen::default();
        for (is_actor, name, tx, pos) in rows {
            let position = Position::new(tx, pos);
            if is_actor {
                seen.latest.insert(name, position);
            } else {
                // A partitioned projection stands where its furthest-behind partition does (what
                // the view `consumer_cursors` says, folded here rather than sorted by Postgres on
                // every poll).
                seen.checkpoints
                    .entry(name)
                    .and_modify(|p| *p = (*p).min(position))
                    .or_insert(position);
            }
        }
        Ok(seen)
    }
}
