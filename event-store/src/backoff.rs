//! Exponential backoff with jitter, for reconnects and handler retries; standing by for the
//! advisory lock of a part only one process may run at a time (the relay, the sealer).

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

/// Doubles from `initial` up to `max`, each wait drawn between half and all of the current step.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// A backoff starting at `initial`, capped at `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
        }
    }

    /// The next wait.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.current;
        self.current = (self.current * 2).min(self.max);
        let millis = u64::try_from(step.as_millis()).unwrap_or(u64::MAX).max(1);
        Duration::from_millis(rand::rng().random_range(millis / 2..=millis))
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }

    /// Sleeps the next wait; returns false if `shutdown` fired meanwhile.
    pub async fn wait(&mut self, shutdown: &CancellationToken) -> bool {
        sleep_or_shutdown(self.next_delay(), shutdown).await
    }
}

/// Sleeps `delay`; returns false if `shutdown` fired first.
pub async fn sleep_or_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = shutdown.cancelled() => false,
    }
}

/// Takes the session-level advisory lock `name` on `conn`, trying again every `standby` while
/// another process holds it. Returns false if `shutdown` fired first. The lock lives as long as
/// `conn`: whoever holds it writes through that connection, so losing it stops the writes too.
pub(crate) async fn stand_by_for_lock(
    conn: &mut sqlx::PgConnection,
    name: &str,
    standby: Duration,
    shutdown: &CancellationToken,
) -> Result<bool, sqlx::Error> {
    let mut announced = false;
    loop {
        let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtext($1))")
            .bind(name)
            .fetch_one(&mut *conn)
            .await?;
        if locked {
            return Ok(true);
        }
        if !announced {
            tracing::info!(lock = name, "another process holds the lock; standing by");
            announced = true;
        }
        if !sleep_or_shutdown(standby, shutdown).await {
            return Ok(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_capped() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let delays: Vec<_> = (0..6).map(|_| b.next_delay()).collect();
        assert!(delays[0] <= Duration::from_millis(100));
        assert!(delays[3] >= Duration::from_millis(400));
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(800)));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
