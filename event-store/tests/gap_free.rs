//! Guarantee 2: the log is gap-free for readers.
//!
//! Many writers commit in an order unrelated to the order in which they inserted; some hold their
//! transaction open a while, some roll back. A reader tailing with the `(transaction_id,
//! global_position)` cursor below the horizon must see every committed event exactly once, none of
//! the rolled-back ones, each stream in order. A naive `global_position > last` reader running in
//! the same scenario must lose events, which proves the scenario creates the race.

#![allow(clippy::print_stdout)] // tests print the figures they measure

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{LogReader, Position};
use rand::Rng;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

const WRITERS: usize = 32;
const TRANSACTIONS_PER_WRITER: usize = 15;

async fn insert(conn: &mut sqlx::PgConnection, writer: usize, sequence: i64) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Gap', $1, $2, 'Wrote', '1.0', '{}', '{}') RETURNING global_position",
    )
    .bind(format!("w{writer}"))
    .bind(sequence)
    .fetch_one(conn)
    .await
    .expect("insert")
}

/// One writer: returns the global positions it committed.
async fn writer(pool: PgPool, w: usize) -> Vec<i64> {
    let mut committed = Vec::new();
    let mut version = 0;
    for _ in 0..TRANSACTIONS_PER_WRITER {
        let (events, hold_ms, roll_back) = {
            let mut rng = rand::rng();
            (
                rng.random_range(1..=3),
                if rng.random_bool(0.3) {
                    rng.random_range(5..80)
                } else {
                    0
                },
                rng.random_bool(0.15),
            )
        };
        let mut tx = pool.begin().await.expect("begin");
        let mut positions = Vec::new();
        for i in 0..events {
            positions.push(insert(&mut tx, w, version + 1 + i).await);
        }
        if hold_ms > 0 {
            tokio::time::sleep(Duration::from_millis(hold_ms)).await;
        }
        if roll_back {
            tx.rollback().await.expect("rollback");
        } else {
            tx.commit().await.expect("commit");
            version += events;
            committed.extend(positions);
        }
        let pause = rand::rng().random_range(0..5);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    committed
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn concurrent_writers_never_hide_an_event_from_the_cursor_reader(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let pool = PgPoolOptions::new()
        .max_connections(WRITERS as u32 + 4)
        .connect_with(connect)
        .await
        .unwrap();
    let writers_done = Arc::new(AtomicBool::new(false));

    // The reader under test.
    let reader = {
        let log = LogReader::new(pool.clone());
        let done = writers_done.clone();
        tokio::spawn(async move {
            let mut cursor = Position::START;
            let mut seen = Vec::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                if finished {
                    // Transactions of other tests on this server may hold the horizon back: wait
                    // until everything committed so far is visible before the last reads.
                    assert!(log.settle(Duration::from_secs(30)).await.unwrap());
                }
                let batch = log.read_after(cursor, 50).await.unwrap();
                if batch.is_empty() && finished {
                    return seen;
                }
                for e in &batch {
                    assert!(e.position > cursor, "positions go forward");
                    cursor = e.position;
                }
                seen.extend(batch);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    // The naive reader, in the same scenario.
    let naive = {
        let pool = pool.clone();
        let done = writers_done.clone();
        tokio::spawn(async move {
            let mut last = 0_i64;
            let mut seen = HashSet::new();
            loop {
                let finished = done.load(Ordering::SeqCst);
                let rows: Vec<i64> = sqlx::query_scalar(
                    "SELECT global_position FROM events WHERE global_position > $1 ORDER BY global_position LIMIT 50",
                )
                .bind(last)
                .fetch_all(&pool)
                .await
                .unwrap();
                if rows.is_empty() && finished {
                    return seen;
                }
                for p in rows {
                    last = p;
                    seen.insert(p);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };

    let handles: Vec<_> = (0..WRITERS)
        .map(|w| tokio::spawn(writer(pool.clone(), w)))
        .collect();
    let mut committed = HashSet::new();
    for h in handles {
        committed.extend(h.await.unwrap());
    }
    writers_done.store(true, Ordering::SeqCst);

    let seen = reader.await.unwrap();
    let positions: Vec<i64> = seen.iter().map(|e| e.position.global_position).collect();
    let distinct: HashSet<i64> = positions.iter().copied().collect();
    assert_eq!(distinct.len(), positions.len(), "an event was seen twice");
    let phantom: Vec<_> = distinct.difference(&committed).collect();
    assert!(
        phantom.is_empty(),
        "rolled-back events were seen: {phantom:?}"
    );
    let missed: Vec<_> = committed.difference(&distinct).collect();
    assert!(
        missed.is_empty(),
        "committed events were missed: {missed:?}"
    );

    let mut last_version: HashMap<&str, i64> = HashMap::new();
    for e in &seen {
        let v = last_version.entry(e.aggregate_id.as_str()).or_default();
        assert_eq!(e.sequence, *v + 1, "stream {} out of order", e.aggregate_id);
        *v = e.sequence;
    }

    let naive_seen = naive.await.unwrap();
    let naive_missed = committed.difference(&naive_seen).count();
    println!(
        "{} committed events from {WRITERS} writers; cursor reader missed 0, naive reader missed {naive_missed}",
        committed.len()
    );
    assert!(
        naive_missed > 0,
        "the scenario did not create the race the test is about"
    );
}

/// The race in its smallest form: an earlier insert committing after a later one.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_late_commit_is_lost_by_the_naive_reader_but_not_by_the_cursor(pool: PgPool) {
    let log = LogReader::new(pool.clone());
    let mut slow = pool.begin().await.unwrap();
    let early = insert(&mut slow, 1, 1).await;
    let mut fast = pool.begin().await.unwrap();
    let late = insert(&mut fast, 2, 1).await;
    fast.commit().await.unwrap();
    assert!(early < late);

    // The naive reader sees the later insert and moves past the earlier one.
    let naive_first: Vec<i64> =
        sqlx::query_scalar("SELECT global_position FROM events WHERE global_position > 0")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(naive_first, vec![late]);
    // The cursor reader waits: the slow transaction is below nothing yet, so nothing is visible.
    assert!(log
        .read_after(Position::START, 10)
        .await
        .unwrap()
        .is_empty());

    slow.commit().await.unwrap();
    let naive_after: Vec<i64> =
        sqlx::query_scalar("SELECT global_position FROM events WHERE global_position > $1")
            .bind(late)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert!(
        naive_after.is_empty(),
        "the naive reader never sees the early insert"
    );
    // Other tests' transactions may hold the horizon back for a moment.
    let seen = support::eventually(Duration::from_secs(10), "both events", || async {
        let seen: Vec<i64> = log
            .read_after(Position::START, 10)
            .await
            .unwrap()
            .iter()
            .map(|e| e.position.global_position)
            .collect();
        (seen.len() == 2).then_some(seen)
    })
    .await;
    assert_eq!(
        seen,
        vec![early, late],
        "the cursor reader sees both, in commit-safe order"
    );
    assert_eq!(
        seen,
        vec![early, late],
        "the cursor reader sees both, in commit-safe order"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rolled_back_transaction_holds_nothing_up(pool: PgPool) {
    let log = LogReader::new(pool.clone());
    let mut doomed = pool.begin().await.unwrap();
    insert(&mut doomed, 1, 1).await;
    doomed.rollback().await.unwrap();
    support::append_raw(&pool, "Gap", "w2", 1, "Wrote").await;
    let seen = support::eventually(Duration::from_secs(10), "the committed event", || async {
        let seen = log.read_after(Position::START, 10).await.unwrap();
        (!seen.is_empty()).then_some(seen)
    })
    .await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].aggregate_id, "w2");
}
