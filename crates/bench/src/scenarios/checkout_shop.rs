//! The `checkout` scenario's shop: customers and products, and the tracker that sees orders
//! reach `CONFIRMED` in the read model.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rand::Rng;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::platform::post;
use crate::stats::{percentile, sorted_ms};

pub(super) const POLL_EVERY: Duration = Duration::from_millis(5);
/// Longest a phase-1 customer waits for its order to be confirmed.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(60);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An order waiting to show up `CONFIRMED`: when its `POST /orders` started, who waits for it.
type Waiting = (Instant, Option<oneshot::Sender<()>>);

/// Orders waiting to show up `CONFIRMED`, and how long those that did took.
#[derive(Debug, Default)]
pub(super) struct Tracker {
    outstanding: Mutex<HashMap<Uuid, Waiting>>,
    confirmed: Mutex<Vec<Duration>>,
    pub(super) poll_errors: AtomicU64,
    /// Queries the poller ran: its own transactions, taken out of the platform's count.
    pub(super) polls: AtomicU64,
}

impl Tracker {
    /// Watches `order_id`; the receiver fires once it is confirmed.
    pub(super) fn track(&self, order_id: Uuid, started: Instant) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        lock(&self.outstanding).insert(order_id, (started, Some(tx)));
        rx
    }

    pub(super) fn outstanding(&self) -> usize {
        lock(&self.outstanding).len()
    }

    pub(super) fn take_confirmed(&self) -> Vec<Duration> {
        std::mem::take(&mut *lock(&self.confirmed))
    }

    /// Polls the orders read model for the outstanding ids until `stop`.
    pub(super) async fn poll(self: Arc<Self>, pool: PgPool, stop: CancellationToken) {
        while !stop.is_cancelled() {
            let ids: Vec<Uuid> = lock(&self.outstanding).keys().copied().collect();
            if !ids.is_empty() {
                self.polls.fetch_add(1, Ordering::Relaxed);
                let found = sqlx::query_scalar::<_, Uuid>(
                    "SELECT id FROM orders.orders WHERE id = ANY($1) AND status = 'CONFIRMED'",
                )
                .bind(&ids)
                .fetch_all(&pool)
                .await;
                match found {
                    Ok(found) => {
                        let mut outstanding = lock(&self.outstanding);
                        let mut confirmed = lock(&self.confirmed);
                        for id in found {
                            if let Some((started, waiter)) = outstanding.remove(&id) {
                                confirmed.push(started.elapsed());
                                if let Some(waiter) = waiter {
                                    let _ = waiter.send(());
                                }
                            }
                        }
                    }
                    Err(_) => {
                        self.poll_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// What a checkout needs, shared by every caller.
pub(super) struct Shop {
    pub(super) client: reqwest::Client,
    pub(super) base: String,
    pub(super) tokens: Vec<String>,
    pub(super) products: Vec<Uuid>,
    pub(super) tracker: Arc<Tracker>,
}

impl Shop {
    /// Customer `customer` places and pays an order of a random product, and (when `wait`)
    /// waits until it is confirmed; returns `[place, pay]` latencies.
    pub(super) async fn checkout(
        &self,
        customer: usize,
        wait: bool,
    ) -> anyhow::Result<Vec<Duration>> {
        let product_id = self.products[rand::rng().random_range(0..self.products.len())];
        let token = &self.tokens[customer % self.tokens.len()];
        let started = Instant::now();
        let placed = post(
            &self.client,
            &format!("{}/api/v1/orders", self.base),
            token,
            &json!({
                "shipping_address": {"line1": "1 Bench Street", "city": "Testville",
                                     "postal_code": "12345", "country": "NL"},
                "payment_method": "card",
                "items": [{"product_id": product_id, "quantity": 1}],
            }),
        )
        .await?;
        let place = started.elapsed();
        let order = &placed["data"];
        let order_id: Uuid = order["id"].as_str().context("no order id")?.parse()?;
        let confirmed = self.tracker.track(order_id, started);
        let paying = Instant::now();
        let paid = post(
            &self.client,
            &format!("{}/api/v1/payments", self.base),
            token,
            &json!({"order_id": order_id, "amount": order["total_amount"],
                    "currency": order["currency"], "method": "card"}),
        )
        .await?;
        let pay = paying.elapsed();
        if paid["data"]["status"] != "COMPLETED" {
            bail!("payment not completed: {paid}");
        }
        if wait {
            tokio::time::timeout(CONFIRM_TIMEOUT, confirmed)
                .await
                .with_context(|| format!("order {order_id} not confirmed in time"))??;
        }
        Ok(vec![place, pay])
    }
}

pub(super) fn ms(samples: &[Duration], p: f64) -> f64 {
    percentile(&sorted_ms(samples), p)
}

/// Where the pipeline stands, read in one statement (one transaction).
#[derive(Debug, Clone, Copy)]
pub(super) struct Counters {
    /// Events the order fulfilment saga has applied.
    pub(super) saga_applied: i64,
    /// Transactions committed in the bench database (each autocommit statement counts).
    pub(super) xacts: i64,
    /// Events in the log.
    pub(super) events: i64,
}

/// The pipeline's [`Counters`] now.
pub(super) async fn counters(pool: &PgPool) -> anyhow::Result<Counters> {
    let (saga_applied, xacts, events) = sqlx::query_as(
        "SELECT (SELECT coalesce(max(applied), 0) FROM consumer_checkpoints WHERE name = $1), \
                (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()), \
                (SELECT count(*) FROM events)",
    )
    .bind(commerce_commands::process::order_fulfilment::OrderFulfilmentProcess::NAME)
    .fetch_one(pool)
    .await?;
    Ok(Counters {
        saga_applied,
        xacts,
        events,
    })
}

/// How far behind the log head the relay and the two slowest consumers were, in events.
pub(super) async fn lag_snapshot(pool: &PgPool, namespace: &str) -> anyhow::Result<String> {
    let head: i64 = sqlx::query_scalar("SELECT coalesce(max(global_position), 0) FROM events")
        .fetch_one(pool)
        .await?;
    let relay: Option<i64> =
        sqlx::query_scalar("SELECT global_position FROM relay_cursors WHERE name = $1")
            .bind(namespace)
            .fetch_optional(pool)
            .await?;
    let consumers: Vec<(String, i64)> = sqlx::query_as(
        "SELECT name, global_position FROM consumer_checkpoints ORDER BY global_position LIMIT 2",
    )
    .fetch_all(pool)
    .await?;
    let mut text = format!("relay {}", head - relay.unwrap_or(0));
    for (name, position) in consumers {
        text.push_str(&format!(", {name} {}", head - position));
    }
    Ok(text)
}
