//! `POST /orders` with an `Idempotency-Key` never places a second order when its first run
//! appended the order but its answer was never stored: the API process was killed in between
//! (the claim is left unfinished, and taken over once stale), or the run failed after the append
//! (a 5xx drops the claim). The retry answers the order the first run placed (issue 7).

use crate::support::{Resp, Session, TestApp};
use commerce_event_store::db::MIGRATOR;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

fn order_body(items: Option<&[(Uuid, u32)]>) -> Value {
    let mut body = json!({
        "shipping_address":
            {"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"},
        "payment_method": "card",
    });
    if let Some(items) = items {
        body["items"] = items
            .iter()
            .map(|(p, q)| json!({"product_id": p, "quantity": q}))
            .collect();
    }
    body
}

async fn place(app: &TestApp, who: &Session, key: &str, body: &Value) -> Resp {
    app.request(
        Method::POST,
        "/api/v1/orders",
        Some(&who.token),
        Some(body.clone()),
        &[("idempotency-key", key)],
    )
    .await
}

/// A running platform, a signed-in customer and a product (20.00, 10 in stock).
async fn shop_with_a_customer(c: &PgConnectOptions) -> (TestApp, Session, Uuid) {
    let app = TestApp::spawn(c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let lamp = app.product(&admin, "20.00", 10).await;
    (app, customer, lamp)
}

async fn orders_placed(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'OrderPlaced'")
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

/// The claim as a process killed after appending the order, before storing its answer, left it
/// `age_secs` ago.
async fn forget_the_answer(app: &TestApp, key: &str, age_secs: f64) {
    let updated = sqlx::query(
        "UPDATE api.idempotency_keys SET response_status = NULL, response_headers = NULL, \
         response_body = NULL, completed_at = NULL, \
         created_at = now() - make_interval(secs => $2) WHERE idempotency_key = $1",
    )
    .bind(key)
    .bind(age_secs)
    .execute(&app.pool)
    .await
    .expect("claim rewound");
    assert_eq!(updated.rows_affected(), 1);
}

/// The retry answers exactly what the first run would have, marked as a replay, and the log
/// holds one order.
async fn assert_one_order_answered_again(app: &TestApp, first: &Resp, retry: Resp) {
    let retry = retry.expect(201);
    assert_eq!(retry.body, first.body, "the first answer, once more");
    assert_eq!(retry.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(orders_placed(app).await, 1);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_retry_after_the_process_died_before_answering_returns_the_order_it_placed(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let (app, customer, lamp) = shop_with_a_customer(&c).await;
    let key = Uuid::new_v4().to_string();
    let body = order_body(Some(&[(lamp, 2)]));
    let first = place(&app, &customer, &key, &body).await.expect(201);

    // Past STALE_AFTER, the claim is taken over and the request runs again.
    forget_the_answer(&app, &key, 120.0).await;
    let retry = place(&app, &customer, &key, &body).await;
    assert_one_order_answered_again(&app, &first, retry).await;

    // That answer is now the stored one.
    let again = place(&app, &customer, &key, &body).await;
    assert_one_order_answered_again(&app, &first, again).await;
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_cart_checkout_retried_after_a_crash_returns_its_order_not_an_empty_cart_error(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let (app, customer, lamp) = shop_with_a_customer(&c).await;
    app.post(
        "/api/v1/cart",
        Some(&customer.token),
        json!({"product_id": lamp, "quantity": 3}),
    )
    .await
    .expect(200);
    let key = Uuid::new_v4().to_string();
    let body = order_body(None);
    let first = place(&app, &customer, &key, &body).await.expect(201);

    forget_the_answer(&app, &key, 120.0).await;
    let retry = place(&app, &customer, &key, &body).await;
    assert_one_order_answered_again(&app, &first, retry).await;
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_retry_after_the_first_run_failed_past_its_append_places_no_second_order(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let (app, customer, lamp) = shop_with_a_customer(&c).await;
    let key = Uuid::new_v4().to_string();
    let body = order_body(Some(&[(lamp, 1)]));
    let first = place(&app, &customer, &key, &body).await.expect(201);

    // A 5xx after the append drops the claim, so the client may retry.
    sqlx::query("DELETE FROM api.idempotency_keys WHERE idempotency_key = $1")
        .bind(&key)
        .execute(&app.pool)
        .await
        .expect("claim dropped");
    let retry = place(&app, &customer, &key, &body).await;
    assert_one_order_answered_again(&app, &first, retry).await;
    app.stop().await;
}
