//! The order fulfilment saga end to end on the real pipeline: commands → log → relay → RabbitMQ
//! → saga consumer → commands, with durable deadlines.

use std::time::{Duration, Instant};

use chrono::Utc;
use commerce_commands::process::deadlines::DeadlineScheduler;
use commerce_commands::process::order_fulfilment::OrderFulfilmentProcess;
use commerce_commands::Dispatcher;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_domain::money::{Currency, Money};
use commerce_domain::order::{
    CancellationReason, Order, OrderCommand, OrderLine, OrderPaymentStatus, OrderStatus,
    PostalAddress, StockStatus,
};
use commerce_domain::payment::{GatewayOutcome, Payment, PaymentCommand};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{
    BrokerConfig, ConsumerConfig, DurableConsumer, EventMetadata, EventStore, LogReader, Position,
    Relay, RelayConfig,
};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The pipeline under test: relay, saga consumer and deadline poller.
struct Pipeline {
    pool: PgPool,
    broker: BrokerConfig,
    dispatcher: Dispatcher,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
    saga: Option<(CancellationToken, JoinHandle<()>)>,
    timeout: Duration,
}

impl Pipeline {
    async fn start(pool: PgPool, payment_timeout: Duration) -> Self {
        let broker = commerce_testkit::broker();
        let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
        let stop = CancellationToken::new();
        let relay = Relay::new(pool.clone(), broker.clone(), RelayConfig::default());
        let deadlines =
            DeadlineScheduler::new(pool.clone(), dispatcher.clone(), Duration::from_millis(100));
        let tasks = vec![
            tokio::spawn(relay.run(stop.clone())),
            tokio::spawn(deadlines.run(stop.clone())),
        ];
        let mut pipeline = Self {
            pool,
            broker,
            dispatcher,
            stop,
            tasks,
            saga: None,
            timeout: payment_timeout,
        };
        pipeline.start_saga();
        pipeline
    }

    fn start_saga(&mut self) {
        let token = CancellationToken::new();
        let mut config = ConsumerConfig::new(
            OrderFulfilmentProcess::NAME,
            OrderFulfilmentProcess::bindings(),
        );
        config.retry_initial = Duration::from_millis(20);
        let saga = OrderFulfilmentProcess::new(self.dispatcher.clone(), self.timeout);
        let consumer = DurableConsumer::new(self.pool.clone(), self.broker.clone(), config, saga);
        self.saga = Some((token.clone(), tokio::spawn(consumer.run(token))));
    }

    async fn stop_saga(&mut self) {
        if let Some((token, task)) = self.saga.take() {
            token.cancel();
            task.await.unwrap();
        }
    }

    async fn shutdown(mut self) {
        self.stop_saga().await;
        self.stop.cancel();
        for t in self.tasks.drain(..) {
            t.await.unwrap();
        }
        if let Ok(conn) = self.broker.connect("test-cleanup").await {
            if let Ok(ch) = conn.create_channel().await {
                let _ = ch
                    .queue_delete(
                        self.broker.queue(OrderFulfilmentProcess::NAME).into(),
                        Default::default(),
                    )
                    .await;
                let _ = ch
                    .exchange_delete(self.broker.exchange().into(), Default::default())
                    .await;
            }
        }
    }

    fn meta() -> EventMetadata {
        EventMetadata::new("customer", Uuid::new_v4().to_string())
    }

    /// Runs `command` against aggregate `A` as a customer would.
    async fn exec<A>(&self, id: Uuid, command: A::Command)
    where
        A: commerce_commands::Dispatchable,
        A::Command: Clone,
        A::Error: std::fmt::Debug,
    {
        self.dispatcher
            .execute::<A>(&id.to_string(), command, &Self::meta())
            .await
            .unwrap();
    }

    /// The customer cancels `order`.
    async fn cancel(&self, order: Uuid) {
        let cancel = OrderCommand::CancelOrder {
            reason: CancellationReason::CustomerRequest,
            at: Utc::now(),
        };
        self.exec::<Order>(order, cancel).await;
    }

    async fn product_with_stock(&self, units: u32) -> Uuid {
        let product = Uuid::new_v4();
        let adjust = InventoryCommand::AdjustStock {
            product_id: product,
            adjustment: StockAdjustment::Add(units),
            reason: None,
            at: Utc::now(),
        };
        self.exec::<Inventory>(product, adjust).await;
        product
    }

    async fn place(&self, lines: &[(Uuid, u32)]) -> (Uuid, Money) {
        let order = Uuid::new_v4();
        let unit = Money::new(1000, Currency::USD);
        let command = OrderCommand::PlaceOrder {
            order_id: order,
            user_id: Uuid::new_v4(),
            lines: lines
                .iter()
                .map(|(p, q)| OrderLine {
                    product_id: *p,
                    product_name: "Thing".into(),
                    quantity: *q,
                    unit_price: unit,
                })
                .collect(),
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
        };
        self.exec::<Order>(order, command).await;
        let total = lines.iter().map(|(_, q)| i64::from(*q) * 1000).sum();
        (order, Money::new(total, Currency::USD))
    }

    /// What the API does for `POST /payments`: claim the order, then capture at the gateway.
    async fn pay(&self, order: Uuid, amount: Money, approved: bool) -> Uuid {
        let payment = Uuid::new_v4();
        let request = OrderCommand::RequestPayment {
            payment_id: payment,
            amount,
            at: Utc::now(),
        };
        self.exec::<Order>(order, request).await;
        let outcome = if approved {
            GatewayOutcome::Approved {
                transaction_id: format!("tx-{payment}"),
            }
        } else {
            GatewayOutcome::Declined {
                reason: "card declined".into(),
            }
        };
        let capture = PaymentCommand::CapturePayment {
            payment_id: payment,
            order_id: order,
            user_id: Uuid::new_v4(),
            amount,
            method: "card".into(),
            payment_method_id: None,
            outcome,
            at: Utc::now(),
        };
        self.exec::<Payment>(payment, capture).await;
        payment
    }

    async fn order(&self, order: Uuid) -> Order {
        self.dispatcher
            .reader()
            .load::<Order>(&order.to_string())
            .await
            .unwrap()
            .0
    }

    async fn inventory(&self, product: Uuid) -> (i64, i64) {
        let (inv, _) = self
            .dispatcher
            .reader()
            .load::<Inventory>(&product.to_string())
            .await
            .unwrap();
        (inv.available(), inv.reserved())
    }

    /// Waits until `product`'s inventory shows (available, reserved).
    async fn wait_inventory(&self, product: Uuid, expected: (i64, i64), what: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let seen = self.inventory(product).await;
            if seen == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: {seen:?}, not {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_for(&self, order: Uuid, what: &str, done: impl Fn(&Order) -> bool) -> Order {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let state = self.order(order).await;
            if done(&state) {
                return state;
            }
            assert!(
                Instant::now() < deadline,
                "order never reached {what}: {:?} {:?} {:?}",
                state.status(),
                state.stock_status(),
                state.payment_status()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the saga consumer has applied everything in the log, twice over, so the
    /// commands it sent have been seen too.
    async fn settle(&self) {
        for _ in 0..3 {
            let log = LogReader::new(self.pool.clone());
            log.settle(Duration::from_secs(5)).await.unwrap();
            let head = log.head().await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            while !commerce_event_store::checkpoint::has_reached(
                &self.pool,
                OrderFulfilmentProcess::NAME,
                head,
            )
            .await
            .unwrap()
            {
                assert!(Instant::now() < deadline, "the saga never reached {head}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Deliveries the saga acknowledged and ignored as already applied.
    async fn duplicates_ignored(&self) -> i64 {
        commerce_event_store::checkpoint::consumer_statuses(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.name == OrderFulfilmentProcess::NAME)
            .map_or(0, |s| s.duplicates_ignored)
    }

    async fn count(&self, event_type: &str) -> usize {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.pool)
            .await
            .unwrap();
        n as usize
    }
}

const LONG: Duration = Duration::from_secs(3600);

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_paid_order_with_stock_is_confirmed_and_its_stock_committed(pool: PgPool) {
    let p = Pipeline::start(pool, LONG).await;
    let (a, b) = (p.product_with_stock(5).await, p.product_with_stock(5).await);
    let (order, total) = p.place(&[(a, 2), (b, 1)]).await;
    p.wait_for(order, "stock reserved", |o| {
        o.stock_status() == Some(StockStatus::Reserved)
    })
    .await;
    assert_eq!(p.inventory(a).await, (3, 2));

    p.pay(order, total, true).await;
    let state = p
        .wait_for(order, "confirmed and committed", |o| {
            o.stock_status() == Some(StockStatus::Committed)
        })
        .await;
    assert_eq!(state.status(), Some(OrderStatus::Confirmed));
    assert_eq!(state.payment_status(), Some(OrderPaymentStatus::Paid));
    // The order records the commitment with its confirmation; the saga then commits each line.
    p.wait_inventory(a, (3, 0), "committed units leave the reservation")
        .await;
    p.wait_inventory(b, (4, 0), "committed units leave the reservation")
        .await;

    // Guarantee 8: the saga's events name their actor, and the event that caused them.
    let log = LogReader::new(p.pool.clone());
    let placed = log
        .stream("Order", &order.to_string())
        .await
        .unwrap()
        .remove(0);
    let reserved = log
        .stream("Inventory", &a.to_string())
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.event_type == "StockReserved")
        .unwrap();
    assert_eq!(reserved.metadata.actor, "system:order-fulfilment");
    assert_eq!(
        reserved.metadata.causation_id,
        Some(placed.event_id.to_string())
    );
    assert_eq!(
        reserved.metadata.correlation_id,
        placed.metadata.correlation_id
    );
    p.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_out_of_stock_line_cancels_the_order_releases_the_rest_and_refunds(pool: PgPool) {
    let p = Pipeline::start(pool, LONG).await;
    let (a, b) = (p.product_with_stock(5).await, p.product_with_stock(0).await);
    let (order, total) = p.place(&[(a, 2), (b, 1)]).await;
    // Paying races the reservations; either way the capture must be given back.
    p.pay(order, total, true).await;
    let state = p
        .wait_for(order, "cancelled", |o| {
            o.status() == Some(OrderStatus::Cancelled)
        })
        .await;
    p.settle().await;
    assert_eq!(
        p.order(order).await.cancellation_reason(),
        Some(CancellationReason::OutOfStock)
    );
    assert_eq!(
        p.inventory(a).await,
        (5, 0),
        "the partial reservation was released"
    );
    assert_eq!(
        p.count("PaymentRefunded").await,
        1,
        "the capture was refunded once"
    );
    let _ = state;
    p.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_declined_payment_leaves_the_order_pending_and_payable(pool: PgPool) {
    let p = Pipeline::start(pool, LONG).await;
    let a = p.product_with_stock(5).await;
    let (order, total) = p.place(&[(a, 1)]).await;
    p.wait_for(order, "stock reserved", |o| {
        o.stock_status() == Some(StockStatus::Reserved)
    })
    .await;
    p.pay(order, total, false).await;
    p.settle().await;
    let state = p.order(order).await;
    assert_eq!(
        (state.status(), state.payment_status()),
        (Some(OrderStatus::Pending), Some(OrderPaymentStatus::Unpaid))
    );
    p.pay(order, total, true).await;
    p.wait_for(order, "confirmed", |o| {
        o.status() == Some(OrderStatus::Confirmed)
    })
    .await;
    p.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_customer_cancel_releases_stock_and_refunds_the_capture(pool: PgPool) {
    let mut p = Pipeline::start(pool, LONG).await;
    let a = p.product_with_stock(5).await;
    // The saga is down while the customer orders, pays and cancels: when it comes back it meets
    // a cancelled order with a capture and a reservation still to undo.
    p.stop_saga().await;
    let (order, total) = p.place(&[(a, 3)]).await;
    let payment = p.pay(order, total, true).await;
    p.cancel(order).await;
    p.start_saga();
    p.settle().await;

    let state = p.order(order).await;
    assert_eq!(state.status(), Some(OrderStatus::Cancelled));
    assert_eq!(
        state.cancellation_reason(),
        Some(CancellationReason::CustomerRequest)
    );
    let (pay, _) = p
        .dispatcher
        .reader()
        .load::<Payment>(&payment.to_string())
        .await
        .unwrap();
    assert_eq!(
        pay.refunded(),
        Some(total),
        "the capture is refunded in full"
    );
    assert_eq!(p.count("PaymentRefunded").await, 1);
    assert_eq!(p.inventory(a).await, (5, 0), "nothing stays reserved");
    p.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn cancelling_a_confirmed_order_returns_its_stock_and_refunds_it(pool: PgPool) {
    let p = Pipeline::start(pool, LONG).await;
    let a = p.product_with_stock(5).await;
    let (order, total) = p.place(&[(a, 2)]).await;
    p.pay(order, total, true).await;
    p.wait_for(order, "committed", |o| {
        o.stock_status() == Some(StockStatus::Committed)
    })
    .await;
    p.wait_inventory(a, (3, 0), "committed").await;

    p.cancel(order).await;
    let state = p
        .wait_for(order, "stock released", |o| {
            o.stock_status() == Some(StockStatus::Released)
        })
        .await;
    p.settle().await;
    assert_eq!(state.status(), Some(OrderStatus::Cancelled));
    assert_eq!(p.inventory(a).await, (5, 0), "the committed units are back");
    assert_eq!(p.count("StockReturned").await, 1);
    assert_eq!(p.count("PaymentRefunded").await, 1);
    assert_eq!(
        p.order(order).await.payment_status(),
        Some(OrderPaymentStatus::Refunded)
    );
    p.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_unpaid_order_expires_and_its_deadline_survives_a_restart(pool: PgPool) {
    let mut p = Pipeline::start(pool.clone(), Duration::from_secs(2)).await;
    let a = p.product_with_stock(5).await;
    let (order, _) = p.place(&[(a, 2)]).await;
    p.wait_for(order, "stock reserved", |o| {
        o.stock_status() == Some(StockStatus::Reserved)
    })
    .await;
    // Everything stops before the deadline is due, and comes back after it.
    p.stop_saga().await;
    p.stop.cancel();
    for t in p.tasks.drain(..) {
        t.await.unwrap();
    }
    let due: i64 =
        sqlx::query_scalar("SELECT count(*) FROM process.deadlines WHERE fired_at IS NULL")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(due, 1, "the deadline is stored");
    tokio::time::sleep(Duration::from_secs(2)).await;
    p.stop = CancellationToken::new();
    let deadlines = DeadlineScheduler::new(
        pool.clone(),
        p.dispatcher.clone(),
        Duration::from_millis(100),
    );
    p.tasks.push(tokio::spawn(deadlines.run(p.stop.clone())));
    p.tasks.push(tokio::spawn(
        Relay::new(pool.clone(), p.broker.clone(), RelayConfig::default()).run(p.stop.clone()),
    ));
    p.start_saga();

    let state = p
        .wait_for(order, "expired", |o| {
            o.status() == Some(OrderStatus::Cancelled)
        })
        .await;
    assert_eq!(
        state.cancellation_reason(),
        Some(CancellationReason::PaymentTimeout)
    );
    let released = p
        .wait_for(order, "stock released", |o| {
            o.stock_status() == Some(StockStatus::Released)
        })
        .await;
    assert_eq!(released.payment_status(), Some(OrderPaymentStatus::Unpaid));
    // The saga sends the order's and the inventory's commands side by side: the inventory's
    // release may commit a moment after the order says released.
    p.wait_inventory(a, (5, 0), "the stock is back").await;
    p.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_saga_event_delivered_twice_gives_the_same_outcome(pool: PgPool) {
    let mut p = Pipeline::start(pool.clone(), LONG).await;
    let (a, b) = (p.product_with_stock(5).await, p.product_with_stock(1).await);
    let (confirmed, total) = p.place(&[(a, 1)]).await;
    p.pay(confirmed, total, true).await;
    let (short, short_total) = p.place(&[(a, 1), (b, 2)]).await;
    p.pay(short, short_total, true).await;
    let (cancelled, _) = p.place(&[(a, 1)]).await;
    p.wait_for(confirmed, "committed", |o| {
        o.stock_status() == Some(StockStatus::Committed)
    })
    .await;
    p.wait_for(short, "cancelled", |o| {
        o.status() == Some(OrderStatus::Cancelled)
    })
    .await;
    p.wait_for(cancelled, "reserved", |o| {
        o.stock_status() == Some(StockStatus::Reserved)
    })
    .await;
    p.cancel(cancelled).await;
    p.wait_for(cancelled, "released", |o| {
        o.stock_status() == Some(StockStatus::Released)
    })
    .await;
    p.settle().await;
    let before = snapshot(&p, &[a, b]).await;
    let ignored_before = p.duplicates_ignored().await;

    // Deliver every event again: republish each message, and restart the saga from scratch so
    // it also re-reads the whole log.
    let log = LogReader::new(pool.clone());
    let events = log.read_after(Position::START, 10_000).await.unwrap();
    // With publisher confirms: every duplicate surely reached the broker.
    commerce_testkit::republish(&p.broker, &events).await;
    let routed = commerce_testkit::routed_to(&events, &OrderFulfilmentProcess::bindings());
    assert!(routed > 0, "nothing republished reaches the saga");
    p.stop_saga().await;
    sqlx::query(
        "UPDATE consumer_checkpoints SET transaction_id = 0, global_position = 0 WHERE name = $1",
    )
    .bind(OrderFulfilmentProcess::NAME)
    .execute(&pool)
    .await
    .unwrap();
    p.start_saga();
    p.settle().await;
    // The rewound saga reaches the head from the log; the duplicates wait in its queue behind.
    commerce_testkit::eventually(
        Duration::from_secs(20),
        "every duplicate delivered",
        || async {
            let ignored = p.duplicates_ignored().await - ignored_before;
            assert!(
                ignored <= routed,
                "{ignored} duplicates ignored, {routed} sent"
            );
            (ignored == routed).then_some(())
        },
    )
    .await;

    assert_eq!(
        snapshot(&p, &[a, b]).await,
        before,
        "a second delivery changed the outcome"
    );
    p.shutdown().await;
}

/// Counts of every event type, and the inventories: what a double delivery must not change.
async fn snapshot(p: &Pipeline, products: &[Uuid]) -> (Vec<(String, i64)>, Vec<(i64, i64)>) {
    let counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT event_type, count(*) FROM events GROUP BY event_type ORDER BY event_type",
    )
    .fetch_all(&p.pool)
    .await
    .unwrap();
    let mut stock = Vec::new();
    for product in products {
        stock.push(p.inventory(*product).await);
    }
    (counts, stock)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_backlog_of_many_orders_is_decided_in_runs_with_nothing_oversold(pool: PgPool) {
    let mut p = Pipeline::start(pool, LONG).await;
    p.stop_saga().await;
    // 3 units each of 4 products; 24 paid orders of 1 unit, 6 per product, wait for the saga.
    let products = [
        p.product_with_stock(3).await,
        p.product_with_stock(3).await,
        p.product_with_stock(3).await,
        p.product_with_stock(3).await,
    ];
    let mut orders = Vec::new();
    for i in 0..24 {
        let (order, total) = p.place(&[(products[i % 4], 1)]).await;
        p.pay(order, total, true).await;
        orders.push(order);
    }
    // The saga catches up on the whole backlog in runs, its commands sent concurrently.
    p.start_saga();
    let mut confirmed = 0;
    for order in &orders {
        let state = p
            .wait_for(*order, "confirmed or cancelled", |o| {
                o.stock_status() == Some(StockStatus::Committed)
                    || (o.status() == Some(OrderStatus::Cancelled)
                        && o.payment_status() == Some(OrderPaymentStatus::Refunded))
            })
            .await;
        if state.status() == Some(OrderStatus::Confirmed) {
            confirmed += 1;
        }
    }
    p.settle().await;
    assert_eq!(confirmed, 12, "exactly the stock on hand was sold");
    for product in products {
        assert_eq!(p.inventory(product).await, (0, 0), "sold out, nothing held");
    }
    assert_eq!(p.count("StockCommitted").await, 12);
    assert_eq!(p.count("PaymentRefunded").await, 12);
    p.shutdown().await;
}
