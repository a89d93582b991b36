//! Profiles, deactivation and roles over HTTP: a profile is its owner's and the admins' (404 to
//! anyone else), deactivation locks the account out at once, only admins change roles.

use crate::support;

use crate::support::{Session, TestApp, PASSWORD};
use commerce_event_store::db::MIGRATOR;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

async fn login(app: &TestApp, session: &Session) -> support::Resp {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"email": session.email, "password": PASSWORD}),
    )
    .await
}

fn user_path(session: &Session) -> String {
    format!("/api/v1/users/{}", session.user_id)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_deactivated_user_can_neither_log_in_nor_use_a_live_token(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let pair = login(&app, &customer).await.expect(200);
    let token = pair.data()["access_token"].as_str().unwrap().to_owned();
    app.get("/api/v1/users/me", Some(&token)).await.expect(200);

    let gone = app
        .delete(&user_path(&customer), Some(&token))
        .await
        .expect(204);
    assert!(gone.header("x-event-position").is_some());

    let refused = app.get("/api/v1/users/me", Some(&token)).await.expect(401);
    assert_eq!(refused.body["code"], "unauthorized");
    app.get("/api/v1/users/me", Some(&customer.token))
        .await
        .expect(401);
    login(&app, &customer).await.expect(401);
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": pair.data()["refresh_token"]}),
    )
    .await
    .expect(401);

    let admin = app.admin().await;
    let seen = app
        .get_after(&user_path(&customer), Some(&admin.token), &gone.position())
        .await
        .expect(200);
    assert_eq!(seen.data()["is_active"], false);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_admin_deactivating_a_user_locks_them_out(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let (admin, customer) = (app.admin().await, app.customer().await);
    app.get("/api/v1/users/me", Some(&customer.token))
        .await
        .expect(200);
    app.delete(&user_path(&customer), Some(&admin.token))
        .await
        .expect(204);
    app.get("/api/v1/users/me", Some(&customer.token))
        .await
        .expect(401);
    login(&app, &customer).await.expect(401);
    // The admin is untouched.
    app.get("/api/v1/users/me", Some(&admin.token))
        .await
        .expect(200);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn another_customer_gets_404_for_a_users_profile_and_cannot_change_it(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let (alice, mallory) = (app.customer().await, app.customer().await);
    let before = app.event_count().await;
    let path = user_path(&alice);
    let probe = app.get(&path, Some(&mallory.token)).await.expect(404);
    let unknown = app
        .get(
            &format!("/api/v1/users/{}", uuid::Uuid::new_v4()),
            Some(&mallory.token),
        )
        .await
        .expect(404);
    assert_eq!(
        probe.body, unknown.body,
        "an existing id looks like a missing one"
    );
    app.put(&path, Some(&mallory.token), json!({"name": "Pwned"}))
        .await
        .expect(404);
    app.delete(&path, Some(&mallory.token)).await.expect(404);
    app.get(&path, None).await.expect(401);
    app.get("/api/v1/users/not-a-uuid", Some(&alice.token))
        .await
        .expect(400);
    assert_eq!(app.event_count().await, before, "nothing was written");

    let own = app.get(&path, Some(&alice.token)).await.expect(200);
    assert_eq!(own.data()["email"], alice.email.as_str());
    app.get("/api/v1/users/me", Some(&alice.token))
        .await
        .expect(200);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn updating_a_profile_changes_only_the_fields_sent(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let user = app.customer().await;
    let named = app
        .put(
            "/api/v1/users/me",
            Some(&user.token),
            json!({"name": " Grace Hopper ", "phone": "+44 20 7946 0000"}),
        )
        .await
        .expect(200);
    assert_eq!(named.data()["name"], "Grace Hopper");
    assert_eq!(named.data()["phone"], "+44 20 7946 0000");

    let phone_only = app
        .put(
            &user_path(&user),
            Some(&user.token),
            json!({"phone": "+1 555 0199"}),
        )
        .await
        .expect(200);
    assert_eq!(phone_only.data()["name"], "Grace Hopper", "name kept");
    assert_eq!(phone_only.data()["phone"], "+1 555 0199");

    let cleared = app
        .put(
            "/api/v1/users/me",
            Some(&user.token),
            json!({"phone": null}),
        )
        .await
        .expect(200);
    assert!(cleared.data()["phone"].is_null());
    assert_eq!(cleared.data()["name"], "Grace Hopper");

    let me = app
        .get_after("/api/v1/users/me", Some(&user.token), &cleared.position())
        .await
        .expect(200);
    assert_eq!(me.data(), cleared.data());

    let before = app.event_count().await;
    for body in [
        json!({"name": ""}),
        json!({"name": "n".repeat(101)}),
        json!({"phone": "9".repeat(33)}),
        json!({"email": "new@example.com"}),
        json!({"name": 42}),
    ] {
        app.put("/api/v1/users/me", Some(&user.token), body)
            .await
            .expect(400);
    }
    assert_eq!(app.event_count().await, before, "nothing was written");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_admin_reads_any_user_and_sets_their_roles(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let (admin, user) = (app.admin().await, app.customer().await);
    let path = user_path(&user);
    let seen = app.get(&path, Some(&admin.token)).await.expect(200);
    assert_eq!(seen.data()["roles"], json!(["customer"]));

    let promoted = app
        .put(
            &format!("{path}/roles"),
            Some(&admin.token),
            json!({"roles": ["auditor", "customer"]}),
        )
        .await
        .expect(200);
    assert_eq!(promoted.data()["roles"], json!(["customer", "auditor"]));
    let reread = app
        .get_after(&path, Some(&admin.token), &promoted.position())
        .await
        .expect(200);
    assert_eq!(reread.data()["roles"], json!(["customer", "auditor"]));
    // The next login carries the new roles.
    let pair = login(&app, &user).await.expect(200);
    assert_eq!(pair.data()["user"]["roles"], json!(["customer", "auditor"]));

    let before = app.event_count().await;
    for body in [
        json!({"roles": ["superuser"]}),
        json!({"roles": []}),
        json!({"roles": "admin"}),
        json!({}),
    ] {
        app.put(&format!("{path}/roles"), Some(&admin.token), body)
            .await
            .expect(400);
    }
    app.put(
        &format!("/api/v1/users/{}/roles", uuid::Uuid::new_v4()),
        Some(&admin.token),
        json!({"roles": ["admin"]}),
    )
    .await
    .expect(404);
    assert_eq!(app.event_count().await, before, "nothing was written");

    // An admin may also edit someone else's profile.
    let renamed = app
        .put(&path, Some(&admin.token), json!({"name": "Renamed"}))
        .await
        .expect(200);
    assert_eq!(renamed.data()["name"], "Renamed");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_auditor_or_a_customer_cannot_set_roles(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let (auditor, customer) = (app.auditor().await, app.customer().await);
    let before = app.event_count().await;
    for caller in [&auditor, &customer] {
        for target in [&auditor, &customer] {
            let refused = app
                .put(
                    &format!("{}/roles", user_path(target)),
                    Some(&caller.token),
                    json!({"roles": ["admin"]}),
                )
                .await
                .expect(403);
            assert_eq!(refused.body["code"], "forbidden");
        }
    }
    assert_eq!(app.event_count().await, before, "nothing was written");
    let me = app
        .get("/api/v1/users/me", Some(&customer.token))
        .await
        .expect(200);
    assert_eq!(me.data()["roles"], json!(["customer"]));
    app.stop().await;
}
