//! Saved payment methods over HTTP: one default per user, removal by the owner only, invalid
//! input refused before anything is written.

use crate::support::{Resp, Session, TestApp};
use commerce_event_store::db::MIGRATOR;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

async fn add(app: &TestApp, who: &Session, gateway_id: &str, is_default: bool) -> Resp {
    app.post(
        "/api/v1/payment-methods",
        Some(&who.token),
        json!({"method_type": "card", "gateway_method_id": gateway_id, "is_default": is_default}),
    )
    .await
}

/// The caller's methods as (gateway id, is default), in the listed order.
async fn methods(app: &TestApp, who: &Session) -> Vec<(String, bool)> {
    let list = app
        .get("/api/v1/payment-methods", Some(&who.token))
        .await
        .expect(200);
    list.body["data"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| {
            (
                m["gateway_method_id"].as_str().expect("a token").to_owned(),
                m["is_default"].as_bool().expect("a flag"),
            )
        })
        .collect()
}

fn id_of(resp: &Resp) -> String {
    resp.data()["id"].as_str().expect("an id").to_owned()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_first_method_is_the_default_and_a_new_default_moves_the_flag(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    assert!(methods(&app, &customer).await.is_empty());

    let visa = add(&app, &customer, "pm_visa", false).await.expect(201);
    assert_eq!(visa.data()["is_default"], true, "the first is the default");
    assert_eq!(visa.data()["method_type"], "card");
    assert_eq!(visa.data()["user_id"], json!(customer.user_id));
    assert!(visa.header("x-event-position").is_some());
    let amex = add(&app, &customer, "pm_amex", false).await.expect(201);
    assert_eq!(amex.data()["is_default"], false);
    let master = add(&app, &customer, "pm_master", true).await.expect(201);
    assert_eq!(master.data()["is_default"], true);

    assert_eq!(
        methods(&app, &customer).await,
        [
            ("pm_master".to_owned(), true),
            ("pm_amex".to_owned(), false),
            ("pm_visa".to_owned(), false)
        ],
        "one default, listed first"
    );

    let removed = app
        .delete(
            &format!("/api/v1/payment-methods/{}", id_of(&master)),
            Some(&customer.token),
        )
        .await
        .expect(204);
    assert!(removed.header("x-event-position").is_some());
    assert_eq!(
        methods(&app, &customer).await,
        [("pm_visa".to_owned(), true), ("pm_amex".to_owned(), false)],
        "the oldest remaining method becomes the default"
    );
    app.delete(
        &format!("/api/v1/payment-methods/{}", id_of(&master)),
        Some(&customer.token),
    )
    .await
    .expect(404);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn only_the_owner_sees_and_removes_a_method(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let (owner, other) = (app.customer().await, app.customer().await);
    let saved = add(&app, &owner, "pm_visa", false).await.expect(201);
    let path = format!("/api/v1/payment-methods/{}", id_of(&saved));

    assert!(methods(&app, &other).await.is_empty());
    app.delete(&path, Some(&other.token)).await.expect(404);
    app.delete(&path, None).await.expect(401);
    app.get("/api/v1/payment-methods", None).await.expect(401);
    app.delete(
        &format!("/api/v1/payment-methods/{}", Uuid::new_v4()),
        Some(&owner.token),
    )
    .await
    .expect(404);
    app.delete("/api/v1/payment-methods/not-a-uuid", Some(&owner.token))
        .await
        .expect(400);
    assert_eq!(methods(&app, &owner).await, [("pm_visa".to_owned(), true)]);

    app.delete(&path, Some(&owner.token)).await.expect(204);
    assert!(methods(&app, &owner).await.is_empty());
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn invalid_methods_are_refused_without_writing(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let before = app.event_count().await;
    let bad: [Value; 5] = [
        json!({"method_type": "", "gateway_method_id": "pm_visa"}),
        json!({"method_type": "c".repeat(31), "gateway_method_id": "pm_visa"}),
        json!({"method_type": "card", "gateway_method_id": " "}),
        json!({"method_type": "card", "gateway_method_id": "pm_visa", "cvv": "123"}),
        json!({"method_type": "card", "gateway_method_id": "pm_visa", "is_default": "yes"}),
    ];
    for body in bad {
        let answer = app
            .post(
                "/api/v1/payment-methods",
                Some(&customer.token),
                body.clone(),
            )
            .await;
        assert_eq!(answer.status, 400, "{body} gave {}", answer.body);
    }
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}
