//! End to end through HTTP against a started `commerce serve`: the shopper's journey and the
//! unhappy paths, with the saga, relay and projections all running. Eventual consistency is
//! waited for through the product (position tokens, or polling a read until it changes within a
//! deadline), never with fixed sleeps.

use crate::support;

use std::time::Duration;

use crate::support::{Session, TestApp, PASSWORD};
use commerce_event_store::db::MIGRATOR;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

fn address() -> Value {
    json!({"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"})
}

/// Reads the order until `done` holds (the saga works asynchronously), for at most 30 s.
async fn order_until(app: &TestApp, token: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        app.settle().await;
        let order = app
            .get(&format!("/api/v1/orders/{id}"), Some(token))
            .await
            .expect(200);
        if done(order.data()) {
            return order.data().clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "order never got there: {}",
            order.body
        );
    }
}

async fn place(app: &TestApp, s: &Session, product: Uuid, quantity: u32) -> Value {
    app.post(
        "/api/v1/orders",
        Some(&s.token),
        json!({"shipping_address": address(), "payment_method": "card",
               "items": [{"product_id": product, "quantity": quantity}]}),
    )
    .await
    .expect(201)
    .data()
    .clone()
}

async fn pay(app: &TestApp, s: &Session, order: &Value, method: &str) -> support::Resp {
    app.post(
        "/api/v1/payments",
        Some(&s.token),
        json!({"order_id": order["id"], "amount": order["total_amount"], "currency": order["currency"],
               "method": method}),
    )
    .await
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_shopper_registers_browses_buys_pays_and_an_auditor_reads_the_history(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let product = app.product(&admin, "24.50", 10).await;
    app.settle().await;

    // Register and log in.
    let email = format!("shopper-{}@example.com", Uuid::new_v4().simple());
    app.post(
        "/api/v1/auth/register",
        None,
        json!({"email": email, "password": PASSWORD, "name": "Sam Shopper"}),
    )
    .await
    .expect(201);
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": email.to_uppercase(), "password": PASSWORD}),
        )
        .await
        .expect(200);
    let token = login.data()["access_token"].as_str().unwrap().to_owned();
    let user_id = login.data()["user"]["id"].as_str().unwrap().to_owned();

    // Browse and search.
    let detail = app
        .get(&format!("/api/v1/products/{product}"), None)
        .await
        .expect(200);
    let name = detail.data()["name"].as_str().unwrap().to_owned();
    let found = app
        .get(
            &format!(
                "/api/v1/products?search={}",
                name.split(' ').nth(1).unwrap()
            ),
            None,
        )
        .await
        .expect(200);
    assert_eq!(found.data().as_array().unwrap().len(), 1, "{}", found.body);
    assert_eq!(found.data()[0]["id"], product.to_string());

    // Cart, order, pay.
    let added = app
        .post(
            "/api/v1/cart",
            Some(&token),
            json!({"product_id": product, "quantity": 2}),
        )
        .await;
    assert!(matches!(added.status, 200 | 201), "{}", added.body);
    let cart = app
        .get_after("/api/v1/cart", Some(&token), &added.position())
        .await
        .expect(200);
    assert_eq!(cart.data()["item_count"], 2, "{}", cart.body);
    assert_eq!(cart.data()["total"], json!(49.0));
    let order = app
        .post(
            "/api/v1/orders",
            Some(&token),
            json!({"shipping_address": address(), "payment_method": "card"}),
        )
        .await
        .expect(201);
    let order = order.data().clone();
    assert_eq!(order["status"], "PENDING");
    assert_eq!(order["total_amount"], json!(49.0));
    let id = order["id"].as_str().unwrap().to_owned();
    let paid = pay(
        &app,
        &Session {
            user_id: user_id.parse().unwrap(),
            email: email.clone(),
            token: token.clone(),
        },
        &order,
        "card",
    )
    .await
    .expect(201);
    assert_eq!(paid.data()["status"], "COMPLETED");
    let confirmed = order_until(&app, &token, &id, |o| o["status"] == "CONFIRMED").await;
    assert_eq!(confirmed["payment_status"], "PAID");
    assert_eq!(confirmed["stock_status"], "COMMITTED");
    let cart = app.get("/api/v1/cart", Some(&token)).await.expect(200);
    assert_eq!(
        cart.data()["items"].as_array().unwrap().len(),
        0,
        "the cart was checked out"
    );

    // Stock decreased, notification present.
    let stock = app
        .get(&format!("/api/v1/inventory/{product}"), None)
        .await
        .expect(200);
    assert_eq!(stock.data()["available"], 8, "{}", stock.body);
    assert_eq!(stock.data()["reserved"], 0);
    let notes = app
        .get("/api/v1/notifications", Some(&token))
        .await
        .expect(200);
    let types: Vec<&str> = notes
        .data()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert!(types.contains(&"ORDER_CONFIRMED"), "{types:?}");

    // History, readable by an auditor, with actor and correlation on every entry.
    let auditor = app.auditor().await;
    let history = app
        .get(
            &format!("/api/v1/orders/{id}/history"),
            Some(&auditor.token),
        )
        .await
        .expect(200);
    let entries = history.data().as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    for expected in [
        "OrderPlaced",
        "StockReserved",
        "PaymentCaptured",
        "OrderConfirmed",
        "StockCommitted",
    ] {
        assert!(
            kinds.contains(&expected),
            "{expected} missing from {kinds:?}"
        );
    }
    assert_eq!(kinds[0], "OrderPlaced");
    for e in entries {
        assert!(!e["actor"].as_str().unwrap_or("").is_empty(), "{e}");
        assert!(
            !e["correlation_id"].as_str().unwrap_or("").is_empty(),
            "{e}"
        );
    }
    let placed = &entries[0];
    assert_eq!(placed["actor"], user_id);
    let reserved = entries
        .iter()
        .find(|e| e["event_type"] == "StockReserved")
        .unwrap();
    assert!(
        reserved["causation_id"].is_string(),
        "saga steps name their cause: {reserved}"
    );
    let stranger = app.customer().await;
    app.get(
        &format!("/api/v1/orders/{id}/history"),
        Some(&stranger.token),
    )
    .await
    .expect(404);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_order_for_more_than_the_stock_is_cancelled_out_of_stock_and_a_declined_card_leaves_it_payable(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let scarce = app.product(&admin, "5.00", 1).await;
    let plenty = app.product(&admin, "5.00", 50).await;
    let buyer = app.customer().await;

    let too_many = place(&app, &buyer, scarce, 2).await;
    let id = too_many["id"].as_str().unwrap();
    let cancelled = order_until(&app, &buyer.token, id, |o| o["status"] == "CANCELLED").await;
    assert_eq!(cancelled["cancellation_reason"], "OUT_OF_STOCK");
    let stock = app
        .get(&format!("/api/v1/inventory/{scarce}"), None)
        .await
        .expect(200);
    assert_eq!(
        (
            stock.data()["available"].clone(),
            stock.data()["reserved"].clone()
        ),
        (json!(1), json!(0))
    );

    let order = place(&app, &buyer, plenty, 1).await;
    let declined = pay(&app, &buyer, &order, "pm_card_declined")
        .await
        .expect(201);
    assert_eq!(declined.data()["status"], "FAILED");
    assert!(declined.data()["failure_reason"].is_string());
    let again = pay(&app, &buyer, &order, "card").await.expect(201);
    assert_eq!(again.data()["status"], "COMPLETED");
    let id = order["id"].as_str().unwrap();
    order_until(&app, &buyer.token, id, |o| o["status"] == "CONFIRMED").await;
    let notes = app
        .get("/api/v1/notifications", Some(&buyer.token))
        .await
        .expect(200);
    assert!(
        notes
            .data()
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["type"] == "PAYMENT_FAILED"),
        "{}",
        notes.body
    );
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_customer_cancels_a_paid_order_and_is_refunded_and_an_admin_refunds_partially_but_never_too_much(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let product = app.product(&admin, "10.00", 10).await;
    let buyer = app.customer().await;

    // Cancel after payment: refunded, stock back.
    let order = place(&app, &buyer, product, 3).await;
    let payment = pay(&app, &buyer, &order, "card").await.expect(201);
    let id = order["id"].as_str().unwrap();
    order_until(&app, &buyer.token, id, |o| o["status"] == "CONFIRMED").await;
    let cancel = app
        .delete(&format!("/api/v1/orders/{id}"), Some(&buyer.token))
        .await;
    assert!(matches!(cancel.status, 200 | 204), "{}", cancel.body);
    let cancelled = order_until(&app, &buyer.token, id, |o| {
        o["payment_status"] == "REFUNDED"
    })
    .await;
    assert_eq!(cancelled["status"], "CANCELLED");
    assert_eq!(cancelled["cancellation_reason"], "CUSTOMER_REQUEST");
    let pid = payment.data()["id"].as_str().unwrap();
    let refunded = app
        .get(&format!("/api/v1/payments/{pid}"), Some(&buyer.token))
        .await
        .expect(200);
    assert_eq!(refunded.data()["status"], "REFUNDED");
    assert_eq!(refunded.data()["refunded_amount"], json!(30.0));
    let stock = app
        .get(&format!("/api/v1/inventory/{product}"), None)
        .await
        .expect(200);
    assert_eq!(
        stock.data()["available"],
        10,
        "cancelled stock came back: {}",
        stock.body
    );

    // Partial refunds by an admin; their sum never exceeds the capture.
    let order = place(&app, &buyer, product, 2).await;
    let payment = pay(&app, &buyer, &order, "card").await.expect(201);
    let pid = payment.data()["id"].as_str().unwrap().to_owned();
    let refund = |amount: &'static str| {
        let body: Value =
            serde_json::from_str(&format!(r#"{{"amount": {amount}, "reason": "damaged"}}"#))
                .unwrap();
        let path = format!("/api/v1/payments/{pid}/refund");
        let app = &app;
        let token = admin.token.clone();
        async move { app.post(&path, Some(&token), body).await }
    };
    refund("5.00").await.expect(200);
    let over = refund("15.01").await.expect(409);
    assert_eq!(over.status, 409);
    let last = refund("15.00").await.expect(200);
    let after = app
        .get_after(
            &format!("/api/v1/payments/{pid}"),
            Some(&admin.token),
            &last.position(),
        )
        .await
        .expect(200);
    assert_eq!(after.data()["status"], "REFUNDED");
    assert_eq!(after.data()["refunded_amount"], json!(20.0));
    refund("0.01").await.expect(409);
    app.request(
        Method::POST,
        &format!("/api/v1/payments/{pid}/refund"),
        Some(&buyer.token),
        Some(json!({"amount": 1, "reason": "me"})),
        &[],
    )
    .await
    .expect(403);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn twenty_buyers_racing_for_five_units_leave_exactly_five_confirmed_orders(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let product = app.product(&admin, "99.99", 5).await;
    let mut buyers = Vec::new();
    for _ in 0..20 {
        buyers.push(app.customer().await);
    }
    let results = futures::future::join_all(buyers.iter().map(|b| {
        let app = &app;
        async move {
            let order = place(app, b, product, 1).await;
            let paid = pay(app, b, &order, "card").await;
            (order["id"].as_str().unwrap().to_owned(), paid.status)
        }
    }))
    .await;
    let mut confirmed = 0;
    let mut out_of_stock = 0;
    for ((id, pay_status), buyer) in results.iter().zip(&buyers) {
        assert!(
            matches!(pay_status, 201 | 409),
            "payment answered {pay_status}"
        );
        let order = order_until(&app, &buyer.token, id, |o| {
            o["status"] == "CONFIRMED"
                || (o["status"] == "CANCELLED" && o["payment_status"] != "PAID")
        })
        .await;
        match order["status"].as_str().unwrap() {
            "CONFIRMED" => confirmed += 1,
            _ => {
                assert_eq!(order["cancellation_reason"], "OUT_OF_STOCK");
                out_of_stock += 1;
            }
        }
    }
    assert_eq!((confirmed, out_of_stock), (5, 15));
    let stock = app
        .get(&format!("/api/v1/inventory/{product}"), None)
        .await
        .expect(200);
    assert_eq!(
        (
            stock.data()["available"].clone(),
            stock.data()["reserved"].clone()
        ),
        (json!(0), json!(0))
    );
    app.stop().await;
}
