//! Durable deadlines: stored in Postgres, fired by a poller, so they survive restarts.
//!
//! The saga schedules `PAYMENT_TIMEOUT` for every placed order and cancels it once the order is
//! confirmed or cancelled. A due deadline sends `ExpirePayment`, which the order ignores if it was
//! paid meanwhile; several pollers may run (`FOR UPDATE SKIP LOCKED`), each deadline fires once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use commerce_domain::order::{Order, OrderCommand};
use commerce_event_store::backoff::sleep_or_shutdown;
use commerce_event_store::EventMetadata;
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{DispatchError, Dispatcher};

/// The kind of deadline that cancels an unpaid order.
pub const PAYMENT_TIMEOUT: &str = "PAYMENT_TIMEOUT";

/// Schedules a deadline (idempotent: the first schedule of a kind and aggregate wins).
pub(crate) async fn schedule(
    conn: &mut PgConnection,
    kind: &str,
    aggregate_id: Uuid,
    due_at: DateTime<Utc>,
    metadata: &EventMetadata,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO process.deadlines (kind, aggregate_id, due_at, correlation_id, causation_id) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, aggregate_id) DO NOTHING",
    )
    .bind(kind)
    .bind(aggregate_id)
    .bind(due_at)
    .bind(&metadata.correlation_id)
    .bind(metadata.causation_id.as_deref().unwrap_or_default())
    .execute(conn)
    .await?;
    Ok(())
}

/// Cancels a pending deadline; a fired or absent one is left alone.
pub(crate) async fn cancel(
    conn: &mut PgConnection,
    kind: &str,
    aggregate_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE process.deadlines SET cancelled_at = now() \
         WHERE kind = $1 AND aggregate_id = $2 AND fired_at IS NULL AND cancelled_at IS NULL",
    )
    .bind(kind)
    .bind(aggregate_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Why a round of deadlines did not complete (it is retried on the next poll).
#[derive(Debug, thiserror::Error)]
pub enum DeadlineError {
    /// Postgres failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The command a deadline sends could not be stored.
    #[error("dispatch failed: {0}")]
    Dispatch(String),
}

/// Fires due deadlines.
#[derive(Debug, Clone)]
pub struct DeadlineScheduler {
    pool: PgPool,
    dispatcher: Dispatcher,
    poll_interval: Duration,
}

impl DeadlineScheduler {
    /// A scheduler polling every `poll_interval`.
    pub fn new(pool: PgPool, dispatcher: Dispatcher, poll_interval: Duration) -> Self {
        Self {
            pool,
            dispatcher,
            poll_interval,
        }
    }

    /// Fires due deadlines until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.fire_due().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(fired = n, "deadlines fired"),
                Err(error) => tracing::warn!(%error, "deadline poll failed; retrying"),
            }
            if !sleep_or_shutdown(self.poll_interval, &shutdown).await {
                return;
            }
        }
    }

    /// Fires every deadline due now; returns how many fired.
    pub async fn fire_due(&self) -> Result<usize, DeadlineError> {
        let mut tx = self.pool.begin().await?;
        let due: Vec<(String, Uuid, String, String)> = sqlx::query_as(
            "SELECT kind, aggregate_id, correlation_id, causation_id FROM process.deadlines \
             WHERE due_at <= now() AND fired_at IS NULL AND cancelled_at IS NULL \
             ORDER BY due_at LIMIT 100 FOR UPDATE SKIP LOCKED",
        )
        .fetch_all(&mut *tx)
        .await?;
        for (kind, aggregate_id, correlation_id, causation_id) in &due {
            if kind == PAYMENT_TIMEOUT {
                let metadata = EventMetadata {
                    actor: "system:deadlines".to_owned(),
                    correlation_id: correlation_id.clone(),
                    causation_id: Some(causation_id.clone()).filter(|c| !c.is_empty()),
                    // A deadline fires long after its cause: its command starts a trace of its own.
                    ..EventMetadata::default()
                };
                let command = OrderCommand::ExpirePayment { at: Utc::now() };
                match self
                    .dispatcher
                    .execute::<Order>(&aggregate_id.to_string(), command, &metadata)
                    .await
                {
                    Ok(_) => {}
                    // The order is gone or settled: nothing to expire.
                    Err(DispatchError::Rejected(e)) => {
                        tracing::info!(order = %aggregate_id, reason = %e, "payment deadline not applicable")
                    }
                    Err(e) => return Err(DeadlineError::Dispatch(e.to_string())),
                }
            }
            sqlx::query(
                "UPDATE process.deadlines SET fired_at = now() WHERE kind = $1 AND aggregate_id = $2",
            )
            .bind(kind)
            .bind(aggregate_id)
            .execute(&mut *tx)
            .await?;
            metrics::counter!("deadlines_fired_total", "kind" => kind.clone()).increment(1);
        }
        tx.commit().await?;
        Ok(due.len())
    }
}
