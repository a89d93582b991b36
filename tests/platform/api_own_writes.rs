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
pub(crate) struct OtherApi {
    pub(crate) base: String,
    _child: Child,
}

impl OtherApi {
    pub(crate) async fn start(app: &TestApp) -> Self {
        Self::start_with(app, "100000", "100000", &[]).await
    }

    /// `commerce api` with rate limit `rate` per second, bursts of `burst`, and `extra` flags.
    pub(crate) async fn start_with(app: &TestApp, rate: &str, burst: &str, extra: &[&str]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut child = Command::new(env!("CARGO_BIN_EXE_commerce"))
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
                rate,
                "--rate-burst",
                burst,
            ])
            .args(extra)
            .arg("api")
            .env("JWT_SECRET", support::JWT_SECRET)
            .env("DATA_KEY", support::DATA_KEY)
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
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the second API exited while starting: {status}");
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
    send(app, reqwest::Method::POST, base, path, Some(session), body).await
}

/// Any write on `base`, signed in as `session` when given: status and body.
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    base: &str,
    path: &str,
    session: Option<&Session>,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let mut request = app
        .client
        .request(method, format!("{base}{path}"))
        .json(&body);
    if let Some(session) = session {
        request = request.bearer_auth(&session.token);
    }
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Two API instances on one database, an admin, a customer and a product with plenty of stock.
struct Pair {
    app: TestApp,
    other: OtherApi,
    admin: Session,
    customer: Session,
    product: uuid::Uuid,
    instances: [String; 2],
}

impl Pair {
    async fn start(c: &PgConnectOptions) -> Self {
        let app = TestApp::spawn(c).await;
        let other = OtherApi::start(&app).await;
        let admin = app.admin().await;
        let customer = app.customer().await;
        let product = app.product(&admin, "2.50", 1_000).await;
        let instances = [app.base.clone(), other.base.clone()];
        Self {
            app,
            other,
            admin,
            customer,
            product,
            instances,
        }
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_write_through_one_instance_reads_back_at_once_through_the_other(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let Pair {
        app,
        other,
        customer,
        product,
        instances,
        ..
    } = Pair::start(&c).await;

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

/// Whether `list` (a `data` array) holds an item whose `id` is `id`.
fn lists(list: &serde_json::Value, id: &serde_json::Value) -> bool {
    list["data"]
        .as_array()
        .is_some_and(|items| items.iter().any(|item| item["id"] == *id))
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_read_model_shows_the_callers_own_writes_through_the_other_instance(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let Pair {
        instances,
        product,
        customer,
        admin,
        other,
        app,
    } = Pair::start(&c).await;
    let address = json!({"line1": "1 Main St", "city": "Springfield",
                         "postal_code": "12345", "country": "US"});
    use reqwest::Method;

    for i in 0..10_usize {
        let (writer, reader) = (&instances[i % 2], &instances[(i + 1) % 2]);

        // Profile.
        let name = format!("Renamed {i}");
        let (status, _) = send(
            &app,
            Method::PUT,
            writer,
            "/api/v1/users/me",
            Some(&customer),
            json!({"name": name}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, me) = read(&app, reader, "/api/v1/users/me", &customer).await;
        assert_eq!(
            (status, &me["data"]["name"]),
            (200, &json!(name)),
            "profile #{i}: {me}"
        );

        // Payment methods.
        let (status, method) = write(
            &app,
            writer,
            "/api/v1/payment-methods",
            &customer,
            json!({"method_type": "card", "gateway_method_id": format!("pm_card_{i}"),
                   "is_default": false}),
        )
        .await;
        assert_eq!(status, 201, "{method}");
        let (status, methods) = read(&app, reader, "/api/v1/payment-methods", &customer).await;
        assert_eq!(status, 200);
        assert!(
            lists(&methods, &method["data"]["id"]),
            "payment method #{i}: {methods}"
        );

        // Payments: an order, then its payment, read back one by one and in the list.
        let (status, order) = write(
            &app,
            writer,
            "/api/v1/orders",
            &customer,
            json!({"shipping_address": address, "payment_method": "card",
                   "items": [{"product_id": product, "quantity": 1}]}),
        )
        .await;
        assert_eq!(status, 201, "{order}");
        let (status, paid) = write(
            &app,
            writer,
            "/api/v1/payments",
            &customer,
            json!({"order_id": order["data"]["id"], "amount": order["data"]["total_amount"],
                   "method": "card"}),
        )
        .await;
        assert_eq!(status, 201, "{paid}");
        let id = paid["data"]["id"].as_str().expect("payment id");
        let (status, payment) =
            read(&app, reader, &format!("/api/v1/payments/{id}"), &customer).await;
        assert_eq!(
            (status, &payment["data"]["status"]),
            (200, &json!("COMPLETED")),
            "payment #{i}: {payment}"
        );
        let (status, payments) =
            read(&app, reader, "/api/v1/payments?page_size=100", &customer).await;
        assert_eq!(status, 200);
        assert!(
            lists(&payments, &paid["data"]["id"]),
            "payments #{i}: {payments}"
        );

        // Reviews: one per product, so each round reviews a product of its own.
        let reviewed = app.product(&admin, "1.00", 1).await;
        let path = format!("/api/v1/products/{reviewed}/reviews");
        let (status, review) = write(
            &app,
            writer,
            &path,
            &customer,
            json!({"rating": 5, "comment": format!("Review {i}")}),
        )
        .await;
        assert_eq!(status, 201, "{review}");
        let (status, reviews) = read(&app, reader, &path, &customer).await;
        assert_eq!(status, 200);
        assert!(
            lists(&reviews, &review["data"]["id"]),
            "review #{i}: {reviews}"
        );

        // Notifications: a new customer's welcome is there as soon as they have signed in.
        let email = format!("new-{i}-{}@example.com", uuid::Uuid::new_v4().simple());
        let (status, _) = send(
            &app,
            Method::POST,
            writer,
            "/api/v1/auth/register",
            None,
            json!({"email": email, "password": support::PASSWORD, "name": "New"}),
        )
        .await;
        assert_eq!(status, 201);
        let (status, signed_in) = send(
            &app,
            Method::POST,
            writer,
            "/api/v1/auth/login",
            None,
            json!({"email": email, "password": support::PASSWORD}),
        )
        .await;
        assert_eq!(status, 200);
        let newcomer = Session {
            user_id: uuid::Uuid::nil(),
            email,
            token: signed_in["data"]["access_token"]
                .as_str()
                .expect("token")
                .to_owned(),
        };
        let (status, notes) = read(&app, reader, "/api/v1/notifications", &newcomer).await;
        assert_eq!(status, 200);
        assert_eq!(
            notes["data"][0]["type"], "WELCOME",
            "notifications #{i}: {notes}"
        );

        // An admin's product, category and stock changes.
        let price = format!("{}.25", 3 + i);
        let (status, _) = send(
            &app,
            Method::PUT,
            writer,
            &format!("/api/v1/products/{product}"),
            Some(&admin),
            serde_json::from_str(&format!(r#"{{"price": {price}}}"#)).expect("json"),
        )
        .await;
        assert_eq!(status, 200);
        let (status, detail) =
            read(&app, reader, &format!("/api/v1/products/{product}"), &admin).await;
        assert_eq!(status, 200);
        assert_eq!(
            detail["data"]["price"].to_string(),
            price,
            "product #{i}: {detail}"
        );
        let (status, category) = write(
            &app,
            writer,
            "/api/v1/categories",
            &admin,
            json!({"name": format!("Fresh {i} {}", uuid::Uuid::new_v4().simple())}),
        )
        .await;
        assert_eq!(status, 201);
        let id = category["data"]["id"].as_str().expect("category id");
        let (status, _) = read(&app, reader, &format!("/api/v1/categories/{id}"), &admin).await;
        assert_eq!(status, 200, "category #{i}");
        let stock = format!("/api/v1/inventory/{product}");
        let (status, before) = read(&app, reader, &stock, &admin).await;
        assert_eq!(status, 200);
        let (status, _) = send(
            &app,
            Method::PUT,
            writer,
            &stock,
            Some(&admin),
            json!({"quantity": 5, "operation": "add"}),
        )
        .await;
        assert_eq!(status, 200);
        let (status, after) = read(&app, reader, &stock, &admin).await;
        assert_eq!(status, 200);
        assert_eq!(
            after["data"]["available"].as_i64(),
            before["data"]["available"].as_i64().map(|n| n + 5),
            "stock #{i}: {after}"
        );
    }

    // Each route waits for its own read model: with that model wound back to before the
    // caller's writes, the read is a 503 with Retry-After, not a stale 200.
    let probes = [
        ("users", "/api/v1/users/me".to_owned(), &customer),
        ("payments", "/api/v1/payment-methods".to_owned(), &customer),
        ("payments", "/api/v1/payments".to_owned(), &customer),
        (
            "reviews",
            format!("/api/v1/products/{product}/reviews"),
            &customer,
        ),
        (
            "notifications",
            "/api/v1/notifications".to_owned(),
            &customer,
        ),
        ("catalog", format!("/api/v1/products/{product}"), &admin),
        ("categories", "/api/v1/categories".to_owned(), &admin),
        ("inventory", format!("/api/v1/inventory/{product}"), &admin),
    ];
    for (model, _, _) in &probes {
        sqlx::query(
            "UPDATE consumer_checkpoints SET transaction_id = 0, global_position = 0 WHERE name = $1",
        )
        .bind(model)
        .execute(&app.pool)
        .await
        .expect("rewind");
    }
    let answers = futures::future::join_all(probes.iter().map(|(model, path, session)| {
        let request = app
            .client
            .get(format!("{}{path}", other.base))
            .bearer_auth(&session.token);
        async move {
            let response = request.send().await.expect("answer");
            (
                *model,
                path.clone(),
                response.status().as_u16(),
                response.headers().contains_key("retry-after"),
            )
        }
    }))
    .await;
    for (model, path, status, retry_after) in answers {
        assert_eq!(
            (status, retry_after),
            (503, true),
            "GET {path} with {model} wound back"
        );
    }
    drop(other);
    app.stop().await;
}
