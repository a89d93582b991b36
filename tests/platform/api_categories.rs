//! Categories over HTTP: public reads, admin writes, unique names, in-use deletion refused.

use crate::support::TestApp;
use commerce_event_store::db::MIGRATOR;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_admin_creates_renames_and_deletes_a_category(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let created = app
        .post(
            "/api/v1/categories",
            Some(&admin.token),
            json!({"name": "Garden Tools"}),
        )
        .await
        .expect(201);
    let id = created.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(created.data()["slug"], "garden-tools");
    assert!(created.header("x-event-position").is_some());
    assert!(created.header("x-request-id").is_some());

    let dup = app
        .post(
            "/api/v1/categories",
            Some(&admin.token),
            json!({"name": " garden tools "}),
        )
        .await
        .expect(409);
    assert_eq!(dup.body["code"], "duplicate_name");

    let list = app.get("/api/v1/categories", None).await.expect(200);
    assert_eq!(list.body["pagination"]["total"], 1);

    app.put(
        &format!("/api/v1/categories/{id}"),
        Some(&admin.token),
        json!({"name": "Tools"}),
    )
    .await
    .expect(200);
    let deleted = app
        .delete(&format!("/api/v1/categories/{id}"), Some(&admin.token))
        .await
        .expect(204);
    // The delete answers at once; an anonymous reader sees it once the read model has it.
    app.get_after(
        &format!("/api/v1/categories/{id}"),
        None,
        &deleted.position(),
    )
    .await
    .expect(404);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn customers_and_strangers_cannot_write_categories(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let before = app.event_count().await;
    app.post("/api/v1/categories", None, json!({"name": "X"}))
        .await
        .expect(401);
    app.post(
        "/api/v1/categories",
        Some(&customer.token),
        json!({"name": "X"}),
    )
    .await
    .expect(403);
    app.post(
        "/api/v1/categories",
        Some("not-a-token"),
        json!({"name": "X"}),
    )
    .await
    .expect(401);
    let admin = app.admin().await;
    let before_admin = app.event_count().await;
    let bad = app
        .request(
            reqwest::Method::POST,
            "/api/v1/categories",
            Some(&admin.token),
            None,
            &[("content-type", "text/plain")],
        )
        .await
        .expect(415);
    assert_eq!(bad.body["code"], "unsupported_media_type");
    app.post("/api/v1/categories", Some(&admin.token), json!({"name": 5}))
        .await
        .expect(400);
    app.post(
        "/api/v1/categories",
        Some(&admin.token),
        json!({"name": ""}),
    )
    .await
    .expect(400);
    assert_eq!(app.event_count().await, before_admin);
    assert!(before_admin > before);
    app.stop().await;
}
