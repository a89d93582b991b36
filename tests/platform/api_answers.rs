//! A command answers from what it holds: the body of every write is built from the aggregate its
//! command left, not read back from a read model. Two things show it: the answer equals what the
//! resource's GET shows once the read model caught up, field by field; and with the read models
//! standing still (their projections not running), writes still answer 2xx at once, with the
//! right body, while those read models show nothing of them.

use std::time::{Duration, Instant};

use crate::support::{Options, Resp, Session, TestApp, PASSWORD};
use commerce::app::Parts;
use commerce_event_store::db::MIGRATOR;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// A write's answer against the resource's GET once the read model has applied the write.
async fn assert_same_as_get(app: &TestApp, written: &Resp, path: &str, token: Option<&str>) {
    let read = app
        .get_after(path, token, &written.position())
        .await
        .expect(200);
    assert_eq!(written.data(), read.data(), "answer vs GET {path}");
}

/// The element of a list answer with `id`.
fn find<'a>(list: &'a Resp, id: &Value) -> &'a Value {
    list.data()
        .as_array()
        .and_then(|items| items.iter().find(|i| &i["id"] == id))
        .unwrap_or_else(|| panic!("{id} is not in {}", list.body))
}

async fn register(app: &TestApp, email: &str) -> Resp {
    app.post(
        "/api/v1/auth/register",
        None,
        json!({"email": email, "password": PASSWORD, "name": " Ada ", "phone": "+44 1"}),
    )
    .await
    .expect(201)
}

async fn login(app: &TestApp, email: &str) -> Resp {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": PASSWORD}),
    )
    .await
    .expect(200)
}

/// An order of one unit of `product` by `customer`, through HTTP; returns its id and total.
async fn order(app: &TestApp, customer: &Session, product: Uuid) -> (String, Value) {
    let placed = app.place_order(customer, product).await;
    let id = placed.data()["id"].as_str().expect("order id").to_owned();
    (id, placed.data()["total_amount"].clone())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_write_answers_what_the_read_model_shows_afterwards(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;

    // Users: registration, login, the profile, roles.
    let registered = register(&app, "ada@example.com").await;
    let user_id = registered.data()["id"].clone();
    let user_path = format!("/api/v1/users/{}", user_id.as_str().expect("id"));
    assert_same_as_get(&app, &registered, &user_path, Some(&admin.token)).await;
    let signed_in = login(&app, "ada@example.com").await;
    let token = signed_in.data()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let me = app.get("/api/v1/users/me", Some(&token)).await.expect(200);
    assert_eq!(signed_in.data()["user"], *me.data(), "login's user vs GET");
    let profile = app
        .put(
            "/api/v1/users/me",
            Some(&token),
            json!({"name": "Ada L.", "phone": null}),
        )
        .await
        .expect(200);
    assert_eq!(profile.data()["phone"], Value::Null);
    assert_same_as_get(&app, &profile, "/api/v1/users/me", Some(&token)).await;
    let by_admin = app
        .put(&user_path, Some(&admin.token), json!({"phone": "+44 2"}))
        .await
        .expect(200);
    assert_same_as_get(&app, &by_admin, &user_path, Some(&admin.token)).await;
    let roles = app
        .put(
            &format!("{user_path}/roles"),
            Some(&admin.token),
            json!({"roles": ["auditor", "customer"]}),
        )
        .await
        .expect(200);
    assert_eq!(roles.data()["roles"], json!(["customer", "auditor"]));
    assert_same_as_get(&app, &roles, &user_path, Some(&admin.token)).await;

    // Catalog: a category, a product with stock, an update, a stock adjustment.
    let category = app
        .post(
            "/api/v1/categories",
            Some(&admin.token),
            json!({"name": "Garden Tools"}),
        )
        .await
        .expect(201);
    let category_id = category.data()["id"].clone();
    let category_path = format!("/api/v1/categories/{}", category_id.as_str().expect("id"));
    assert_same_as_get(&app, &category, &category_path, None).await;
    let product = app
        .post(
            "/api/v1/products",
            Some(&admin.token),
            json!({"name": "Rake", "description": "Steel", "price": 19.99,
                   "category_id": category_id, "image_url": " https://x.example/r.png ",
                   "initial_stock": 7}),
        )
        .await
        .expect(201);
    assert_eq!(
        product.data()["stock"],
        json!({"available": 7, "reserved": 0})
    );
    let product_id: Uuid = product.data()["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("product id");
    let product_path = format!("/api/v1/products/{product_id}");
    assert_same_as_get(&app, &product, &product_path, None).await;
    let renamed = app
        .put(&category_path, Some(&admin.token), json!({"name": "Tools"}))
        .await
        .expect(200);
    assert_eq!(renamed.data()["product_count"], 1);
    assert_same_as_get(&app, &renamed, &category_path, None).await;
    let updated = app
        .put(
            &product_path,
            Some(&admin.token),
            json!({"price": 12.5, "description": "Stainless"}),
        )
        .await
        .expect(200);
    assert_same_as_get(&app, &updated, &product_path, None).await;
    let stocked = app
        .put(
            &format!("/api/v1/inventory/{product_id}"),
            Some(&admin.token),
            json!({"quantity": 3, "operation": "add", "reason": "delivery"}),
        )
        .await
        .expect(200);
    assert_eq!(stocked.data()["available"], 10);
    assert_same_as_get(
        &app,
        &stocked,
        &format!("/api/v1/inventory/{product_id}"),
        None,
    )
    .await;

    // Payments: a saved method, a payment, its confirmation, a refund; then a review.
    let customer = app.customer().await;
    let method = app
        .post(
            "/api/v1/payment-methods",
            Some(&customer.token),
            json!({"method_type": "card", "gateway_method_id": "pm_card_visa", "is_default": false}),
        )
        .await
        .expect(201);
    assert_eq!(
        method.data()["is_default"],
        true,
        "the first is the default"
    );
    let methods = app
        .get_after(
            "/api/v1/payment-methods",
            Some(&customer.token),
            &method.position(),
        )
        .await
        .expect(200);
    assert_eq!(
        *find(&methods, &method.data()["id"]),
        *method.data(),
        "answer vs GET /payment-methods"
    );
    let (order_id, total) = order(&app, &customer, product_id).await;
    let paid = app
        .post(
            "/api/v1/payments",
            Some(&customer.token),
            json!({"order_id": order_id, "amount": total, "method": "card"}),
        )
        .await
        .expect(201);
    let payment_path = format!(
        "/api/v1/payments/{}",
        paid.data()["id"].as_str().expect("id")
    );
    assert_same_as_get(&app, &paid, &payment_path, Some(&customer.token)).await;
    let confirmed = app
        .post(
            &format!("{payment_path}/confirm"),
            Some(&customer.token),
            json!({"payment_intent_id": "pi_1"}),
        )
        .await
        .expect(200);
    assert_same_as_get(&app, &confirmed, &payment_path, Some(&customer.token)).await;
    let refunded = app
        .post(
            &format!("{payment_path}/refund"),
            Some(&admin.token),
            json!({"amount": 2.5, "reason": "scratched"}),
        )
        .await
        .expect(200);
    assert_eq!(refunded.data()["status"], "PARTIALLY_REFUNDED");
    assert_eq!(refunded.data()["refunded_amount"], json!(2.5));
    assert_same_as_get(&app, &refunded, &payment_path, Some(&customer.token)).await;
    let reviewed = app
        .post(
            &format!("{product_path}/reviews"),
            Some(&customer.token),
            json!({"rating": 4, "comment": " Sturdy "}),
        )
        .await
        .expect(201);
    assert_eq!(reviewed.data()["comment"], "Sturdy");
    let reviews = app
        .get_after(
            &format!("{product_path}/reviews"),
            None,
            &reviewed.position(),
        )
        .await
        .expect(200);
    assert_eq!(
        *find(&reviews, &reviewed.data()["id"]),
        *reviewed.data(),
        "answer vs GET reviews"
    );

    // The product's answer includes the rating the reviews gave it.
    let rated = app
        .put(
            &product_path,
            Some(&admin.token),
            json!({"name": "Garden Rake"}),
        )
        .await
        .expect(200);
    assert_eq!(rated.data()["rating"], json!({"average": 4.0, "count": 1}));
    assert_same_as_get(&app, &rated, &product_path, None).await;
    app.stop().await;
}

/// Rows of `table` whose `column` is `id`: what a read model holds of one resource.
async fn rows(app: &TestApp, table: &str, column: &str, id: &Value) -> i64 {
    let id: Uuid = id.as_str().and_then(|s| s.parse().ok()).expect("a uuid");
    sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE {column} = $1"))
        .bind(id)
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

/// Every write below answers well within the read bound a wait for a read model would take.
fn quick(started: Instant, what: &str) {
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{what} took {:?}",
        started.elapsed()
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn writes_answer_at_once_while_their_read_models_stand_still(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    // Only the catalog projection runs: users, inventory, payments and reviews read models never
    // see what is written here.
    let parts = Parts {
        only: Some("catalog".to_owned()),
        ..Parts::ALL
    };
    let app = TestApp::spawn_parts(&c, Options::default(), parts).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "10.00", 5).await;
    let (order_id, total) = order(&app, &customer, product).await;

    let started = Instant::now();
    let registered = register(&app, "grace@example.com").await;
    quick(started, "registration");
    assert_eq!(registered.data()["name"], "Ada");
    assert_eq!(registered.data()["phone"], "+44 1");
    assert_eq!(registered.data()["roles"], json!(["customer"]));
    assert_eq!(registered.data()["is_active"], true);
    assert_eq!(
        registered.data()["created_at"],
        registered.data()["updated_at"]
    );
    let user_id = registered.data()["id"].clone();
    assert_eq!(rows(&app, "users.users", "id", &user_id).await, 0);

    let started = Instant::now();
    let signed_in = login(&app, "grace@example.com").await;
    quick(started, "login");
    assert_eq!(signed_in.data()["user"], *registered.data());
    let token = signed_in.data()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let started = Instant::now();
    let profile = app
        .put("/api/v1/users/me", Some(&token), json!({"name": "Grace"}))
        .await
        .expect(200);
    quick(started, "a profile update");
    assert_eq!(profile.data()["name"], "Grace");
    assert_eq!(
        profile.data()["created_at"],
        registered.data()["created_at"]
    );
    assert_ne!(
        profile.data()["updated_at"],
        registered.data()["updated_at"]
    );
    let started = Instant::now();
    let roles = app
        .put(
            &format!("/api/v1/users/{}/roles", user_id.as_str().expect("id")),
            Some(&admin.token),
            json!({"roles": ["admin"]}),
        )
        .await
        .expect(200);
    quick(started, "a role change");
    assert_eq!(roles.data()["roles"], json!(["admin"]));

    let started = Instant::now();
    let stocked = app
        .put(
            &format!("/api/v1/inventory/{product}"),
            Some(&admin.token),
            json!({"quantity": -2}),
        )
        .await
        .expect(200);
    quick(started, "a stock adjustment");
    // 5 units less 2; the saga may have reserved the order's unit meanwhile.
    let level = stocked.data();
    assert_eq!(level["product_id"], json!(product));
    assert_eq!(level["total"], 3);
    assert_eq!(
        level["available"]
            .as_i64()
            .zip(level["reserved"].as_i64())
            .map(|(a, r)| a + r),
        Some(3)
    );
    assert_eq!(level["warehouse_id"], "default");

    let started = Instant::now();
    let method = app
        .post(
            "/api/v1/payment-methods",
            Some(&customer.token),
            json!({"method_type": "card", "gateway_method_id": "pm_card_visa", "is_default": true}),
        )
        .await
        .expect(201);
    quick(started, "a payment method");
    assert_eq!(method.data()["user_id"], json!(customer.user_id));
    assert_eq!(method.data()["is_default"], true);
    assert_eq!(
        rows(&app, "payments.payment_methods", "id", &method.data()["id"]).await,
        0
    );

    let started = Instant::now();
    let paid = app
        .post(
            "/api/v1/payments",
            Some(&customer.token),
            json!({"order_id": order_id, "amount": total, "method": "card"}),
        )
        .await
        .expect(201);
    let payment_path = format!(
        "/api/v1/payments/{}",
        paid.data()["id"].as_str().expect("id")
    );
    let confirmed = app
        .post(
            &format!("{payment_path}/confirm"),
            Some(&customer.token),
            json!({"payment_intent_id": "pi_1"}),
        )
        .await
        .expect(200);
    let refunded = app
        .post(
            &format!("{payment_path}/refund"),
            Some(&admin.token),
            json!({"amount": total, "reason": "changed my mind"}),
        )
        .await
        .expect(200);
    quick(started, "a payment, its confirmation and a refund");
    assert_eq!(confirmed.data()["status"], "COMPLETED");
    assert_eq!(refunded.data()["status"], "REFUNDED");
    assert_eq!(refunded.data()["refunded_amount"], total);
    assert_eq!(refunded.data()["created_at"], paid.data()["created_at"]);
    assert_eq!(
        rows(&app, "payments.payments", "id", &paid.data()["id"]).await,
        0
    );

    let started = Instant::now();
    let reviewed = app
        .post(
            &format!("/api/v1/products/{product}/reviews"),
            Some(&customer.token),
            json!({"rating": 5, "comment": "Great"}),
        )
        .await
        .expect(201);
    quick(started, "a review");
    assert_eq!(reviewed.data()["rating"], 5);
    assert_eq!(reviewed.data()["user_id"], json!(customer.user_id));
    assert_eq!(reviewed.data()["verified_purchase"], false);
    assert_eq!(
        rows(&app, "reviews.reviews", "id", &reviewed.data()["id"]).await,
        0
    );
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn catalog_writes_answer_at_once_while_the_catalog_stands_still(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    // Only the users projection runs: the categories and catalog read models stand still.
    let parts = Parts {
        only: Some("users".to_owned()),
        ..Parts::ALL
    };
    let app = TestApp::spawn_parts(&c, Options::default(), parts).await;
    let admin = app.admin().await;
    // The first category: no earlier name write for the name check to wait for (a later one
    // would wait, bounded, for the categories read model to show this one; never for itself).
    let started = Instant::now();
    let category = app
        .post(
            "/api/v1/categories",
            Some(&admin.token),
            json!({"name": " Lamps "}),
        )
        .await
        .expect(201);
    quick(started, "a category");
    assert_eq!(category.data()["name"], "Lamps");
    assert_eq!(category.data()["slug"], "lamps");
    assert_eq!(category.data()["product_count"], 0);
    assert_eq!(
        rows(&app, "categories.categories", "id", &category.data()["id"]).await,
        0
    );
    let started = Instant::now();
    let created = app
        .post(
            "/api/v1/products",
            Some(&admin.token),
            json!({"name": "Desk Lamp", "description": "", "price": 30,
                   "category_id": category.data()["id"], "initial_stock": 4}),
        )
        .await
        .expect(201);
    let product_id = created.data()["id"].clone();
    let updated = app
        .put(
            &format!("/api/v1/products/{}", product_id.as_str().expect("id")),
            Some(&admin.token),
            json!({"price": 25.5, "currency": "EUR"}),
        )
        .await
        .expect(200);
    app.delete(
        &format!("/api/v1/products/{}", product_id.as_str().expect("id")),
        Some(&admin.token),
    )
    .await
    .expect(204);
    quick(started, "a product's creation, update and deletion");
    assert_eq!(created.data()["slug"], "desk-lamp");
    assert_eq!(created.data()["price"], json!(30.0));
    assert_eq!(
        created.data()["stock"],
        json!({"available": 4, "reserved": 0})
    );
    assert_eq!(
        created.data()["rating"],
        json!({"average": 0.0, "count": 0})
    );
    assert_eq!(created.data()["is_active"], true);
    assert_eq!(updated.data()["price"], json!(25.5));
    assert_eq!(updated.data()["currency"], "EUR");
    assert_eq!(updated.data()["stock"], created.data()["stock"]);
    assert_eq!(updated.data()["created_at"], created.data()["created_at"]);
    assert_eq!(rows(&app, "catalog.products", "id", &product_id).await, 0);
    app.stop().await;
}
