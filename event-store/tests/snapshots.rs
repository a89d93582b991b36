//! Snapshots of our own: a load from a snapshot equals a full replay, a bad snapshot is ignored,
//! a snapshot never moves backwards.

use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{EventMetadata, EventStore};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

/// Order-sensitive state: the list of every amount applied shows a skipped, repeated or
/// reordered event, which a plain sum would hide.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
struct Tally {
    sum: i64,
    applied: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum TallyEvent {
    Added { amount: i64 },
}

impl DomainEvent for TallyEvent {
    fn event_type(&self) -> String {
        "Added".into()
    }
    fn event_version(&self) -> String {
        "1.0".into()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Aggregate for Tally {
    const TYPE: &'static str = "Tally";
    type Command = i64;
    type Event = TallyEvent;
    type Error = Never;
    type Services = ();

    async fn handle(&mut self, amount: i64, _: &(), sink: &EventSink<Self>) -> Result<(), Never> {
        sink.write(TallyEvent::Added { amount }, self).await;
        Ok(())
    }

    fn apply(&mut self, event: TallyEvent) {
        let TallyEvent::Added { amount } = event;
        self.sum += amount;
        self.applied.push(amount);
    }
}

const ID: &str = "t1";

fn meta() -> EventMetadata {
    EventMetadata::new("test", "corr")
}

/// Appends `count` events one by one, saving a snapshot whenever the store's policy says so,
/// the way command dispatch does. Returns the state it tracked in memory.
async fn append_with_snapshots(store: &EventStore, count: i64) -> Tally {
    let mut tally = Tally::default();
    for version in 0..count {
        let event = TallyEvent::Added {
            amount: (version + 1) * 10,
        };
        let appended = store
            .append::<Tally>(ID, version, std::slice::from_ref(&event), &meta())
            .await
            .unwrap()
            .unwrap();
        tally.apply(event);
        if store.snapshot_due(version, appended.version) {
            assert!(store
                .save_snapshot(ID, appended.version, &tally)
                .await
                .unwrap());
        }
    }
    tally
}

async fn snapshot_version(pool: &PgPool) -> Option<i64> {
    sqlx::query_scalar(
        "SELECT version FROM aggregate_snapshots WHERE aggregate_type = 'Tally' AND aggregate_id = $1",
    )
    .bind(ID)
    .fetch_optional(pool)
    .await
    .unwrap()
}

async fn plant_snapshot(pool: &PgPool, version: i64, state: serde_json::Value) {
    sqlx::query(
        "INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, version, state) \
         VALUES ('Tally', $1, $2, $3) \
         ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE SET version = $2, state = $3",
    )
    .bind(ID)
    .bind(version)
    .bind(state)
    .execute(pool)
    .await
    .unwrap();
}

fn full_replay(pool: &PgPool) -> EventStore {
    EventStore::new(pool.clone()).with_snapshot_every(0)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_snapshot_is_due_when_an_append_crosses_a_multiple_of_the_interval(pool: PgPool) {
    let store = EventStore::new(pool);
    assert_eq!(store.snapshot_every(), 100);
    assert!(store.snapshot_due(99, 100));
    assert!(store.snapshot_due(98, 103), "a batch stepping over 100");
    assert!(!store.snapshot_due(100, 199));
    assert!(!store.snapshot_due(5, 5), "nothing appended");
    let off = store.with_snapshot_every(0);
    assert!(!off.snapshot_due(99, 100));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn loading_from_a_snapshot_equals_a_full_replay(pool: PgPool) {
    let store = EventStore::new(pool.clone()).with_snapshot_every(3);
    let tracked = append_with_snapshots(&store, 10).await;
    assert_eq!(snapshot_version(&pool).await, Some(9));

    let from_snapshot = store.load::<Tally>(ID).await.unwrap();
    let replayed = full_replay(&pool).load::<Tally>(ID).await.unwrap();
    assert_eq!(from_snapshot, replayed);
    assert_eq!(from_snapshot, (tracked, 10));
    assert_eq!(
        replayed.0.applied,
        (1..=10).map(|i| i * 10).collect::<Vec<_>>()
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_load_folds_only_the_events_after_the_snapshot(pool: PgPool) {
    let store = EventStore::new(pool.clone()).with_snapshot_every(3);
    append_with_snapshots(&store, 10).await;
    // A marked (deliberately wrong) state at version 9 shows what the load started from.
    let marked = Tally {
        sum: -1,
        applied: vec![-1],
    };
    plant_snapshot(&pool, 9, serde_json::to_value(&marked).unwrap()).await;

    let (tally, version) = store.load::<Tally>(ID).await.unwrap();
    assert_eq!((tally.applied, tally.sum, version), (vec![-1, 100], 99, 10));
    // With snapshots off the store ignores the row: the events are the truth.
    assert_eq!(
        full_replay(&pool).load::<Tally>(ID).await.unwrap().0.sum,
        550
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_snapshot_that_does_not_deserialise_falls_back_to_a_full_replay(pool: PgPool) {
    let store = EventStore::new(pool.clone()).with_snapshot_every(3);
    let tracked = append_with_snapshots(&store, 10).await;

    // The aggregate's struct changed since the snapshot was taken: at a version in the log, and
    // at one far ahead of it.
    for version in [9, 1_000_000] {
        plant_snapshot(&pool, version, serde_json::json!({ "garbage": true })).await;
        let loaded = store.load::<Tally>(ID).await.unwrap();
        assert_eq!(
            loaded,
            (tracked.clone(), 10),
            "garbage at version {version}"
        );
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_snapshot_ahead_of_the_log_is_ignored(pool: PgPool) {
    let store = EventStore::new(pool.clone()).with_snapshot_every(3);
    let tracked = append_with_snapshots(&store, 10).await;
    let ahead = Tally {
        sum: 7,
        applied: vec![7],
    };
    plant_snapshot(&pool, 11, serde_json::to_value(&ahead).unwrap()).await;

    assert_eq!(store.load::<Tally>(ID).await.unwrap(), (tracked, 10));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_snapshot_never_moves_backwards(pool: PgPool) {
    let store = EventStore::new(pool.clone()).with_snapshot_every(3);
    let tracked = append_with_snapshots(&store, 10).await;
    assert_eq!(snapshot_version(&pool).await, Some(9));

    // A slow writer arriving with an older state (version 6) changes nothing.
    let (at_six, six) = {
        let mut tally = Tally::default();
        for i in 1..=6 {
            tally.apply(TallyEvent::Added { amount: i * 10 });
        }
        (tally, 6)
    };
    assert!(!store.save_snapshot(ID, six, &at_six).await.unwrap());
    assert!(
        !store.save_snapshot(ID, 9, &at_six).await.unwrap(),
        "same version"
    );
    assert_eq!(snapshot_version(&pool).await, Some(9));
    assert_eq!(
        store.load::<Tally>(ID).await.unwrap(),
        (tracked.clone(), 10)
    );

    assert!(store.save_snapshot(ID, 10, &tracked).await.unwrap());
    assert_eq!(snapshot_version(&pool).await, Some(10));
    assert_eq!(store.load::<Tally>(ID).await.unwrap(), (tracked, 10));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_load_sees_a_snapshot_row_rewritten_since_this_process_read_it(pool: PgPool) {
    let store = EventStore::new(pool.clone()).with_snapshot_every(3);
    let tracked = append_with_snapshots(&store, 10).await;
    assert_eq!(
        store.load::<Tally>(ID).await.unwrap(),
        (tracked.clone(), 10)
    );
    assert_eq!(
        store.load::<Tally>(ID).await.unwrap(),
        (tracked.clone(), 10)
    );

    // Same version, other content: the process must not keep using what it read before.
    let marked = Tally {
        sum: -1,
        applied: vec![-1],
    };
    plant_snapshot(&pool, 9, serde_json::to_value(&marked).unwrap()).await;
    let (tally, _) = store.clone().load::<Tally>(ID).await.unwrap();
    assert_eq!(tally.applied, vec![-1, 100]);

    sqlx::query("DELETE FROM aggregate_snapshots")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(store.load::<Tally>(ID).await.unwrap(), (tracked, 10));
}

/// Round trips of a load without the cache (what a command on an aggregate this process has not
/// held pays before deciding): one statement when there is nothing to fold after the snapshot
/// lookup (a stream not created yet, or one whose snapshot is at its head), two otherwise.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_cold_load_with_nothing_to_fold_after_its_snapshot_lookup_is_one_statement(pool: PgPool) {
    let reads_of = |store: &EventStore, id: &'static str| {
        let store = store.clone();
        async move {
            let before = store.read_statements();
            let loaded = store.load::<Tally>(id).await.unwrap();
            (store.read_statements() - before, loaded)
        }
    };
    let store = EventStore::new(pool.clone()).with_snapshot_every(3);
    assert_eq!(
        reads_of(&store, ID).await,
        (1, (Tally::default(), 0)),
        "a stream with no event yet"
    );

    let tracked = append_with_snapshots(&store, 9).await;
    assert_eq!(snapshot_version(&pool).await, Some(9));
    // A store that has read no snapshot text yet, as after a restart.
    let cold = EventStore::new(pool.clone()).with_snapshot_every(3);
    assert_eq!(
        reads_of(&cold, ID).await,
        (1, (tracked.clone(), 9)),
        "a snapshot at the head of its stream"
    );

    store
        .append::<Tally>(ID, 9, &[TallyEvent::Added { amount: 100 }], &meta())
        .await
        .unwrap()
        .unwrap();
    let (reads, (tally, version)) = reads_of(&cold, ID).await;
    assert_eq!((reads, tally.sum, version), (2, tracked.sum + 100, 10));

    // A snapshot planted ahead of a stream that has no event is ignored without a second read.
    sqlx::query("DELETE FROM aggregate_snapshots")
        .execute(&pool)
        .await
        .unwrap();
    let ahead = Tally {
        sum: 7,
        applied: vec![7],
    };
    sqlx::query(
        "INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, version, state) \
         VALUES ('Tally', 'never-written', 4, $1)",
    )
    .bind(serde_json::to_value(&ahead).unwrap())
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        reads_of(&cold, "never-written").await,
        (1, (Tally::default(), 0))
    );
    // With snapshots off, postgres-es loads the stream: one statement.
    let off = full_replay(&pool);
    let (reads, (tally, version)) = reads_of(&off, ID).await;
    assert_eq!((reads, tally.sum, version), (1, tracked.sum + 100, 10));
}
