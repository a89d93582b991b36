//! The inventory read model, fed through RabbitMQ: levels, availability, movement history,
//! exactly-once effect, rebuilds.

mod support;

use std::collections::HashSet;

use chrono::Utc;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_event_store::db::MIGRATOR;
use commerce_projections::inventory::{self, InventoryProjection, UnavailableItem};
use commerce_projections::rebuild::{self, Finish};
use commerce_projections::{Page, Projection};
use sqlx::PgPool;
use support::Harness;
use uuid::Uuid;

async fn adjust(h: &Harness, product_id: Uuid, adjustment: StockAdjustment, reason: Option<&str>) {
    h.exec::<Inventory>(
        product_id,
        InventoryCommand::AdjustStock {
            product_id,
            adjustment,
            reason: reason.map(Into::into),
            at: Utc::now(),
        },
    )
    .await;
}

async fn reserve(h: &Harness, product_id: Uuid, order_id: Uuid, quantity: u32) {
    h.exec::<Inventory>(
        product_id,
        InventoryCommand::ReserveStock {
            product_id,
            order_id,
            quantity,
            at: Utc::now(),
        },
    )
    .await;
}

struct Ids {
    widget: Uuid,
    never_stocked: Uuid,
    orders: [Uuid; 4],
}

/// Widget: 11 events (one a rejection); the never-stocked product: one rejection.
async fn workload(h: &Harness) -> Ids {
    let ids = Ids {
        widget: Uuid::new_v4(),
        never_stocked: Uuid::new_v4(),
        orders: [(); 4].map(|()| Uuid::new_v4()),
    };
    let (w, [o1, o2, o3, o4]) = (ids.widget, ids.orders);
    adjust(h, w, StockAdjustment::Add(10), Some("initial delivery")).await; // 0 → 10
    reserve(h, w, o1, 3).await; // 10 → 7
    reserve(h, w, o2, 5).await; // 7 → 2
    reserve(h, w, o3, 4).await; // rejected: only 2 available
    let at = Utc::now();
    h.exec::<Inventory>(
        w,
        InventoryCommand::ReleaseStock {
            product_id: w,
            order_id: o2,
            at,
        },
    )
    .await; // 2 → 7
    h.exec::<Inventory>(
        w,
        InventoryCommand::CommitStock {
            product_id: w,
            order_id: o1,
            at,
        },
    )
    .await; // 7 → 7, reserved 3 → 0
    adjust(h, w, StockAdjustment::Subtract(2), Some("damaged")).await; // 7 → 5
    adjust(h, w, StockAdjustment::Set(5), None).await; // 5 → 5
    adjust(h, w, StockAdjustment::Delta(3), None).await; // 5 → 8
    reserve(h, w, o4, 2).await; // 8 → 6, reserved 2
    reserve(h, ids.never_stocked, o3, 1).await; // rejected: no stock at all
    ids
}

type Row = (String, i64, i64, i64, String, Option<Uuid>, Option<String>);

#[sqlx::test(migrator = "MIGRATOR")]
async fn stock_levels_availability_and_movements_are_projected(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(InventoryProjection);
    let ids = workload(&h).await;
    h.caught_up(InventoryProjection::NAME).await;
    let (w, [o1, o2, _, o4]) = (ids.widget, ids.orders);

    let level = inventory::get(&pool, w).await.unwrap().unwrap();
    assert_eq!((level.available, level.reserved, level.total), (6, 2, 8));
    assert_eq!(level.warehouse_id, inventory::DEFAULT_WAREHOUSE_ID);
    assert_eq!(
        inventory::get(&pool, ids.never_stocked).await.unwrap(),
        None,
        "a rejected reservation creates no stock"
    );
    let unknown = Uuid::new_v4();
    assert_eq!(inventory::get(&pool, unknown).await.unwrap(), None);
    assert!(
        h.dump("inventory")
            .await
            .iter()
            .all(|row| !row.contains(&unknown.to_string())),
        "reading never creates rows"
    );

    let all_there = inventory::check_availability(&pool, &[(w, 6)])
        .await
        .unwrap();
    assert!(all_there.available && all_there.unavailable_items.is_empty());
    assert!(
        inventory::check_availability(&pool, &[])
            .await
            .unwrap()
            .available
    );
    let short = inventory::check_availability(&pool, &[(unknown, 1), (w, 4), (w, 3)])
        .await
        .unwrap();
    assert!(!short.available);
    assert_eq!(
        short.unavailable_items,
        vec![
            UnavailableItem {
                product_id: unknown,
                requested: 1,
                available: 0
            },
            UnavailableItem {
                product_id: w,
                requested: 7,
                available: 6
            },
        ],
        "unknown products have 0; lines of one product are summed; in the order asked"
    );

    let (movements, total) = inventory::history(&pool, w, Page::new(1, 100))
        .await
        .unwrap();
    assert_eq!(total, 9, "every stock event but the rejection");
    let rows: Vec<Row> = movements
        .iter()
        .map(|m| {
            (
                m.movement_type.clone(),
                m.quantity,
                m.before,
                m.after,
                m.reference_type.clone(),
                m.reference_id,
                m.reason.clone(),
            )
        })
        .collect();
    let order = |id: Uuid| ("ORDER".to_owned(), Some(id), None);
    let adjustment = |reason: Option<&str>| ("ADJUSTMENT".to_owned(), None, reason.map(Into::into));
    let expected: Vec<Row> = [
        ("INBOUND", 10, 0, 10, adjustment(Some("initial delivery"))),
        ("RESERVED", 3, 10, 7, order(o1)),
        ("RESERVED", 5, 7, 2, order(o2)),
        ("RELEASED", 5, 2, 7, order(o2)),
        ("COMMITTED", 3, 7, 7, order(o1)),
        ("OUTBOUND", 2, 7, 5, adjustment(Some("damaged"))),
        ("ADJUSTMENT", 0, 5, 5, adjustment(None)),
        ("INBOUND", 3, 5, 8, adjustment(None)),
        ("RESERVED", 2, 8, 6, order(o4)),
    ]
    .into_iter()
    .map(|(kind, q, before, after, (rt, rid, reason))| {
        (kind.to_owned(), q, before, after, rt, rid, reason)
    })
    .collect();
    assert_eq!(rows, expected, "log order, oldest first");
    assert!(movements.iter().all(|m| m.product_id == w));
    assert!(movements
        .windows(2)
        .all(|p| p[0].created_at <= p[1].created_at));
    let event_ids: HashSet<Uuid> = movements.iter().map(|m| m.id).collect();
    assert_eq!(event_ids.len(), 9, "one row per event, keyed by event id");

    let (page, total) = inventory::history(&pool, w, Page::new(3, 4)).await.unwrap();
    assert_eq!(total, 9);
    assert_eq!(
        page,
        movements[8..].to_vec(),
        "the last page holds the ninth movement"
    );
    let (none, total) = inventory::history(&pool, ids.never_stocked, Page::default())
        .await
        .unwrap();
    assert_eq!((none.len(), total), (0, 0));
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_event_delivered_twice_leaves_the_same_read_model(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run_live(InventoryProjection).await;
    workload(&h).await;
    h.assert_redelivery_changes_nothing::<InventoryProjection>(async {
        let later = Uuid::new_v4();
        adjust(&h, later, StockAdjustment::Add(1), None).await;
        later.to_string()
    })
    .await;

    // Below the consumer's de-duplication: the rows themselves absorb stale events.
    h.stop_projection(InventoryProjection::NAME).await;
    let before = h.dump("inventory").await;
    support::apply_log_directly(&pool, &InventoryProjection, support::Reapply::Backwards).await;
    assert_eq!(
        h.dump("inventory").await,
        before,
        "re-applied, newest first"
    );
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_live_model_equals_a_replay_of_the_log(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(InventoryProjection);
    workload(&h).await;
    h.assert_replay_matches(&InventoryProjection).await;
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rebuild_swaps_in_while_serving_and_the_consumer_continues(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(InventoryProjection);
    let ids = workload(&h).await;
    h.caught_up(InventoryProjection::NAME).await;

    let before = h.dump("inventory").await;
    let report = rebuild::rebuild(&pool, None, &InventoryProjection, Finish::Swap, |_| {})
        .await
        .unwrap();
    assert_eq!(
        report.applied, 11,
        "every inventory event, rejections included"
    );
    assert_eq!(
        h.dump("inventory").await,
        before,
        "the swapped-in model equals the old one"
    );
    let level = inventory::get(&pool, ids.widget).await.unwrap().unwrap();
    assert_eq!(level.available, 6, "still serving");

    adjust(&h, ids.widget, StockAdjustment::Add(4), Some("restock")).await;
    h.caught_up(InventoryProjection::NAME).await;
    let level = inventory::get(&pool, ids.widget).await.unwrap().unwrap();
    assert_eq!((level.available, level.total), (10, 12));
    let (_, total) = inventory::history(&pool, ids.widget, Page::default())
        .await
        .unwrap();
    assert_eq!(total, 10);
    h.assert_replay_matches(&InventoryProjection).await;
    h.shutdown().await;
}
