//! The operator CLI against a running platform with real traffic: `projections status --json`
//! says field for field what `GET /admin/projections` says (and what the log and the relay hold),
//! `projections retry` and `projections skip` repair a consumer really halted on an event, and
//! `replay` shows its progress on a log of thousands of events.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{Session, TestApp};
use chrono::{DateTime, Utc};
use commerce_event_store::db::MIGRATOR;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::Command;
use uuid::Uuid;

/// `commerce` on `app`'s database and broker namespace (classic queues, like the app's),
/// nothing taken from this process's environment but the test key of personal data.
pub(crate) fn commerce(app: &TestApp) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_commerce"));
    cmd.env_remove("AMQP_URL")
        .env_remove("COMMERCE_ENV")
        .env("DATABASE_URL", &app.settings.database_url)
        .env("COMMERCE_NAMESPACE", &app.settings.broker.namespace)
        .env("AMQP_QUEUE_TYPE", "classic")
        .env("DATA_KEY", crate::support::DATA_KEY)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) async fn run(cmd: &mut Command) -> Output {
    tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the command finished in time")
        .expect("the binary runs")
}

/// `commerce projections status --json`, which must succeed and print one JSON document.
async fn status_json(app: &TestApp) -> Value {
    let out = run(commerce(app).args(["projections", "status", "--json"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status is not JSON ({e}): {}", text(&out.stdout)))
}

/// Polls `projections status --json` until `done` holds for it (bounded), and returns it.
async fn status_until(app: &TestApp, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let doc = status_json(app).await;
        if done(&doc) {
            return doc;
        }
        assert!(Instant::now() < deadline, "never saw {what}: {doc:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The consumer `name` of a status document.
fn consumer<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["consumers"]
        .as_array()
        .and_then(|list| list.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("{name} is not listed: {doc:#}"))
}

/// The `<tx>.<pos>` token of a position the CLI prints as an object.
fn token(position: &Value) -> String {
    let tx = position["transaction_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no transaction_id in {position}"));
    let pos = position["global_position"]
        .as_i64()
        .unwrap_or_else(|| panic!("no global_position in {position}"));
    format!("{tx}.{pos}")
}

fn keys(object: &Value) -> BTreeSet<&str> {
    object
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {object}"))
        .keys()
        .map(String::as_str)
        .collect()
}

/// `GET /admin/projections`, by name.
async fn api_projections(app: &TestApp, admin: &Session) -> BTreeMap<String, Value> {
    let list = app
        .get("/api/v1/admin/projections", Some(&admin.token))
        .await
        .expect(200);
    list.data()
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| (r["name"].as_str().expect("a name").to_owned(), r.clone()))
        .collect()
}

/// The last event of the log, as a position token.
async fn log_head(app: &TestApp) -> String {
    let (tx, pos): (i64, i64) = sqlx::query_as(
        "SELECT transaction_id::text::bigint, global_position FROM events \
         ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
    )
    .fetch_one(&app.pool)
    .await
    .expect("the log has events");
    format!("{tx}.{pos}")
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&app.pool)
        .await
        .expect("count")
}

fn address() -> Value {
    json!({"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"})
}

fn timestamp(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {value}"))
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn status_json_says_field_for_field_what_the_api_says_once_settled(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "12.50", 5).await;
    app.order_and_pay(&customer.token, product, address()).await;
    let cart_item = json!({"product_id": product, "quantity": 2});
    app.post("/api/v1/cart", Some(&customer.token), cart_item)
        .await
        .expect(200);
    app.settle().await;

    // Nothing moves once settled, but both views are read in turn: the API before and after the
    // CLI must agree with itself, or the pair is read again.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (api, doc) = loop {
        let before = api_projections(&app, &admin).await;
        let doc = status_json(&app).await;
        let after = api_projections(&app, &admin).await;
        if before == after && after.values().all(|r| r["status"] == "LIVE") {
            break (after, doc);
        }
        assert!(Instant::now() < deadline, "never settled: {after:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let head = log_head(&app).await;
    let events = app.event_count().await;

    assert_eq!(
        keys(&doc),
        BTreeSet::from(["consumers", "relay"]),
        "{doc:#}"
    );

    // The relay of this namespace published the whole log.
    let relay = &doc["relay"];
    assert_eq!(
        keys(relay),
        BTreeSet::from(["lag_events", "namespace", "position", "published"]),
        "{relay}"
    );
    assert_eq!(relay["namespace"], app.settings.broker.namespace.as_str());
    assert_eq!(token(&relay["position"]), head, "{relay}");
    assert_eq!(relay["published"], events, "{relay}");
    assert_eq!(relay["lag_events"], 0, "{relay}");

    // The same consumers, in name order.
    let consumers = doc["consumers"].as_array().expect("consumers is a list");
    let names: Vec<&str> = consumers
        .iter()
        .map(|c| c["name"].as_str().expect("a name"))
        .collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted, "listed by name");
    assert_eq!(
        names.iter().copied().collect::<BTreeSet<_>>(),
        api.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        "the CLI and the API list the same consumers"
    );
    assert_eq!(
        names.len(),
        api.len(),
        "no consumer listed twice: {names:?}"
    );
    for expected in commerce_projections::registry::NAMES
        .iter()
        .copied()
        .chain(["order-fulfilment", "notifications"])
    {
        assert!(names.contains(&expected), "{expected} missing: {names:?}");
    }

    for c in consumers {
        let name = c["name"].as_str().expect("a name");
        let a = &api[name];
        assert_eq!(
            keys(c),
            BTreeSet::from([
                "applied",
                "duplicates_ignored",
                "failed_position",
                "head",
                "lag_events",
                "lag_seconds",
                "last_error",
                "name",
                "position",
                "rebuild",
                "status",
                "updated_at",
            ]),
            "{c}"
        );
        assert_eq!(c["status"], "LIVE", "{c}");
        assert_eq!(c["status"], a["status"], "{name}");
        assert_eq!(token(&c["position"]), head, "{name} caught up: {c}");
        assert_eq!(token(&c["position"]), a["position"], "{name}");
        assert_eq!(token(&c["head"]), head, "{name}: {c}");
        assert_eq!(token(&c["head"]), a["head"], "{name}");
        assert_eq!(c["lag_events"], 0, "{c}");
        assert_eq!(c["lag_events"], a["lag_events"], "{name}");
        assert_eq!(c["lag_seconds"].as_f64(), Some(0.0), "{c}");
        assert_eq!(c["lag_seconds"], a["lag_seconds"], "{name}");
        assert!(c["last_error"].is_null(), "{c}");
        assert_eq!(c["last_error"], a["last_error"], "{name}");
        assert!(c["failed_position"].is_null(), "{c}");
        assert_eq!(c["failed_position"], a["failed_position"], "{name}");
        assert!(c["rebuild"].is_null(), "{c}");
        assert_eq!(c["rebuild"], a["rebuild"], "{name}");
        assert_eq!(c["duplicates_ignored"], a["duplicates_ignored"], "{name}");
        assert_eq!(
            timestamp(&c["updated_at"]),
            timestamp(&a["updated_at"]),
            "{name}"
        );
        // `applied` (not in the API) is the checkpoint's count.
        let (applied, duplicates): (i64, i64) = sqlx::query_as(
            "SELECT applied, duplicates_ignored FROM consumer_checkpoints WHERE name = $1",
        )
        .bind(name)
        .fetch_one(&app.pool)
        .await
        .expect("checkpoint");
        assert_eq!(c["applied"], applied, "{name}");
        assert_eq!(c["duplicates_ignored"], duplicates, "{name}");
    }
    // A projection applied exactly the events of its bindings: all of `Inventory.*` and `Order.*`.
    let inventory = count(
        &app,
        "SELECT count(*) FROM events WHERE aggregate_type = 'Inventory'",
    )
    .await;
    let orders = count(
        &app,
        "SELECT count(*) FROM events WHERE aggregate_type = 'Order'",
    )
    .await;
    assert!(inventory >= 2 && orders >= 3, "{inventory} {orders}");
    assert_eq!(consumer(&doc, "inventory")["applied"], inventory);
    assert_eq!(consumer(&doc, "orders")["applied"], orders);

    // The table says the same as the JSON.
    let table = run(commerce(&app).args(["projections", "status"])).await;
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    let mut lines = table.lines();
    assert_eq!(
        lines.next(),
        Some(
            format!(
                "relay {}: position {head} published {events} lag 0 events",
                app.settings.broker.namespace
            )
            .as_str()
        ),
        "{table}"
    );
    assert!(
        lines.next().is_some_and(|l| l.starts_with("NAME")),
        "{table}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), names.len(), "{table}");
    for (row, name) in rows.iter().zip(&names) {
        let duplicates = api[*name]["duplicates_ignored"].to_string();
        assert_eq!(
            row.as_slice(),
            [*name, "LIVE", &head, &head, "0", "0.0", &duplicates],
            "{table}"
        );
    }

    // Another namespace's relay never ran: the relay is null, the consumers are the same.
    let elsewhere = run(commerce(&app)
        .args(["projections", "status", "--json"])
        .env(
            "COMMERCE_NAMESPACE",
            format!("test-{}", Uuid::new_v4().simple()),
        ))
    .await;
    assert!(elsewhere.status.success(), "{}", text(&elsewhere.stderr));
    let elsewhere: Value = serde_json::from_slice(&elsewhere.stdout).expect("JSON");
    assert!(elsewhere["relay"].is_null(), "{elsewhere:#}");
    assert_eq!(
        elsewhere["consumers"].as_array().map(Vec::len),
        Some(names.len())
    );
    app.stop().await;
}

/// `projections retry NAME` or `skip NAME`.
async fn repair(app: &TestApp, action: &str, name: &str) -> Output {
    run(commerce(app).args(["projections", action, name])).await
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn retry_resumes_a_halted_consumer_once_fixed_and_skip_passes_over_a_bad_event(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "3.00", 50).await;
    app.settle().await;

    // The cause: the carts read model refuses more than 4 of a thing, so the next add of 7
    // halts the carts consumer on a real CartItemAdded.
    sqlx::query(
        "ALTER TABLE carts.items ADD CONSTRAINT cli_parity_small CHECK (quantity < 5) NOT VALID",
    )
    .execute(&app.pool)
    .await
    .expect("constraint");
    let added = app
        .post(
            "/api/v1/cart",
            Some(&customer.token),
            json!({"product_id": product, "quantity": 7}),
        )
        .await
        .expect(200);
    let failing = added.position();
    let doc = status_until(&app, "carts FAILED", |d| {
        consumer(d, "carts")["status"] == "FAILED"
    })
    .await;
    let carts = consumer(&doc, "carts");
    assert_eq!(token(&carts["failed_position"]), failing, "{carts}");
    assert!(
        carts["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cli_parity_small")),
        "the error names the cause: {carts}"
    );
    assert_ne!(carts["position"], carts["head"], "{carts}");
    assert!(
        carts["lag_events"].as_i64().is_some_and(|n| n >= 1),
        "{carts}"
    );
    assert!(
        carts["lag_seconds"].as_f64().is_some_and(|s| s > 0.0),
        "{carts}"
    );
    let api = api_projections(&app, &admin).await;
    assert_eq!(api["carts"]["status"], "FAILED");
    assert_eq!(api["carts"]["failed_position"], failing.as_str());
    assert_eq!(api["carts"]["last_error"], carts["last_error"]);

    // Fixing the cause is not enough: it stays halted until an operator acts.
    sqlx::query("ALTER TABLE carts.items DROP CONSTRAINT cli_parity_small")
        .execute(&app.pool)
        .await
        .expect("drop constraint");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        consumer(&status_json(&app).await, "carts")["status"],
        "FAILED"
    );

    let retried = repair(&app, "retry", "carts").await;
    assert_eq!(retried.status.code(), Some(0), "{}", text(&retried.stderr));
    assert_eq!(text(&retried.stdout), "retry requested for carts\n");
    let doc = status_until(&app, "carts LIVE after the retry", |d| {
        let c = consumer(d, "carts");
        c["status"] == "LIVE" && c["lag_events"] == 0
    })
    .await;
    let carts = consumer(&doc, "carts");
    assert!(carts["last_error"].is_null(), "{carts}");
    assert!(carts["failed_position"].is_null(), "{carts}");
    assert_eq!(token(&carts["position"]), log_head(&app).await);
    // The retried event was applied, not passed over.
    let cart = app
        .get_after("/api/v1/cart", Some(&customer.token), &failing)
        .await
        .expect(200);
    assert_eq!(cart.data()["items"][0]["quantity"], 7, "{}", cart.body);
    let skips = "SELECT count(*) FROM consumer_skips WHERE consumer = 'carts'";
    assert_eq!(count(&app, skips).await, 0);

    // An event no carts handler can read, written past the command side: only a skip helps.
    let (tx, pos, event_id): (i64, i64, Uuid) = sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('Cart', $1, 1, 'CartMangled', '1.0', '{\"CartMangled\": {}}', \
         '{\"actor\": \"test\", \"correlation_id\": \"poison\"}') \
         RETURNING transaction_id::text::bigint, global_position, event_id",
    )
    .bind(Uuid::new_v4().to_string())
    .fetch_one(&app.pool)
    .await
    .expect("insert");
    let poison = format!("{tx}.{pos}");
    let doc = status_until(&app, "carts FAILED on the bad event", |d| {
        consumer(d, "carts")["status"] == "FAILED"
    })
    .await;
    let carts = consumer(&doc, "carts");
    assert_eq!(token(&carts["failed_position"]), poison, "{carts}");
    let error = carts["last_error"]
        .as_str()
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| panic!("no error: {carts}"))
        .to_owned();

    let skipped = repair(&app, "skip", "carts").await;
    assert_eq!(skipped.status.code(), Some(0), "{}", text(&skipped.stderr));
    assert_eq!(
        text(&skipped.stdout),
        "skip requested for carts; the skipped event is recorded\n"
    );
    let doc = status_until(&app, "carts LIVE past the bad event", |d| {
        let c = consumer(d, "carts");
        c["status"] == "LIVE" && c["lag_events"] == 0
    })
    .await;
    let carts = consumer(&doc, "carts");
    assert!(carts["last_error"].is_null(), "{carts}");
    assert!(carts["failed_position"].is_null(), "{carts}");
    assert_eq!(token(&carts["position"]), log_head(&app).await);
    assert_eq!(
        token(&carts["position"]),
        poison,
        "the cursor is on the skipped event"
    );
    let recorded: Vec<(i64, i64, Option<Uuid>, Option<String>)> = sqlx::query_as(
        "SELECT transaction_id, global_position, event_id, error FROM consumer_skips \
         WHERE consumer = 'carts'",
    )
    .fetch_all(&app.pool)
    .await
    .expect("skips");
    assert_eq!(recorded, [(tx, pos, Some(event_id), Some(error))]);
    // And it goes on applying what comes next.
    let more = app
        .post(
            "/api/v1/cart",
            Some(&customer.token),
            json!({"product_id": product, "quantity": 1}),
        )
        .await
        .expect(200);
    let cart = app
        .get_after("/api/v1/cart", Some(&customer.token), &more.position())
        .await
        .expect(200);
    assert_eq!(cart.data()["items"][0]["quantity"], 8, "{}", cart.body);

    // A healthy consumer is neither retried nor skipped, and an unknown one is named.
    for action in ["retry", "skip"] {
        let refused = repair(&app, action, "carts").await;
        assert_eq!(refused.status.code(), Some(1), "{action}");
        assert_eq!(text(&refused.stdout), "", "{action}");
        assert_eq!(
            text(&refused.stderr),
            "error: consumer \"carts\" is not FAILED\n",
            "{action}"
        );
        let unknown = repair(&app, action, "nobody").await;
        assert_eq!(unknown.status.code(), Some(1), "{action}");
        assert_eq!(text(&unknown.stdout), "", "{action}");
        assert_eq!(
            text(&unknown.stderr),
            "error: no consumer named \"nobody\"\n",
            "{action}"
        );
    }
    let pending: Option<String> = sqlx::query_scalar(
        "SELECT requested_action FROM consumer_checkpoints WHERE name = 'carts'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("checkpoint");
    assert_eq!(pending, None, "a refused request leaves nothing pending");
    assert_eq!(count(&app, skips).await, 1);
    let doc = status_json(&app).await;
    assert_eq!(consumer(&doc, "carts")["status"], "LIVE");
    app.stop().await;
}

/// One progress report of `replay`: percent, done, total, events per second.
fn progress(line: &str, name: &str) -> Option<(f64, i64, i64, f64)> {
    let rest = line.strip_prefix(&format!("{name}: "))?;
    let (percent, rest) = rest.split_once("% (")?;
    let (done, rest) = rest.split_once('/')?;
    let (total, rest) = rest.split_once(" events, ")?;
    let rate = rest.strip_suffix(" events/s)")?;
    Some((
        percent.trim().parse().ok()?,
        done.parse().ok()?,
        total.parse().ok()?,
        rate.parse().ok()?,
    ))
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn replay_shows_rising_progress_on_a_log_of_thousands_of_events(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    // Few enough writers at once to stay inside the server's pool of 20 connections.
    const PRODUCTS: usize = 8;
    const ADJUSTMENTS: usize = 625;
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let mut products = Vec::new();
    for _ in 0..PRODUCTS {
        products.push(app.product(&admin, "1.00", 1000).await);
    }
    // 5,000 stock adjustments through the API, one writer per product.
    let writers = products.iter().map(|product| {
        let (app, admin) = (&app, &admin);
        async move {
            let path = format!("/api/v1/inventory/{product}");
            for _ in 0..ADJUSTMENTS {
                app.put(&path, Some(&admin.token), json!({"quantity": 1}))
                    .await
                    .expect(200);
            }
        }
    });
    futures::future::join_all(writers).await;
    app.settle().await;
    let events = app.event_count().await;
    assert!(events >= 5000, "{events} events");
    let inventory = count(
        &app,
        "SELECT count(*) FROM events WHERE aggregate_type = 'Inventory'",
    )
    .await;
    assert_eq!(inventory, (PRODUCTS * (ADJUSTMENTS + 1)) as i64);
    let head = log_head(&app).await;

    let out = run(commerce(&app).args(["replay", "inventory"])).await;
    let stderr = text(&out.stderr);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stderr}");

    // Progress: on one terminal line (carriage returns), rising to 100%.
    let reports: Vec<(f64, i64, i64, f64)> = stderr
        .split(['\r', '\n'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| progress(l, "inventory").unwrap_or_else(|| panic!("not progress: {l:?}")))
        .collect();
    assert!(
        reports.len() >= 3,
        "progress shown {} times: {stderr:?}",
        reports.len()
    );
    let mut percents: Vec<f64> = reports.iter().map(|r| r.0).collect();
    percents.dedup();
    assert!(
        percents.len() >= 3,
        "too few steps of progress: {percents:?} in {stderr:?}"
    );
    assert!(percents.windows(2).all(|w| w[0] < w[1]), "{percents:?}");
    assert!(percents[0] < 100.0, "{percents:?}");
    for pair in reports.windows(2) {
        assert!(pair[0].1 <= pair[1].1, "done never goes back: {reports:?}");
    }
    for (percent, done, total, rate) in &reports {
        assert_eq!(*total, events, "{reports:?}");
        assert!(*done > 0 && *done <= events, "{reports:?}");
        let expected = (*done as f64 * 1000.0 / events as f64).round() / 10.0;
        assert!(
            (percent - expected).abs() < 0.051,
            "{percent} of {done}/{total}"
        );
        assert!(*rate > 0.0, "an events/s rate: {reports:?}");
    }
    let last = reports.last().expect("a report");
    assert_eq!((last.0, last.1), (100.0, events), "{stderr:?}");
    assert!(
        stderr.contains("inventory: 100.0% ("),
        "formatted with one decimal: {stderr:?}"
    );

    // The result on stdout, alone.
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let expected =
        format!("inventory: rebuilt from {events} events ({inventory} applied) up to {head} in ");
    assert!(
        lines[0].starts_with(&expected) && lines[0].ends_with('s'),
        "{stdout}"
    );
    let seconds = &lines[0][expected.len()..lines[0].len() - 1];
    assert!(seconds.parse::<f64>().is_ok_and(|s| s >= 0.0), "{stdout}");

    // The swapped-in read model is the right one, and the consumer follows on from it.
    for product in &products {
        let stock = app
            .get(&format!("/api/v1/inventory/{product}"), None)
            .await
            .expect(200);
        assert_eq!(
            stock.data()["available"],
            1000 + ADJUSTMENTS,
            "{}",
            stock.body
        );
    }
    let doc = status_until(&app, "inventory LIVE at the head", |d| {
        let c = consumer(d, "inventory");
        c["status"] == "LIVE" && c["lag_events"] == 0
    })
    .await;
    assert_eq!(token(&consumer(&doc, "inventory")["position"]), head);
    app.stop().await;
}
