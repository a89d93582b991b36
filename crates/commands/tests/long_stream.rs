//! A popular product's inventory grows a long stream; a command on it must not fold the whole
//! stream (the bench, `crates/commands/benches/long_stream.rs`, keeps the timing).

use chrono::Utc;
use commerce_commands::Dispatcher;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::store::DEFAULT_SNAPSHOT_EVERY;
use commerce_event_store::{EventMetadata, EventStore};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use sqlx::PgPool;
use uuid::Uuid;

const EVENTS: i64 = 20_000;
/// Events per append while building the stream.
const CHUNK: usize = 1_000;

fn meta() -> EventMetadata {
    EventMetadata::new("test", Uuid::new_v4().to_string())
}

fn add_one(product: Uuid) -> InventoryCommand {
    InventoryCommand::AdjustStock {
        product_id: product,
        adjustment: StockAdjustment::Add(1),
        reason: None,
        at: Utc::now(),
    }
}

/// `EVENTS` stock adjustments of one unit, appended in chunks, with snapshots saved where the
/// dispatcher's policy would save them.
async fn long_stream(store: &EventStore, product: Uuid) {
    let id = product.to_string();
    let mut inventory = Inventory::default();
    let mut version = 0;
    while version < EVENTS {
        let mut chunk = Vec::with_capacity(CHUNK);
        while chunk.len() < CHUNK && version + (chunk.len() as i64) < EVENTS {
            let sink = EventSink::default();
            inventory
                .handle(add_one(product), &(), &sink)
                .await
                .unwrap();
            chunk.extend(sink.collect().await);
        }
        let appended = store
            .append::<Inventory>(&id, version, &chunk, &meta())
            .await
            .unwrap()
            .unwrap();
        if store.snapshot_due(version, appended.version) {
            store
                .save_snapshot(&id, appended.version, &inventory)
                .await
                .unwrap();
        }
        version = appended.version;
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_command_on_a_20000_event_stream_folds_at_most_the_snapshot_interval(pool: PgPool) {
    let product = Uuid::new_v4();
    long_stream(&EventStore::new(pool.clone()), product).await;

    // A process that never saw the stream: its first command loads from the snapshot.
    let store = EventStore::new(pool.clone());
    let dispatcher = Dispatcher::new(store.clone());
    let executed = dispatcher
        .execute::<Inventory>(&product.to_string(), add_one(product), &meta())
        .await
        .unwrap();
    assert_eq!(executed.version, EVENTS + 1);
    assert_eq!(executed.aggregate.available(), EVENTS + 1);
    let folded = store.events_folded();
    assert!(
        folded <= DEFAULT_SNAPSHOT_EVERY,
        "the first command folded {folded} events of {EVENTS}"
    );

    // Its next commands start from the state the last one left: nothing more is folded.
    for _ in 0..5 {
        dispatcher
            .execute::<Inventory>(&product.to_string(), add_one(product), &meta())
            .await
            .unwrap();
    }
    assert_eq!(store.events_folded(), folded);

    // Another process appends meanwhile: the cached state's append conflicts, and the reload
    // again folds no more than the snapshot interval.
    let other = Dispatcher::new(EventStore::new(pool.clone()));
    for _ in 0..3 {
        other
            .execute::<Inventory>(&product.to_string(), add_one(product), &meta())
            .await
            .unwrap();
    }
    let executed = dispatcher
        .execute::<Inventory>(&product.to_string(), add_one(product), &meta())
        .await
        .unwrap();
    assert_eq!(executed.aggregate.available(), EVENTS + 10);
    let refolded = store.events_folded() - folded;
    assert!(
        (3..=DEFAULT_SNAPSHOT_EVERY).contains(&refolded),
        "the reload folded {refolded} events"
    );
}
