//! Reading your own writes, shared among concurrent readers (`wait::OwnWrites`): the same answer
//! as asking alone, and never an answer from a poll that began before the caller's write.

use chrono::Utc;
use commerce_commands::Dispatcher;
use commerce_domain::cart::{Cart, CartCommand};
use commerce_domain::{Currency, Money};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{EventMetadata, EventStore, Position};
use commerce_projections::wait::{own_writes_pending, OwnWrites};
use futures::future::join_all;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const NAMES: &[&str] = &["carts", "users"];

/// `actor` adds a line to its cart; the position written.
async fn write(dispatcher: &Dispatcher, user: Uuid) -> Position {
    let executed = dispatcher
        .execute::<Cart>(
            &user.to_string(),
            CartCommand::AddToCart {
                user_id: user,
                product_id: Uuid::new_v4(),
                product_name: "Widget".into(),
                unit_price: Money::new(250, Currency::USD),
                quantity: 1,
                at: Utc::now(),
            },
            &EventMetadata::new(actor(user), Uuid::new_v4().to_string()),
        )
        .await
        .expect("a cart write");
    executed.position
}

fn actor(user: Uuid) -> String {
    format!("user:{user}")
}

async fn set_checkpoint(pool: &PgPool, name: &str, at: Position) {
    sqlx::query(
        "INSERT INTO consumer_checkpoints (name, transaction_id, global_position) \
         VALUES ($1, $2, $3) ON CONFLICT (name) DO UPDATE \
         SET transaction_id = $2, global_position = $3",
    )
    .bind(name)
    .bind(at.transaction_id)
    .bind(at.global_position)
    .execute(pool)
    .await
    .expect("a checkpoint");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn concurrent_readers_get_what_each_would_get_alone(pool: PgPool) {
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
    let users: Vec<Uuid> = (0..24).map(|_| Uuid::new_v4()).collect();
    let mut positions = Vec::new();
    for user in &users[..20] {
        positions.push(write(&dispatcher, *user).await);
    }
    // `carts` has applied the first 10 writes, `users` everything: 10 callers wait, 10 do not,
    // and 4 never wrote.
    set_checkpoint(&pool, "carts", positions[9]).await;
    set_checkpoint(&pool, "users", positions[19]).await;

    let gate = OwnWrites::new(pool.clone());
    let shared = join_all(users.iter().map(|u| {
        let (gate, actor) = (gate.clone(), actor(*u));
        async move { gate.pending(NAMES, &actor).await.expect("shared answer") }
    }))
    .await;
    let mut alone = Vec::new();
    for user in &users {
        alone.push(
            own_writes_pending(&pool, NAMES, &actor(*user))
                .await
                .expect("own answer"),
        );
    }
    assert_eq!(shared, alone);
    let expected: Vec<Option<Position>> = (0..24)
        .map(|i| (10..20).contains(&i).then(|| positions[i]))
        .collect();
    assert_eq!(shared, expected);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_write_answered_before_the_read_is_always_seen(pool: PgPool) {
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
    let gate = OwnWrites::new(pool.clone());
    // Read models at the head of an empty log: nothing is pending for anyone.
    set_checkpoint(&pool, "carts", Position::START).await;
    set_checkpoint(&pool, "users", Position::START).await;
    // Other callers keep the shared poll busy, so a read usually arrives while a poll that
    // began before the write is still running.
    let stop = CancellationToken::new();
    let mut busy = Vec::new();
    for _ in 0..8 {
        let (gate, stop) = (gate.clone(), stop.clone());
        busy.push(tokio::spawn(async move {
            let other = actor(Uuid::new_v4());
            while !stop.is_cancelled() {
                gate.pending(NAMES, &other).await.expect("busy reader");
            }
        }));
    }
    let user = Uuid::new_v4();
    for _ in 0..100 {
        let written = write(&dispatcher, user).await;
        assert_eq!(
            gate.pending(NAMES, &actor(user)).await.expect("read"),
            Some(written),
            "a read right after the caller's write must wait for it"
        );
        set_checkpoint(&pool, "carts", written).await;
        set_checkpoint(&pool, "users", written).await;
        assert_eq!(gate.pending(NAMES, &actor(user)).await.expect("read"), None);
    }
    stop.cancel();
    for task in busy {
        task.await.expect("busy reader");
    }
}

/// A projection run as partitions has applied a write once every partition has: its own row
/// (stale once split) does not count, the furthest-behind partition does. The shared poll, the
/// lone query and `has_reached` agree.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_partitioned_projection_has_applied_a_write_once_every_partition_has(pool: PgPool) {
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
    let user = Uuid::new_v4();
    let written = write(&dispatcher, user).await;
    set_checkpoint(&pool, "users", written).await;
    // `carts` split into 2 at the start of the log: its own row stays there for good.
    set_checkpoint(&pool, "carts", Position::START).await;
    sqlx::query("UPDATE consumer_checkpoints SET partitions = 2, status = 'PARTITIONED' WHERE name = 'carts'")
        .execute(&pool)
        .await
        .expect("split");
    for k in 0..2 {
        sqlx::query(
            "INSERT INTO consumer_checkpoints (name, partition_of, partition_index) \
             VALUES ($1, 'carts', $2)",
        )
        .bind(format!("carts.p{k}"))
        .bind(k)
        .execute(&pool)
        .await
        .expect("a partition");
    }
    let gate = OwnWrites::new(pool.clone());
    let answers = |pool: PgPool, gate: OwnWrites| async move {
        let shared = gate.pending(NAMES, &actor(user)).await.expect("shared");
        let alone = own_writes_pending(&pool, NAMES, &actor(user))
            .await
            .expect("alone");
        let reached = commerce_event_store::checkpoint::has_reached(&pool, "carts", written)
            .await
            .expect("reached");
        (shared, alone, reached)
    };

    // One partition has passed the write, the other has not.
    set_checkpoint(&pool, "carts.p0", written).await;
    assert_eq!(
        answers(pool.clone(), gate.clone()).await,
        (Some(written), Some(written), false)
    );
    // Both have, while the projection's own row is still at the start.
    set_checkpoint(&pool, "carts.p1", written).await;
    assert_eq!(
        answers(pool.clone(), gate.clone()).await,
        (None, None, true)
    );
}
