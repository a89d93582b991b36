//! Appending and loading through postgres-es, optimistic concurrency, immutability, stream reads.

mod support;

use std::time::Duration;

use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{EventMetadata, EventStore, LogFilter, LogReader, Position, StoreError};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

#[derive(Debug, Default, Serialize, Deserialize)]
struct Counter {
    value: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum CounterEvent {
    Incremented { by: i64 },
}

impl DomainEvent for CounterEvent {
    fn event_type(&self) -> String {
        "Incremented".into()
    }
    fn event_version(&self) -> String {
        "1.0".into()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Aggregate for Counter {
    const TYPE: &'static str = "Counter";
    type Command = i64;
    type Event = CounterEvent;
    type Error = Never;
    type Services = ();

    async fn handle(&mut self, by: i64, _: &(), sink: &EventSink<Self>) -> Result<(), Never> {
        sink.write(CounterEvent::Incremented { by }, self).await;
        Ok(())
    }

    fn apply(&mut self, event: CounterEvent) {
        let CounterEvent::Incremented { by } = event;
        self.value += by;
    }
}

fn meta(correlation: &str) -> EventMetadata {
    EventMetadata::new("user-1", correlation)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn appended_events_load_back_with_version_and_position(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let first = store
        .append::<Counter>(
            "c1",
            0,
            &[
                CounterEvent::Incremented { by: 2 },
                CounterEvent::Incremented { by: 3 },
            ],
            &meta("r1"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.version, 2);
    let second = store
        .append::<Counter>("c1", 2, &[CounterEvent::Incremented { by: 5 }], &meta("r2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.version, 3);
    assert!(second.position > first.position);

    let (counter, version) = store.load::<Counter>("c1").await.unwrap();
    assert_eq!((counter.value, version), (10, 3));
    let (empty, v0) = store.load::<Counter>("nobody").await.unwrap();
    assert_eq!((empty.value, v0), (0, 0));
    assert_eq!(
        store
            .append::<Counter>("c1", 3, &[], &meta("r3"))
            .await
            .unwrap(),
        None
    );

    // The metadata of every event records actor and correlation (guarantee 8).
    let stream = LogReader::new(pool).stream("Counter", "c1").await.unwrap();
    assert_eq!(stream.len(), 3);
    assert_eq!(stream[0].metadata.actor, "user-1");
    assert_eq!(stream[2].metadata.correlation_id, "r2");
    assert_eq!(stream[2].position, second.position);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_second_writer_at_the_same_version_gets_a_conflict(pool: PgPool) {
    let store = EventStore::new(pool);
    store
        .append::<Counter>("c1", 0, &[CounterEvent::Incremented { by: 1 }], &meta("a"))
        .await
        .unwrap();
    let err = store
        .append::<Counter>("c1", 0, &[CounterEvent::Incremented { by: 1 }], &meta("b"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict { .. }), "{err:?}");
    let (counter, version) = store.load::<Counter>("c1").await.unwrap();
    assert_eq!(
        (counter.value, version),
        (1, 1),
        "the losing append changed nothing"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn racing_appends_at_one_version_let_exactly_one_win(pool: PgPool) {
    let store = EventStore::new(pool);
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .append::<Counter>(
                        "hot",
                        0,
                        &[CounterEvent::Incremented { by: 1 }],
                        &meta(&format!("r{i}")),
                    )
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(Some(_)) => wins += 1,
            Err(StoreError::Conflict { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(store.load::<Counter>("hot").await.unwrap().1, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_events_table_refuses_update_delete_and_truncate(pool: PgPool) {
    support::append_raw(&pool, "Counter", "c1", 1, "Incremented").await;
    for sql in [
        "UPDATE events SET payload = '{}'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let err = sqlx::query(sql).execute(&pool).await.expect_err(sql);
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_log_reads_by_correlation_type_and_time_range(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    store
        .append::<Counter>(
            "a",
            0,
            &[CounterEvent::Incremented { by: 1 }],
            &meta("req-1"),
        )
        .await
        .unwrap();
    store
        .append::<Counter>(
            "b",
            0,
            &[CounterEvent::Incremented { by: 1 }],
            &meta("req-2"),
        )
        .await
        .unwrap();
    store
        .append::<Counter>(
            "a",
            1,
            &[CounterEvent::Incremented { by: 1 }],
            &meta("req-1"),
        )
        .await
        .unwrap();
    let log = LogReader::new(pool.clone());

    let by_corr = log.by_correlation("req-1", 100).await.unwrap();
    assert_eq!(
        by_corr.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(by_corr.iter().all(|e| e.aggregate_id == "a"));

    // A tail read waits for the horizon: transactions of other tests may briefly hold it back.
    let all = support::eventually(Duration::from_secs(10), "3 visible events", || async {
        let all = log.read_after(Position::START, 100).await.unwrap();
        (all.len() == 3).then_some(all)
    })
    .await;
    let window = log
        .by_time_range(all[1].recorded_at, all[2].recorded_at, 100)
        .await
        .unwrap();
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].event_id, all[1].event_id);

    let typed = log
        .query(&LogFilter {
            aggregate_type: Some("Nope".into()),
            limit: 10,
            ..LogFilter::default()
        })
        .await
        .unwrap();
    assert!(typed.is_empty());
    assert_eq!(log.head().await.unwrap(), all[2].position);
    let (lag, oldest) = log.backlog(all[0].position).await.unwrap();
    assert_eq!((lag, oldest), (2, Some(all[1].recorded_at)));
}
