//! Read-your-writes (guarantee 7): wait, with a bound, until projections have applied a position.

use std::time::Duration;

use commerce_event_store::{checkpoint, Position, StoreError};
use sqlx::PgPool;

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
             LEFT JOIN consumer_checkpoints c ON c.name = n.name \
             WHERE c.name IS NULL OR (c.transaction_id, c.global_position) < (last.tx, last.pos))",
    )
    .bind(actor)
    .bind(names)
    .fetch_optional(pool)
    .await?;
    Ok(pending.map(|(tx, pos)| Position::new(tx, pos)))
}
