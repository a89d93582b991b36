//! `apply_batch` has the result of `apply` one event at a time: generated logs of interleaved
//! products, stock, categories, reviews and orders, delivered with repeats and versions out of
//! order, are applied both ways and every table is compared; and a rebuild over several batches
//! of the log (reads overlapping applies) equals applying that log one event at a time.

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use commerce_domain::category::CategoryEvent;
use commerce_domain::inventory::InventoryEvent;
use commerce_domain::order::{
    CancellationReason, OrderEvent, OrderLineItem, PostalAddress, ShippingAddress,
};
use commerce_domain::product::ProductEvent;
use commerce_domain::review::ReviewEvent;
use commerce_domain::{Currency, Money};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{ConsumerConfig, EventMetadata, LogReader, Position, StoredEvent};
use commerce_projections::catalog::CatalogProjection;
use commerce_projections::orders::OrdersProjection;
use commerce_projections::rebuild::{self, Finish, RebuildError};
use commerce_projections::Projection;
use cqrs_es::DomainEvent;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// SplitMix64: small, seedable, good enough to shuffle test cases reproducibly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn range(&mut self, from: usize, to: usize) -> usize {
        from + self.below(to - from + 1)
    }

    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn level(&mut self) -> i64 {
        self.below(200) as i64
    }

    fn uuid(&mut self) -> Uuid {
        Uuid::from_u128(u128::from(self.next()) << 64 | u128::from(self.next()))
    }
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::USD)
}

fn time(i: usize) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap() + Duration::milliseconds(7 * i as i64)
}

/// One aggregate's events, in version order.
struct Stream {
    aggregate_type: &'static str,
    aggregate_id: String,
    events: Vec<(String, serde_json::Value)>,
}

impl Stream {
    fn new(aggregate_type: &'static str, id: Uuid) -> Self {
        Self {
            aggregate_type,
            aggregate_id: id.to_string(),
            events: Vec::new(),
        }
    }

    fn push<E: DomainEvent + Serialize>(&mut self, event: E) {
        // As the event store writes it: `{"Variant": {...}}`.
        let payload = serde_json::to_value(&event).unwrap();
        self.events.push((event.event_type(), payload));
    }
}

/// The streams merged at random into one log, each stream's order kept.
fn interleave(rng: &mut Rng, streams: Vec<Stream>) -> Vec<StoredEvent> {
    let mut cursors: Vec<(Stream, usize)> = streams
        .into_iter()
        .filter(|s| !s.events.is_empty())
        .map(|s| (s, 0))
        .collect();
    let mut log = Vec::new();
    while !cursors.is_empty() {
        let i = rng.below(cursors.len());
        let (stream, next) = &mut cursors[i];
        let (event_type, payload) = stream.events[*next].clone();
        *next += 1;
        let n = log.len();
        log.push(StoredEvent {
            event_id: Uuid::from_u128(n as u128 + 1),
            position: Position::new(1, n as i64 + 1),
            recorded_at: time(n),
            aggregate_type: stream.aggregate_type.to_owned(),
            aggregate_id: stream.aggregate_id.clone(),
            sequence: *next as i64,
            event_type,
            event_version: "1.0".to_owned(),
            payload,
            metadata: EventMetadata::new("test", "batches"),
        });
        if *next == stream.events.len() {
            cursors.swap_remove(i);
        }
    }
    log
}

/// The log as a broker might deliver it: some events again later, some swapped with the one
/// before (versions out of order).
fn deliveries(rng: &mut Rng, log: &[StoredEvent]) -> Vec<StoredEvent> {
    let mut delivered: Vec<StoredEvent> = Vec::new();
    for (i, event) in log.iter().enumerate() {
        delivered.push(event.clone());
        if rng.chance(10) {
            delivered.push(log[rng.below(i + 1)].clone());
        }
        if rng.chance(10) && delivered.len() >= 2 {
            let n = delivered.len();
            delivered.swap(n - 1, n - 2);
        }
    }
    delivered
}

fn catalog_streams(rng: &mut Rng) -> Vec<Stream> {
    let mut streams = Vec::new();
    let categories: Vec<Uuid> = (0..2).map(|_| rng.uuid()).collect();
    for (c, &category_id) in categories.iter().enumerate() {
        let mut s = Stream::new("Category", category_id);
        s.push(CategoryEvent::CategoryCreated {
            category_id,
            name: format!("Category {c}"),
            slug: format!("category-{c}"),
            at: time(0),
        });
        for r in 0..rng.range(0, 2) {
            s.push(CategoryEvent::CategoryRenamed {
                category_id,
                name: format!("Category {c}.{r}"),
                slug: format!("category-{c}-{r}"),
                previous_name: String::new(),
                at: time(0),
            });
        }
        if rng.chance(20) {
            s.push(CategoryEvent::CategoryDeleted {
                category_id,
                name: String::new(),
                at: time(0),
            });
        }
        streams.push(s);
    }
    for p in 0..rng.range(2, 5) {
        let product_id = rng.uuid();
        let mut category_id = categories[rng.below(2)];
        let mut product = Stream::new("Product", product_id);
        product.push(ProductEvent::ProductCreated {
            product_id,
            name: format!("Product {p}"),
            slug: format!("product-{p}"),
            description: "A product".to_owned(),
            price: usd(rng.range(100, 5_000) as i64),
            category_id,
            image_url: rng.chance(50).then(|| format!("https://img/{p}.jpg")),
            at: time(0),
        });
        for u in 0..rng.range(0, 3) {
            if rng.chance(70) {
                let previous_category_id = category_id;
                category_id = categories[rng.below(2)];
                product.push(ProductEvent::ProductUpdated {
                    product_id,
                    name: format!("Product {p} v{u}"),
                    slug: format!("product-{p}-v{u}"),
                    description: format!("Version {u}"),
                    price: usd(rng.range(100, 5_000) as i64),
                    category_id,
                    previous_category_id,
                    image_url: rng.chance(50).then(|| format!("https://img/{p}-{u}.jpg")),
                    at: time(0),
                });
            } else {
                product.push(ProductEvent::ProductDeactivated {
                    product_id,
                    category_id,
                    at: time(0),
                });
            }
        }
        streams.push(product);

        let mut stock = Stream::new("Inventory", product_id);
        for _ in 0..rng.range(0, 12) {
            let order_id = rng.uuid();
            let quantity = rng.range(1, 5) as u32;
            let (available_after, reserved_after) = (rng.level(), rng.level());
            stock.push(match rng.below(6) {
                0 => InventoryEvent::StockAdjusted {
                    product_id,
                    delta: 1,
                    available_before: 0,
                    available_after,
                    reserved: reserved_after,
                    reason: None,
                    at: time(0),
                },
                1 => InventoryEvent::StockReserved {
                    product_id,
                    order_id,
                    quantity,
                    available_after,
                    reserved_after,
                    at: time(0),
                },
                2 => InventoryEvent::StockReleased {
                    product_id,
                    order_id,
                    quantity,
                    available_after,
                    reserved_after,
                    at: time(0),
                },
                3 => InventoryEvent::StockCommitted {
                    product_id,
                    order_id,
                    quantity,
                    reserved_after,
                    at: time(0),
                },
                4 => InventoryEvent::StockReturned {
                    product_id,
                    order_id,
                    quantity,
                    available_after,
                    reserved: reserved_after,
                    at: time(0),
                },
                _ => InventoryEvent::StockReservationRejected {
                    product_id,
                    order_id,
                    requested: quantity,
                    available: available_after,
                    at: time(0),
                },
            });
        }
        streams.push(stock);

        for _ in 0..rng.range(0, 3) {
            let (review_id, user_id) = (rng.uuid(), rng.uuid());
            let mut review = Stream::new("Review", review_id);
            for _ in 0..rng.range(1, 3) {
                let rating = rng.range(1, 5) as u8;
                review.push(ReviewEvent::ReviewSubmitted {
                    review_id,
                    product_id,
                    user_id,
                    rating,
                    comment: "ok".to_owned(),
                    verified_purchase: false,
                    at: time(0),
                });
                if rng.chance(60) {
                    review.push(ReviewEvent::ReviewDeleted {
                        review_id,
                        product_id,
                        user_id,
                        rating,
                        at: time(0),
                    });
                }
            }
            streams.push(review);
        }
    }
    streams
}

fn order_streams(rng: &mut Rng, orders: usize) -> Vec<Stream> {
    let mut streams = Vec::new();
    for o in 0..orders {
        let (order_id, user_id) = (rng.uuid(), rng.uuid());
        let payments = [rng.uuid(), rng.uuid()];
        let lines: Vec<OrderLineItem> = (0..rng.range(1, 3))
            .map(|l| {
                let (quantity, price) = (rng.range(1, 4) as u32, rng.range(100, 900) as i64);
                OrderLineItem {
                    product_id: rng.uuid(),
                    product_name: format!("Product {l}"),
                    quantity,
                    unit_price: usd(price),
                    subtotal: usd(price * i64::from(quantity)),
                }
            })
            .collect();
        let total = usd(lines.iter().map(|l| l.subtotal.amount_minor).sum());
        let mut s = Stream::new("Order", order_id);
        // A few streams lack their `OrderPlaced`: their changes find no row.
        if rng.chance(92) {
            s.push(OrderEvent::OrderPlaced {
                order_id,
                user_id,
                lines: lines.clone(),
                total,
                // Both forms a client may send: one line of text, or by field.
                shipping_address: if rng.chance(25) {
                    ShippingAddress::OneLine(format!("{o} Main St, Springfield 12345, US"))
                } else {
                    PostalAddress {
                        line1: format!("{o} Main St"),
                        line2: rng.chance(30).then(|| "Flat 2".to_owned()),
                        city: "Springfield".to_owned(),
                        postal_code: "12345".to_owned(),
                        country: "US".to_owned(),
                    }
                    .into()
                },
                payment_method: "card".to_owned(),
                at: time(0),
            });
        }
        for _ in 0..rng.range(0, 10) {
            let (at, payment_id) = (time(0), payments[rng.below(2)]);
            let reason = [
                CancellationReason::CustomerRequest,
                CancellationReason::OutOfStock,
                CancellationReason::PaymentTimeout,
            ][rng.below(3)];
            s.push(match rng.below(14) {
                0 => OrderEvent::OrderStockReserved { order_id, at },
                1 => OrderEvent::OrderStockReservedAfterCancellation {
                    order_id,
                    lines: lines.clone(),
                    at,
                },
                2 => OrderEvent::OrderStockRejected { order_id, at },
                3 => OrderEvent::OrderStockReleased { order_id, at },
                4 => OrderEvent::OrderStockCommitted { order_id, at },
                5 => OrderEvent::OrderPaymentRequested {
                    order_id,
                    payment_id,
                    amount: total,
                    at,
                },
                6 => OrderEvent::OrderPaid {
                    order_id,
                    user_id,
                    payment_id,
                    amount: total,
                    at,
                },
                7 => OrderEvent::OrderPaidAfterCancellation {
                    order_id,
                    user_id,
                    payment_id,
                    amount: total,
                    at,
                },
                8 => OrderEvent::OrderPaymentFailed {
                    order_id,
                    user_id,
                    payment_id,
                    reason: "declined".to_owned(),
                    at,
                },
                9 => OrderEvent::OrderConfirmed {
                    order_id,
                    user_id,
                    total,
                    lines: lines.clone(),
                    at,
                },
                10 => OrderEvent::OrderCancelled {
                    order_id,
                    user_id,
                    reason,
                    was_paid: None,
                    stock_reserved: false,
                    total,
                    lines: lines.clone(),
                    at,
                },
                11 => OrderEvent::OrderShipped {
                    order_id,
                    user_id,
                    at,
                },
                12 => OrderEvent::OrderDelivered {
                    order_id,
                    user_id,
                    at,
                },
                _ => OrderEvent::OrderRefunded {
                    order_id,
                    user_id,
                    payment_id,
                    amount: usd(100),
                    total_refunded: usd(100),
                    fully_refunded: rng.chance(50),
                    at,
                },
            });
        }
        streams.push(s);
    }
    streams
}

/// A structural copy of schema `live`, as a rebuild makes one.
async fn copy_schema(pool: &PgPool, live: &str, copy: &str) {
    sqlx::query(&format!("CREATE SCHEMA \"{copy}\""))
        .execute(pool)
        .await
        .unwrap();
    for table in tables(pool, live).await {
        sqlx::query(&format!(
            "CREATE TABLE \"{copy}\".\"{table}\" (LIKE \"{live}\".\"{table}\" INCLUDING ALL)"
        ))
        .execute(pool)
        .await
        .unwrap();
    }
}

async fn tables(pool: &PgPool, schema: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = $1 AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn truncate(pool: &PgPool, schema: &str) {
    let tables: Vec<String> = tables(pool, schema)
        .await
        .iter()
        .map(|t| format!("\"{schema}\".\"{t}\""))
        .collect();
    sqlx::query(&format!("TRUNCATE {}", tables.join(", ")))
        .execute(pool)
        .await
        .unwrap();
}

/// A transaction with `search_path` on `schema`.
async fn begin(pool: &PgPool, schema: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(format!("\"{schema}\", public"))
        .execute(&mut *tx)
        .await
        .unwrap();
    tx
}

/// Fails with the rows only one side has.
fn assert_same_rows(batched: &[String], one_by_one: &[String], context: impl Fn() -> String) {
    if batched != one_by_one {
        let only_batched: Vec<_> = batched.iter().filter(|r| !one_by_one.contains(r)).collect();
        let only_one_by_one: Vec<_> = one_by_one.iter().filter(|r| !batched.contains(r)).collect();
        panic!(
            "{}\nonly after batches: {only_batched:#?}\nonly one by one: {only_one_by_one:#?}",
            context()
        );
    }
}

/// Applies the deliveries `P` wants one at a time into `P`'s live schema, and in batches split at
/// random into a copy of it, then compares both, table by table, row by row.
async fn assert_batches_equal_one_by_one<P: Projection>(
    pool: &PgPool,
    p: &P,
    cases: u64,
    streams: impl Fn(&mut Rng) -> Vec<Stream>,
) {
    let copy = format!("{}_batched", P::NAME);
    copy_schema(pool, P::NAME, &copy).await;
    let config = ConsumerConfig::new(P::NAME, P::bindings());
    let mut rows = 0;
    for seed in 0..cases {
        let mut rng = Rng(seed);
        let generated = streams(&mut rng);
        let log = interleave(&mut rng, generated);
        let delivered: Vec<StoredEvent> = deliveries(&mut rng, &log)
            .into_iter()
            .filter(|e| config.wants(e))
            .collect();

        truncate(pool, P::NAME).await;
        let mut tx = begin(pool, P::NAME).await;
        for event in &delivered {
            p.apply(&mut tx, event).await.unwrap();
        }
        tx.commit().await.unwrap();

        truncate(pool, &copy).await;
        let largest = [1, 2, 5, 17, delivered.len().max(1)][rng.below(5)];
        let mut rest: &[StoredEvent] = &delivered;
        let mut sizes = Vec::new();
        while !rest.is_empty() {
            let (batch, after) = rest.split_at(rng.range(1, largest).min(rest.len()));
            let batch: Vec<&StoredEvent> = batch.iter().collect();
            let mut tx = begin(pool, &copy).await;
            p.apply_batch(&mut tx, &batch).await.unwrap();
            tx.commit().await.unwrap();
            sizes.push(batch.len());
            rest = after;
        }

        let (one_by_one, batched) = (
            support::dump(pool, P::NAME).await,
            support::dump(pool, &copy).await,
        );
        assert_same_rows(&batched, &one_by_one, || {
            let events: Vec<String> = delivered
                .iter()
                .map(|e| format!("{}#{} {}", e.aggregate_id, e.sequence, e.event_type))
                .collect();
            format!("seed {seed}: batches of {sizes:?} over {events:?}")
        });
        rows += one_by_one.len();
    }
    assert!(
        rows > cases as usize * 5,
        "the cases left the tables almost empty"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn catalog_batches_equal_applying_one_event_at_a_time(pool: PgPool) {
    assert_batches_equal_one_by_one(&pool, &CatalogProjection, 100, catalog_streams).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn orders_batches_equal_applying_one_event_at_a_time(pool: PgPool) {
    assert_batches_equal_one_by_one(&pool, &OrdersProjection, 100, |rng| {
        let orders = rng.range(2, 7);
        order_streams(rng, orders)
    })
    .await;
}

/// Appends `events` to the log in one transaction, in order.
async fn append(pool: &PgPool, events: &[StoredEvent]) {
    let mut tx = pool.begin().await.unwrap();
    for e in events {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
               event_version, payload, metadata, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&e.aggregate_type)
        .bind(&e.aggregate_id)
        .bind(e.sequence)
        .bind(&e.event_type)
        .bind(&e.event_version)
        .bind(&e.payload)
        .bind(serde_json::to_value(&e.metadata).unwrap())
        .bind(e.recorded_at)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rebuild_over_several_batches_equals_applying_the_log_one_event_at_a_time(pool: PgPool) {
    let mut rng = Rng(7);
    let mut streams = order_streams(&mut rng, 400);
    for _ in 0..80 {
        streams.extend(catalog_streams(&mut rng));
    }
    let log = interleave(&mut rng, streams);
    // More than three batches of the rebuild, and within one read of `apply_log_directly`.
    assert!(
        (3 * 2_000..10_000).contains(&log.len()),
        "{} events",
        log.len()
    );
    append(&pool, &log).await;

    async fn check<P: Projection>(pool: &PgPool, p: &P, events: usize) {
        support::apply_log_directly(pool, p, support::Reapply::Forwards { times: 1 }).await;
        let one_by_one = support::dump(pool, P::NAME).await;
        let report = rebuild::rebuild(pool, None, p, Finish::Swap, |_| {})
            .await
            .unwrap();
        assert_eq!(
            report.events,
            events as i64,
            "{}: every event read",
            P::NAME
        );
        let rebuilt = support::dump(pool, P::NAME).await;
        assert_same_rows(&rebuilt, &one_by_one, || P::NAME.to_owned());
    }
    check(&pool, &CatalogProjection, log.len()).await;
    check(&pool, &OrdersProjection, log.len()).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rebuild_stopped_by_a_bad_event_names_it_and_leaves_the_live_model(pool: PgPool) {
    let mut rng = Rng(11);
    let streams = order_streams(&mut rng, 20);
    let mut log = interleave(&mut rng, streams);
    let bad = log.len() / 2;
    log[bad].event_type = "OrderShipped".to_owned();
    log[bad].payload = serde_json::json!({ "OrderShipped": { "order_id": "not an id" } });
    append(&pool, &log).await;
    let reader = LogReader::new(pool.clone());
    assert!(reader
        .settle(std::time::Duration::from_secs(10))
        .await
        .unwrap());
    let positions = reader.read_after(Position::START, 1_000).await.unwrap();
    let error = rebuild::rebuild(&pool, None, &OrdersProjection, Finish::Swap, |_| {})
        .await
        .unwrap_err();
    match error {
        RebuildError::Handler {
            position,
            event_type,
            ..
        } => {
            assert_eq!(position, positions[bad].position);
            assert_eq!(event_type, "OrderShipped");
        }
        other => panic!("expected the bad event to be named, got {other}"),
    }
    assert!(support::dump(&pool, OrdersProjection::NAME)
        .await
        .is_empty());
    let shadow: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'orders_rebuild')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(!shadow, "the shadow schema is dropped");
}
