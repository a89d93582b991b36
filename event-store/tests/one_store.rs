//! Our append (one `INSERT … RETURNING`) and postgres-es's `persist` write one store: what either
//! writes, postgres-es loads and folds to the same aggregate, row for row the same.

use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{EventMetadata, EventStore, Position};
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{PersistedEventRepository, SerializedEvent};
use cqrs_es::{Aggregate, DomainEvent};
use postgres_es::PostgresEventRepository;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Shelf {
    items: Vec<String>,
    removed: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum ShelfEvent {
    Shelved { item: String, note: Option<String> },
    Taken { item: String },
}

impl DomainEvent for ShelfEvent {
    fn event_type(&self) -> String {
        match self {
            Self::Shelved { .. } => "Shelved",
            Self::Taken { .. } => "Taken",
        }
        .into()
    }
    fn event_version(&self) -> String {
        "2.1".into()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("never")]
struct Never;

impl Aggregate for Shelf {
    const TYPE: &'static str = "Shelf";
    type Command = Vec<ShelfEvent>;
    type Event = ShelfEvent;
    type Error = Never;
    type Services = ();

    async fn handle(
        &mut self,
        events: Self::Command,
        _: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), Never> {
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: ShelfEvent) {
        match event {
            ShelfEvent::Shelved { item, .. } => self.items.push(item),
            ShelfEvent::Taken { item } => {
                self.items.retain(|i| *i != item);
                self.removed += 1;
            }
        }
    }
}

/// Three commands' worth of events, with unicode, quotes and nulls in the payloads.
fn batches() -> Vec<Vec<ShelfEvent>> {
    let shelved = |item: &str, note: Option<&str>| ShelfEvent::Shelved {
        item: item.to_owned(),
        note: note.map(str::to_owned),
    };
    vec![
        vec![
            shelved("tea \"green\"", None),
            shelved("café ☕", Some("a\nb")),
        ],
        vec![ShelfEvent::Taken {
            item: "tea \"green\"".to_owned(),
        }],
        vec![
            shelved("x", Some("\\u0000-free")),
            shelved("y", None),
            shelved("z", None),
        ],
    ]
}

fn metadata() -> EventMetadata {
    EventMetadata::new("user-7", "req-42")
}

/// Writes the batches to `id` with our append; returns the last position.
async fn append_ours(store: &EventStore, id: &str) -> Position {
    let mut version = 0;
    let mut last = Position::START;
    for batch in batches() {
        let appended = store
            .append::<Shelf>(id, version, &batch, &metadata())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(appended.version, version + batch.len() as i64);
        version = appended.version;
        last = appended.position;
    }
    last
}

/// Writes the batches to `id` with postgres-es's `persist`, one call per command.
async fn persist_theirs(repo: &PostgresEventRepository, id: &str) {
    let metadata = serde_json::to_value(metadata()).unwrap();
    let mut sequence = 0;
    for batch in batches() {
        let events: Vec<SerializedEvent> = batch
            .iter()
            .map(|event| {
                sequence += 1;
                SerializedEvent::new(
                    id.to_owned(),
                    sequence,
                    Shelf::TYPE.to_owned(),
                    event.event_type(),
                    event.event_version(),
                    serde_json::to_value(event).unwrap(),
                    metadata.clone(),
                )
            })
            .collect();
        repo.persist::<Shelf>(&events, None).await.unwrap();
    }
}

/// `id`'s stream folded from what postgres-es's repository loads.
async fn folded_by_postgres_es(repo: &PostgresEventRepository, id: &str) -> (Shelf, usize) {
    let events = repo.get_events::<Shelf>(id).await.unwrap();
    let mut shelf = Shelf::default();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, i + 1);
        shelf.apply(serde_json::from_value(event.payload.clone()).unwrap());
    }
    (shelf, events.len())
}

/// Every column both writers set, in sequence order.
async fn rows(
    pool: &PgPool,
    id: &str,
) -> Vec<(i64, String, String, serde_json::Value, serde_json::Value)> {
    sqlx::query_as(
        "SELECT sequence, event_type, event_version, payload, metadata FROM events \
         WHERE aggregate_type = 'Shelf' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn what_our_append_writes_postgres_es_loads_as_if_it_had_persisted_it(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    let repo = PostgresEventRepository::new(pool.clone());
    let last = append_ours(&store, "ours").await;
    persist_theirs(&repo, "theirs").await;

    let (ours, n_ours) = folded_by_postgres_es(&repo, "ours").await;
    let (theirs, n_theirs) = folded_by_postgres_es(&repo, "theirs").await;
    assert_eq!((n_ours, n_theirs), (6, 6));
    assert_eq!(ours, theirs);
    assert_eq!(ours.items, ["café ☕", "x", "y", "z"]);
    assert_eq!(rows(&pool, "ours").await, rows(&pool, "theirs").await);

    // The position our append returned is the stream's last event's.
    let (tx, pos): (i64, i64) = sqlx::query_as(
        "SELECT transaction_id::text::bigint, global_position FROM events \
         WHERE aggregate_type = 'Shelf' AND aggregate_id = 'ours' AND sequence = 6",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(last, Position::new(tx, pos));

    // Both writers store the content hash `verify` recomputes (guarantee 10): ours in its
    // INSERT, postgres-es's through the fill-in trigger.
    let unhashed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE content_hash IS DISTINCT FROM event_content_hash(\
         aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(unhashed, 0);
    let outcome = commerce_event_store::verify::verify(&pool, None)
        .await
        .unwrap();
    assert!(outcome.ok());
    assert_eq!(outcome.events_unsealed, 12);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn what_postgres_es_persists_our_store_loads_and_appends_after(pool: PgPool) {
    let store = EventStore::new(pool.clone()).with_snapshot_every(0);
    let repo = PostgresEventRepository::new(pool.clone());
    persist_theirs(&repo, "theirs").await;
    let ours = EventStore::new(pool.clone());
    append_ours(&ours, "ours").await;

    let (loaded, version) = store.load::<Shelf>("theirs").await.unwrap();
    assert_eq!(version, 6);
    assert_eq!(loaded, store.load::<Shelf>("ours").await.unwrap().0);
    // Our append continues a stream postgres-es wrote, and collides with it like with itself.
    let more = [ShelfEvent::Taken {
        item: "x".to_owned(),
    }];
    assert!(store
        .append::<Shelf>("theirs", 6, &more, &metadata())
        .await
        .unwrap()
        .is_some());
    assert!(matches!(
        store.append::<Shelf>("theirs", 6, &more, &metadata()).await,
        Err(commerce_event_store::StoreError::Conflict { .. })
    ));
    let (shelf, n) = folded_by_postgres_es(&repo, "theirs").await;
    assert_eq!((shelf.items.len(), n), (3, 7));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_append_commits_with_the_callers_transaction_or_alone_in_its_own(pool: PgPool) {
    // Inside a caller's transaction the events commit, or vanish, with it.
    let store = EventStore::new(pool.clone());
    let mut tx = pool.begin().await.unwrap();
    let appended = store
        .append_in::<Shelf>(&mut tx, "rolled-back", 0, &batches()[0], &metadata())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(appended.version, 2);
    tx.rollback().await.unwrap();
    assert!(rows(&pool, "rolled-back").await.is_empty());

    // Alone, its events share one (implicit) transaction.
    store
        .append::<Shelf>("alone", 0, &batches()[2], &metadata())
        .await
        .unwrap();
    let transactions: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT transaction_id) FROM events WHERE aggregate_id = 'alone'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(transactions, 1);
}
