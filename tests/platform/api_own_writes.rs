//! Read-your-writes by default (guarantee 7): a signed-in client that knows nothing of
//! `X-Event-Position` reads its own writes at once, on any API instance. Two instances share the
//! database: the test's `serve` and a separate `commerce api` process.

use crate::support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Session, TestApp};
use commerce_event_store::db::MIGRATOR;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::{Child, Command};

/// A second API instance: the real binary, `commerce api`, on the test's database and namespace.
struct OtherApi {
    base: String,
    _child: Child,
}

impl OtherApi {
    async fn start(app: &TestApp) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let child = Command::new(env!("CARGO_BIN_EXE_commerce"))
            .args([
                "--database-url",
                &app.settings.database_url,
                "--namespace",
                &app.settings.broker.namespace,
                "--listen-addr",
                &format!("127.0.0.1:{port}"),
                "--queue-type",
                "classic",
                "--env",
                "dev",
                "--password-memory-kib",
                "1024",
                "--rate-limit",
                "100000",
                "--rate-burst",
                "100000",
                "api",
            ])
            .env("JWT_SECRET", support::JWT_SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("commerce api starts");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = app.client.get(format!("{base}/ready")).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(Instant::now() < deadline, "the second API never got ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            base,
            _child: child,
        }
    }
}

/// `GET path` on `base` as `session`, with no consistency header: status and body.
async fn read(
    app: &TestApp,
    base: &str,
    path: &str,
    session: &Session,
) -> (u16, serde_json::Value) {
    let response = app
        .client
        .get(format!("{base}{path}"))
        .bearer_auth(&session.token)
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// `POST path` on `base` as `session`: status and body.
async fn write(
    app: &TestApp,
    base: &str,
    path: &str,
    session: &Session,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let response = app
        .client
        .post(format!("{base}{path}"))
        .bearer_auth(&session.token)
        .json(&body)
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_write_through_one_instance_reads_back_at_once_through_the_other(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let other = OtherApi::start(&app).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "2.50", 1_000).await;
    let instances = [app.base.clone(), other.base.clone()];

    // The cart, 100 times in a row, alternating which instance writes and which reads.
    for i in 0..100_i64 {
        let (writer, reader) = (
            &instances[(i % 2) as usize],
            &instances[((i + 1) % 2) as usize],
        );
        let (status, _) = write(
            &app,
            writer,
            "/api/v1/cart",
            &customer,
            json!({"product_id": product, "quantity": 1}),
        )
        .await;
        assert_eq!(status, 200, "add #{i}");
        let (status, cart) = read(&app, reader, "/api/v1/cart", &customer).await;
        assert_eq!(status, 200);
        assert_eq!(
            cart["data"]["items"][0]["quantity"],
            json!(i + 1),
            "read #{i} through the other instance shows every add so far: {cart}"
        );
    }

    // An order placed through one instance is there at once through the other (no 404).
    for i in 0..10 {
        let (writer, reader) = (&instances[i % 2], &instances[(i + 1) % 2]);
        let (status, placed) = write(
            &app,
            writer,
            "/api/v1/orders",
            &customer,
            json!({"shipping_address": {"line1": "1 Main St", "city": "Springfield",
                                        "postal_code": "12345", "country": "US"},
                   "payment_method": "card",
                   "items": [{"product_id": product, "quantity": 1}]}),
        )
        .await;
        assert_eq!(status, 201, "{placed}");
        let id = placed["data"]["id"].as_str().expect("order id");
        let (status, order) = read(&app, reader, &format!("/api/v1/orders/{id}"), &customer).await;
        assert_eq!(status, 200, "order #{i}: {order}");
        assert_eq!(order["data"]["id"], placed["data"]["id"]);
    }
    drop(other);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_read_model_that_cannot_reach_your_write_answers_503_with_retry_after(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "2.50", 10).await;
    let (status, _) = write(
        &app,
        &app.base,
        "/api/v1/cart",
        &customer,
        json!({"product_id": product, "quantity": 2}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = read(&app, &app.base, "/api/v1/cart", &customer).await;
    assert_eq!(status, 200);

    // The carts read model stands (as far as the API can tell) before the customer's write:
    // the read waits its bound, then says so instead of answering stale.
    sqlx::query(
        "UPDATE consumer_checkpoints SET transaction_id = 0, global_position = 0 WHERE name = 'carts'",
    )
    .execute(&app.pool)
    .await
    .expect("rewind");
    let response = app
        .client
        .get(format!("{}/api/v1/cart", app.base))
        .bearer_auth(&customer.token)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 503);
    assert!(response.headers().contains_key("retry-after"));
    // A public read without a token does not wait for anyone's writes.
    let response = app
        .client
        .get(format!("{}/api/v1/products/{product}", app.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 200);
    app.stop().await;
}
