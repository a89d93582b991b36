//! Dispatch takes snapshots by the store's policy, and a snapshot never changes what a load sees.

use chrono::Utc;
use commerce_commands::Dispatcher;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{EventMetadata, EventStore, LogReader};
use sqlx::PgPool;
use uuid::Uuid;

fn meta() -> EventMetadata {
    EventMetadata::new("test", Uuid::new_v4().to_string())
}

/// Runs `count` inventory commands, each writing exactly one event: a first stock-up, then a
/// rolling mix of reservations for new orders, commits, releases and restocks.
async fn run_a_busy_product(dispatcher: &Dispatcher, product: Uuid, count: usize) {
    let id = product.to_string();
    let mut open_orders: Vec<Uuid> = Vec::new();
    for i in 0..count {
        let at = Utc::now();
        let command = match i % 10 {
            _ if i == 0 => InventoryCommand::AdjustStock {
                product_id: product,
                adjustment: StockAdjustment::Add(400),
                reason: Some("initial count".into()),
                at,
            },
            9 => InventoryCommand::AdjustStock {
                product_id: product,
                adjustment: StockAdjustment::Add(5),
                reason: None,
                at,
            },
            3 | 6 if !open_orders.is_empty() => InventoryCommand::CommitStock {
                product_id: product,
                order_id: open_orders.remove(0),
                at,
            },
            8 if !open_orders.is_empty() => InventoryCommand::ReleaseStock {
                product_id: product,
                order_id: open_orders.pop().unwrap(),
                at,
            },
            _ => {
                let order_id = Uuid::new_v4();
                open_orders.push(order_id);
                InventoryCommand::ReserveStock {
                    product_id: product,
                    order_id,
                    quantity: 1 + (i % 3) as u32,
                    at,
                }
            }
        };
        let executed = dispatcher
            .execute::<Inventory>(&id, command, &meta())
            .await
            .unwrap();
        assert_eq!(executed.version, i as i64 + 1, "one event per command");
    }
}

async fn snapshot_version(pool: &PgPool, id: &str) -> Option<i64> {
    sqlx::query_scalar(
        "SELECT version FROM aggregate_snapshots \
         WHERE aggregate_type = 'Inventory' AND aggregate_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
    .unwrap()
}

/// (available, reserved) counted straight from the events' payloads, without the aggregate.
async fn levels_from_the_log(pool: &PgPool, id: &str) -> (i64, i64) {
    let events = LogReader::new(pool.clone())
        .stream("Inventory", id)
        .await
        .unwrap();
    let (mut available, mut reserved) = (0, 0);
    for event in events {
        let body = &event.payload[&event.event_type];
        let n = |field: &str| body[field].as_i64().unwrap();
        match event.event_type.as_str() {
            "StockAdjusted" => available += n("delta"),
            "StockReserved" => {
                available -= n("quantity");
                reserved += n("quantity");
            }
            "StockReleased" => {
                available += n("quantity");
                reserved -= n("quantity");
            }
            "StockCommitted" => reserved -= n("quantity"),
            _ => {}
        }
    }
    (available, reserved)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn after_250_commands_a_snapshot_at_200_loads_the_same_state_as_a_full_replay(pool: PgPool) {
    let store = EventStore::new(pool.clone());
    assert_eq!(store.snapshot_every(), 100);
    let dispatcher = Dispatcher::new(store.clone());
    let product = Uuid::new_v4();
    let id = product.to_string();
    run_a_busy_product(&dispatcher, product, 250).await;

    assert_eq!(snapshot_version(&pool, &id).await, Some(200));
    let (from_snapshot, version) = store.load::<Inventory>(&id).await.unwrap();
    let (replayed, replayed_version) = store
        .clone()
        .with_snapshot_every(0)
        .load::<Inventory>(&id)
        .await
        .unwrap();
    assert_eq!((version, replayed_version), (250, 250));
    assert_eq!(from_snapshot, replayed);
    let (available, reserved) = levels_from_the_log(&pool, &id).await;
    assert!(reserved > 0 && available > 0, "a realistic mix");
    assert_eq!(
        (from_snapshot.available(), from_snapshot.reserved()),
        (available, reserved)
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_failing_snapshot_write_never_fails_the_command(pool: PgPool) {
    sqlx::raw_sql(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'snapshots are broken'; END; $$; \
         CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON aggregate_snapshots \
         FOR EACH ROW EXECUTE FUNCTION refuse();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let store = EventStore::new(pool.clone()).with_snapshot_every(5);
    let dispatcher = Dispatcher::new(store.clone());
    let product = Uuid::new_v4();
    let id = product.to_string();
    run_a_busy_product(&dispatcher, product, 30).await;

    assert_eq!(snapshot_version(&pool, &id).await, None);
    let (inventory, version) = store.load::<Inventory>(&id).await.unwrap();
    assert_eq!(version, 30);
    assert_eq!(
        (inventory.available(), inventory.reserved()),
        levels_from_the_log(&pool, &id).await
    );
}
