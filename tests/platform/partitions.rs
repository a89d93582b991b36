//! Partitioned projections as an operator runs them: `commerce project --only orders
//! --partitions 4` in two processes (one running partitions 0 and 1, the other all four) takes
//! over from the platform's unpartitioned orders consumer, survives a SIGKILL of one process
//! under traffic, and builds exactly what one consumer builds (`replay orders --verify`); status
//! lists every partition; a rebuild swaps in while they run; bad settings are refused and change
//! nothing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::cli_parity::{commerce, run, text};
use crate::support::{Session, TestApp};
use commerce_event_store::db::MIGRATOR;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::Child;
use uuid::Uuid;

/// Runs `args` and expects it to be refused with a message containing `says`.
async fn refused(app: &TestApp, args: &[&str], says: &str) {
    let out = run(commerce(app).args(args)).await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{args:?} was accepted: {stderr}");
    assert!(stderr.contains(says), "{args:?}: {stderr}");
}

fn partition_process(app: &TestApp, partitions: Option<&str>) -> Child {
    let mut cmd = commerce(app);
    cmd.args(["project", "--only", "orders", "--partitions", "4"]);
    if let Some(which) = partitions {
        cmd.args(["--partition", which]);
    }
    cmd.stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("commerce project starts")
}

fn address() -> Value {
    json!({"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"})
}

/// `GET /admin/projections`.
async fn projections(app: &TestApp, admin: &Session) -> Vec<Value> {
    app.get("/api/v1/admin/projections", Some(&admin.token))
        .await
        .expect(200)
        .data()
        .as_array()
        .expect("a list")
        .clone()
}

/// Waits until the API shows orders split into 4 partitions, each LIVE at the head.
async fn wait_partitions_live(app: &TestApp, admin: &Session) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let list = projections(app, admin).await;
        let group = list.iter().find(|p| p["name"] == "orders");
        let parts: Vec<&Value> = list
            .iter()
            .filter(|p| p["partition_of"] == "orders")
            .collect();
        let done = group.is_some_and(|g| g["status"] == "PARTITIONED" && g["partitions"] == 4)
            && parts.len() == 4
            && parts
                .iter()
                .all(|p| p["status"] == "LIVE" && p["lag_events"] == 0);
        if done {
            return list;
        }
        assert!(
            Instant::now() < deadline,
            "orders never ran as 4 LIVE partitions: {list:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn partition_rows(app: &TestApp) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT name, applied FROM consumer_checkpoints WHERE partition_of = 'orders' ORDER BY name",
    )
    .fetch_all(&app.pool)
    .await
    .expect("partition rows")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn four_partitions_in_two_processes_build_what_one_consumer_builds_through_a_sigkill(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "9.99", 1_000).await;
    let mut placed: Vec<Uuid> = Vec::new();
    for _ in 0..8 {
        let order = app.order_and_pay(&customer.token, product, address()).await;
        placed.push(order["id"].as_str().expect("id").parse().expect("uuid"));
    }
    app.settle().await;

    // Bad settings are refused before anything starts.
    refused(
        &app,
        &["project", "--only", "catalog", "--partitions", "2"],
        "cannot run as partitions",
    )
    .await;
    refused(
        &app,
        &[
            "project",
            "--only",
            "orders",
            "--partitions",
            "4",
            "--partition",
            "4",
        ],
        "partition 4 is out of range",
    )
    .await;
    refused(
        &app,
        &["project", "--only", "orders", "--partitions", "1"],
        "--partitions",
    )
    .await;
    refused(&app, &["project", "--partitions", "4"], "--only").await;
    assert!(
        partition_rows(&app).await.is_empty(),
        "a refusal changed something"
    );

    // Process a runs partitions 0 and 1, process b all four (standby for 0 and 1).
    let mut a = partition_process(&app, Some("0,1"));
    let mut b = partition_process(&app, None);
    wait_partitions_live(&app, &admin).await;

    // Another process asking for a different number of partitions is refused, changing nothing.
    refused(
        &app,
        &["project", "--only", "orders", "--partitions", "2"],
        "already runs as 4 partitions, not 2",
    )
    .await;
    assert_eq!(partition_rows(&app).await.len(), 4);

    // Traffic, with a SIGKILL of process a in the middle: b's standbys take over.
    for i in 0..24 {
        if i == 8 {
            a.start_kill().expect("SIGKILL process a");
        }
        let order = app.order_and_pay(&customer.token, product, address()).await;
        placed.push(order["id"].as_str().expect("id").parse().expect("uuid"));
    }
    let _ = a.wait().await;
    app.settle().await;
    let list = wait_partitions_live(&app, &admin).await;
    let names: Vec<&str> = list
        .iter()
        .filter(|p| p["partition_of"] == "orders")
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["orders.p0", "orders.p1", "orders.p2", "orders.p3"]);
    let rows = partition_rows(&app).await;
    assert!(
        rows.iter().all(|(_, applied)| *applied > 0),
        "a partition applied nothing: {rows:?}"
    );

    // Every order reads back through the API with its final state...
    for id in &placed {
        let order = app
            .get(&format!("/api/v1/orders/{id}"), Some(&customer.token))
            .await
            .expect(200);
        assert_eq!(order.data()["payment_status"], "PAID", "{:#}", order.data());
    }
    // ...and the partitions built exactly what one consumer replaying the log builds.
    let out = run(commerce(&app).args(["replay", "orders", "--verify"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // A rebuild swaps in while the partitions run, and they go on from where it ends.
    let out = run(commerce(&app).args(["replay", "orders"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let order = app.order_and_pay(&customer.token, product, address()).await;
    app.settle().await;
    app.get(
        &format!("/api/v1/orders/{}", order["id"].as_str().expect("id")),
        Some(&customer.token),
    )
    .await
    .expect(200);
    let out = run(commerce(&app).args(["replay", "orders", "--verify"])).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    let _ = b.start_kill();
    let _ = b.wait().await;
    app.stop().await;
}
