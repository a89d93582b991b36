//! Shared helpers of the event-store tests: raw appends; the rest is the workspace's test kit.
#![allow(dead_code, unreachable_pub, unused_imports)]

use std::collections::HashMap;

use sqlx::PgPool;

pub use commerce_testkit::{
    broker, cleanup, close_broker_connection, collect_events, eventually, tap, Received,
};

/// Appends one event per call, in its own transaction, straight into `events`.
pub async fn append_raw(
    pool: &PgPool,
    aggregate_type: &str,
    aggregate_id: &str,
    sequence: i64,
    event_type: &str,
) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ($1, $2, $3, $4, '1.0', $5, $6)",
    )
    .bind(aggregate_type)
    .bind(aggregate_id)
    .bind(sequence)
    .bind(event_type)
    .bind(serde_json::json!({ "n": sequence }))
    .bind(serde_json::json!({ "actor": "test", "correlation_id": format!("corr-{aggregate_id}") }))
    .execute(pool)
    .await
    .expect("append");
}

/// Appends `n` events spread over a few aggregates; returns how many per aggregate.
pub async fn append_many(pool: &PgPool, aggregate_type: &str, n: i64) -> HashMap<String, i64> {
    let mut versions: HashMap<String, i64> = HashMap::new();
    for i in 0..n {
        let id = format!("agg-{}", i % 5);
        let v = versions.entry(id.clone()).or_default();
        *v += 1;
        append_raw(pool, aggregate_type, &id, *v, "Happened").await;
    }
    versions
}
