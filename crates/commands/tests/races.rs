//! Guarantee 1 against real Postgres: racing commands on one aggregate never lose an update.
//!
//! Each "process" is its own `Dispatcher` (its own in-process queueing), so the races between them
//! are settled by the event store's optimistic concurrency and the dispatcher's retries.

use chrono::Utc;
use commerce_commands::{DispatchError, Dispatcher};
use commerce_domain::ids::user_id_for_email;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_domain::money::{Currency, Money};
use commerce_domain::order::{Order, OrderCommand, OrderLine, PostalAddress};
use commerce_domain::user::{User, UserCommand};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{EventMetadata, EventStore, LogReader};
use sqlx::PgPool;
use uuid::Uuid;

const PROCESSES: usize = 5;

fn processes(pool: &PgPool) -> Vec<Dispatcher> {
    (0..PROCESSES)
        .map(|_| Dispatcher::new(EventStore::new(pool.clone())))
        .collect()
}

fn meta() -> EventMetadata {
    EventMetadata::new("test", Uuid::new_v4().to_string())
}

async fn count_events(pool: &PgPool, aggregate_type: &str, id: &str, event_type: &str) -> usize {
    LogReader::new(pool.clone())
        .stream(aggregate_type, id)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == event_type)
        .count()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn fifty_racing_reservations_of_ten_units_reserve_exactly_ten(pool: PgPool) {
    let product = Uuid::new_v4();
    let id = product.to_string();
    let dispatchers = processes(&pool);
    dispatchers[0]
        .execute::<Inventory>(
            &id,
            InventoryCommand::AdjustStock {
                product_id: product,
                adjustment: StockAdjustment::Add(10),
                reason: None,
                at: Utc::now(),
            },
            &meta(),
        )
        .await
        .unwrap();

    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let dispatcher = dispatchers[i % PROCESSES].clone();
            let id = id.clone();
            tokio::spawn(async move {
                let command = InventoryCommand::ReserveStock {
                    product_id: product,
                    order_id: Uuid::new_v4(),
                    quantity: 1,
                    at: Utc::now(),
                };
                dispatcher.execute::<Inventory>(&id, command, &meta()).await
            })
        })
        .collect();
    for task in tasks {
        let executed = task.await.unwrap();
        assert!(
            executed.is_ok(),
            "every reservation is decided, none lost to contention: {executed:?}"
        );
    }

    assert_eq!(
        count_events(&pool, "Inventory", &id, "StockReserved").await,
        10
    );
    assert_eq!(
        count_events(&pool, "Inventory", &id, "StockReservationRejected").await,
        40
    );
    let (inventory, version) = EventStore::new(pool.clone())
        .load::<Inventory>(&id)
        .await
        .unwrap();
    assert_eq!(
        (inventory.available(), inventory.reserved(), version),
        (0, 10, 51)
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn twenty_racing_registrations_of_one_email_create_one_user(pool: PgPool) {
    let dispatchers = processes(&pool);
    let spellings = [
        "ada@example.com",
        "Ada@Example.com",
        "ADA@EXAMPLE.COM",
        "ada@EXAMPLE.com",
    ];
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let dispatcher = dispatchers[i % PROCESSES].clone();
            let email = spellings[i % spellings.len()].to_owned();
            tokio::spawn(async move {
                let user_id = user_id_for_email(&email);
                let command = UserCommand::RegisterUser {
                    user_id,
                    email,
                    name: format!("Ada {i}"),
                    phone: None,
                    roles: vec![],
                    at: Utc::now(),
                };
                dispatcher
                    .execute::<User>(&user_id.to_string(), command, &meta())
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(executed) => {
                created += 1;
                assert!(executed.wrote);
            }
            Err(DispatchError::Rejected(e)) => assert!(e.to_string().contains("already"), "{e}"),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
    let id = user_id_for_email("ada@example.com").to_string();
    assert_eq!(count_events(&pool, "User", &id, "UserRegistered").await, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_racing_payments_for_one_order_capture_once(pool: PgPool) {
    let dispatchers = processes(&pool);
    let order = Uuid::new_v4();
    let id = order.to_string();
    let price = Money::new(1999, Currency::USD);
    dispatchers[0]
        .execute::<Order>(
            &id,
            OrderCommand::PlaceOrder {
                order_id: order,
                user_id: Uuid::new_v4(),
                lines: vec![OrderLine {
                    product_id: Uuid::new_v4(),
                    product_name: "Lamp".into(),
                    quantity: 1,
                    unit_price: price,
                }],
                shipping_address: PostalAddress {
                    line1: "1 Main St".into(),
                    line2: None,
                    city: "Springfield".into(),
                    postal_code: "12345".into(),
                    country: "US".into(),
                }
                .into(),
                payment_method: "card".into(),
                at: Utc::now(),
            },
            &meta(),
        )
        .await
        .unwrap();

    let tasks: Vec<_> = (0..2)
        .map(|i| {
            let dispatcher = dispatchers[i].clone();
            let id = id.clone();
            tokio::spawn(async move {
                let command = OrderCommand::RequestPayment {
                    payment_id: Uuid::new_v4(),
                    amount: price,
                    at: Utc::now(),
                };
                dispatcher.execute::<Order>(&id, command, &meta()).await
            })
        })
        .collect();
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(DispatchError::Rejected(e)) => assert!(e.to_string().contains("progress"), "{e}"),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(accepted, 1, "only one capture may start");
    assert_eq!(
        count_events(&pool, "Order", &id, "OrderPaymentRequested").await,
        1
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_idempotent_repeat_writes_nothing_and_reports_where_the_aggregate_stands(pool: PgPool) {
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
    let product = Uuid::new_v4();
    let id = product.to_string();
    let order = Uuid::new_v4();
    let adjust = InventoryCommand::AdjustStock {
        product_id: product,
        adjustment: StockAdjustment::Add(3),
        reason: None,
        at: Utc::now(),
    };
    dispatcher
        .execute::<Inventory>(&id, adjust, &meta())
        .await
        .unwrap();
    let reserve = InventoryCommand::ReserveStock {
        product_id: product,
        order_id: order,
        quantity: 2,
        at: Utc::now(),
    };
    let first = dispatcher
        .execute::<Inventory>(&id, reserve.clone(), &meta())
        .await
        .unwrap();
    let second = dispatcher
        .execute::<Inventory>(&id, reserve, &meta())
        .await
        .unwrap();
    assert_eq!(first.version, 2);
    assert!(first.wrote);
    // The repeat wrote nothing and reports where the aggregate stands: the first one's event.
    assert_eq!(
        (second.version, second.wrote, second.position),
        (2, false, first.position)
    );
}

/// `AdjustStock` of `units` to a new product's inventory; returns its id.
async fn stocked(dispatcher: &Dispatcher, units: u32) -> (Uuid, String) {
    let product = Uuid::new_v4();
    let id = product.to_string();
    let adjust = InventoryCommand::AdjustStock {
        product_id: product,
        adjustment: StockAdjustment::Add(units),
        reason: None,
        at: Utc::now(),
    };
    dispatcher
        .execute::<Inventory>(&id, adjust, &meta())
        .await
        .unwrap();
    (product, id)
}

fn reserve(product: Uuid, quantity: u32) -> InventoryCommand {
    InventoryCommand::ReserveStock {
        product_id: product,
        order_id: Uuid::new_v4(),
        quantity,
        at: Utc::now(),
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn create_on_an_id_that_exists_is_decided_against_the_stored_state(pool: PgPool) {
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
    let (product, id) = stocked(&dispatcher, 10).await;
    // Against an empty inventory this would be a rejection at version 1; that append conflicts
    // with the stored stream, and the command is decided again against 10 units in stock.
    let executed = dispatcher
        .create::<Inventory>(&id, reserve(product, 5), &meta())
        .await
        .unwrap();
    assert_eq!(executed.version, 2);
    assert_eq!(
        count_events(&pool, "Inventory", &id, "StockReserved").await,
        1
    );
    assert_eq!(
        count_events(&pool, "Inventory", &id, "StockReservationRejected").await,
        0
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn execute_from_a_stale_state_is_decided_again_against_the_new_one(pool: PgPool) {
    let [first, second] = [0, 1].map(|_| Dispatcher::new(EventStore::new(pool.clone())));
    let (product, id) = stocked(&first, 10).await;
    let stale = first.reader().load::<Inventory>(&id).await.unwrap();
    second
        .execute::<Inventory>(&id, reserve(product, 8), &meta())
        .await
        .unwrap();
    // 10 units in the stale state, 2 in the log: the 5 must not be reserved.
    let executed = first
        .execute_from::<Inventory>(&id, reserve(product, 5), &meta(), stale)
        .await
        .unwrap();
    assert_eq!(executed.version, 3);
    assert_eq!(
        count_events(&pool, "Inventory", &id, "StockReserved").await,
        1
    );
    assert_eq!(
        count_events(&pool, "Inventory", &id, "StockReservationRejected").await,
        1
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_command_decided_on_a_stale_cached_state_is_decided_again_on_the_log(pool: PgPool) {
    // Two processes: `first` holds the inventory in its cache at 10 units, `second` reserves 8.
    let [first, second] = [0, 1].map(|_| Dispatcher::new(EventStore::new(pool.clone())));
    let (product, id) = stocked(&first, 10).await;
    second
        .execute::<Inventory>(&id, reserve(product, 8), &meta())
        .await
        .unwrap();
    // The cached 10 units would take 5; the append at the cached version conflicts, and the
    // command is decided again against the 2 units the log holds.
    let executed = first
        .execute::<Inventory>(&id, reserve(product, 5), &meta())
        .await
        .unwrap();
    assert_eq!(executed.version, 3);
    assert_eq!(executed.aggregate.available(), 2);
    assert_eq!(
        count_events(&pool, "Inventory", &id, "StockReserved").await,
        1
    );
    assert_eq!(
        count_events(&pool, "Inventory", &id, "StockReservationRejected").await,
        1
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_refusal_decided_on_a_stale_cached_state_is_checked_against_the_log(pool: PgPool) {
    let [first, second] = [0, 1].map(|_| Dispatcher::new(EventStore::new(pool.clone())));
    let (product, id) = stocked(&first, 10).await;
    let add = InventoryCommand::AdjustStock {
        product_id: product,
        adjustment: StockAdjustment::Add(5),
        reason: None,
        at: Utc::now(),
    };
    second
        .execute::<Inventory>(&id, add, &meta())
        .await
        .unwrap();
    // `first`'s cache says 10 units, too few to take 12 away; the log says 15.
    let subtract = InventoryCommand::AdjustStock {
        product_id: product,
        adjustment: StockAdjustment::Subtract(12),
        reason: None,
        at: Utc::now(),
    };
    let executed = first
        .execute::<Inventory>(&id, subtract, &meta())
        .await
        .unwrap();
    assert_eq!((executed.version, executed.aggregate.available()), (3, 3));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_command_answers_with_the_aggregate_and_the_position_it_wrote(pool: PgPool) {
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
    let (product, id) = stocked(&dispatcher, 10).await;
    let executed = dispatcher
        .execute::<Inventory>(&id, reserve(product, 4), &meta())
        .await
        .unwrap();
    assert_eq!((executed.version, executed.aggregate.available()), (2, 6));
    let last = LogReader::new(pool.clone())
        .last_of_stream("Inventory", &id)
        .await
        .unwrap();
    assert_eq!(Some(executed.position), last);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_command_that_keeps_losing_the_race_gives_up_at_its_bound_with_a_contention_error(
    pool: PgPool,
) {
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone())).with_max_attempts(3);
    let (product, id) = stocked(&dispatcher, 10).await;
    // Every append to this inventory collides as if another writer had just taken the version;
    // the trigger counts the attempts in a sequence (which a failed statement does not undo).
    sqlx::raw_sql(&format!(
        "CREATE SEQUENCE append_attempts; \
         CREATE FUNCTION always_taken() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN \
             PERFORM nextval('append_attempts'); \
             RAISE unique_violation USING CONSTRAINT = 'events_pkey', MESSAGE = 'taken'; \
         END $$; \
         CREATE TRIGGER always_taken BEFORE INSERT ON events FOR EACH ROW \
             WHEN (NEW.aggregate_id = '{id}') EXECUTE FUNCTION always_taken();"
    ))
    .execute(&pool)
    .await
    .unwrap();
    let result = dispatcher
        .execute::<Inventory>(&id, reserve(product, 1), &meta())
        .await;
    assert!(
        matches!(result, Err(DispatchError::Contention { attempts: 3 })),
        "{result:?}"
    );
    let attempts: i64 = sqlx::query_scalar("SELECT last_value FROM append_attempts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(attempts, 3, "exactly the bound of appends was tried");
    let versions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Inventory' AND aggregate_id = $1",
    )
    .bind(&id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(versions, 1, "nothing but the stock adjustment was written");
}
