//! Payments and notifications over HTTP: paying an order confirms it, a declined card leaves it
//! payable, one order captures once (concurrency, idempotency keys), refunds never exceed the
//! capture, and every customer sees only their own payments and notifications.
//!
//! Orders are placed through the command side (products and stock too), so these tests depend
//! only on the payment routes; the real saga then reserves stock and confirms paid orders.

use std::time::Duration;

use crate::support::{Resp, Session, TestApp};
use chrono::Utc;
use commerce_commands::process::order_fulfilment::OrderFulfilmentProcess;
use commerce_commands::Dispatcher;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_domain::money::{Currency, Money};
use commerce_domain::order::{Order, OrderCommand, OrderLine, PostalAddress};
use commerce_domain::product::{Product, ProductCommand};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{EventMetadata, EventStore, LogReader};
use commerce_notifications::NotificationsProcess;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// A product at `price_minor` cents with enough stock, and a pending order of `quantity` of it by
/// `customer`, all through the command side. Returns the order id.
async fn order_for(app: &TestApp, customer: &Session, price_minor: i64, quantity: u32) -> Uuid {
    let dispatcher = Dispatcher::new(EventStore::new(app.pool.clone()));
    let meta = EventMetadata::new("test", Uuid::new_v4().to_string());
    let (product, order) = (Uuid::new_v4(), Uuid::new_v4());
    let price = Money::new(price_minor, Currency::USD);
    let name = format!("Product {}", product.simple());
    let create = ProductCommand::CreateProduct {
        product_id: product,
        name: name.clone(),
        slug: String::new(),
        description: "A fine thing".into(),
        price,
        category_id: Uuid::new_v4(),
        image_url: None,
        at: Utc::now(),
    };
    dispatcher
        .execute::<Product>(&product.to_string(), create, &meta)
        .await
        .expect("product created");
    let stock = InventoryCommand::AdjustStock {
        product_id: product,
        adjustment: StockAdjustment::Add(quantity + 10),
        reason: None,
        at: Utc::now(),
    };
    dispatcher
        .execute::<Inventory>(&product.to_string(), stock, &meta)
        .await
        .expect("stock added");
    let place = OrderCommand::PlaceOrder {
        order_id: order,
        user_id: customer.user_id,
        lines: vec![OrderLine {
            product_id: product,
            product_name: name,
            quantity,
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
    };
    dispatcher
        .execute::<Order>(&order.to_string(), place, &meta)
        .await
        .expect("order placed");
    order
}

/// Waits until the saga, the notifications process and every projection have applied the whole
/// log, and the log stopped growing meanwhile (the saga's reactions are new events).
async fn settle_all(app: &TestApp) {
    let log = LogReader::new(app.pool.clone());
    let mut names: Vec<&str> = commerce_projections::registry::NAMES.to_vec();
    names.extend([OrderFulfilmentProcess::NAME, NotificationsProcess::NAME]);
    for _ in 0..20 {
        assert!(log.settle(Duration::from_secs(10)).await.expect("settle"));
        let head = log.head().await.expect("head");
        let reached =
            commerce_projections::wait::wait_for(&app.pool, &names, head, Duration::from_secs(20))
                .await
                .expect("wait");
        assert!(reached, "consumers did not reach {head}");
        assert!(log.settle(Duration::from_secs(10)).await.expect("settle"));
        if log.head().await.expect("head") == head {
            return;
        }
    }
    panic!("the log kept growing");
}

/// The order as the orders read model shows it, once everything has settled.
async fn order_view(app: &TestApp, order: Uuid) -> commerce_projections::orders::OrderView {
    settle_all(app).await;
    commerce_projections::orders::get(&app.pool, order)
        .await
        .expect("read")
        .expect("the order is in the read model")
}

async fn pay(app: &TestApp, who: &Session, order: Uuid, body: Value) -> Resp {
    let mut body = body;
    body["order_id"] = json!(order);
    app.post("/api/v1/payments", Some(&who.token), body).await
}

async fn pay_with_key(app: &TestApp, who: &Session, key: &str, body: Value) -> Resp {
    app.request(
        Method::POST,
        "/api/v1/payments",
        Some(&who.token),
        Some(body),
        &[("idempotency-key", key)],
    )
    .await
}

/// How many `event_type` events the log holds for payments of `order`.
async fn payment_events(app: &TestApp, order: Uuid, event_type: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Payment' AND event_type = $1 \
         AND payload -> $1 ->> 'order_id' = $2",
    )
    .bind(event_type)
    .bind(order.to_string())
    .fetch_one(&app.pool)
    .await
    .expect("count")
}

/// How many events payment `id` has.
async fn stream_length(app: &TestApp, id: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_type = 'Payment' AND aggregate_id = $1",
    )
    .bind(id)
    .fetch_one(&app.pool)
    .await
    .expect("count")
}

fn id_of(resp: &Resp) -> String {
    resp.data()["id"].as_str().expect("an id").to_owned()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_paid_order_is_confirmed_and_its_payment_completed(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let order = order_for(&app, &customer, 1999, 2).await;

    let paid = pay(
        &app,
        &customer,
        order,
        json!({"amount": 39.98, "method": "card"}),
    )
    .await
    .expect(201);
    let payment = paid.data();
    assert_eq!(payment["status"], "COMPLETED");
    assert_eq!(payment["order_id"], json!(order));
    assert_eq!(payment["user_id"], json!(customer.user_id));
    assert_eq!(payment["amount"], json!(39.98));
    assert_eq!(payment["currency"], "USD");
    assert_eq!(payment["refunded_amount"], json!(0.0));
    assert!(payment["gateway_transaction_id"]
        .as_str()
        .is_some_and(|t| t.starts_with("sim_")));
    assert!(payment.get("failure_reason").is_none());
    let id = id_of(&paid);

    let read = app
        .get_after(
            &format!("/api/v1/payments/{id}"),
            Some(&customer.token),
            &paid.position(),
        )
        .await
        .expect(200);
    assert_eq!(read.data()["status"], "COMPLETED");
    assert_eq!(read.data()["amount"], json!(39.98));
    assert_eq!(
        read.data()["gateway_transaction_id"],
        payment["gateway_transaction_id"]
    );
    let by_order = app
        .get(
            &format!("/api/v1/payments/order/{order}"),
            Some(&customer.token),
        )
        .await
        .expect(200);
    assert_eq!(by_order.data()["id"], json!(id));
    let mine = app
        .get("/api/v1/payments", Some(&customer.token))
        .await
        .expect(200);
    assert_eq!(mine.body["pagination"]["total"], 1);
    assert_eq!(mine.data()[0]["id"], json!(id));

    let view = order_view(&app, order).await;
    assert_eq!(view.status, "CONFIRMED");
    assert_eq!(view.payment_status, "PAID");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_declined_card_fails_the_payment_and_the_order_stays_payable(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let order = order_for(&app, &customer, 1500, 1).await;

    let declined = pay(
        &app,
        &customer,
        order,
        json!({"amount": 15, "method": "card", "payment_method_id": "pm_card_declined"}),
    )
    .await
    .expect(201);
    assert_eq!(declined.data()["status"], "FAILED");
    assert_eq!(declined.data()["failure_reason"], "card declined");
    assert_eq!(declined.data()["gateway_transaction_id"], Value::Null);
    let by_token = pay(
        &app,
        &customer,
        order,
        json!({"amount": 15, "method": "pm_card_declined"}),
    )
    .await
    .expect(201);
    assert_eq!(by_token.data()["status"], "FAILED");

    // Straight away, without waiting for the saga: the order is payable again.
    let good = pay(
        &app,
        &customer,
        order,
        json!({"amount": 15.00, "method": "card"}),
    )
    .await
    .expect(201);
    assert_eq!(good.data()["status"], "COMPLETED");
    let failed = app
        .get_after(
            &format!("/api/v1/payments/{}", id_of(&declined)),
            Some(&customer.token),
            &good.position(),
        )
        .await
        .expect(200);
    assert_eq!(failed.data()["status"], "FAILED");
    assert_eq!(failed.data()["failure_reason"], "card declined");
    let by_order = app
        .get(
            &format!("/api/v1/payments/order/{order}"),
            Some(&customer.token),
        )
        .await
        .expect(200);
    assert_eq!(by_order.data()["id"], json!(id_of(&good)));
    assert_eq!(
        app.get("/api/v1/payments", Some(&customer.token))
            .await
            .body["pagination"]["total"],
        3
    );
    assert_eq!(order_view(&app, order).await.status, "CONFIRMED");
    assert_eq!(payment_events(&app, order, "PaymentCaptured").await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_saved_method_is_charged_with_its_gateway_token(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let order = order_for(&app, &customer, 1000, 1).await;
    let saved = app
        .post(
            "/api/v1/payment-methods",
            Some(&customer.token),
            json!({"method_type": "card", "gateway_method_id": "pm_card_declined"}),
        )
        .await
        .expect(201);
    let declined = pay(
        &app,
        &customer,
        order,
        json!({"amount": 10, "method": "card", "payment_method_id": id_of(&saved)}),
    )
    .await
    .expect(201);
    assert_eq!(declined.data()["status"], "FAILED");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_payment_must_be_for_the_order_total_with_at_most_two_decimals(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let order = order_for(&app, &customer, 1999, 1).await;
    settle_all(&app).await; // the saga's own reactions are not the input's
    let before = app.event_count().await;

    let wrong = pay(
        &app,
        &customer,
        order,
        json!({"amount": 19.98, "method": "card"}),
    )
    .await
    .expect(400);
    assert!(
        wrong.body["details"]["amount"].is_string(),
        "{}",
        wrong.body
    );
    // Sent as raw text: the server reads the literal digits, so a third decimal is refused.
    let raw = app
        .client
        .post(format!("{}/api/v1/payments", app.base))
        .bearer_auth(&customer.token)
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"order_id": "{order}", "amount": 19.999, "method": "card"}}"#
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    pay(
        &app,
        &customer,
        order,
        json!({"amount": -19.99, "method": "card"}),
    )
    .await
    .expect(400);
    pay(
        &app,
        &customer,
        order,
        json!({"amount": "19.99", "method": "card"}),
    )
    .await
    .expect(400);
    let currency = pay(
        &app,
        &customer,
        order,
        json!({"amount": 19.99, "currency": "EUR", "method": "card"}),
    )
    .await
    .expect(400);
    assert!(currency.body["details"]["currency"].is_string());
    pay(
        &app,
        &customer,
        order,
        json!({"amount": 19.99, "method": ""}),
    )
    .await
    .expect(400);
    pay(
        &app,
        &customer,
        order,
        json!({"amount": 19.99, "method": "card", "tip": 1}),
    )
    .await
    .expect(400);
    pay(
        &app,
        &customer,
        Uuid::new_v4(),
        json!({"amount": 19.99, "method": "card"}),
    )
    .await
    .expect(404);
    app.post(
        "/api/v1/payments",
        None,
        json!({"order_id": order, "amount": 19.99, "method": "card"}),
    )
    .await
    .expect(401);
    assert_eq!(
        app.event_count().await,
        before,
        "bad input appended nothing"
    );

    pay(
        &app,
        &customer,
        order,
        json!({"amount": 19.99, "currency": "USD", "method": "card"}),
    )
    .await
    .expect(201);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn paying_a_paid_order_is_a_conflict(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let order = order_for(&app, &customer, 500, 1).await;
    pay(
        &app,
        &customer,
        order,
        json!({"amount": 5, "method": "card"}),
    )
    .await
    .expect(201);
    // At once (the saga may not have marked it paid yet), and once it has.
    pay(
        &app,
        &customer,
        order,
        json!({"amount": 5, "method": "card"}),
    )
    .await
    .expect(409);
    assert_eq!(order_view(&app, order).await.payment_status, "PAID");
    let again = pay(
        &app,
        &customer,
        order,
        json!({"amount": 5, "method": "card"}),
    )
    .await
    .expect(409);
    assert_eq!(again.body["code"], "already_paid");
    assert_eq!(payment_events(&app, order, "PaymentCaptured").await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn another_customer_can_neither_pay_nor_read_a_payment(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let (owner, other) = (app.customer().await, app.customer().await);
    let order = order_for(&app, &owner, 700, 1).await;
    settle_all(&app).await; // the saga's own reactions are not the input's
    let before = app.event_count().await;
    pay(&app, &other, order, json!({"amount": 7, "method": "card"}))
        .await
        .expect(404);
    assert_eq!(app.event_count().await, before);

    let paid = pay(&app, &owner, order, json!({"amount": 7, "method": "card"}))
        .await
        .expect(201);
    let id = id_of(&paid);
    let path = format!("/api/v1/payments/{id}");
    app.get_after(&path, Some(&other.token), &paid.position())
        .await
        .expect(404);
    app.get(
        &format!("/api/v1/payments/order/{order}"),
        Some(&other.token),
    )
    .await
    .expect(404);
    app.post(
        &format!("{path}/confirm"),
        Some(&other.token),
        json!({"payment_intent_id": "pi_1"}),
    )
    .await
    .expect(404);
    let theirs = app
        .get("/api/v1/payments", Some(&other.token))
        .await
        .expect(200);
    assert_eq!(theirs.body["pagination"]["total"], 0);
    app.get(&path, None).await.expect(401);

    let (admin, auditor) = (app.admin().await, app.auditor().await);
    for reader in [&admin, &auditor] {
        let seen = app.get(&path, Some(&reader.token)).await.expect(200);
        assert_eq!(seen.data()["id"], json!(id));
        let all = app
            .get("/api/v1/payments", Some(&reader.token))
            .await
            .expect(200);
        assert_eq!(all.body["pagination"]["total"], 1);
    }
    app.get("/api/v1/payments/not-a-uuid", Some(&owner.token))
        .await
        .expect(400);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn concurrent_payments_for_one_order_capture_once(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let order = order_for(&app, &customer, 2500, 1).await;
    let attempts = futures::future::join_all((0..5).map(|_| {
        pay(
            &app,
            &customer,
            order,
            json!({"amount": 25, "method": "card"}),
        )
    }))
    .await;
    let completed = attempts.iter().filter(|r| r.status == 201).count();
    let refused = attempts.iter().filter(|r| r.status == 409).count();
    assert_eq!((completed, refused), (1, 4), "{attempts:?}");
    assert!(attempts
        .iter()
        .filter(|r| r.status == 201)
        .all(|r| r.data()["status"] == "COMPLETED"));
    assert_eq!(payment_events(&app, order, "PaymentCaptured").await, 1);
    assert_eq!(order_view(&app, order).await.status, "CONFIRMED");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_repeated_idempotency_key_returns_the_first_payment_and_captures_once(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let order = order_for(&app, &customer, 1200, 1).await;
    let body = json!({"order_id": order, "amount": 12, "method": "card"});
    let first = pay_with_key(&app, &customer, "pay-1", body.clone())
        .await
        .expect(201);
    let again = pay_with_key(&app, &customer, "pay-1", body.clone())
        .await
        .expect(201);
    assert_eq!(id_of(&again), id_of(&first));
    assert_eq!(again.data()["status"], "COMPLETED");
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(
        again.header("x-event-position"),
        first.header("x-event-position")
    );

    let other_body = json!({"order_id": order, "amount": 12, "method": "visa"});
    let reused = pay_with_key(&app, &customer, "pay-1", other_body)
        .await
        .expect(409);
    assert_eq!(reused.body["code"], "idempotency_key_reused");
    assert_eq!(payment_events(&app, order, "PaymentCaptured").await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn admins_refund_in_parts_but_never_more_than_was_captured(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let (customer, admin) = (app.customer().await, app.admin().await);
    let order = order_for(&app, &customer, 5000, 1).await;
    let paid = pay(
        &app,
        &customer,
        order,
        json!({"amount": 50, "method": "card"}),
    )
    .await
    .expect(201);
    let refund = format!("/api/v1/payments/{}/refund", id_of(&paid));

    settle_all(&app).await; // the saga's own reactions are not the input's
    let before = app.event_count().await;
    app.post(
        &refund,
        Some(&customer.token),
        json!({"amount": 10, "reason": "mine"}),
    )
    .await
    .expect(403);
    app.post(
        &refund,
        Some(&admin.token),
        json!({"amount": 0.001, "reason": "x"}),
    )
    .await
    .expect(400);
    app.post(
        &format!("/api/v1/payments/{}/refund", Uuid::new_v4()),
        Some(&admin.token),
        json!({"amount": 1, "reason": "x"}),
    )
    .await
    .expect(404);
    assert_eq!(app.event_count().await, before);

    let part = app
        .post(
            &refund,
            Some(&admin.token),
            json!({"amount": 20, "reason": "damaged box"}),
        )
        .await
        .expect(200);
    assert_eq!(part.data()["status"], "PARTIALLY_REFUNDED");
    assert_eq!(part.data()["refunded_amount"], json!(20.0));
    let over = app
        .post(
            &refund,
            Some(&admin.token),
            json!({"amount": 30.01, "reason": "too much"}),
        )
        .await
        .expect(409);
    assert_eq!(over.body["code"], "conflict");
    let rest = app
        .post(
            &refund,
            Some(&admin.token),
            json!({"amount": 30, "reason": "returned"}),
        )
        .await
        .expect(200);
    assert_eq!(rest.data()["status"], "REFUNDED");
    assert_eq!(rest.data()["refunded_amount"], json!(50.0));
    app.post(
        &refund,
        Some(&admin.token),
        json!({"amount": 0.01, "reason": "more"}),
    )
    .await
    .expect(409);

    let read = app
        .get_after(
            &format!("/api/v1/payments/{}", id_of(&paid)),
            Some(&customer.token),
            &rest.position(),
        )
        .await
        .expect(200);
    assert_eq!(read.data()["refunded_amount"], json!(50.0));
    assert_eq!(read.data()["status"], "REFUNDED");
    assert_eq!(order_view(&app, order).await.payment_status, "REFUNDED");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn confirming_is_idempotent_when_completed_and_refused_once_refunded_or_failed(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let (customer, admin) = (app.customer().await, app.admin().await);
    let order = order_for(&app, &customer, 800, 1).await;
    let declined = pay(
        &app,
        &customer,
        order,
        json!({"amount": 8, "method": "pm_card_declined"}),
    )
    .await
    .expect(201);
    let paid = pay(
        &app,
        &customer,
        order,
        json!({"amount": 8, "method": "card"}),
    )
    .await
    .expect(201);
    let confirm = format!("/api/v1/payments/{}/confirm", id_of(&paid));
    let intent = json!({"payment_intent_id": "pi_123"});

    let before = stream_length(&app, &id_of(&paid)).await;
    for _ in 0..2 {
        let confirmed = app
            .post(&confirm, Some(&customer.token), intent.clone())
            .await
            .expect(200);
        assert_eq!(confirmed.data()["status"], "COMPLETED");
        assert_eq!(confirmed.data()["id"], json!(id_of(&paid)));
        assert!(confirmed.header("x-event-position").is_some());
    }
    assert_eq!(
        stream_length(&app, &id_of(&paid)).await,
        before,
        "confirming writes nothing"
    );
    app.post(
        &confirm,
        Some(&customer.token),
        json!({"payment_intent_id": ""}),
    )
    .await
    .expect(400);
    app.post(
        &format!("/api/v1/payments/{}/confirm", id_of(&declined)),
        Some(&customer.token),
        intent.clone(),
    )
    .await
    .expect(409);

    app.post(
        &format!("/api/v1/payments/{}/refund", id_of(&paid)),
        Some(&admin.token),
        json!({"amount": 8, "reason": "cancelled by phone"}),
    )
    .await
    .expect(200);
    app.post(&confirm, Some(&customer.token), intent)
        .await
        .expect(409);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn customers_see_only_their_own_notifications_newest_first(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let (customer, other) = (app.customer().await, app.customer().await);
    let order = order_for(&app, &customer, 3000, 1).await;
    pay(
        &app,
        &customer,
        order,
        json!({"amount": 30, "method": "card"}),
    )
    .await
    .expect(201);
    assert_eq!(order_view(&app, order).await.status, "CONFIRMED");

    let mine = app
        .get("/api/v1/notifications", Some(&customer.token))
        .await
        .expect(200);
    let types: Vec<&str> = mine.body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|n| n["type"].as_str().expect("a type"))
        .collect();
    assert_eq!(types, ["ORDER_CONFIRMED", "WELCOME"], "newest first");
    assert_eq!(mine.body["pagination"]["total"], 2);
    let confirmed = &mine.data()[0];
    assert!(confirmed["body"]
        .as_str()
        .is_some_and(|b| b.contains(&order.to_string())));
    assert_eq!(confirmed["channel"], "in_app");
    assert_eq!(confirmed["status"], "SENT");
    assert!(confirmed["sent_at"].is_string());

    let page = app
        .get(
            "/api/v1/notifications?page=2&page_size=1",
            Some(&customer.token),
        )
        .await
        .expect(200);
    assert_eq!(page.data()[0]["type"], "WELCOME");
    app.get("/api/v1/notifications?page_size=0", Some(&customer.token))
        .await
        .expect(400);

    let theirs = app
        .get("/api/v1/notifications", Some(&other.token))
        .await
        .expect(200);
    let types: Vec<&str> = theirs.body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|n| n["type"].as_str().expect("a type"))
        .collect();
    assert_eq!(types, ["WELCOME"]);
    app.get("/api/v1/notifications", None).await.expect(401);
    app.stop().await;
}
