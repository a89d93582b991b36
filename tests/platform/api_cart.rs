//! The cart over HTTP: only active catalog products at their current price, whole quantities
//! from 1 to 1000, lines merged, and every write visible to the next read that sends its position.

use crate::support::TestApp;
use chrono::Utc;
use commerce_commands::Dispatcher;
use commerce_domain::money::{Currency, Money};
use commerce_domain::product::{Product, ProductCommand};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{EventMetadata, EventStore};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// A product in the catalog at `price_minor` cents, created through the command side as
/// `POST /products` would, and visible in the catalog read model on return.
async fn product(app: &TestApp, name: &str, price_minor: i64) -> Uuid {
    let id = Uuid::new_v4();
    let command = ProductCommand::CreateProduct {
        product_id: id,
        name: name.to_owned(),
        slug: String::new(),
        description: "A fine thing".to_owned(),
        price: Money::new(price_minor, Currency::USD),
        category_id: Uuid::new_v4(),
        image_url: None,
        at: Utc::now(),
    };
    exec_product(app, id, command).await;
    id
}

async fn deactivate(app: &TestApp, id: Uuid) {
    exec_product(
        app,
        id,
        ProductCommand::DeactivateProduct { at: Utc::now() },
    )
    .await;
}

async fn exec_product(app: &TestApp, id: Uuid, command: ProductCommand) {
    Dispatcher::new(EventStore::new(app.pool.clone()))
        .execute::<Product>(
            &id.to_string(),
            command,
            &EventMetadata::new("test", Uuid::new_v4().to_string()),
        )
        .await
        .expect("product command");
    app.settle().await;
}

fn add(product: Uuid, quantity: i64) -> Value {
    json!({"product_id": product, "quantity": quantity})
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn adding_a_product_twice_merges_the_quantities_into_one_line(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let lamp = product(&app, "Desk Lamp", 1999).await;

    let first = app
        .post("/api/v1/cart", Some(&customer.token), add(lamp, 2))
        .await
        .expect(200);
    assert_eq!(first.data()["items"][0]["quantity"], 2);
    let second = app
        .post("/api/v1/cart", Some(&customer.token), add(lamp, 3))
        .await
        .expect(200);
    assert_eq!(second.data()["items"].as_array().unwrap().len(), 1);
    assert_eq!(second.data()["items"][0]["quantity"], 5);

    let cart = app
        .get_after("/api/v1/cart", Some(&customer.token), &second.position())
        .await
        .expect(200);
    let data = cart.data();
    assert_eq!(data["user_id"], customer.user_id.to_string());
    assert_eq!(data["items"].as_array().unwrap().len(), 1);
    let line = &data["items"][0];
    assert_eq!(line["product_id"], lamp.to_string());
    assert_eq!(line["product_name"], "Desk Lamp");
    assert_eq!(line["quantity"], 5);
    assert_eq!(line["price"], json!(19.99));
    assert_eq!(line["subtotal"], json!(99.95));
    assert_eq!(data["total"], json!(99.95));
    assert_eq!(data["currency"], "USD");
    assert_eq!(data["item_count"], 5);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_unknown_product_is_404_and_an_inactive_one_409_and_neither_is_added(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let retired = product(&app, "Retired Radio", 4500).await;
    deactivate(&app, retired).await;
    let before = app.event_count().await;

    app.post(
        "/api/v1/cart",
        Some(&customer.token),
        add(Uuid::new_v4(), 1),
    )
    .await
    .expect(404);
    let inactive = app
        .post("/api/v1/cart", Some(&customer.token), add(retired, 1))
        .await
        .expect(409);
    assert_eq!(inactive.body["code"], "product_inactive");
    assert_eq!(app.event_count().await, before);
    let cart = app
        .get("/api/v1/cart", Some(&customer.token))
        .await
        .expect(200);
    assert_eq!(cart.data()["items"], json!([]));
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn quantities_that_are_not_whole_numbers_from_1_to_1000_are_400_and_append_nothing(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let mug = product(&app, "Mug", 850).await;
    let added = app
        .post("/api/v1/cart", Some(&customer.token), add(mug, 1))
        .await
        .expect(200);
    let before = app.event_count().await;

    for quantity in [
        json!(0),
        json!(-1),
        json!(1.5),
        json!("2"),
        json!(1001),
        json!(null),
    ] {
        let body = json!({"product_id": mug, "quantity": quantity});
        let bad = app
            .post("/api/v1/cart", Some(&customer.token), body.clone())
            .await;
        assert_eq!(bad.status, 400, "POST /cart {body}: {}", bad.body);
        let bad = app
            .put(
                &format!("/api/v1/cart/{mug}"),
                Some(&customer.token),
                json!({"quantity": quantity}),
            )
            .await;
        assert_eq!(bad.status, 400, "PUT quantity {quantity}: {}", bad.body);
    }
    let extra_field = app
        .post(
            "/api/v1/cart",
            Some(&customer.token),
            json!({"product_id": mug, "quantity": 1, "price": 0.01}),
        )
        .await;
    assert_eq!(extra_field.status, 400, "{}", extra_field.body);
    assert_eq!(app.event_count().await, before);

    let cart = app
        .get_after("/api/v1/cart", Some(&customer.token), &added.position())
        .await
        .expect(200);
    assert_eq!(cart.data()["items"][0]["quantity"], 1);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_new_customer_has_an_empty_cart_and_strangers_have_none(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let cart = app
        .get("/api/v1/cart", Some(&customer.token))
        .await
        .expect(200);
    assert_eq!(cart.data()["items"], json!([]));
    assert_eq!(cart.data()["total"], json!(0.00));
    assert_eq!(cart.data()["item_count"], 0);
    app.get("/api/v1/cart", None).await.expect(401);
    app.post("/api/v1/cart", None, add(Uuid::new_v4(), 1))
        .await
        .expect(401);
    app.delete("/api/v1/cart", None).await.expect(401);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_line_can_be_set_and_removed_and_the_cart_cleared(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let token = Some(customer.token.as_str());
    let pen = product(&app, "Pen", 250).await;
    let pad = product(&app, "Notepad", 400).await;
    app.post("/api/v1/cart", token, add(pen, 1))
        .await
        .expect(200);
    app.post("/api/v1/cart", token, add(pad, 2))
        .await
        .expect(200);

    let set = app
        .put(
            &format!("/api/v1/cart/{pen}"),
            token,
            json!({"quantity": 7}),
        )
        .await
        .expect(200);
    assert_eq!(set.data()["items"][0]["quantity"], 7);
    assert_eq!(set.data()["items"][0]["subtotal"], json!(17.50));
    assert_eq!(set.data()["total"], json!(25.50));
    app.put(
        &format!("/api/v1/cart/{}", Uuid::new_v4()),
        token,
        json!({"quantity": 1}),
    )
    .await
    .expect(404);

    let removed = app
        .delete(&format!("/api/v1/cart/{pen}"), token)
        .await
        .expect(204);
    app.delete(&format!("/api/v1/cart/{pen}"), token)
        .await
        .expect(404);
    app.delete("/api/v1/cart/not-a-uuid", token)
        .await
        .expect(400);
    let cart = app
        .get_after("/api/v1/cart", token, &removed.position())
        .await
        .expect(200);
    let items = cart.data()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["product_id"], pad.to_string());

    let cleared = app.delete("/api/v1/cart", token).await.expect(204);
    let cart = app
        .get_after("/api/v1/cart", token, &cleared.position())
        .await
        .expect(200);
    assert_eq!(cart.data()["items"], json!([]));
    assert_eq!(cart.data()["total"], json!(0.00));
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_add_is_seen_by_the_next_read_that_sends_its_position(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let token = Some(customer.token.as_str());
    let sticker = product(&app, "Sticker", 10).await;
    for n in 1..=100 {
        let added = app
            .post("/api/v1/cart", token, add(sticker, 1))
            .await
            .expect(200);
        let cart = app
            .get_after("/api/v1/cart", token, &added.position())
            .await
            .expect(200);
        assert_eq!(
            cart.data()["items"][0]["quantity"],
            n,
            "read #{n} missed its write"
        );
    }
    app.stop().await;
}
