//! Guarantee 9, second half: personal data in the log is encrypted per person. Emails, names,
//! phones, shipping addresses and review text are ciphertext in `events` and on the broker, and
//! plain in every read a caller is entitled to (read models, order history and `as_of`, the
//! admin log, `commerce events tail`, rebuilt read models); `DATA_KEY` is required in `prod`,
//! never printed, generated and kept in dev, and a wrong one is refused before anything is read.

use std::time::Duration;

use crate::support::{self, Options, Resp, Session, TestApp, PASSWORD};
use clap::Parser;
use commerce::app::{self, Parts};
use commerce::cli::Cli;
use commerce::config::{Environment, Settings};
use commerce_event_store::db::MIGRATOR;
use commerce_projections::rebuild::Finish;
use commerce_projections::registry;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// What one customer told the platform about themselves, each piece easy to search for.
struct Person {
    email: String,
    name: String,
    renamed: String,
    phone: String,
    street: String,
    city: String,
    comment: String,
}

impl Person {
    fn new() -> Self {
        let tag = Uuid::new_v4().simple().to_string();
        let tag = &tag[..10];
        Self {
            email: format!("erin.{tag}@example.com"),
            name: format!("Erin Q{tag}"),
            renamed: format!("Erin R{tag}"),
            phone: format!("+44 7700 {}", &tag[..6]),
            street: format!("{tag} Lighthouse Lane"),
            city: format!("Port {tag}"),
            comment: format!("Arrived quickly, says {tag}"),
        }
    }

    /// Every piece, for searching.
    fn pieces(&self) -> [&str; 7] {
        [
            &self.email,
            &self.name,
            &self.renamed,
            &self.phone,
            &self.street,
            &self.city,
            &self.comment,
        ]
    }
}

/// The journey of `person` through HTTP: registration, sign-in, a profile change, an order
/// (shipped to a structured address), its payment and a review. Returns the session, the order
/// id and the product.
async fn journey(app: &TestApp, admin: &Session, person: &Person) -> (Session, String, Uuid) {
    let product = app.product(admin, "12.00", 5).await;
    let registered = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": person.email, "password": PASSWORD, "name": person.name,
                   "phone": person.phone}),
        )
        .await
        .expect(201);
    let user_id = registered.id();
    let token = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": person.email, "password": PASSWORD}),
        )
        .await
        .expect(200)
        .data()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let session = Session {
        user_id,
        email: person.email.clone(),
        token,
    };
    app.put(
        "/api/v1/users/me",
        Some(&session.token),
        json!({"name": person.renamed}),
    )
    .await
    .expect(200);
    let address = json!({"line1": person.street, "city": person.city,
                         "postal_code": "PO1 1AA", "country": "GB"});
    let order = app.order_and_pay(&session.token, product, address).await;
    app.post(
        &format!("/api/v1/products/{product}/reviews"),
        Some(&session.token),
        json!({"rating": 5, "comment": person.comment}),
    )
    .await
    .expect(201);
    app.settle().await;
    let order_id = order["id"].as_str().expect("order id").to_owned();
    (session, order_id, product)
}

/// Every read model rebuilt from the log equals the live one.
async fn rebuilt_equal_live(app: &TestApp) {
    let privacy = app
        .settings
        .keyring(&app.pool)
        .await
        .expect("the keyring opens");
    for name in registry::NAMES {
        let report = registry::rebuild(name, &app.pool, Some(&privacy), Finish::Verify, |_| {})
            .await
            .unwrap_or_else(|e| panic!("{name} rebuilt differs from the live read model: {e}"));
        assert!(report.events > 0, "{name} read the log");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn personal_data_is_ciphertext_in_the_log_and_on_the_broker_and_plain_where_it_is_read(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let (_tap_connection, mut tap) = commerce_testkit::tap(&app.settings.broker).await;
    let admin = app.admin().await;
    let person = Person::new();
    let (session, order_id, product) = journey(&app, &admin, &person).await;

    // The log holds none of it, in any event.
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT event_type, payload::text || metadata::text FROM events")
            .fetch_all(&app.pool)
            .await
            .expect("the log");
    for (event_type, text) in &rows {
        for piece in person.pieces() {
            assert!(
                !text.contains(piece),
                "a {event_type} event shows {piece:?}"
            );
        }
    }
    let sealed = rows
        .iter()
        .filter(|(_, text)| text.contains("enc:v1:"))
        .count();
    assert!(
        sealed >= 4,
        "registration, profile, order and review are sealed: {sealed}"
    );

    // Neither does any message a queue bound to `#` received.
    let received =
        commerce_testkit::collect_events(&mut tap, rows.len(), Duration::from_secs(30)).await;
    for message in &received {
        let body = String::from_utf8_lossy(&message.body);
        for piece in person.pieces() {
            assert!(
                !body.contains(piece),
                "a message routed {} shows {piece:?}",
                message.routing_key
            );
        }
    }

    // Every read a caller is entitled to shows it in the clear.
    let me = app
        .get("/api/v1/users/me", Some(&session.token))
        .await
        .expect(200);
    assert_eq!(me.data()["email"], json!(person.email));
    assert_eq!(me.data()["name"], json!(person.renamed));
    assert_eq!(me.data()["phone"], json!(person.phone));
    let order_path = format!("/api/v1/orders/{order_id}");
    let order = app.get(&order_path, Some(&session.token)).await.expect(200);
    assert_eq!(
        order.data()["shipping_address"]["line1"],
        json!(person.street)
    );
    let (then, history) = from_the_log(&app, &order_path, &session.token).await;
    assert!(
        history.body.to_string().contains(&person.street),
        "the order history shows the address: {}",
        history.body
    );
    assert_eq!(then.data()["shipping_address"]["city"], json!(person.city));
    let reviews = app
        .get(&format!("/api/v1/products/{product}/reviews"), None)
        .await
        .expect(200);
    assert_eq!(reviews.data()[0]["comment"], json!(person.comment));
    let events = app
        .get(
            "/api/v1/admin/events?aggregate_type=User&limit=1000",
            Some(&admin.token),
        )
        .await
        .expect(200);
    assert!(
        events.body.to_string().contains(&person.email),
        "the admin log shows the email"
    );
    let notes = app
        .get("/api/v1/notifications", Some(&session.token))
        .await
        .expect(200);
    assert!(
        notes.body.to_string().contains(&person.name),
        "the welcome greets them by name: {}",
        notes.body
    );

    // `commerce events tail` opens it too.
    let tail = commerce(&app, &["events", "tail", "--json"]).await;
    assert!(
        tail.status.success(),
        "{}",
        String::from_utf8_lossy(&tail.stderr)
    );
    assert!(String::from_utf8_lossy(&tail.stdout).contains(&person.email));

    // Replays open it the same way: every rebuilt read model equals the live one.
    rebuilt_equal_live(&app).await;
    app.stop().await;
}

/// `commerce ARGS` on the test's database, with the tests' `DATA_KEY`.
async fn commerce(app: &TestApp, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_commerce"))
        .env_remove("DATABASE_URL")
        .env("DATA_KEY", support::DATA_KEY)
        .env("RUST_LOG", "warn")
        .args(["--database-url", &app.settings.database_url])
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("the binary runs")
}

/// What the log says of an order: as of a moment from now (`?as_of`) and its history.
async fn from_the_log(app: &TestApp, order_path: &str, token: &str) -> (Resp, Resp) {
    let as_of = (chrono::Utc::now() + chrono::Duration::seconds(1)).to_rfc3339();
    let as_of = as_of.replace('+', "%2B").replace(':', "%3A");
    let then = app
        .get(&format!("{order_path}?as_of={as_of}"), Some(token))
        .await
        .expect(200);
    let history = app
        .get(&format!("{order_path}/history"), Some(token))
        .await
        .expect(200);
    (then, history)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_wrong_data_key_is_refused_before_anything_is_read_or_written(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    app.product(&admin, "1.00", 1).await;
    let events = app.event_count().await;
    let database = app.settings.database_url.clone();
    app.stop().await;

    let (_, other_key) = commerce_event_store::privacy::MasterKey::generate();
    let cli = Cli::parse_from([
        "commerce",
        "--database-url",
        &database,
        "--env",
        "dev",
        "--jwt-secret",
        support::JWT_SECRET,
        "--data-key",
        &other_key,
        "--listen-addr",
        "127.0.0.1:0",
        "serve",
    ]);
    let settings = Settings::from_args(&cli.global, Environment::Dev).expect("settings");
    let error = app::start(&settings, Parts::ALL)
        .await
        .expect_err("a wrong key must not start");
    assert!(
        format!("{error:#}").contains("DATA_KEY does not open"),
        "{error:#}"
    );
    let pool = commerce_event_store::db::connect(&database, 1)
        .await
        .expect("pool");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(after, events, "nothing was written");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn without_a_data_key_dev_generates_one_keeps_it_and_reads_its_data_after_a_restart(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let without = || Options {
        args: vec![("--data-key".to_owned(), String::new())],
    };
    let app = TestApp::spawn_with(&c, without()).await;
    let admin = app.admin().await;
    let person = Person::new();
    let (session, order_id, _) = journey(&app, &admin, &person).await;
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM dev_data_key")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(kept, 1, "one generated key, kept in the database");
    app.stop().await;

    // A restart (which also replays nothing: the read models stand) reads the data with the
    // kept key, and a fresh load of the order folds the sealed address back in the clear.
    let app = TestApp::spawn_with(&c, without()).await;
    let order = app
        .get(
            &format!("/api/v1/orders/{order_id}/history"),
            Some(&session.token),
        )
        .await
        .expect(200);
    assert!(order.body.to_string().contains(&person.street));
    let database = app.settings.database_url.clone();
    app.stop().await;

    // The one-shot tools (prod by default) use the key this dev database keeps, as the README's
    // quick start runs them: no DATA_KEY, no COMMERCE_ENV.
    let tool = |args: &'static [&'static str]| {
        let url = database.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_commerce"))
                .env_remove("DATA_KEY")
                .env_remove("COMMERCE_ENV")
                .env("ADMIN_PASSWORD", "change-me-1")
                .env("RUST_LOG", "warn")
                .args(["--database-url", &url])
                .args(args)
                .kill_on_drop(true)
                .output()
                .await
                .expect("the binary runs")
        }
    };
    let created = tool(&[
        "admin",
        "create-user",
        "--email",
        "first-admin@example.com",
        "--name",
        "Admin",
    ])
    .await;
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let tail = tool(&["events", "tail", "--json"]).await;
    assert!(String::from_utf8_lossy(&tail.stdout).contains(&person.email));
}

#[tokio::test]
async fn prod_refuses_to_start_without_a_data_key_and_help_never_shows_it() {
    let secret_key = "c2VjcmV0LWtleS1uZXZlci1wcmludGVkLTAxMjM0NTY=";
    let help = tokio::process::Command::new(env!("CARGO_BIN_EXE_commerce"))
        .env("DATA_KEY", secret_key)
        .arg("--help")
        .output()
        .await
        .expect("the binary runs");
    let text: Value = json!(String::from_utf8_lossy(&help.stdout));
    assert!(
        text.to_string().contains("DATA_KEY"),
        "--help names the variable"
    );
    assert!(
        !text.to_string().contains(secret_key),
        "--help never shows its value"
    );

    for command in ["api", "project", "process", "serve"] {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_commerce"))
            .env_remove("DATA_KEY")
            .env("COMMERCE_ENV", "prod")
            .env("JWT_SECRET", "a-strong-secret-0123456789-abcdefghijklmnop")
            .env("PASSWORD_HASH_MEMORY_KIB", "19456")
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/commerce")
            .env("RUST_LOG", "warn")
            .arg(command)
            .kill_on_drop(true)
            .output()
            .await
            .expect("the binary runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command} started without DATA_KEY");
        assert!(
            stderr.contains("DATA_KEY is required"),
            "{command}: {stderr}"
        );
    }
}

/// The user's profile, as an admin reads it, shows `[erased]` for every personal field.
async fn assert_profile_erased(app: &TestApp, admin: &Session, user_id: Uuid) {
    let path = format!("/api/v1/users/{user_id}");
    let user = app.get(&path, Some(&admin.token)).await.expect(200);
    for field in ["email", "name", "phone"] {
        assert_eq!(user.data()[field], json!("[erased]"), "{field}");
    }
    assert_eq!(user.data()["is_active"], json!(false));
}

/// The database as `pg_dump` prints it (schema and data, every table). Tried up to three times:
/// on a machine running other suites beside this one, a connection may be refused for a moment.
async fn dump(database_url: &str) -> String {
    let mut failures = Vec::new();
    for _ in 0..3 {
        let out = tokio::process::Command::new("pg_dump")
            .args(["--no-owner", "--dbname", database_url])
            .kill_on_drop(true)
            .output()
            .await
            .expect("pg_dump runs");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("pg_dump failed three times: {failures:?}");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_erased_customer_leaves_no_byte_of_their_personal_data_and_accounting_still_adds_up(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let sink = commerce_testkit::SmtpSink::start().await;
    let app = TestApp::spawn_with(
        &c,
        Options {
            args: vec![("--smtp-url".to_owned(), sink.url())],
        },
    )
    .await;
    let admin = app.admin().await;
    let person = Person::new();
    let (session, order_id, product) = journey(&app, &admin, &person).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !sink
        .received()
        .iter()
        .any(|m| m.to.iter().any(|to| to.contains(&person.email)))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no email reached the customer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let order_path = format!("/api/v1/orders/{order_id}");
    let before = app.get(&order_path, Some(&admin.token)).await.expect(200);
    assert!(
        dump(&app.settings.database_url)
            .await
            .contains(&person.email),
        "the search finds what is there"
    );

    // Only an admin erases; bad input changes nothing.
    let erase_path = format!("/api/v1/users/{}/personal-data", session.user_id);
    let events = app.event_count().await;
    app.delete(&erase_path, Some(&session.token))
        .await
        .expect(403);
    app.delete(
        &format!("/api/v1/users/{}/personal-data", Uuid::new_v4()),
        Some(&admin.token),
    )
    .await
    .expect(404);
    app.delete("/api/v1/users/not-a-uuid/personal-data", Some(&admin.token))
        .await
        .expect(400);
    assert_eq!(app.event_count().await, events);
    let erased = app
        .delete(&erase_path, Some(&admin.token))
        .await
        .expect(204);
    assert!(!erased.position().is_empty());
    assert_eq!(app.event_count().await, events + 1);
    app.delete(&erase_path, Some(&admin.token))
        .await
        .expect(204);
    assert_eq!(
        app.event_count().await,
        events + 1,
        "erasing twice changes nothing"
    );
    app.settle().await;

    // The erasure is on record, with who and why.
    let (actor, correlation): (String, String) = sqlx::query_as(
        "SELECT metadata ->> 'actor', metadata ->> 'correlation_id' FROM events \
         WHERE event_type = 'PersonalDataErased'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("one erasure event");
    assert_eq!(actor, admin.user_id.to_string());
    assert!(!correlation.is_empty());

    // They can no longer sign in, nor use a token they held.
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": person.email, "password": PASSWORD}),
    )
    .await
    .expect(401);
    app.get("/api/v1/users/me", Some(&session.token))
        .await
        .expect(401);

    // Every read shows "[erased]" where the data was; ids, amounts, statuses and times stay.
    assert_profile_erased(&app, &admin, session.user_id).await;
    let after = app.get(&order_path, Some(&admin.token)).await.expect(200);
    assert_eq!(after.data()["shipping_address"], json!("[erased]"));
    for kept in [
        "id",
        "user_id",
        "status",
        "payment_status",
        "total_amount",
        "items",
        "created_at",
    ] {
        assert_eq!(after.data()[kept], before.data()[kept], "{kept} stays");
    }
    let (then, history) = from_the_log(&app, &order_path, &admin.token).await;
    assert_eq!(then.data()["shipping_address"], json!("[erased]"));
    assert_eq!(then.data()["total_amount"], before.data()["total_amount"]);
    assert!(history.body.to_string().contains("[erased]"));
    let payments = app
        .get(
            &format!("/api/v1/payments/order/{order_id}"),
            Some(&admin.token),
        )
        .await
        .expect(200);
    assert!(
        payments.body.to_string().contains("COMPLETED"),
        "{}",
        payments.body
    );
    let reviews = app
        .get(&format!("/api/v1/products/{product}/reviews"), None)
        .await
        .expect(200);
    assert_eq!(reviews.data()[0]["comment"], json!("[erased]"));
    assert_eq!(reviews.data()[0]["rating"], json!(5));
    let log = app
        .get("/api/v1/admin/events?limit=1000", Some(&admin.token))
        .await
        .expect(200);
    assert!(log.body.to_string().contains("[erased]"));

    let tail = commerce(&app, &["events", "tail", "--json"]).await;
    let tail = String::from_utf8_lossy(&tail.stdout);
    assert!(
        tail.contains("[erased]") && !tail.contains(&person.email),
        "events tail"
    );

    // The erasure broke no hash or seal: the log verifies as before.
    let verified = app
        .get("/api/v1/admin/log/verify", Some(&admin.token))
        .await
        .expect(200);
    assert_eq!(verified.data()["ok"], json!(true), "{}", verified.body);

    // Not one byte of it is left anywhere in the database.
    let dumped = dump(&app.settings.database_url).await;
    for piece in person.pieces() {
        assert!(!dumped.contains(piece), "the dump still holds {piece:?}");
    }

    // Replays (which can no longer open the sealed fields) build what the live models hold.
    rebuilt_equal_live(&app).await;
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_cli_erases_by_id_once_and_names_an_unknown_user(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let person = Person::new();
    let (session, _, _) = journey(&app, &admin, &person).await;
    let shared = &app;
    let erase = |id: String| async move { commerce(shared, &["users", "erase", &id]).await };
    let unknown = erase(Uuid::new_v4().to_string()).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no user with id"));
    let malformed = erase("nobody".to_owned()).await;
    assert_eq!(malformed.status.code(), Some(2), "a usage error");
    let first = erase(session.user_id.to_string()).await;
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("erased the personal data"));
    let again = erase(session.user_id.to_string()).await;
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("erased already"));
    app.settle().await;
    assert_profile_erased(&app, &admin, session.user_id).await;
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn user_ids_are_keyed_and_accounts_from_before_keep_their_email_and_sign_in(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    use commerce_commands::credentials::SetPassword;
    use commerce_commands::Dispatcher;
    use commerce_domain::ids::user_id_for_email;
    use commerce_domain::user::{Role, User, UserCommand};
    use commerce_event_store::{EventMetadata, EventStore};

    let app = TestApp::spawn(&c).await;
    let email = format!("Kay.{}@Example.com", Uuid::new_v4().simple());
    let register = |email: String| {
        app.post(
            "/api/v1/auth/register",
            None,
            json!({"email": email, "password": PASSWORD, "name": "Kay"}),
        )
    };
    let kay = register(email.clone()).await.expect(201);
    let id = kay.data()["id"].as_str().expect("id").to_owned();
    assert_ne!(
        id,
        user_id_for_email(&email).to_string(),
        "not the plain derivation anyone can compute from the email"
    );
    register(format!(" {} ", email.to_lowercase()))
        .await
        .expect(409);

    // A user registered before ids were keyed, under the plain id.
    let old = format!("old.{}@example.com", Uuid::new_v4().simple());
    let old_id = user_id_for_email(&old);
    let hash = commerce_api::auth::password::hash(PASSWORD.to_owned(), 1024)
        .await
        .expect("hash");
    Dispatcher::new(EventStore::new(app.pool.clone()))
        .execute_with::<User>(
            &old_id.to_string(),
            UserCommand::RegisterUser {
                user_id: old_id,
                email: old.clone(),
                name: "Old".to_owned(),
                phone: None,
                roles: vec![Role::Customer],
                at: chrono::Utc::now(),
            },
            &EventMetadata::new("test", Uuid::new_v4().to_string()),
            &SetPassword::new(old_id, hash),
        )
        .await
        .expect("registered the old way");
    let signed_in = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"email": old.to_uppercase(), "password": PASSWORD}),
        )
        .await
        .expect(200);
    assert_eq!(signed_in.data()["user"]["id"], json!(old_id));
    register(old).await.expect(409);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn rotating_the_master_key_rewraps_every_data_key_and_the_old_key_stops_working(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let person = Person::new();
    let (session, order_id, _) = journey(&app, &admin, &person).await;
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM data_keys")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    let database = app.settings.database_url.clone();
    let rotate = |old: String, new: String| {
        let url = database.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_commerce"))
                .env("DATA_KEY", old)
                .env("NEW_DATA_KEY", new)
                .env("RUST_LOG", "warn")
                .args(["--database-url", &url, "keys", "rotate"])
                .kill_on_drop(true)
                .output()
                .await
                .expect("the binary runs")
        }
    };
    let (_, new_key) = commerce_event_store::privacy::MasterKey::generate();
    let (_, stranger) = commerce_event_store::privacy::MasterKey::generate();

    // A wrong current key or a malformed new one changes nothing.
    let wrong = rotate(stranger, new_key.clone()).await;
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("does not open"));
    let malformed = rotate(support::DATA_KEY.to_owned(), "short".to_owned()).await;
    assert_eq!(malformed.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&malformed.stderr).contains("NEW_DATA_KEY"));
    app.stop().await;

    let rotated = rotate(support::DATA_KEY.to_owned(), new_key.clone()).await;
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    assert!(
        String::from_utf8_lossy(&rotated.stdout).contains(&format!("re-wrapped {keys} data keys")),
        "{}",
        String::from_utf8_lossy(&rotated.stdout)
    );

    // The old key no longer opens the keyring; the new one reads everything as before.
    let cli = Cli::parse_from([
        "commerce",
        "--database-url",
        &database,
        "--data-key",
        support::DATA_KEY,
        "--jwt-secret",
        support::JWT_SECRET,
        "serve",
    ]);
    let settings = Settings::from_args(&cli.global, Environment::Dev).expect("settings");
    let pool = commerce_event_store::db::connect(&database, 1)
        .await
        .expect("pool");
    let refused = settings
        .keyring(&pool)
        .await
        .expect_err("the old key is refused");
    assert!(format!("{refused:#}").contains("does not open"));
    let app = TestApp::spawn_with(
        &c,
        Options {
            args: vec![("--data-key".to_owned(), new_key)],
        },
    )
    .await;
    let me = app
        .get("/api/v1/users/me", Some(&session.token))
        .await
        .expect(200);
    assert_eq!(me.data()["email"], json!(person.email));
    let (then, _) = from_the_log(&app, &format!("/api/v1/orders/{order_id}"), &session.token).await;
    assert_eq!(
        then.data()["shipping_address"]["line1"],
        json!(person.street)
    );
    rebuilt_equal_live(&app).await;
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn aggregates_holding_personal_data_are_never_snapshotted(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    use commerce_domain::user::User;
    use commerce_event_store::EventStore;

    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let privacy = app.settings.keyring(&app.pool).await.expect("keyring");
    let store = EventStore::new(app.pool.clone()).with_privacy(privacy);
    let id = customer.user_id.to_string();
    let (user, version) = store.load::<User>(&id).await.expect("loaded");
    assert_eq!(user.email(), customer.email, "opened on load");
    assert!(
        !store
            .save_snapshot(&id, version, &user)
            .await
            .expect("asked"),
        "a snapshot would be a plaintext copy"
    );
    let snapshots: i64 = sqlx::query_scalar("SELECT count(*) FROM aggregate_snapshots")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(snapshots, 0);
    app.stop().await;
}
