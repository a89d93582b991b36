//! Guarantee 10 through the product: `serve` seals the log as it grows, and
//! `GET /api/v1/admin/log/verify` and `commerce events verify` recompute the chain, print the latest
//! seal, and name the first position that does not match once someone with the superuser's rights
//! has changed an event.

use std::process::Output;
use std::time::Duration;

use crate::support::TestApp;
use commerce_event_store::db::MIGRATOR;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::Command;

async fn commerce_events_verify(database: &str, extra: &[&str]) -> Output {
    let url = format!("postgres://postgres@127.0.0.1:5432/{database}");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_commerce"));
    cmd.env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .args(["events", "verify", "--database-url", &url])
        .args(extra)
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finished in time")
        .expect("the binary runs")
}

/// Verifies through the API until nothing is left unsealed (the sealer runs in `serve`).
async fn verified_and_sealed(app: &TestApp, token: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        app.settle().await;
        let body = app
            .get("/api/v1/admin/log/verify", Some(token))
            .await
            .expect(200)
            .data()
            .clone();
        if body["events_unsealed"] == 0 {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sealer never caught up: {body}"
        );
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn serve_seals_the_log_and_verify_names_the_event_an_operator_changed(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let database = c.get_database().expect("a test database").to_owned();
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let auditor = app.auditor().await;
    app.product(&admin, "5.00", 3).await;

    let clean = verified_and_sealed(&app, &auditor.token).await;
    assert_eq!(clean["ok"], true, "{clean}");
    assert!(clean.get("first_mismatch").is_none());
    let latest = &clean["latest_seal"];
    let seal = latest["seal"].as_str().expect("a seal").to_owned();
    assert_eq!(seal.len(), 64);
    assert_eq!(clean["verified_through"], latest["through"]);

    let out = commerce_events_verify(&database, &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains(&seal) && stdout.contains("ok"), "{stdout}");

    // Bad input: a 400 naming the parameter, a usage error from the CLI; nothing changes.
    let bad = app
        .get(
            "/api/v1/admin/log/verify?from=yesterday",
            Some(&auditor.token),
        )
        .await
        .expect(400);
    assert!(bad.body["details"]["from"].is_string(), "{}", bad.body);
    let out = commerce_events_verify(&database, &["--from", "yesterday"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid position token"));

    // The superuser changes one event of the log, trigger off.
    let (token, id): (String, String) = sqlx::query_as(
        "SELECT transaction_id::text || '.' || global_position, aggregate_id FROM events \
         WHERE event_type = 'ProductCreated'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the product's event");
    let mut tx = app.pool.begin().await.expect("begin");
    for sql in [
        "ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete",
        "UPDATE events SET metadata = jsonb_set(metadata, '{actor}', '\"nobody\"') \
         WHERE event_type = 'ProductCreated'",
        "ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete",
    ] {
        sqlx::query(sql).execute(&mut *tx).await.expect("tampered");
    }
    tx.commit().await.expect("commit");
    assert!(!id.is_empty());

    let tampered = app
        .get("/api/v1/admin/log/verify", Some(&admin.token))
        .await
        .expect(200);
    let body = tampered.data();
    assert_eq!(body["ok"], false, "{body}");
    assert_eq!(body["first_mismatch"]["position"], token.as_str());
    assert_eq!(body["first_mismatch"]["code"], "content_changed");
    assert_eq!(body["latest_seal"]["seal"], seal.as_str());

    let out = commerce_events_verify(&database, &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("first mismatch at position {token}")),
        "{stderr}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&seal));
    app.stop().await;
}
