//! A database outage while loading or appending an aggregate is a 503, not a 500: the event
//! store keeps the driver's error (pool timed out, pool closed, session terminated) as
//! `StoreError::Database` instead of flattening postgres-es's boxed error to text, and the API's
//! one status table turns it into 503 (issue 7: "503 only while Postgres was down").

use std::time::Duration;

use chrono::Utc;
use commerce_api::error::ApiError;
use commerce_commands::DispatchError;
use commerce_domain::money::{Currency, Money};
use commerce_domain::order::{Order, OrderError, OrderEvent};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{EventMetadata, EventStore, StoreError};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;

/// A pool of one connection that gives up waiting for it after 100 ms.
async fn one_connection_pool(connect: &PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(100))
        .connect_with(connect.clone())
        .await
        .expect("pool")
}

fn an_order_event() -> OrderEvent {
    OrderEvent::OrderPaid {
        order_id: Uuid::new_v4(),
        user_id: Uuid::new_v4(),
        payment_id: Uuid::new_v4(),
        amount: Money::new(100, Currency::USD),
        at: Utc::now(),
    }
}

fn meta() -> EventMetadata {
    EventMetadata::new("test", Uuid::new_v4().to_string())
}

/// The HTTP status the API answers when a command fails with `error`.
fn http_status(error: StoreError) -> u16 {
    ApiError::from(DispatchError::<OrderError>::Store(error))
        .status()
        .as_u16()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn loading_while_every_connection_is_taken_is_a_pool_timeout_answered_503(
    _o: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = one_connection_pool(&connect).await;
    // Snapshots off: the load goes straight to postgres-es's event query.
    let store = EventStore::new(pool.clone()).with_snapshot_every(0);
    let _held = pool.acquire().await.expect("the only connection");

    let error = store
        .load::<Order>(&Uuid::new_v4().to_string())
        .await
        .expect_err("no connection is free");

    assert!(
        matches!(error, StoreError::Database(sqlx::Error::PoolTimedOut)),
        "{error:?}"
    );
    assert_eq!(http_status(error), 503);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn appending_to_a_closed_pool_is_a_database_error_answered_503(
    _o: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = one_connection_pool(&connect).await;
    let store = EventStore::new(pool.clone());
    pool.close().await;

    let error = store
        .append::<Order>(&Uuid::new_v4().to_string(), 0, &[an_order_event()], &meta())
        .await
        .expect_err("the pool is closed");

    assert!(
        matches!(error, StoreError::Database(sqlx::Error::PoolClosed)),
        "{error:?}"
    );
    assert_eq!(http_status(error), 503);
}

/// The session of an append is terminated by the server (as a Postgres restart does) while the
/// append waits on a row lock.
#[sqlx::test(migrator = "MIGRATOR")]
async fn an_append_whose_session_is_terminated_is_a_database_error_answered_503(
    _o: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let admin = one_connection_pool(&connect).await;
    let store = EventStore::new(one_connection_pool(&connect).await);
    let id = Uuid::new_v4().to_string();
    // An uncommitted event at version 1 makes the store's insert of version 1 wait for it.
    let mut blocker = one_connection_pool(&connect)
        .await
        .begin()
        .await
        .expect("transaction");
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('Order', $1, 1, 'OrderPaid', '1.0', '{}', '{}')",
    )
    .bind(&id)
    .execute(&mut *blocker)
    .await
    .expect("blocking insert");

    let terminate = async {
        for _ in 0..500 {
            let terminated: Option<bool> = sqlx::query_scalar(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock' \
                   AND pid <> pg_backend_pid()",
            )
            .fetch_optional(&admin)
            .await
            .expect("pg_stat_activity");
            if terminated == Some(true) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the append never waited on the lock");
    };
    let (events, metadata) = ([an_order_event()], meta());
    let (appended, ()) = tokio::join!(store.append::<Order>(&id, 0, &events, &metadata), terminate);
    blocker.rollback().await.expect("rollback");

    let error = appended.expect_err("its session was terminated");
    let connection_lost = match &error {
        StoreError::Database(sqlx::Error::Database(db)) => db.code().as_deref() == Some("57P01"),
        StoreError::Database(sqlx::Error::Io(_)) => true,
        _ => false,
    };
    assert!(connection_lost, "{error:?}");
    assert_eq!(http_status(error), 503);
}
