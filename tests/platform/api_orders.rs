//! Orders over HTTP: placing from the cart or from items at catalog prices, idempotent retries,
//! owner-only reads, cancelling, shipping, the order as it was at an instant, and its history.

use std::time::Duration;

use crate::support::{Resp, Session, TestApp};
use chrono::{DateTime, Utc};
use commerce_commands::process::order_fulfilment::OrderFulfilmentProcess;
use commerce_commands::Dispatcher;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_domain::money::{Currency, Money};
use commerce_domain::order::{Order, OrderCommand};
use commerce_domain::payment::{GatewayOutcome, Payment, PaymentCommand};
use commerce_domain::product::{Product, ProductCommand};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{EventMetadata, EventStore, LogReader};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

fn dispatcher(app: &TestApp) -> Dispatcher {
    Dispatcher::new(EventStore::new(app.pool.clone()))
}

fn meta() -> EventMetadata {
    EventMetadata::new("test", Uuid::new_v4().to_string())
}

/// A product at `price_minor` cents with `stock` units, created through the command side as
/// `POST /products` would, and in the catalog read model on return.
async fn product(app: &TestApp, price_minor: i64, stock: u32) -> Uuid {
    let id = Uuid::new_v4();
    let d = dispatcher(app);
    let create = ProductCommand::CreateProduct {
        product_id: id,
        name: format!("Product {}", id.simple()),
        slug: String::new(),
        description: "A fine thing".to_owned(),
        price: Money::new(price_minor, Currency::USD),
        category_id: Uuid::new_v4(),
        image_url: None,
        at: Utc::now(),
    };
    d.execute::<Product>(&id.to_string(), create, &meta())
        .await
        .expect("product created");
    let stock = InventoryCommand::AdjustStock {
        product_id: id,
        adjustment: StockAdjustment::Add(stock),
        reason: None,
        at: Utc::now(),
    };
    d.execute::<Inventory>(&id.to_string(), stock, &meta())
        .await
        .expect("stock added");
    app.settle().await;
    id
}

/// Waits until every projection and the fulfilment saga have applied the whole log, again and
/// again until the saga's own commands add nothing more.
async fn settle_saga(app: &TestApp) {
    let log = LogReader::new(app.pool.clone());
    let mut names = commerce_projections::registry::NAMES.to_vec();
    names.push(OrderFulfilmentProcess::NAME);
    let mut last = None;
    for _ in 0..20 {
        log.settle(Duration::from_secs(10)).await.expect("settle");
        let head = log.head().await.expect("head");
        if last == Some(head) {
            return;
        }
        let reached =
            commerce_projections::wait::wait_for(&app.pool, &names, head, Duration::from_secs(20))
                .await
                .expect("wait");
        assert!(reached, "consumers did not reach {head}");
        last = Some(head);
    }
    panic!("the log kept growing");
}

fn address() -> Value {
    json!({"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"})
}

fn from_items(items: &[(Uuid, u32)]) -> Value {
    let items: Vec<Value> = items
        .iter()
        .map(|(p, q)| json!({"product_id": p, "quantity": q}))
        .collect();
    json!({"shipping_address": address(), "payment_method": "card", "items": items})
}

fn from_cart() -> Value {
    json!({"shipping_address": address(), "payment_method": "card"})
}

async fn place(app: &TestApp, who: &Session, body: Value) -> Resp {
    app.post("/api/v1/orders", Some(&who.token), body).await
}

fn id_of(resp: &Resp) -> String {
    resp.data()["id"].as_str().expect("an id").to_owned()
}

async fn order_placed_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_order_from_the_cart_is_pending_at_catalog_prices_and_empties_the_cart(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let token = Some(customer.token.as_str());
    let kettle = product(&app, 3450, 10).await;
    app.post(
        "/api/v1/cart",
        token,
        json!({"product_id": kettle, "quantity": 2}),
    )
    .await
    .expect(200);

    let placed = place(&app, &customer, from_cart()).await.expect(201);
    let order = placed.data();
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["stock_status"], "PENDING");
    assert_eq!(order["payment_status"], "UNPAID");
    assert_eq!(order["user_id"], customer.user_id.to_string());
    assert_eq!(order["total_amount"], json!(69.00));
    assert_eq!(order["currency"], "USD");
    assert_eq!(order["payment_method"], "card");
    assert_eq!(order["shipping_address"]["city"], "Springfield");
    assert_eq!(order["items"][0]["product_id"], kettle.to_string());
    assert_eq!(order["items"][0]["quantity"], 2);
    assert_eq!(order["items"][0]["price"], json!(34.50));
    assert_eq!(order["items"][0]["subtotal"], json!(69.00));

    let position = placed.position();
    let cart = app
        .get_after("/api/v1/cart", token, &position)
        .await
        .expect(200);
    assert_eq!(cart.data()["items"], json!([]));
    let read = app
        .get_after(
            &format!("/api/v1/orders/{}", id_of(&placed)),
            token,
            &position,
        )
        .await
        .expect(200);
    assert_eq!(read.data()["total_amount"], json!(69.00));
    assert_eq!(read.data()["created_at"], order["created_at"]);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_order_from_items_leaves_the_cart_alone(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let token = Some(customer.token.as_str());
    let book = product(&app, 1250, 10).await;
    let pen = product(&app, 199, 10).await;
    app.post(
        "/api/v1/cart",
        token,
        json!({"product_id": pen, "quantity": 1}),
    )
    .await
    .expect(200);

    let placed = place(&app, &customer, from_items(&[(book, 3)]))
        .await
        .expect(201);
    assert_eq!(placed.data()["total_amount"], json!(37.50));
    assert_eq!(placed.data()["items"].as_array().unwrap().len(), 1);
    let cart = app
        .get_after("/api/v1/cart", token, &placed.position())
        .await
        .expect(200);
    assert_eq!(cart.data()["items"][0]["product_id"], pen.to_string());
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn nothing_to_order_or_a_bad_product_is_refused_and_appends_nothing(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let retired = product(&app, 500, 10).await;
    dispatcher(&app)
        .execute::<Product>(
            &retired.to_string(),
            ProductCommand::DeactivateProduct { at: Utc::now() },
            &meta(),
        )
        .await
        .expect("deactivated");
    app.settle().await;
    let before = app.event_count().await;

    // Nothing to order is a 400 (API.md), from an empty cart or an empty `items`.
    let empty = place(&app, &customer, from_cart()).await.expect(400);
    assert!(empty.body["error"].as_str().unwrap().contains("empty"));
    place(&app, &customer, from_items(&[])).await.expect(400);
    place(&app, &customer, from_items(&[(Uuid::new_v4(), 1)]))
        .await
        .expect(404);
    place(&app, &customer, from_items(&[(retired, 1)]))
        .await
        .expect(409);
    place(&app, &customer, from_items(&[(retired, 0)]))
        .await
        .expect(400);
    let mut no_city = from_items(&[(Uuid::new_v4(), 1)]);
    no_city["shipping_address"]["city"] = json!("  ");
    no_city["items"] = json!([]);
    place(&app, &customer, no_city).await.expect(400);
    app.post("/api/v1/orders", None, from_cart())
        .await
        .expect(401);
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

/// The previous platform's clients send the address as one line; ours may send it by field.
#[sqlx::test(migrator = "MIGRATOR")]
async fn an_order_ships_to_one_line_of_text_or_to_an_address_by_field_answered_as_sent(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let token = Some(customer.token.as_str());
    let lamp = product(&app, 1200, 10).await;
    let one_line = "123 Main Street, San Francisco, CA 94105";
    let by_field = json!({"line1": "1 Main St", "line2": "Flat 2", "city": "Springfield",
        "postal_code": "12345", "country": "US"});

    for address in [json!(one_line), by_field] {
        let mut body = from_items(&[(lamp, 1)]);
        body["shipping_address"] = address.clone();
        let placed = place(&app, &customer, body).await.expect(201);
        assert_eq!(placed.data()["shipping_address"], address);
        let path = format!("/api/v1/orders/{}", id_of(&placed));
        let read = app
            .get_after(&path, token, &placed.position())
            .await
            .expect(200);
        assert_eq!(read.data()["shipping_address"], address);
        let as_of = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let then = app
            .get(&format!("{path}?as_of={as_of}"), token)
            .await
            .expect(200);
        assert_eq!(then.data()["shipping_address"], address);
    }

    // The saga's reactions to the two orders are in the log before counting.
    settle_saga(&app).await;
    let before = app.event_count().await;
    for wrong in [
        json!("   "),
        json!("x".repeat(501)),
        json!(42),
        json!(["1 Main St"]),
    ] {
        let mut body = from_items(&[(lamp, 1)]);
        body["shipping_address"] = wrong.clone();
        let refused = place(&app, &customer, body).await.expect(400);
        let error = refused.body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains("shipping_address") || error.contains("shipping address"),
            "{wrong}: {error}"
        );
    }
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn another_customer_gets_404_while_admins_and_auditors_see_the_order(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let owner = app.customer().await;
    let other = app.customer().await;
    let admin = app.admin().await;
    let auditor = app.auditor().await;
    let chair = product(&app, 8900, 5).await;
    let placed = place(&app, &owner, from_items(&[(chair, 1)]))
        .await
        .expect(201);
    let path = format!("/api/v1/orders/{}", id_of(&placed));
    let position = placed.position();

    app.get_after(&path, Some(&other.token), &position)
        .await
        .expect(404);
    app.get(&format!("{path}/history"), Some(&other.token))
        .await
        .expect(404);
    app.delete(&path, Some(&other.token)).await.expect(404);
    app.get(
        &format!("/api/v1/orders/{}", Uuid::new_v4()),
        Some(&owner.token),
    )
    .await
    .expect(404);
    app.get(&path, None).await.expect(401);
    let theirs = app
        .get_after("/api/v1/orders", Some(&other.token), &position)
        .await
        .expect(200);
    assert_eq!(theirs.body["pagination"]["total"], 0);
    let probing = app
        .get(
            &format!("/api/v1/orders?user_id={}", owner.user_id),
            Some(&other.token),
        )
        .await
        .expect(200);
    assert_eq!(probing.body["data"], json!([]));

    for reader in [&owner, &admin, &auditor] {
        let seen = app
            .get_after(&path, Some(&reader.token), &position)
            .await
            .expect(200);
        assert_eq!(seen.data()["user_id"], owner.user_id.to_string());
    }
    let filtered = app
        .get(
            &format!("/api/v1/orders?user_id={}", owner.user_id),
            Some(&admin.token),
        )
        .await
        .expect(200);
    assert_eq!(filtered.body["pagination"]["total"], 1);
    assert_eq!(filtered.body["data"][0]["id"], id_of(&placed));
    app.delete(&path, Some(&auditor.token)).await.expect(403);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_same_idempotency_key_twice_places_one_order_with_one_answer(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let lamp = product(&app, 2000, 10).await;
    let key = Uuid::new_v4().to_string();
    let send = |body: Value| {
        let key = key.clone();
        let token = customer.token.clone();
        let app = &app;
        async move {
            app.request(
                Method::POST,
                "/api/v1/orders",
                Some(&token),
                Some(body),
                &[("idempotency-key", &key)],
            )
            .await
        }
    };
    let first = send(from_items(&[(lamp, 1)])).await.expect(201);
    let again = send(from_items(&[(lamp, 1)])).await.expect(201);
    assert_eq!(id_of(&again), id_of(&first));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(again.position(), first.position());
    assert_eq!(order_placed_count(&app).await, 1);

    let other_body = send(from_items(&[(lamp, 2)])).await.expect(409);
    assert_eq!(other_body.body["code"], "idempotency_key_reused");
    assert_eq!(order_placed_count(&app).await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn ten_concurrent_requests_with_one_key_place_one_order(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let lamp = product(&app, 2000, 10).await;
    let key = Uuid::new_v4().to_string();
    let body = from_items(&[(lamp, 1)]);
    let headers = [("idempotency-key", key.as_str())];
    let answers = futures::future::join_all((0..10).map(|_| {
        app.request(
            Method::POST,
            "/api/v1/orders",
            Some(&customer.token),
            Some(body.clone()),
            &headers,
        )
    }))
    .await;
    let ids: Vec<String> = answers.into_iter().map(|a| id_of(&a.expect(201))).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(order_placed_count(&app).await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_order_is_seen_by_the_next_read_that_sends_its_position(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let token = Some(customer.token.as_str());
    let cup = product(&app, 300, 1000).await;
    for n in 1..=100 {
        let placed = place(&app, &customer, from_items(&[(cup, 1)]))
            .await
            .expect(201);
        let read = app
            .get_after(
                &format!("/api/v1/orders/{}", id_of(&placed)),
                token,
                &placed.position(),
            )
            .await;
        assert_eq!(
            read.status, 200,
            "read #{n} missed its write: {}",
            read.body
        );
    }
    let list = app.get("/api/v1/orders", token).await.expect(200);
    assert_eq!(list.body["pagination"]["total"], 100);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_customer_cancels_a_pending_order(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let token = Some(customer.token.as_str());
    let vase = product(&app, 1500, 3).await;
    let placed = place(&app, &customer, from_items(&[(vase, 2)]))
        .await
        .expect(201);
    let path = format!("/api/v1/orders/{}", id_of(&placed));

    let cancelled = app.delete(&path, token).await.expect(200);
    assert_eq!(cancelled.data()["status"], "CANCELLED");
    assert_eq!(cancelled.data()["cancellation_reason"], "CUSTOMER_REQUEST");
    let read = app
        .get_after(&path, token, &cancelled.position())
        .await
        .expect(200);
    assert_eq!(read.data()["status"], "CANCELLED");
    assert_eq!(read.data()["cancellation_reason"], "CUSTOMER_REQUEST");
    let again = app.delete(&path, token).await.expect(200);
    assert_eq!(again.data()["status"], "CANCELLED");

    // The saga gives the reserved units back.
    settle_saga(&app).await;
    let stock = app
        .get(&format!("/api/v1/orders/{}", id_of(&placed)), token)
        .await
        .expect(200);
    assert_eq!(stock.data()["stock_status"], "RELEASED");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn shipping_before_confirmation_is_409_and_only_admins_ship(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let admin = app.admin().await;
    let drum = product(&app, 12000, 2).await;
    let placed = place(&app, &customer, from_items(&[(drum, 1)]))
        .await
        .expect(201);
    let path = format!("/api/v1/orders/{}", id_of(&placed));
    // Stock reserved, still unpaid: pending.
    settle_saga(&app).await;
    let before = app.event_count().await;

    let early = app
        .post(&format!("{path}/ship"), Some(&admin.token), json!({}))
        .await
        .expect(409);
    assert_eq!(early.body["code"], "conflict");
    app.post(&format!("{path}/deliver"), Some(&admin.token), json!({}))
        .await
        .expect(409);
    app.post(&format!("{path}/ship"), Some(&customer.token), json!({}))
        .await
        .expect(403);
    app.post(
        &format!("/api/v1/orders/{}/ship", Uuid::new_v4()),
        Some(&admin.token),
        json!({}),
    )
    .await
    .expect(404);
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_paid_order_is_confirmed_shipped_and_delivered_and_then_cannot_be_cancelled(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let admin = app.admin().await;
    let bike = product(&app, 45000, 2).await;
    let placed = place(&app, &customer, from_items(&[(bike, 1)]))
        .await
        .expect(201);
    let order_id: Uuid = id_of(&placed).parse().unwrap();
    let path = format!("/api/v1/orders/{order_id}");
    pay(
        &app,
        order_id,
        customer.user_id,
        Money::new(45000, Currency::USD),
    )
    .await;
    settle_saga(&app).await;
    let confirmed = app.get(&path, Some(&customer.token)).await.expect(200);
    assert_eq!(confirmed.data()["status"], "CONFIRMED");
    assert_eq!(confirmed.data()["payment_status"], "PAID");

    let shipped = app
        .post(&format!("{path}/ship"), Some(&admin.token), json!({}))
        .await
        .expect(200);
    assert_eq!(shipped.data()["status"], "SHIPPED");
    app.delete(&path, Some(&customer.token)).await.expect(409);
    let delivered = app
        .post(&format!("{path}/deliver"), Some(&admin.token), json!({}))
        .await
        .expect(200);
    assert_eq!(delivered.data()["status"], "DELIVERED");
    let read = app
        .get_after(&path, Some(&customer.token), &delivered.position())
        .await
        .expect(200);
    assert_eq!(read.data()["status"], "DELIVERED");
    app.stop().await;
}

/// What `POST /payments` does: claim the order, then capture at the gateway.
async fn pay(app: &TestApp, order_id: Uuid, user_id: Uuid, amount: Money) {
    let payment_id = Uuid::new_v4();
    let d = dispatcher(app);
    let request = OrderCommand::RequestPayment {
        payment_id,
        amount,
        at: Utc::now(),
    };
    d.execute::<Order>(&order_id.to_string(), request, &meta())
        .await
        .expect("payment requested");
    let capture = PaymentCommand::CapturePayment {
        payment_id,
        order_id,
        user_id,
        amount,
        method: "card".to_owned(),
        payment_method_id: None,
        outcome: GatewayOutcome::Approved {
            transaction_id: format!("tx-{payment_id}"),
        },
        at: Utc::now(),
    };
    d.execute::<Payment>(&payment_id.to_string(), capture, &meta())
        .await
        .expect("captured");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_history_shows_the_order_and_its_stock_reservation_with_actor_and_correlation(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let auditor = app.auditor().await;
    let globe = product(&app, 2599, 4).await;
    let request_id = format!("req-{}", Uuid::new_v4());
    let placed = app
        .request(
            Method::POST,
            "/api/v1/orders",
            Some(&customer.token),
            Some(from_items(&[(globe, 2)])),
            &[("x-request-id", request_id.as_str())],
        )
        .await
        .expect(201);
    let order_id = id_of(&placed);
    settle_saga(&app).await;

    for reader in [&customer, &auditor] {
        let history = app
            .get(
                &format!("/api/v1/orders/{order_id}/history"),
                Some(&reader.token),
            )
            .await
            .expect(200);
        let events = history.data().as_array().unwrap().clone();
        let find = |aggregate: &str, event_type: &str| {
            events
                .iter()
                .find(|e| e["aggregate_type"] == aggregate && e["event_type"] == event_type)
                .unwrap_or_else(|| panic!("no {event_type} in {events:#?}"))
                .clone()
        };
        let placed_event = find("Order", "OrderPlaced");
        assert_eq!(placed_event["aggregate_id"], order_id);
        assert_eq!(placed_event["version"], 1);
        assert_eq!(placed_event["actor"], customer.user_id.to_string());
        assert_eq!(placed_event["correlation_id"], request_id);
        assert_eq!(placed_event["data"]["order_id"], order_id);

        let reserved = find("Inventory", "StockReserved");
        assert_eq!(reserved["aggregate_id"], globe.to_string());
        assert_eq!(reserved["actor"], "system:order-fulfilment");
        assert_eq!(reserved["correlation_id"], request_id);
        assert!(reserved["causation_id"].is_string());
        assert_eq!(reserved["data"]["order_id"], order_id);
        find("Order", "OrderStockReserved");

        assert_eq!(events[0]["event_type"], "OrderPlaced", "log order");
        assert!(events
            .iter()
            .all(|e| e["aggregate_type"] != "Inventory" || e["data"]["order_id"] == order_id));
    }
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn as_of_shows_the_order_pending_before_its_cancellation_and_cancelled_after(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let other = app.customer().await;
    let token = Some(customer.token.as_str());
    let clock = product(&app, 4200, 3).await;
    let placed = place(&app, &customer, from_items(&[(clock, 1)]))
        .await
        .expect(201);
    let path = format!("/api/v1/orders/{}", id_of(&placed));
    let created_at = placed.data()["created_at"].as_str().unwrap().to_owned();
    let cancelled = app.delete(&path, token).await.expect(200);
    let cancelled_at = cancelled.data()["updated_at"].as_str().unwrap().to_owned();

    let before = app
        .get(&format!("{path}?as_of={created_at}"), token)
        .await
        .expect(200);
    assert_eq!(before.data()["status"], "PENDING");
    assert_eq!(before.data()["cancellation_reason"], Value::Null);
    assert_eq!(before.data()["total_amount"], json!(42.00));
    let after = app
        .get(&format!("{path}?as_of={cancelled_at}"), token)
        .await
        .expect(200);
    assert_eq!(after.data()["status"], "CANCELLED");
    assert_eq!(after.data()["cancellation_reason"], "CUSTOMER_REQUEST");
    assert_eq!(after.data()["updated_at"], cancelled_at);

    let created: DateTime<Utc> = created_at.parse().unwrap();
    let earlier = (created - chrono::Duration::seconds(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    app.get(&format!("{path}?as_of={earlier}"), token)
        .await
        .expect(404);
    app.get(&format!("{path}?as_of={cancelled_at}"), Some(&other.token))
        .await
        .expect(404);
    app.get(&format!("{path}?as_of=yesterday"), token)
        .await
        .expect(400);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn orders_are_listed_newest_first_and_filtered_by_status(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let token = Some(customer.token.as_str());
    let plant = product(&app, 990, 10).await;
    let first = place(&app, &customer, from_items(&[(plant, 1)]))
        .await
        .expect(201);
    let second = place(&app, &customer, from_items(&[(plant, 2)]))
        .await
        .expect(201);
    let cancelled = app
        .delete(&format!("/api/v1/orders/{}", id_of(&first)), token)
        .await
        .expect(200);

    let all = app
        .get_after("/api/v1/orders", token, &cancelled.position())
        .await
        .expect(200);
    assert_eq!(all.body["pagination"]["total"], 2);
    assert_eq!(all.body["data"][0]["id"], id_of(&second));
    assert_eq!(all.body["data"][1]["id"], id_of(&first));
    let only = app
        .get("/api/v1/orders?status=CANCELLED", token)
        .await
        .expect(200);
    assert_eq!(only.body["pagination"]["total"], 1);
    assert_eq!(only.body["data"][0]["id"], id_of(&first));
    let paged = app
        .get("/api/v1/orders?page=2&page_size=1", token)
        .await
        .expect(200);
    assert_eq!(paged.body["data"][0]["id"], id_of(&first));
    assert_eq!(paged.body["pagination"]["total_pages"], 2);
    app.get("/api/v1/orders?status=LOST", token)
        .await
        .expect(400);
    app.get("/api/v1/orders?page=0", token).await.expect(400);
    app.get("/api/v1/orders?user_id=nope", token)
        .await
        .expect(400);
    app.stop().await;
}
