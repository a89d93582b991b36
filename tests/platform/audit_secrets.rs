//! Guarantee 9, first half: no secret enters the log. A full journey leaves no password hash in
//! any event (payload or metadata) nor in any message a queue bound to `#` received; and a
//! deployment whose old events carried hashes is migrated by the one recorded redaction, after
//! which its users still sign in.

use std::borrow::Cow;
use std::time::Duration;

use crate::support::{Resp, TestApp, PASSWORD};
use commerce_api::auth::password;
use commerce_domain::ids::user_id_for_email;
use commerce_event_store::db::MIGRATOR;
use serde_json::{json, Value};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use uuid::Uuid;

const NEW_PASSWORD: &str = "n3w-password-2";

/// The migration that moved credentials out of the log.
const CREDENTIALS_MIGRATION: i64 = 20261205200000;

async fn stored_hash(pool: &PgPool, user_id: Uuid) -> String {
    sqlx::query_scalar("SELECT password_hash FROM user_credentials WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await
        .expect("a stored credential")
}

async fn sign_in(app: &TestApp, email: &str, password: &str) -> Resp {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await
}

async fn login(app: &TestApp, email: &str, password: &str) -> u16 {
    sign_in(app, email, password).await.status
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_full_journey_leaves_no_password_hash_in_the_log_or_on_the_broker(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let (_tap_connection, mut tap) = commerce_testkit::tap(&app.settings.broker).await;
    let admin = app.admin().await;
    let product = app.product(&admin, "12.00", 5).await;

    let email = format!("secret-{}@example.com", Uuid::new_v4().simple());
    let registered = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": email, "password": PASSWORD, "name": "Sam"}),
        )
        .await
        .expect(201);
    let user_id = registered.id();
    let old_hash = stored_hash(&app.pool, user_id).await;
    assert_eq!(login(&app, &email, PASSWORD).await, 200);
    let token = sign_in(&app, &email, PASSWORD).await.expect(200).data()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();

    // A wrong current password changes nothing.
    let before = app.event_count().await;
    app.put(
        "/api/v1/users/me/password",
        Some(&token),
        json!({"current_password": "wrong-password-1", "new_password": NEW_PASSWORD}),
    )
    .await
    .expect(403);
    app.put(
        "/api/v1/users/me/password",
        Some(&token),
        json!({"current_password": PASSWORD, "new_password": "short"}),
    )
    .await
    .expect(400);
    assert_eq!(app.event_count().await, before);
    assert_eq!(stored_hash(&app.pool, user_id).await, old_hash);

    let changed = app
        .put(
            "/api/v1/users/me/password",
            Some(&token),
            json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await
        .expect(204);
    assert!(!changed.position().is_empty());
    let new_hash = stored_hash(&app.pool, user_id).await;
    assert_ne!(new_hash, old_hash);
    assert_eq!(login(&app, &email, PASSWORD).await, 401);
    assert_eq!(login(&app, &email, NEW_PASSWORD).await, 200);

    app.order_and_pay(&token, product, json!("1 Main St, Springfield"))
        .await;
    app.post(
        &format!("/api/v1/products/{product}/reviews"),
        Some(&token),
        json!({"rating": 5, "comment": "lovely"}),
    )
    .await
    .expect(201);
    app.settle().await;

    let secrets = ["$argon2", old_hash.as_str(), new_hash.as_str()];
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT event_type, payload::text, metadata::text FROM events \
         ORDER BY transaction_id, global_position",
    )
    .fetch_all(&app.pool)
    .await
    .expect("the log");
    for wanted in [
        "UserRegistered",
        "PasswordChanged",
        "OrderConfirmed",
        "ReviewSubmitted",
    ] {
        assert!(
            rows.iter().any(|(t, _, _)| t == wanted),
            "the journey wrote no {wanted}"
        );
    }
    for (event_type, payload, metadata) in &rows {
        for secret in secrets {
            assert!(
                !payload.contains(secret) && !metadata.contains(secret),
                "a {event_type} event carries a password hash"
            );
        }
    }

    let received =
        commerce_testkit::collect_events(&mut tap, rows.len(), Duration::from_secs(30)).await;
    for message in &received {
        let body = String::from_utf8_lossy(&message.body);
        let headers = format!("{:?}", message.headers);
        for secret in secrets {
            assert!(
                !body.contains(secret) && !headers.contains(secret),
                "a message routed {} carries a password hash",
                message.routing_key
            );
        }
    }
    app.stop().await;
}

/// The migrations from before credentials left the log.
fn migrations_before_credentials() -> Migrator {
    Migrator {
        migrations: Cow::Owned(
            MIGRATOR
                .iter()
                .filter(|m| m.version < CREDENTIALS_MIGRATION)
                .cloned()
                .collect(),
        ),
        ignore_missing: false,
        locking: true,
        no_tx: false,
    }
}

/// An event as it was written before guarantee 9 held.
async fn old_event(pool: &PgPool, user_id: Uuid, sequence: i64, event_type: &str, data: Value) {
    sqlx::query(
        "INSERT INTO events \
         (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('User', $1, $2, $3, '1.0', $4, $5)",
    )
    .bind(user_id.to_string())
    .bind(sequence)
    .bind(event_type)
    .bind(json!({ event_type: data }))
    .bind(json!({"actor": user_id.to_string(), "correlation_id": Uuid::new_v4().to_string()}))
    .execute(pool)
    .await
    .expect("an old event");
}

async fn register_old_style(pool: &PgPool, email: &str, hash: &str) -> Uuid {
    let user_id = user_id_for_email(email);
    let data = json!({"user_id": user_id, "email": email, "name": "Old", "phone": null,
                      "password_hash": hash, "roles": ["customer"], "at": "2026-01-01T00:00:00Z"});
    old_event(pool, user_id, 1, "UserRegistered", data).await;
    user_id
}

#[sqlx::test(migrations = false)]
async fn old_events_with_hashes_are_redacted_once_on_record_and_their_users_still_sign_in(
    pool: PgPool,
) {
    migrations_before_credentials()
        .run(&pool)
        .await
        .expect("the old schema");
    let first = format!("old-{}@example.com", Uuid::new_v4().simple());
    let second = format!("old-{}@example.com", Uuid::new_v4().simple());
    let first_hash = password::hash(PASSWORD.to_owned(), 1024)
        .await
        .expect("hash");
    let changed_hash = password::hash(NEW_PASSWORD.to_owned(), 1024)
        .await
        .expect("hash");
    let second_hash = password::hash(PASSWORD.to_owned(), 1024)
        .await
        .expect("hash");
    let first_id = register_old_style(&pool, &first, &first_hash).await;
    let changed = json!({"user_id": first_id, "password_hash": changed_hash,
                         "at": "2026-01-02T00:00:00Z"});
    old_event(&pool, first_id, 2, "PasswordChanged", changed).await;
    let second_id = register_old_style(&pool, &second, &second_hash).await;
    // A snapshot of a user held the hash too.
    sqlx::query(
        "INSERT INTO aggregate_snapshots (aggregate_type, aggregate_id, version, state) \
         VALUES ('User', $1, 1, $2)",
    )
    .bind(second_id.to_string())
    .bind(json!({"password_hash": second_hash}))
    .execute(&pool)
    .await
    .expect("an old snapshot");

    MIGRATOR.run(&pool).await.expect("migrated");

    assert_eq!(
        stored_hash(&pool, first_id).await,
        changed_hash,
        "the latest one"
    );
    assert_eq!(stored_hash(&pool, second_id).await, second_hash);
    let leftover: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE payload::text LIKE '%argon2%' \
         OR payload::text LIKE '%password_hash%'",
    )
    .fetch_one(&pool)
    .await
    .expect("searched");
    assert_eq!(leftover, 0, "a hash stayed in the log");
    let snapshots: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM aggregate_snapshots WHERE state::text LIKE '%argon2%'",
    )
    .fetch_one(&pool)
    .await
    .expect("searched");
    assert_eq!(snapshots, 0, "a hash stayed in a snapshot");
    let recorded: Vec<(String, i64)> =
        sqlx::query_as("SELECT description, events_rewritten FROM audit_redactions ORDER BY id")
            .fetch_all(&pool)
            .await
            .expect("the record");
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    assert!(recorded[0].0.contains("password hashes removed"));
    assert_eq!(recorded[0].1, 3);
    // Then, and only then, the content hashes (guarantee 10): they cover the redacted payloads.
    assert!(recorded[1].0.contains("content hashes computed"));
    assert_eq!(recorded[1].1, 3);
    let verified = commerce_event_store::verify::verify(&pool, None)
        .await
        .expect("verified");
    assert!(verified.ok(), "{verified:?}");
    let rewrite = sqlx::query("UPDATE events SET metadata = '{}'")
        .execute(&pool)
        .await;
    assert!(rewrite.is_err(), "the log is append-only again");

    let c = (*pool.connect_options()).clone();
    let app = TestApp::spawn(&c).await;
    assert_eq!(login(&app, &first, NEW_PASSWORD).await, 200);
    assert_eq!(login(&app, &first, PASSWORD).await, 401);
    assert_eq!(login(&app, &second, PASSWORD).await, 200);
    let me = sign_in(&app, &second, PASSWORD).await.expect(200);
    assert_eq!(me.data()["user"]["email"], second.as_str());
    app.stop().await;
}
