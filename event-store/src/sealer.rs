//! The sealer: follows the gap-free log and chains the events' content hashes into seals
//! (guarantee 10: tampering is evident).
//!
//! Every event row stores the SHA-256 of its content, computed by the append's own statement
//! (`event_content_hash` in the migrations). The sealer reads the log in cursor order below the
//! horizon, exactly as the relay does (guarantee 2), and writes one `log_seals` row per batch:
//! `seal = SHA-256(previous seal ‖ (transaction id, position, content hash) of each event since)`.
//! It runs behind the writers and never holds anything they wait on; the seal row's primary key
//! (`seal_id` = previous + 1) keeps the chain from forking. One sealer per database is active,
//! holding an advisory lock on the connection it writes seals through (a sealer that lost its lock
//! cannot write); the others stand by.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

use crate::backoff::{sleep_or_shutdown, stand_by_for_lock, Backoff};
use crate::{Position, StoreError};

/// The advisory lock only the active sealer holds.
const LOCK_NAME: &str = "commerce-sealer";

/// What comes before the first seal.
pub const GENESIS: [u8; 32] = [0; 32];

/// Tuning of the sealer.
#[derive(Debug, Clone)]
pub struct SealerConfig {
    /// At most this many events per seal.
    pub batch_size: i64,
    /// Pause when the log has nothing new to seal.
    pub poll_interval: Duration,
    /// Pause between attempts to take the lock while another sealer is active.
    pub standby_interval: Duration,
}

impl Default for SealerConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            poll_interval: Duration::from_millis(100),
            standby_interval: Duration::from_millis(500),
        }
    }
}

/// One event as the chain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Where the event is in the log.
    pub position: Position,
    /// Its stored content hash.
    pub hash: Vec<u8>,
}

/// `SHA-256(previous ‖ for each link: transaction id, position (8 bytes big-endian) ‖ hash)`.
pub fn chain(previous: &[u8], links: &[Link]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(previous);
    for link in links {
        hasher.update(link.position.transaction_id.to_be_bytes());
        hasher.update(link.position.global_position.to_be_bytes());
        hasher.update(&link.hash);
    }
    hasher.finalize().to_vec()
}

/// Lower-case hex, how seals and hashes are shown.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The latest seal: its id, value and the last event it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealHead {
    /// 1 for the first seal.
    pub seal_id: i64,
    /// The seal's value.
    pub seal: Vec<u8>,
    /// The last event it covers.
    pub through: Position,
}

/// The latest seal, `None` before the first.
pub async fn latest_seal(conn: impl sqlx::PgExecutor<'_>) -> Result<Option<SealHead>, StoreError> {
    let row: Option<(i64, Vec<u8>, i64, i64)> = sqlx::query_as(
        "SELECT seal_id, seal, transaction_id, global_position FROM log_seals \
         ORDER BY seal_id DESC LIMIT 1",
    )
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(seal_id, seal, tx, pos)| SealHead {
        seal_id,
        seal,
        through: Position::new(tx, pos),
    }))
}

/// Seals up to `limit` events after the latest seal, through `conn`; the new seal and how many
/// events it covers, or `None` when nothing below the horizon is unsealed. A concurrent sealer that wrote the same seal id first
/// makes this fail on the primary key, writing nothing.
pub async fn seal_next(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Option<(SealHead, usize)>, StoreError> {
    let previous = latest_seal(&mut *conn).await?;
    let (seal_id, prior, after) = match &previous {
        Some(head) => (head.seal_id + 1, head.seal.clone(), head.through),
        None => (1, GENESIS.to_vec(), Position::START),
    };
    // Guarantee 2's reading rule: below the horizon, in (transaction, position) order.
    let rows: Vec<(i64, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT transaction_id::text::bigint, global_position, content_hash FROM events \
         WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
           AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
         ORDER BY transaction_id, global_position LIMIT $3",
    )
    .bind(after.transaction_id.to_string())
    .bind(after.global_position)
    .bind(limit.clamp(1, 10_000))
    .fetch_all(&mut *conn)
    .await?;
    let links: Vec<Link> = rows
        .into_iter()
        .map(|(tx, pos, hash)| Link {
            position: Position::new(tx, pos),
            hash,
        })
        .collect();
    let Some(last) = links.last().map(|l| l.position) else {
        return Ok(None);
    };
    let seal = chain(&prior, &links);
    let transaction_ids: Vec<i64> = links.iter().map(|l| l.position.transaction_id).collect();
    let positions: Vec<i64> = links.iter().map(|l| l.position.global_position).collect();
    let hashes: Vec<Vec<u8>> = links.into_iter().map(|l| l.hash).collect();
    sqlx::query(
        "INSERT INTO log_seals (seal_id, transaction_id, global_position, transaction_ids, \
         positions, hashes, seal) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(seal_id)
    .bind(last.transaction_id)
    .bind(last.global_position)
    .bind(&transaction_ids)
    .bind(&positions)
    .bind(&hashes)
    .bind(&seal)
    .execute(&mut *conn)
    .await?;
    metrics::counter!("sealer_sealed_total").increment(positions.len() as u64);
    let head = SealHead {
        seal_id,
        seal,
        through: last,
    };
    Ok(Some((head, positions.len())))
}

/// Chains the log into seals, one sealer active per database.
#[derive(Debug, Clone)]
pub struct Sealer {
    pool: PgPool,
    config: SealerConfig,
}

impl Sealer {
    /// A sealer over `pool`'s log.
    pub fn new(pool: PgPool, config: SealerConfig) -> Self {
        Self { pool, config }
    }

    /// Runs until `shutdown`: stands by for the lock, seals, and after a failure of Postgres
    /// reconnects with backoff and resumes after the latest seal.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !shutdown.is_cancelled() {
            match self.session(&shutdown, &mut backoff).await {
                Ok(()) => break,
                Err(error) => {
                    metrics::gauge!("sealer_active").set(0.0);
                    tracing::warn!(%error, "sealer interrupted; reconnecting");
                    if !backoff.wait(&shutdown).await {
                        break;
                    }
                }
            }
        }
        metrics::gauge!("sealer_active").set(0.0);
        tracing::info!("sealer stopped");
    }

    async fn session(
        &self,
        shutdown: &CancellationToken,
        backoff: &mut Backoff,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?.detach();
        let standby = self.config.standby_interval;
        if !stand_by_for_lock(&mut conn, LOCK_NAME, standby, shutdown).await? {
            return Ok(());
        }
        tracing::info!("sealer active");
        metrics::gauge!("sealer_active").set(1.0);
        loop {
            if shutdown.is_cancelled() {
                let _ = conn.close().await;
                return Ok(());
            }
            let sealed = seal_next(&mut conn, self.config.batch_size).await?;
            if let Some((head, _)) = &sealed {
                backoff.reset();
                metrics::gauge!("sealer_position").set(head.through.global_position as f64);
            }
            // Behind: full seals back to back. Caught up: a pause, so a busy log gets a seal per
            // poll interval rather than one per handful of events.
            let full = sealed.is_some_and(|(_, events)| events as i64 >= self.config.batch_size);
            if !full {
                sleep_or_shutdown(self.config.poll_interval, shutdown).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seal_depends_on_the_previous_one_and_on_every_link_in_order() {
        let a = Link {
            position: Position::new(5, 1),
            hash: vec![1; 32],
        };
        let b = Link {
            position: Position::new(6, 2),
            hash: vec![2; 32],
        };
        let seal = chain(&GENESIS, &[a.clone(), b.clone()]);
        assert_eq!(seal.len(), 32);
        assert_ne!(seal, chain(&GENESIS, &[b.clone(), a.clone()]));
        assert_ne!(seal, chain(&[1; 32], &[a.clone(), b.clone()]));
        let moved = Link {
            position: Position::new(6, 3),
            ..b
        };
        assert_ne!(seal, chain(&GENESIS, &[a, moved]));
        assert_eq!(hex(&[0, 15, 255]), "000fff");
    }
}
