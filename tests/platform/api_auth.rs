//! Registration, login, refresh and logout over HTTP: one case-insensitive account per email,
//! bad input refused before anything is written, indistinguishable credential failures, rotating
//! refresh tokens whose reuse revokes the login.

use crate::support::{Options, Resp, TestApp};
use commerce_event_store::db::MIGRATOR;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const PASSWORD: &str = "correct-horse-7";

async fn register(app: &TestApp, email: &str) -> Resp {
    app.post(
        "/api/v1/auth/register",
        None,
        json!({"email": email, "password": PASSWORD, "name": " Alice Doe ", "phone": "+1 555 0100"}),
    )
    .await
}

async fn login(app: &TestApp, email: &str, password: &str) -> Resp {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": email, "password": password}),
    )
    .await
}

async fn refresh(app: &TestApp, token: &Value) -> Resp {
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": token}),
    )
    .await
}

/// No password, hash or hash prefix anywhere in `resp`.
#[track_caller]
fn assert_no_secrets(resp: &Resp) {
    let text = resp.body.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains("argon2") && !text.contains("password_hash"),
        "a secret leaked: {text}"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_registered_user_logs_in_and_reads_their_own_profile(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let created = register(&app, "Alice@Example.com").await.expect(201);
    assert_no_secrets(&created);
    let user = created.data().clone();
    assert_eq!(user["email"], "Alice@Example.com");
    assert_eq!(user["name"], "Alice Doe");
    assert_eq!(user["phone"], "+1 555 0100");
    assert_eq!(user["roles"], json!(["customer"]));
    assert_eq!(user["is_active"], true);
    for field in ["id", "created_at", "updated_at"] {
        assert!(user[field].is_string(), "{field} in {user}");
    }
    assert!(created.header("x-event-position").is_some());

    let signed_in = login(&app, "alice@example.COM", PASSWORD).await.expect(200);
    assert_no_secrets(&signed_in);
    let pair = signed_in.data();
    assert_eq!(pair["token_type"], "Bearer");
    assert!(pair["expires_at"].is_string());
    assert!(pair["refresh_token"].is_string());
    assert_eq!(pair["user"], user, "login shows the user as registered");
    let token = pair["access_token"].as_str().unwrap();

    let me = app
        .get_after("/api/v1/users/me", Some(token), &created.position())
        .await
        .expect(200);
    assert_eq!(me.data(), &user);
    assert_no_secrets(&me);
    app.stop().await;
}

/// Without `JWT_SECRET`, `serve` signs with a random key it generated on first start and keeps
/// in the database: never a key from the source, and sessions survive a restart.
#[sqlx::test(migrator = "MIGRATOR")]
async fn without_a_jwt_secret_serve_keeps_a_generated_key_and_sessions_survive_a_restart(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let no_secret = || Options {
        args: vec![("--jwt-secret".to_owned(), String::new())],
    };
    let app = TestApp::spawn_with(&c, no_secret()).await;
    let created = register(&app, "keep@example.com").await.expect(201);
    let pair = login(&app, "keep@example.com", PASSWORD)
        .await
        .expect(200)
        .data()
        .clone();
    let token = pair["access_token"].as_str().unwrap();
    app.get_after("/api/v1/users/me", Some(token), &created.position())
        .await
        .expect(200);
    let key: Vec<String> = sqlx::query_scalar("SELECT secret FROM api.signing_key")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(key.len(), 1);
    assert!(key[0].len() >= 64, "48 random bytes, base64");
    app.stop().await;

    let restarted = TestApp::spawn_with(&c, no_secret()).await;
    restarted
        .get("/api/v1/users/me", Some(token))
        .await
        .expect(200);
    refresh(&restarted, &pair["refresh_token"])
        .await
        .expect(200);
    let after: Vec<String> = sqlx::query_scalar("SELECT secret FROM api.signing_key")
        .fetch_all(&restarted.pool)
        .await
        .unwrap();
    assert_eq!(after, key, "the same key, not a second one");
    restarted.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn registering_an_email_again_in_another_letter_case_is_a_conflict(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    register(&app, "bob@example.com").await.expect(201);
    let before = app.event_count().await;
    let again = register(&app, "  BOB@Example.COM ").await.expect(409);
    assert_eq!(again.body["code"], "email_taken");
    assert_eq!(app.event_count().await, before, "nothing was written");
    // The first account keeps its password.
    login(&app, "bob@example.com", PASSWORD).await.expect(200);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_weak_password_or_a_malformed_email_is_refused_before_anything_is_written(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let before = app.event_count().await;
    let cases = [
        (
            json!({"email": "carol@example.com", "password": "short1", "name": "C"}),
            "password",
        ),
        (
            json!({"email": "carol@example.com", "password": "no-digits-here", "name": "C"}),
            "password",
        ),
        (
            json!({"email": "carol@example.com", "password": "1234567890", "name": "C"}),
            "password",
        ),
        (
            json!({"email": "carol@example.com", "password": format!("a1{}", "x".repeat(127)), "name": "C"}),
            "password",
        ),
        (
            json!({"email": "carol", "password": PASSWORD, "name": "C"}),
            "email",
        ),
        (
            json!({"email": "carol@example", "password": PASSWORD, "name": "C"}),
            "email",
        ),
        (
            json!({"email": "ca rol@example.com", "password": PASSWORD, "name": "C"}),
            "email",
        ),
    ];
    for (body, field) in cases {
        let resp = app
            .post("/api/v1/auth/register", None, body.clone())
            .await
            .expect(400);
        assert!(
            resp.body["details"][field].is_string(),
            "{body} → {}",
            resp.body
        );
        assert_no_secrets(&resp);
    }
    // No way to pick one's own roles, and the name is still checked.
    app.post(
        "/api/v1/auth/register",
        None,
        json!({"email": "carol@example.com", "password": PASSWORD, "name": "C", "roles": ["admin"]}),
    )
    .await
    .expect(400);
    app.post(
        "/api/v1/auth/register",
        None,
        json!({"email": "carol@example.com", "password": PASSWORD, "name": "   "}),
    )
    .await
    .expect(400);
    assert_eq!(app.event_count().await, before, "nothing was written");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_wrong_password_and_an_unknown_email_get_the_same_401(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    register(&app, "dave@example.com").await.expect(201);
    let wrong = login(&app, "dave@example.com", "wrong-password-1")
        .await
        .expect(401);
    let unknown = login(&app, "nobody@example.com", PASSWORD)
        .await
        .expect(401);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.body["code"], "unauthorized");
    assert!(wrong.body.get("access_token").is_none() && wrong.data().is_null());
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn refreshing_rotates_the_pair_and_reusing_an_old_token_ends_the_login(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    register(&app, "erin@example.com").await.expect(201);
    let first = login(&app, "erin@example.com", PASSWORD).await.expect(200);
    let r1 = first.data()["refresh_token"].clone();

    let second = refresh(&app, &r1).await.expect(200);
    let r2 = second.data()["refresh_token"].clone();
    assert_ne!(r1, r2);
    assert_eq!(second.data()["user"]["email"], "erin@example.com");
    let token = second.data()["access_token"].as_str().unwrap();
    app.get("/api/v1/users/me", Some(token)).await.expect(200);

    // The rotated-out token is refused, and presenting it revokes its whole family...
    refresh(&app, &r1).await.expect(401);
    // ...so the newest token of that login is refused too.
    refresh(&app, &r2).await.expect(401);

    // A fresh login is unaffected.
    let again = login(&app, "erin@example.com", PASSWORD).await.expect(200);
    refresh(&app, &again.data()["refresh_token"])
        .await
        .expect(200);
    refresh(&app, &json!("not-a-token")).await.expect(401);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn logging_out_revokes_the_refresh_tokens(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    register(&app, "frank@example.com").await.expect(201);
    let on_phone = login(&app, "frank@example.com", PASSWORD).await.expect(200);
    let on_laptop = login(&app, "frank@example.com", PASSWORD).await.expect(200);
    let token = on_laptop.data()["access_token"].as_str().unwrap();

    app.request(
        reqwest::Method::POST,
        "/api/v1/auth/logout",
        None,
        None,
        &[],
    )
    .await
    .expect(401);
    // No body and no Content-Type: still a logout.
    let out = app
        .request(
            reqwest::Method::POST,
            "/api/v1/auth/logout",
            Some(token),
            None,
            &[],
        )
        .await
        .expect(204);
    assert!(out.body.is_null());

    refresh(&app, &on_laptop.data()["refresh_token"])
        .await
        .expect(401);
    refresh(&app, &on_phone.data()["refresh_token"])
        .await
        .expect(401);
    // The password still works.
    login(&app, "frank@example.com", PASSWORD).await.expect(200);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn changing_the_password_ends_every_session_but_a_wrong_attempt_ends_none(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    const NEW_PASSWORD: &str = "battery-staple-9";
    let app = TestApp::spawn(&c).await;
    register(&app, "grace@example.com").await.expect(201);
    let on_phone = login(&app, "grace@example.com", PASSWORD).await.expect(200);
    let on_laptop = login(&app, "grace@example.com", PASSWORD).await.expect(200);
    let token = on_laptop.data()["access_token"].as_str().unwrap();

    // A wrong current password revokes nothing: both sessions still refresh.
    app.put(
        "/api/v1/users/me/password",
        Some(token),
        json!({"current_password": "wrong-password-1", "new_password": NEW_PASSWORD}),
    )
    .await
    .expect(403);
    let on_phone = refresh(&app, &on_phone.data()["refresh_token"])
        .await
        .expect(200);

    app.put(
        "/api/v1/users/me/password",
        Some(token),
        json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await
    .expect(204);
    // A session started with the old password cannot outlive the change.
    refresh(&app, &on_phone.data()["refresh_token"])
        .await
        .expect(401);
    refresh(&app, &on_laptop.data()["refresh_token"])
        .await
        .expect(401);
    let fresh = login(&app, "grace@example.com", NEW_PASSWORD)
        .await
        .expect(200);
    refresh(&app, &fresh.data()["refresh_token"])
        .await
        .expect(200);
    app.stop().await;
}
