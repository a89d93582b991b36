//! The catalog over HTTP: products (public reads, admin writes, filters, sorting, soft delete)
//! and reviews (one per customer and product).

use crate::support::{Resp, Session, TestApp};
use commerce_event_store::db::MIGRATOR;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// A new category's id.
async fn category(app: &TestApp, admin: &Session, name: &str) -> String {
    app.post(
        "/api/v1/categories",
        Some(&admin.token),
        json!({ "name": name }),
    )
    .await
    .expect(201)
    .data()["id"]
        .as_str()
        .expect("category id")
        .to_owned()
}

/// `POST /products` as `admin`.
async fn create(app: &TestApp, admin: &Session, body: Value) -> Resp {
    app.post("/api/v1/products", Some(&admin.token), body).await
}

fn names(list: &Resp) -> Vec<String> {
    list.data()
        .as_array()
        .expect("a list")
        .iter()
        .map(|p| p["name"].as_str().expect("name").to_owned())
        .collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_admin_creates_a_product_with_initial_stock_and_anyone_reads_it(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let tools = category(&app, &admin, "Tools").await;
    let created = create(
        &app,
        &admin,
        json!({"name": "Cordless Drill", "description": "18V, two batteries", "price": 199.99,
               "category_id": tools, "initial_stock": 7, "image_url": "https://img.example/drill.png"}),
    )
    .await
    .expect(201);
    let position = created.position();
    let id = created.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(created.data()["stock"]["available"], 7, "{}", created.body);

    let product = app
        .get_after(&format!("/api/v1/products/{id}"), None, &position)
        .await
        .expect(200);
    let data = product.data();
    assert_eq!(data["name"], "Cordless Drill");
    assert_eq!(data["slug"], "cordless-drill");
    assert_eq!(data["description"], "18V, two batteries");
    assert_eq!(data["price"].to_string(), "199.99");
    assert_eq!(data["currency"], "USD");
    assert_eq!(data["category_id"], tools.as_str());
    assert_eq!(data["image_url"], "https://img.example/drill.png");
    assert_eq!(data["is_active"], true);
    assert_eq!(data["stock"], json!({"available": 7, "reserved": 0}));
    assert_eq!(data["rating"]["count"], 0);
    assert_eq!(data["rating"]["average"], json!(0.0));
    assert!(data["created_at"].as_str().unwrap().ends_with('Z'));

    let stock = app
        .get_after(&format!("/api/v1/inventory/{id}"), None, &position)
        .await
        .expect(200);
    assert_eq!(stock.data()["available"], 7);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn listings_filter_by_category_price_and_search_sort_and_paginate(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let garden = category(&app, &admin, "Garden").await;
    let kitchen = category(&app, &admin, "Kitchen").await;
    let mut position = String::new();
    for (name, description, price, cat) in [
        ("Rake", "Steel tines", json!(12.5), &garden),
        ("Hose", "Thirty metres, kink free", json!(30), &garden),
        ("Shears", "Hardened steel blades", json!(24.99), &garden),
        ("Kettle", "Boils water fast", json!(45), &kitchen),
        ("Toaster", "Four slots", json!(60.1), &kitchen),
    ] {
        position = create(
            &app,
            &admin,
            json!({"name": name, "description": description, "price": price, "category_id": cat}),
        )
        .await
        .expect(201)
        .position();
    }
    let list = |query: &str| {
        let path = format!("/api/v1/products{query}");
        let position = position.clone();
        let app = &app;
        async move { app.get_after(&path, None, &position).await.expect(200) }
    };

    let all = list("").await;
    assert_eq!(all.body["pagination"]["total"], 5);
    assert_eq!(names(&all)[0], "Toaster", "newest first by default");

    let in_garden = list(&format!("?category_id={garden}&sort=price_asc")).await;
    assert_eq!(names(&in_garden), ["Rake", "Shears", "Hose"]);
    assert_eq!(in_garden.body["pagination"]["total"], 3);

    let by_price_desc = list("?sort=price_desc").await;
    assert_eq!(
        names(&by_price_desc),
        ["Toaster", "Kettle", "Hose", "Shears", "Rake"]
    );

    let mid_range = list("?min_price=24.99&max_price=45&sort=price_asc").await;
    assert_eq!(names(&mid_range), ["Shears", "Hose", "Kettle"]);

    let searched = list("?search=steel&sort=price_asc").await;
    assert_eq!(
        names(&searched),
        ["Rake", "Shears"],
        "search matches descriptions"
    );
    let prefix = list("?search=kett").await;
    assert_eq!(names(&prefix), ["Kettle"], "plain words match as prefixes");

    let page = list("?page=2&page_size=2&sort=price_asc").await;
    assert_eq!(names(&page), ["Hose", "Kettle"]);
    assert_eq!(
        page.body["pagination"],
        json!({"page": 2, "page_size": 2, "total": 5, "total_pages": 3})
    );
    let beyond = list("?page=9&page_size=2").await;
    assert!(beyond.data().as_array().unwrap().is_empty());
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_deleted_product_leaves_listings_but_its_page_stays(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let kept = app.product(&admin, "5.00", 1).await;
    let gone = app.product(&admin, "6.00", 1).await;
    let deleted = app
        .delete(&format!("/api/v1/products/{gone}"), Some(&admin.token))
        .await
        .expect(204);
    let position = deleted.position();

    let list = app
        .get_after("/api/v1/products", None, &position)
        .await
        .expect(200);
    let ids: Vec<&str> = list
        .data()
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["id"].as_str())
        .collect();
    assert_eq!(ids, [kept.to_string()]);
    assert_eq!(list.body["pagination"]["total"], 1);

    let page = app
        .get_after(&format!("/api/v1/products/{gone}"), None, &position)
        .await
        .expect(200);
    assert_eq!(page.data()["is_active"], false);

    app.put(
        &format!("/api/v1/products/{gone}"),
        Some(&admin.token),
        json!({"price": 7}),
    )
    .await
    .expect(409);
    app.post(
        &format!("/api/v1/products/{gone}/reviews"),
        Some(&customer.token),
        json!({"rating": 5, "comment": "gone already"}),
    )
    .await
    .expect(404);
    let again = app
        .delete(&format!("/api/v1/products/{gone}"), Some(&admin.token))
        .await
        .expect(204);
    assert_eq!(again.position(), position, "a repeat writes nothing");
    app.delete(
        &format!("/api/v1/products/{}", Uuid::new_v4()),
        Some(&admin.token),
    )
    .await
    .expect(404);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sql_like_search_text_is_only_text(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    app.product(&admin, "9.99", 3).await;
    app.settle().await;
    let before = app.event_count().await;
    for search in [
        "%27%3B%20DROP%20TABLE%20events%3B%20--",
        "x%27%20OR%201%3D1%3B%20--",
        "a%3A*%7Cb",
        "%22unclosed",
        "%21%21%26%26%7C%7C",
    ] {
        let found = app
            .get(&format!("/api/v1/products?search={search}"), None)
            .await
            .expect(200);
        assert_eq!(found.body["pagination"]["total"], 0, "{search}");
    }
    let all = app.get("/api/v1/products", None).await.expect(200);
    assert_eq!(all.body["pagination"]["total"], 1, "the catalog is intact");
    assert_eq!(app.event_count().await, before);
    app.get("/api/v1/products?search=a%00b", None)
        .await
        .expect(400);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_product_input_is_refused_and_appends_nothing(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let cat = category(&app, &admin, "Things").await;
    let product = app.product(&admin, "10.00", 0).await;
    app.settle().await;
    let before = app.event_count().await;
    let good = json!({"name": "Thing", "description": "d", "price": 1, "category_id": cat});
    let with = |field: &str, value: Value| {
        let mut body = good.clone();
        body[field] = value;
        body
    };
    for (body, field) in [
        (with("price", json!(1.999)), "price"),
        (with("price", json!(-1)), "price"),
        (with("price", json!("10.00")), "price"),
        (with("currency", json!("usd")), "currency"),
        (with("category_id", json!("not-a-uuid")), "category_id"),
        (with("initial_stock", json!(-3)), "initial_stock"),
        (with("initial_stock", json!(2.5)), "initial_stock"),
        (with("name", json!("")), "name"),
        (with("name", json!("a\u{0}b")), "NUL"),
        (with("colour", json!("red")), "colour"),
    ] {
        let refused = create(&app, &admin, body.clone()).await.expect(400);
        assert!(
            refused.body["error"].as_str().unwrap().contains(field)
                || refused.body["details"].get(field).is_some(),
            "{field}: {}",
            refused.body
        );
    }
    // A well-formed id of no category: the catalog's state, so 404 (as for the product's own id).
    let unknown_category = create(&app, &admin, with("category_id", json!(Uuid::new_v4())))
        .await
        .expect(404);
    assert_eq!(unknown_category.body["code"], "not_found");

    let path = format!("/api/v1/products/{product}");
    for body in [
        json!({"price": 0.001}),
        json!({"name": ""}),
        json!({"stock": 5}),
    ] {
        app.put(&path, Some(&admin.token), body).await.expect(400);
    }
    app.put(
        &format!("/api/v1/products/{}", Uuid::new_v4()),
        Some(&admin.token),
        json!({"price": 1}),
    )
    .await
    .expect(404);
    app.put(
        &path,
        Some(&admin.token),
        json!({"category_id": Uuid::new_v4()}),
    )
    .await
    .expect(404);

    for query in [
        "min_price=1.234",
        "max_price=-5",
        "min_price=abc",
        "sort=cheapest",
        "page=0",
        "page_size=101",
        "category_id=nope",
    ] {
        app.get(&format!("/api/v1/products?{query}"), None)
            .await
            .expect(400);
    }
    // A range from above its end is empty, not malformed.
    let empty = app
        .get("/api/v1/products?min_price=50&max_price=10", None)
        .await
        .expect(200);
    assert_eq!(empty.body["data"], json!([]), "{}", empty.body);
    app.get("/api/v1/products/not-a-uuid", None)
        .await
        .expect(400);
    app.get(&format!("/api/v1/products/{}", Uuid::new_v4()), None)
        .await
        .expect(404);
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn customers_cannot_write_products_and_strangers_must_sign_in(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let auditor = app.auditor().await;
    let cat = category(&app, &admin, "Locked").await;
    let product = app.product(&admin, "3.00", 1).await;
    app.settle().await;
    let before = app.event_count().await;
    let body = json!({"name": "Sneaky", "description": "d", "price": 1, "category_id": cat});
    let path = format!("/api/v1/products/{product}");
    for token in [
        Some(customer.token.as_str()),
        Some(auditor.token.as_str()),
        None,
    ] {
        let status = if token.is_some() { 403 } else { 401 };
        app.post("/api/v1/products", token, body.clone())
            .await
            .expect(status);
        app.put(&path, token, json!({"price": 0}))
            .await
            .expect(status);
        app.delete(&path, token).await.expect(status);
    }
    assert_eq!(app.event_count().await, before);
    let page = app.get(&path, None).await.expect(200);
    assert_eq!(page.data()["price"], json!(3.0));
    assert_eq!(page.data()["is_active"], true);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_admin_changes_only_the_fields_sent(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let product = app.product(&admin, "10.00", 2).await;
    let other = category(&app, &admin, "Elsewhere").await;
    let path = format!("/api/v1/products/{product}");
    let original = app.get(&path, None).await.expect(200);

    let updated = app
        .put(
            &path,
            Some(&admin.token),
            json!({"price": 12.3, "category_id": other}),
        )
        .await
        .expect(200);
    assert_eq!(updated.data()["price"], json!(12.3));
    let page = app
        .get_after(&path, None, &updated.position())
        .await
        .expect(200);
    assert_eq!(page.data()["price"], json!(12.3));
    assert_eq!(page.data()["category_id"], other.as_str());
    assert_eq!(page.data()["name"], original.data()["name"]);
    assert_eq!(page.data()["description"], original.data()["description"]);
    assert_eq!(page.data()["currency"], "USD");
    assert_eq!(page.data()["stock"]["available"], 2);

    let renamed = app
        .put(
            &path,
            Some(&admin.token),
            json!({"name": "Brand New Name", "currency": "EUR"}),
        )
        .await
        .expect(200);
    assert_eq!(renamed.data()["slug"], "brand-new-name");
    assert_eq!(renamed.data()["currency"], "EUR");
    assert_eq!(renamed.data()["price"], json!(12.3));

    let before = app.event_count().await;
    let unchanged = app
        .put(&path, Some(&admin.token), json!({}))
        .await
        .expect(200);
    assert_eq!(unchanged.position(), renamed.position());
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_customer_reviews_a_product_once_and_the_rating_follows(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let product = app.product(&admin, "15.00", 3).await;
    let reviews = format!("/api/v1/products/{product}/reviews");
    let mut last = String::new();
    for (i, rating) in [4, 5, 5].into_iter().enumerate() {
        let customer = app.customer().await;
        let before = app.event_count().await;
        for bad in [json!(6), json!(0), json!(4.5), json!("5"), json!(-1)] {
            app.post(
                &reviews,
                Some(&customer.token),
                json!({"rating": bad, "comment": "x"}),
            )
            .await
            .expect(400);
        }
        assert_eq!(app.event_count().await, before);
        let review = app
            .post(
                &reviews,
                Some(&customer.token),
                json!({"rating": rating, "comment": format!("review {i}")}),
            )
            .await
            .expect(201);
        assert_eq!(review.data()["rating"], rating);
        assert_eq!(review.data()["user_id"], customer.user_id.to_string());
        assert_eq!(review.data()["verified_purchase"], false);
        let twice = app
            .post(
                &reviews,
                Some(&customer.token),
                json!({"rating": 1, "comment": "changed my mind"}),
            )
            .await
            .expect(409);
        assert_eq!(twice.body["code"], "already_reviewed");
        last = review.position();
    }

    let page = app
        .get_after(&format!("/api/v1/products/{product}"), None, &last)
        .await
        .expect(200);
    assert_eq!(page.data()["rating"]["count"], 3);
    assert_eq!(
        page.data()["rating"]["average"].to_string(),
        "4.67",
        "14 stars over 3 reviews, two decimals"
    );
    let listed = app
        .get_after(&format!("{reviews}?page_size=2"), None, &last)
        .await
        .expect(200);
    assert_eq!(listed.body["pagination"]["total"], 3);
    assert_eq!(listed.data()[0]["comment"], "review 2", "newest first");

    app.post(&reviews, None, json!({"rating": 3}))
        .await
        .expect(401);
    let customer = app.customer().await;
    app.post(
        &format!("/api/v1/products/{}/reviews", Uuid::new_v4()),
        Some(&customer.token),
        json!({"rating": 3}),
    )
    .await
    .expect(404);
    app.get(
        &format!("/api/v1/products/{}/reviews", Uuid::new_v4()),
        None,
    )
    .await
    .expect(404);
    app.stop().await;
}
