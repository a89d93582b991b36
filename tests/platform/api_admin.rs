//! `/admin` over HTTP: consumer health, rebuild, retry and skip; the audit views of the log with
//! their filters, paging and redaction; who may use which.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::support::{Resp, Session, TestApp};
use commerce_event_store::db::MIGRATOR;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// Polls `GET /admin/projections` until `done` holds for the list (bounded), and returns it.
async fn projections_until(
    app: &TestApp,
    admin: &Session,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = app
            .get("/api/v1/admin/projections", Some(&admin.token))
            .await
            .expect(200);
        let rows = list.data().as_array().cloned().unwrap_or_default();
        if done(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {rows:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not listed: {rows:#?}"))
}

async fn post_empty(app: &TestApp, path: &str, token: Option<&str>) -> Resp {
    app.request(Method::POST, path, token, None, &[]).await
}

async fn create_category(app: &TestApp, admin: &Session, request_id: &str) -> Resp {
    let name = format!("Category {}", Uuid::new_v4().simple());
    app.request(
        Method::POST,
        "/api/v1/categories",
        Some(&admin.token),
        Some(json!({ "name": name })),
        &[("x-request-id", request_id)],
    )
    .await
    .expect(201)
}

fn positions(entries: &Value) -> Vec<String> {
    entries
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["position"].as_str().expect("a token").to_owned())
        .collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_projection_is_listed_live_and_caught_up_once_settled(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    app.settle().await;
    let rows = projections_until(&app, &admin, "every consumer LIVE", |rows| {
        !rows.is_empty() && rows.iter().all(|r| r["status"] == "LIVE")
    })
    .await;
    for name in commerce_projections::registry::NAMES {
        let r = row(&rows, name);
        assert_eq!(r["lag_events"], 0, "{r}");
        assert_eq!(r["position"], r["head"], "{r}");
        assert!(r["last_error"].is_null(), "{r}");
    }
    // The process managers are consumers too.
    row(&rows, "order-fulfilment");
    row(&rows, "notifications");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn rebuilding_the_catalog_answers_202_and_serves_the_same_product_afterwards(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let product = app.product(&admin, "19.99", 7).await;
    app.settle().await;
    let path = format!("/api/v1/products/{product}");
    let before = app.get(&path, None).await.expect(200);
    let schema_oid = || {
        sqlx::query_scalar::<_, sqlx::postgres::types::Oid>(
            "SELECT oid FROM pg_namespace WHERE nspname = 'catalog'",
        )
        .fetch_one(&app.pool)
    };
    let live_schema = schema_oid().await.expect("catalog schema");

    // Holding the catalog's checkpoint row keeps the rebuild from finishing, so what an operator
    // sees while it runs can be checked without racing it.
    let mut hold = app.pool.begin().await.expect("tx");
    sqlx::query("SELECT 1 FROM consumer_checkpoints WHERE name = 'catalog' FOR UPDATE")
        .execute(&mut *hold)
        .await
        .expect("lock");
    let started = post_empty(
        &app,
        "/api/v1/admin/projections/catalog/rebuild",
        Some(&admin.token),
    )
    .await
    .expect(202);
    assert_eq!(started.data()["name"], "catalog");
    assert_eq!(started.data()["status"], "REBUILDING");
    let rows = app
        .get("/api/v1/admin/projections", Some(&admin.token))
        .await
        .expect(200);
    let rows = rows.data().as_array().cloned().unwrap_or_default();
    assert_eq!(row(&rows, "catalog")["status"], "REBUILDING");
    let again = post_empty(
        &app,
        "/api/v1/admin/projections/catalog/rebuild",
        Some(&admin.token),
    )
    .await
    .expect(409);
    assert_eq!(again.body["code"], "rebuild_running");
    // Reads keep being served from the live model meanwhile.
    app.get(&path, None).await.expect(200);
    hold.rollback().await.expect("release");

    let rows = projections_until(&app, &admin, "catalog LIVE again", |rows| {
        rows.iter()
            .any(|r| r["name"] == "catalog" && r["status"] == "LIVE" && r["rebuild"].is_null())
    })
    .await;
    assert_eq!(row(&rows, "catalog")["lag_events"], 0);
    assert_ne!(
        schema_oid().await.expect("catalog schema"),
        live_schema,
        "the rebuilt schema was not swapped in"
    );
    let after = app.get(&path, None).await.expect(200);
    assert_eq!(after.data(), before.data());
    assert_eq!(after.data()["stock"]["available"], 7);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_projections_are_404_and_healthy_ones_cannot_be_retried_or_skipped(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    app.settle().await;
    for action in ["rebuild", "retry", "skip"] {
        let path = format!("/api/v1/admin/projections/no_such_thing/{action}");
        post_empty(&app, &path, Some(&admin.token))
            .await
            .expect(404);
    }
    // A process manager is a consumer, not a projection: it cannot be rebuilt.
    post_empty(
        &app,
        "/api/v1/admin/projections/order-fulfilment/rebuild",
        Some(&admin.token),
    )
    .await
    .expect(404);
    projections_until(&app, &admin, "catalog LIVE", |rows| {
        rows.iter()
            .any(|r| r["name"] == "catalog" && r["status"] == "LIVE")
    })
    .await;
    for action in ["retry", "skip"] {
        let path = format!("/api/v1/admin/projections/catalog/{action}");
        let refused = post_empty(&app, &path, Some(&admin.token))
            .await
            .expect(409);
        assert_eq!(refused.body["code"], "not_failed");
    }
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_consumer_halted_on_a_bad_event_shows_failed_and_resumes_after_retry_and_skip(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    app.settle().await;
    // An event no carts handler can read, written past the command side.
    let (tx, pos): (i64, i64) = sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('Cart', $1, 1, 'CartMangled', '1.0', '{\"CartMangled\": {}}', \
         '{\"actor\": \"test\", \"correlation_id\": \"poison\"}') \
         RETURNING transaction_id::text::bigint, global_position",
    )
    .bind(Uuid::new_v4().to_string())
    .fetch_one(&app.pool)
    .await
    .expect("insert");
    let poison = format!("{tx}.{pos}");

    let rows = projections_until(&app, &admin, "carts FAILED", |rows| {
        rows.iter()
            .any(|r| r["name"] == "carts" && r["status"] == "FAILED")
    })
    .await;
    let carts = row(&rows, "carts");
    assert_eq!(carts["failed_position"], poison.as_str());
    assert!(carts["last_error"].as_str().is_some_and(|e| !e.is_empty()));
    assert!(carts["lag_events"].as_i64().is_some_and(|n| n >= 1));

    let retried = post_empty(
        &app,
        "/api/v1/admin/projections/carts/retry",
        Some(&admin.token),
    )
    .await
    .expect(202);
    assert_eq!(retried.data()["requested_action"], "RETRY");
    // The retry fails again (the event is still unreadable); a skip is accepted once the consumer
    // is halted again, and refused while it is busy retrying.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let skip = post_empty(
            &app,
            "/api/v1/admin/projections/carts/skip",
            Some(&admin.token),
        )
        .await;
        if skip.status == 202 {
            assert_eq!(skip.data()["requested_action"], "SKIP");
            break;
        }
        assert_eq!(skip.status, 409, "{}", skip.body);
        assert!(Instant::now() < deadline, "the skip was never accepted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rows = projections_until(&app, &admin, "carts LIVE past the bad event", |rows| {
        rows.iter()
            .any(|r| r["name"] == "carts" && r["status"] == "LIVE" && r["lag_events"] == 0)
    })
    .await;
    assert!(row(&rows, "carts")["last_error"].is_null());
    let skipped: i64 =
        sqlx::query_scalar("SELECT count(*) FROM consumer_skips WHERE consumer = 'carts'")
            .fetch_one(&app.pool)
            .await
            .expect("skips");
    assert_eq!(skipped, 1);
    post_empty(
        &app,
        "/api/v1/admin/projections/carts/skip",
        Some(&admin.token),
    )
    .await
    .expect(409);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn customers_get_403_strangers_401_and_auditors_read_the_log_but_manage_nothing(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let customer = app.customer().await;
    let auditor = app.auditor().await;
    app.settle().await;
    let stream = format!("/api/v1/admin/streams/User/{}", customer.user_id);
    let manage = [
        (Method::GET, "/api/v1/admin/projections".to_owned()),
        (
            Method::POST,
            "/api/v1/admin/projections/catalog/rebuild".to_owned(),
        ),
        (
            Method::POST,
            "/api/v1/admin/projections/catalog/retry".to_owned(),
        ),
        (
            Method::POST,
            "/api/v1/admin/projections/catalog/skip".to_owned(),
        ),
    ];
    let audit = [
        (Method::GET, "/api/v1/admin/events".to_owned()),
        (Method::GET, stream),
    ];
    for (method, path) in manage.iter().chain(&audit) {
        let stranger = app.request(method.clone(), path, None, None, &[]).await;
        assert_eq!(stranger.status, 401, "{method} {path}: {}", stranger.body);
        let refused = app
            .request(method.clone(), path, Some(&customer.token), None, &[])
            .await;
        assert_eq!(refused.status, 403, "{method} {path}: {}", refused.body);
        assert_eq!(refused.body["code"], "forbidden");
    }
    for (method, path) in &manage {
        let refused = app
            .request(method.clone(), path, Some(&auditor.token), None, &[])
            .await;
        assert_eq!(refused.status, 403, "{method} {path}: {}", refused.body);
    }
    for (method, path) in &audit {
        let read = app
            .request(method.clone(), path, Some(&auditor.token), None, &[])
            .await;
        assert_eq!(read.status, 200, "{method} {path}: {}", read.body);
        assert!(read.data().as_array().is_some_and(|d| !d.is_empty()));
    }
    // The role check comes before input checks: nothing about the log leaks to a customer.
    app.get("/api/v1/admin/events?after=garbage", Some(&customer.token))
        .await
        .expect(403);
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM consumer_checkpoints WHERE rebuild_started_at IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .expect("count");
    assert_eq!(rows, 0, "a refused rebuild started anyway");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_log_filters_by_aggregate_type_event_type_and_the_request_that_caused_it(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let auditor = app.auditor().await;
    let request_id = format!("req-{}", Uuid::new_v4());
    let created = create_category(&app, &admin, &request_id).await;
    let second = create_category(&app, &admin, &format!("req-{}", Uuid::new_v4())).await;
    let category_id = created.data()["id"].as_str().expect("id").to_owned();

    let mine = app
        .get_after(
            &format!("/api/v1/admin/events?correlation_id={request_id}"),
            Some(&auditor.token),
            &created.position(),
        )
        .await
        .expect(200);
    let entries = mine.data().as_array().expect("a list");
    assert_eq!(entries.len(), 1, "{}", mine.body);
    let e = &entries[0];
    assert_eq!(e["aggregate_type"], "Category");
    assert_eq!(e["aggregate_id"], category_id.as_str());
    assert_eq!(e["event_type"], "CategoryCreated");
    assert_eq!(e["version"], 1);
    assert_eq!(e["actor"], admin.user_id.to_string());
    assert_eq!(e["correlation_id"], request_id.as_str());
    assert_eq!(e["data"]["name"], created.data()["name"]);
    assert_eq!(e["position"], created.position().as_str());
    assert_eq!(mine.body["next"], created.position().as_str());

    // A tail read shows an event once every transaction older than it has ended; the position
    // token waits for that.
    let categories = app
        .get_after(
            "/api/v1/admin/events?aggregate_type=Category",
            Some(&admin.token),
            &second.position(),
        )
        .await
        .expect(200);
    let list = categories.data().as_array().expect("a list");
    assert_eq!(list.len(), 2);
    assert!(list.iter().all(|e| e["aggregate_type"] == "Category"));

    let registered = app
        .get_after(
            "/api/v1/admin/events?event_type=UserRegistered",
            Some(&admin.token),
            &second.position(),
        )
        .await
        .expect(200);
    let entries = registered.data().as_array().expect("a list");
    assert!(entries.iter().all(|e| e["event_type"] == "UserRegistered"));
    let users: HashSet<&str> = entries
        .iter()
        .filter_map(|e| e["aggregate_id"].as_str())
        .collect();
    assert!(users.contains(admin.user_id.to_string().as_str()));
    assert!(users.contains(auditor.user_id.to_string().as_str()));

    let nothing = app
        .get(
            "/api/v1/admin/events?aggregate_type=Category&from=2000-01-01T00:00:00Z&to=2000-01-02T00:00:00Z",
            Some(&admin.token),
        )
        .await
        .expect(200);
    assert_eq!(nothing.data(), &json!([]));
    assert!(nothing.body["next"].is_null());
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn paging_the_log_with_after_returns_every_event_once_in_order(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    for _ in 0..5 {
        create_category(&app, &admin, &Uuid::new_v4().to_string()).await;
    }
    app.settle().await;
    let all = app
        .get(
            "/api/v1/admin/events?aggregate_type=Category&limit=1000",
            Some(&admin.token),
        )
        .await
        .expect(200);
    let expected = positions(all.data());
    assert_eq!(expected.len(), 5);

    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            None => "/api/v1/admin/events?aggregate_type=Category&limit=2".to_owned(),
            Some(token) => {
                format!("/api/v1/admin/events?aggregate_type=Category&limit=2&after={token}")
            }
        };
        let page = app.get(&path, Some(&admin.token)).await.expect(200);
        let tokens = positions(page.data());
        assert!(tokens.len() <= 2);
        if tokens.is_empty() {
            assert!(page.body["next"].is_null());
            break;
        }
        assert_eq!(
            page.body["next"].as_str(),
            tokens.last().map(String::as_str)
        );
        after = tokens.last().cloned();
        paged.extend(tokens);
        assert!(paged.len() <= expected.len(), "pages overlap: {paged:?}");
    }
    assert_eq!(paged, expected);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn malformed_log_queries_are_400_naming_the_parameter(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    for (query, field) in [
        ("after=garbage", "after"),
        ("after=12", "after"),
        ("after=-1.5", "after"),
        ("from=yesterday", "from"),
        ("to=2024-13-01T00:00:00Z", "to"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("limit=many", "limit"),
    ] {
        let bad = app
            .get(&format!("/api/v1/admin/events?{query}"), Some(&admin.token))
            .await;
        assert_eq!(bad.status, 400, "{query}: {}", bad.body);
        assert!(
            bad.body["details"].get(field).is_some(),
            "{query}: {}",
            bad.body
        );
    }
    // A range that ends before it starts is empty, not malformed.
    let empty = app
        .get(
            "/api/v1/admin/events?from=2024-02-01T00:00:00Z&to=2024-01-01T00:00:00Z",
            Some(&admin.token),
        )
        .await
        .expect(200);
    assert_eq!(empty.body["data"], json!([]), "{}", empty.body);
    let overlong = format!("/api/v1/admin/streams/User/{}", "x".repeat(300));
    app.get(&overlong, Some(&admin.token)).await.expect(400);
    app.get(
        "/api/v1/admin/events?limit=1000&from=2024-01-01T00:00:00%2B02:00",
        Some(&admin.token),
    )
    .await
    .expect(200);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_users_stream_carries_no_password_hash(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let auditor = app.auditor().await;
    let customer = app.customer().await;
    let stream = app
        .get(
            &format!("/api/v1/admin/streams/User/{}", customer.user_id),
            Some(&auditor.token),
        )
        .await
        .expect(200);
    let entries = stream.data().as_array().expect("a list");
    assert_eq!(entries.len(), 1);
    let registered = &entries[0];
    assert_eq!(registered["event_type"], "UserRegistered");
    assert_eq!(registered["version"], 1);
    assert_eq!(registered["data"]["email"], customer.email.as_str());
    assert!(registered["data"].get("password_hash").is_none());
    // Guarantee 9: the hash is a credential, outside the log.
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM user_credentials WHERE user_id = $1")
            .bind(customer.user_id)
            .fetch_one(&app.pool)
            .await
            .expect("the credential is stored");
    assert!(hash.starts_with("$argon2"));
    let in_log: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE payload::text LIKE '%' || $1 || '%'")
            .bind(&hash)
            .fetch_one(&app.pool)
            .await
            .expect("searched");
    assert_eq!(in_log, 0);
    assert!(!stream.body.to_string().contains(&hash));

    app.settle().await;
    let log = app
        .get(
            "/api/v1/admin/events?event_type=UserRegistered",
            Some(&auditor.token),
        )
        .await
        .expect(200);
    assert!(!log.body.to_string().contains("$argon2"));
    let registrations = log.data().as_array().expect("a list");
    assert_eq!(registrations.len(), 2);

    app.get(
        &format!("/api/v1/admin/streams/User/{}", Uuid::new_v4()),
        Some(&auditor.token),
    )
    .await
    .expect(404);
    app.stop().await;
}
