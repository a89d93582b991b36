//! `TestApp`: `commerce serve` started in-process on port 0 with its own database (from
//! `#[sqlx::test]`) and its own broker namespace, plus a small typed HTTP client.
#![allow(dead_code, unreachable_pub, missing_debug_implementations)]

use std::time::Duration;

use clap::Parser;
use commerce::app::{self, Parts, RunningApp};
use commerce::cli::Cli;
use commerce::config::{Environment, Settings};
use commerce_api::auth::password;
use commerce_commands::credentials::SetPassword;
use commerce_commands::Dispatcher;
use commerce_domain::ids::normalize_email;
use commerce_domain::user::{Role, User, UserCommand};
use commerce_event_store::{EventMetadata, EventStore, LogReader};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use uuid::Uuid;

/// The token signing key of every test server.
pub const JWT_SECRET: &str = "test-secret-0123456789-abcdefghijklmnop";
/// The master key of personal data every test process uses (32 bytes, base64).
pub const DATA_KEY: &str = "dGVzdC1kYXRhLWtleS0wMTIzNDU2Nzg5YWJjZGVmZ2g=";

/// The password every test user gets.
pub const PASSWORD: &str = "s3cret-password";

/// A running platform.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    pub settings: Settings,
    /// `http://<METRICS_ADDR>` when `--metrics-addr` was given.
    pub metrics_base: Option<String>,
    running: Option<RunningApp>,
}

/// An answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Resp {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// `body["data"]`.
    pub fn data(&self) -> &Value {
        &self.body["data"]
    }

    /// `body["data"]["id"]` as a UUID.
    pub fn id(&self) -> Uuid {
        self.data()["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("no id in {self:?}"))
    }

    /// The `X-Event-Position` token.
    pub fn position(&self) -> String {
        self.header("x-event-position")
            .unwrap_or_else(|| panic!("no X-Event-Position on {self:?}"))
    }

    /// Panics with the body unless the status is `status`.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected answer: {}", self.body);
        self
    }
}

/// A signed-in user.
#[derive(Debug, Clone)]
pub struct Session {
    pub user_id: Uuid,
    pub email: String,
    pub token: String,
}

/// Extra environment-like options for a test's server.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--flag value` pairs added to the command line.
    pub args: Vec<(String, String)>,
}

impl TestApp {
    /// `serve` on the test's database with default options.
    pub async fn spawn(connect: &PgConnectOptions) -> Self {
        Self::spawn_with(connect, Options::default()).await
    }

    /// `serve` with extra options (e.g. `--rate-limit 5`).
    pub async fn spawn_with(connect: &PgConnectOptions, options: Options) -> Self {
        Self::spawn_parts(connect, options, Parts::ALL).await
    }

    /// Only `parts` of `serve` (e.g. one projection only, so the others' read models stand
    /// still while the API writes).
    pub async fn spawn_parts(connect: &PgConnectOptions, options: Options, parts: Parts) -> Self {
        let database = connect.get_database().expect("sqlx::test names a database");
        let mut flags: Vec<(String, String)> = [
            (
                "--database-url",
                format!("postgres://postgres@127.0.0.1:5432/{database}"),
            ),
            ("--namespace", format!("test-{}", Uuid::new_v4().simple())),
            ("--listen-addr", "127.0.0.1:0".to_owned()),
            ("--queue-type", "classic".to_owned()),
            ("--env", "dev".to_owned()),
            ("--jwt-secret", JWT_SECRET.to_owned()),
            ("--data-key", DATA_KEY.to_owned()),
            ("--password-memory-kib", "1024".to_owned()),
            ("--rate-limit", "100000".to_owned()),
            ("--rate-burst", "100000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (flag, value) in options.args {
            match flags.iter_mut().find(|(k, _)| *k == flag) {
                Some(existing) => existing.1 = value,
                None => flags.push((flag, value)),
            }
        }
        let mut argv: Vec<String> = vec!["commerce".into()];
        for (flag, value) in flags {
            argv.push(flag);
            argv.push(value);
        }
        argv.push("serve".into());
        let cli = Cli::parse_from(argv);
        let settings = Settings::from_args(&cli.global, Environment::Dev).expect("settings");
        let running = app::start(&settings, parts).await.expect("serve starts");
        let addr = running.api_addr.expect("the API runs");
        Self {
            base: format!("http://{addr}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            pool: running.pool.clone(),
            metrics_base: running.metrics_addr.map(|a| format!("http://{a}")),
            settings,
            running: Some(running),
        }
    }

    /// Stops the platform and deletes its exchange.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await;
        }
        if let Ok(conn) = self.settings.broker.connect("test-cleanup").await {
            if let Ok(ch) = conn.create_channel().await {
                let _ = ch
                    .exchange_delete(self.settings.broker.exchange().into(), Default::default())
                    .await;
            }
        }
    }

    /// Any request; `body` is sent as JSON.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = format!("{}{path}", self.base);
        let mut req = self.client.request(method, url);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::GET, path, token, None, &[]).await
    }

    /// A GET that waits for the read model to reflect `position` (`X-Min-Position`).
    pub async fn get_after(&self, path: &str, token: Option<&str>, position: &str) -> Resp {
        self.request(
            Method::GET,
            path,
            token,
            None,
            &[("x-min-position", position)],
        )
        .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::POST, path, token, Some(body), &[])
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.request(Method::PUT, path, token, Some(body), &[])
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> Resp {
        self.request(Method::DELETE, path, token, None, &[]).await
    }

    /// A user with `role` created directly through the command side, signed in with a token
    /// minted with the server's key (so tests of other routes do not depend on `/auth/login`).
    pub async fn user_with_role(&self, role: Role) -> Session {
        let email = format!("{:?}-{}@example.com", role, Uuid::new_v4().simple()).to_lowercase();
        // As the platform registers users: a keyed id, personal fields sealed.
        let privacy = self
            .settings
            .keyring(&self.pool)
            .await
            .expect("the keyring opens");
        let user_id = privacy.user_id_for_email(&normalize_email(&email));
        let hash = password::hash(PASSWORD.to_owned(), 1024)
            .await
            .expect("hash");
        let dispatcher = Dispatcher::new(EventStore::new(self.pool.clone()).with_privacy(privacy));
        dispatcher
            .execute_with::<User>(
                &user_id.to_string(),
                UserCommand::RegisterUser {
                    user_id,
                    email: email.clone(),
                    name: format!("Test {role:?}"),
                    phone: None,
                    roles: vec![role],
                    at: chrono::Utc::now(),
                },
                &EventMetadata::new("test", Uuid::new_v4().to_string()),
                &SetPassword::new(user_id, hash),
            )
            .await
            .expect("user registered");
        let secret = self.settings.jwt_secret().expect("secret");
        let keys = commerce_api::auth::token::TokenKeys::new(secret.as_bytes());
        let (token, _) = keys
            .issue(
                user_id,
                &[role],
                chrono::Utc::now(),
                Duration::from_secs(600),
            )
            .expect("token");
        Session {
            user_id,
            email,
            token,
        }
    }

    pub async fn customer(&self) -> Session {
        self.user_with_role(Role::Customer).await
    }

    pub async fn admin(&self) -> Session {
        self.user_with_role(Role::Admin).await
    }

    pub async fn auditor(&self) -> Session {
        self.user_with_role(Role::Auditor).await
    }

    /// How many events the log holds (to show bad input appended nothing).
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    /// Waits until the platform is quiet: every projection and process manager has applied the
    /// whole log, and the log stopped growing (the saga's reactions are in it and applied too).
    pub async fn settle(&self) {
        let log = LogReader::new(self.pool.clone());
        let mut names: Vec<&str> = commerce_projections::registry::NAMES.to_vec();
        names.push(commerce_commands::process::order_fulfilment::OrderFulfilmentProcess::NAME);
        names.push(commerce_notifications::NotificationsProcess::NAME);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            log.settle(Duration::from_secs(10)).await.expect("settle");
            let head = log.head().await.expect("head");
            let reached = commerce_projections::wait::wait_for(
                &self.pool,
                &names,
                head,
                Duration::from_secs(20),
            )
            .await
            .expect("wait");
            assert!(reached, "consumers did not reach the head");
            log.settle(Duration::from_secs(10)).await.expect("settle");
            if log.head().await.expect("head") == head {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the log never stopped growing"
            );
        }
    }

    /// One unit of `product` ordered by `customer` through HTTP (`201`): the answer.
    pub async fn place_order(&self, customer: &Session, product: Uuid) -> Resp {
        self.post(
            "/api/v1/orders",
            Some(&customer.token),
            json!({"shipping_address": "1 Main St, Springfield", "payment_method": "card",
                   "items": [{"product_id": product, "quantity": 1}]}),
        )
        .await
        .expect(201)
    }

    /// One unit of `product` ordered by the holder of `token`, shipped to `shipping_address`, and
    /// paid by card: the order as placed.
    pub async fn order_and_pay(
        &self,
        token: &str,
        product: Uuid,
        shipping_address: Value,
    ) -> Value {
        let order = self
            .post(
                "/api/v1/orders",
                Some(token),
                json!({"shipping_address": shipping_address, "payment_method": "card",
                       "items": [{"product_id": product, "quantity": 1}]}),
            )
            .await
            .expect(201)
            .data()
            .clone();
        self.post(
            "/api/v1/payments",
            Some(token),
            json!({"order_id": order["id"], "amount": order["total_amount"], "method": "card"}),
        )
        .await
        .expect(201);
        order
    }

    /// A category and an active product with `stock` units, created by `admin`; returns the
    /// product id.
    pub async fn product(&self, admin: &Session, price: &str, stock: u32) -> Uuid {
        let category = self
            .post(
                "/api/v1/categories",
                Some(&admin.token),
                json!({"name": format!("Category {}", Uuid::new_v4().simple())}),
            )
            .await
            .expect(201);
        let category_id = category.data()["id"].as_str().expect("id").to_owned();
        let body: Value = serde_json::from_str(&format!(
            r#"{{"name": "Product {}", "description": "A fine thing", "price": {price},
                "category_id": "{category_id}", "initial_stock": {stock}}}"#,
            Uuid::new_v4().simple()
        ))
        .expect("json");
        let product = self
            .post("/api/v1/products", Some(&admin.token), body)
            .await
            .expect(201);
        let id = product.data()["id"].as_str().expect("product id");
        // The write answers at once; a customer's first look at it waits for the catalog, the
        // way the API's own clients do (X-Min-Position).
        self.get_after(&format!("/api/v1/products/{id}"), None, &product.position())
            .await
            .expect(200);
        id.parse().expect("product id")
    }
}
