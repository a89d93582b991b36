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
