//! Operations endpoints over HTTP: `/metrics` exposes request, command and lag metrics in
//! Prometheus text format; `/ready` probes every dependency on each call; neither is part of the
//! `/api/v1` contract.

use std::time::{Duration, Instant};

use crate::support::{Options, TestApp};
use commerce_event_store::db::MIGRATOR;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// The `/metrics` text once `ready` holds for it. The lag gauges are refreshed every few seconds
/// and a consumer or the relay appears once it has a cursor, so they may lag the first scrape.
async fn metrics_until(app: &TestApp, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let scrape = app.get("/metrics", None).await.expect(200);
        let text = scrape.body.as_str().unwrap_or_default().to_owned();
        if ready(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "no {what} in /metrics:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sample lines of metric `name` (with labels).
fn samples<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> {
    text.lines().filter(move |l| {
        l.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{'))
    })
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn metrics_expose_request_command_and_lag_figures_per_route_and_aggregate(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let created = app
        .post(
            "/api/v1/categories",
            Some(&admin.token),
            json!({"name": format!("Category {}", Uuid::new_v4().simple())}),
        )
        .await
        .expect(201);
    let id = created.data()["id"].as_str().expect("id").to_owned();
    app.get_after(
        &format!("/api/v1/categories/{id}"),
        None,
        &created.position(),
    )
    .await
    .expect(200);
    app.get(&format!("/api/v1/categories/{}", Uuid::new_v4()), None)
        .await
        .expect(404);

    let scrape = app.get("/metrics", None).await.expect(200);
    assert!(scrape
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain")));
    let text = metrics_until(&app, "catalog and relay lag", |text| {
        samples(text, "consumer_lag_events").any(|l| l.contains(r#"consumer="catalog""#))
            && text.lines().any(|l| l.starts_with("relay_lag_events "))
    })
    .await;

    // Requests per route template (never the raw path with its id), with the status.
    let requests: Vec<&str> = samples(&text, "http_requests_total").collect();
    assert!(
        requests
            .iter()
            .any(|l| l.contains(r#"route="/api/v1/categories""#)
                && l.contains(r#"method="POST""#)
                && l.contains(r#"status="201""#)),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.contains(r#"route="/api/v1/categories/{id}""#)
                && l.contains(r#"status="404""#)),
        "{requests:#?}"
    );
    assert!(!text.contains(&id), "a raw id leaked into a label");

    // Latencies are histograms: buckets, a sum and a count.
    for histogram in ["http_request_duration_seconds", "command_duration_seconds"] {
        for part in ["_bucket", "_sum", "_count"] {
            let name = format!("{histogram}{part}");
            assert!(samples(&text, &name).next().is_some(), "no {name}:\n{text}");
        }
        assert!(text.contains(&format!("# TYPE {histogram} histogram")));
    }
    assert!(
        samples(&text, "command_duration_seconds_count")
            .any(|l| l.contains(r#"aggregate="Category""#) && l.contains(r#"outcome="ok""#)),
        "{text}"
    );
    assert!(
        samples(&text, "events_appended_total").any(|l| l.contains(r#"aggregate="Category""#)),
        "{text}"
    );
    assert!(
        samples(&text, "consumer_lag_seconds").any(|l| l.contains(r#"consumer="catalog""#)),
        "{text}"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn commands_the_domain_refuses_are_timed_under_their_own_outcome(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let before = app.event_count().await;
    // Renaming a category that does not exist reaches the aggregate, which refuses it.
    app.put(
        &format!("/api/v1/categories/{}", Uuid::new_v4()),
        Some(&admin.token),
        json!({"name": "Nowhere"}),
    )
    .await
    .expect(404);
    assert_eq!(app.event_count().await, before);
    let text = metrics_until(&app, "command latency", |text| {
        samples(text, "command_duration_seconds_count")
            .next()
            .is_some()
    })
    .await;
    let refused: Vec<&str> = samples(&text, "command_duration_seconds_count")
        .filter(|l| l.contains(r#"aggregate="Category""#) && l.contains(r#"outcome="rejected""#))
        .collect();
    assert_eq!(refused.len(), 1, "{text}");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn readiness_stays_ready_over_many_probes_and_ops_routes_stay_out_of_the_api_document(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    for _ in 0..20 {
        let ready = app.get("/ready", None).await.expect(200);
        assert_eq!(ready.body["status"], "ready");
        assert_eq!(ready.body["checks"]["rabbitmq"]["status"], "ok");
        assert_eq!(ready.body["checks"]["postgres"]["status"], "ok");
        assert_eq!(ready.body["checks"]["migrations"]["status"], "ok");
    }
    app.get("/health", None).await.expect(200);

    let spec = app.get("/api/v1/openapi.json", None).await.expect(200);
    let paths = spec.body["paths"].as_object().expect("paths");
    for ops in ["/health", "/ready", "/metrics"] {
        assert!(!paths.keys().any(|p| p.ends_with(ops)), "{ops} documented");
    }
    for admin in [
        "/api/v1/admin/projections",
        "/api/v1/admin/projections/{name}/rebuild",
        "/api/v1/admin/events",
        "/api/v1/admin/streams/{aggregate_type}/{aggregate_id}",
    ] {
        assert!(paths.contains_key(admin), "{admin} not documented");
    }
    app.stop().await;
}

/// `METRICS_ADDR`: the scrape endpoint on a listener of its own, so it need not face the
/// internet with the API; the API's address then has no `/metrics`.
#[sqlx::test(migrator = "MIGRATOR")]
async fn with_a_metrics_address_metrics_are_served_there_and_not_beside_the_api(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let options = Options {
        args: vec![("--metrics-addr".to_owned(), "127.0.0.1:0".to_owned())],
    };
    let app = TestApp::spawn_with(&c, options).await;
    let metrics = app.metrics_base.clone().expect("a metrics listener");
    app.get("/api/v1/products", None).await.expect(200);
    let scrape = app
        .client
        .get(format!("{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(scrape.status(), 200);
    let text = scrape.text().await.unwrap();
    assert!(text.contains("http_requests_total"), "{text}");

    app.get("/metrics", None).await.expect(404);
    let api_there = app
        .client
        .get(format!("{metrics}/api/v1/products"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        api_there.status(),
        404,
        "only /metrics on the metrics listener"
    );
    app.stop().await;
}
