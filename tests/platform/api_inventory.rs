//! Inventory over HTTP: stock levels, admin adjustments, availability checks and the movement
//! history.

use crate::support::TestApp;
use commerce_event_store::db::MIGRATOR;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

async fn levels_rows(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM inventory.levels")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_admin_adds_subtracts_sets_and_shifts_stock_but_never_below_zero(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let product = app.product(&admin, "4.00", 10).await;
    let path = format!("/api/v1/inventory/{product}");
    for (body, available) in [
        (json!({"quantity": 5, "operation": "add"}), 15),
        (
            json!({"quantity": 3, "operation": "subtract", "reason": "damaged"}),
            12,
        ),
        (json!({"quantity": 20, "operation": "set"}), 20),
        (json!({"quantity": -4}), 16),
        (json!({"quantity": 2, "reason": "found in the back"}), 18),
    ] {
        let adjusted = app
            .put(&path, Some(&admin.token), body.clone())
            .await
            .expect(200);
        assert_eq!(adjusted.data()["available"], available, "{body}");
        assert_eq!(adjusted.data()["total"], available);
        let stock = app
            .get_after(&path, None, &adjusted.position())
            .await
            .expect(200);
        assert_eq!(
            stock.data(),
            &json!({"product_id": product, "available": available, "reserved": 0,
                    "total": available, "warehouse_id": "default"})
        );
    }

    let before = app.event_count().await;
    for body in [
        json!({"quantity": 19, "operation": "subtract"}),
        json!({"quantity": -19}),
    ] {
        let refused = app.put(&path, Some(&admin.token), body).await.expect(409);
        assert_eq!(refused.body["code"], "conflict");
    }
    assert_eq!(app.event_count().await, before);
    let stock = app.get(&path, None).await.expect(200);
    assert_eq!(stock.data()["available"], 18);

    let product_page = app
        .get(&format!("/api/v1/products/{product}"), None)
        .await
        .expect(200);
    assert_eq!(product_page.data()["stock"]["available"], 18);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_adjustments_are_refused_and_append_nothing(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "4.00", 5).await;
    app.settle().await;
    let path = format!("/api/v1/inventory/{product}");
    let before = app.event_count().await;
    for body in [
        json!({"quantity": 1.5, "operation": "add"}),
        json!({"quantity": 2, "operation": "multiply"}),
        json!({"quantity": 0, "operation": "add"}),
        json!({"quantity": -2, "operation": "subtract"}),
        json!({"quantity": -1, "operation": "set"}),
        json!({"quantity": 5_000_000_000_i64, "operation": "add"}),
        json!({"quantity": 0}),
        json!({"quantity": "3"}),
        json!({"operation": "add"}),
        json!({"quantity": 1, "reason": "x".repeat(501)}),
        json!({"quantity": 1, "reason": "a\u{0}b"}),
        json!({"quantity": 1, "warehouse": "north"}),
    ] {
        app.put(&path, Some(&admin.token), body.clone())
            .await
            .expect(400);
    }
    let add = json!({"quantity": 1, "operation": "add"});
    app.put(
        &format!("/api/v1/inventory/{}", Uuid::new_v4()),
        Some(&admin.token),
        add.clone(),
    )
    .await
    .expect(404);
    app.put(
        "/api/v1/inventory/not-a-uuid",
        Some(&admin.token),
        add.clone(),
    )
    .await
    .expect(400);
    app.put(&path, Some(&customer.token), add.clone())
        .await
        .expect(403);
    app.put(&path, None, add).await.expect(401);
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_availability_check_names_what_cannot_be_ordered(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let plenty = app.product(&admin, "1.00", 5).await;
    let scarce = app.product(&admin, "2.00", 1).await;
    let unknown = Uuid::new_v4();
    app.settle().await;
    let check = |items: Value| {
        let app = &app;
        async move {
            app.post(
                "/api/v1/inventory/check-availability",
                None,
                json!({ "items": items }),
            )
            .await
        }
    };

    let fine = check(
        json!([{"product_id": plenty, "quantity": 5}, {"product_id": scarce, "quantity": 1}]),
    )
    .await
    .expect(200);
    assert_eq!(
        fine.data(),
        &json!({"available": true, "unavailable_items": []})
    );

    let short = check(json!([
        {"product_id": plenty, "quantity": 3},
        {"product_id": scarce, "quantity": 2},
        {"product_id": unknown, "quantity": 1},
        {"product_id": plenty, "quantity": 3},
    ]))
    .await
    .expect(200);
    assert_eq!(
        short.data(),
        &json!({"available": false, "unavailable_items": [
            {"product_id": plenty, "requested": 6, "available": 5},
            {"product_id": scarce, "requested": 2, "available": 1},
            {"product_id": unknown, "requested": 1, "available": 0},
        ]})
    );

    let before = app.event_count().await;
    let too_many: Vec<Value> = (0..101)
        .map(|_| json!({"product_id": plenty, "quantity": 1}))
        .collect();
    for items in [
        json!([]),
        json!(too_many),
        json!([{"product_id": plenty, "quantity": 0}]),
        json!([{"product_id": plenty, "quantity": -1}]),
        json!([{"product_id": plenty, "quantity": 1.5}]),
        json!([{"product_id": "nope", "quantity": 1}]),
        json!([{"product_id": plenty}]),
    ] {
        check(items).await.expect(400);
    }
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn stock_history_is_for_admins_and_auditors(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let auditor = app.auditor().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "4.00", 10).await;
    let taken = app
        .put(
            &format!("/api/v1/inventory/{product}"),
            Some(&admin.token),
            json!({"quantity": 3, "operation": "subtract", "reason": "damaged"}),
        )
        .await
        .expect(200);
    let path = format!("/api/v1/inventory/{product}/history");

    for token in [&admin.token, &auditor.token] {
        let history = app
            .get_after(&path, Some(token), &taken.position())
            .await
            .expect(200);
        assert_eq!(history.body["pagination"]["total"], 2);
        let moves = history.data().as_array().unwrap();
        assert_eq!(moves[0]["movement_type"], "INBOUND");
        assert_eq!(moves[0]["quantity"], 10);
        assert_eq!(moves[0]["before"], 0);
        assert_eq!(moves[0]["after"], 10);
        assert_eq!(moves[0]["reason"], "initial stock");
        assert_eq!(moves[1]["movement_type"], "OUTBOUND");
        assert_eq!(moves[1]["quantity"], 3);
        assert_eq!(moves[1]["before"], 10);
        assert_eq!(moves[1]["after"], 7);
        assert_eq!(moves[1]["reason"], "damaged");
        assert_eq!(moves[1]["reference_type"], "ADJUSTMENT");
        assert_eq!(moves[1]["reference_id"], Value::Null);
        assert!(moves[1]["id"].as_str().unwrap().parse::<Uuid>().is_ok());
        assert!(moves[1]["created_at"].as_str().unwrap().ends_with('Z'));
    }
    let second = app
        .get(&format!("{path}?page=2&page_size=1"), Some(&auditor.token))
        .await
        .expect(200);
    assert_eq!(second.data()[0]["movement_type"], "OUTBOUND");
    assert_eq!(second.body["pagination"]["total_pages"], 2);

    app.get(&path, Some(&customer.token)).await.expect(403);
    app.get(&path, None).await.expect(401);
    app.get(
        &format!("/api/v1/inventory/{}/history", Uuid::new_v4()),
        Some(&admin.token),
    )
    .await
    .expect(404);
    app.get(&format!("{path}?page_size=0"), Some(&admin.token))
        .await
        .expect(400);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn reading_unknown_stock_is_a_404_that_creates_nothing(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let unstocked = app.product(&admin, "4.00", 0).await;
    app.settle().await;
    let events = app.event_count().await;
    let rows = levels_rows(&app).await;

    let unknown = Uuid::new_v4();
    let missing = app
        .get(&format!("/api/v1/inventory/{unknown}"), None)
        .await
        .expect(404);
    assert_eq!(missing.body["code"], "not_found");
    app.get("/api/v1/inventory/not-a-uuid", None)
        .await
        .expect(400);
    let zero = app
        .get(&format!("/api/v1/inventory/{unstocked}"), None)
        .await
        .expect(200);
    assert_eq!(
        zero.data(),
        &json!({"product_id": unstocked, "available": 0, "reserved": 0, "total": 0,
                "warehouse_id": "default"})
    );

    app.settle().await;
    assert_eq!(app.event_count().await, events);
    assert_eq!(levels_rows(&app).await, rows);
    app.stop().await;
}
