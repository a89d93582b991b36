//! The shipped dashboards and alert rules watch metrics the platform really exports: every
//! metric a Grafana panel or a Prometheus rule names (`deploy/`) appears in a running platform's
//! `/metrics` once it has served traffic, appended and published events, fired a saga deadline
//! and shared its rate limits through Redis. (`promtool check rules` and `promtool test rules`
//! check the rules themselves, in `.ci/run`.)

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use commerce_event_store::db::MIGRATOR;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::scale_redis::PrivateRedis;
use crate::support::{Options, TestApp};

/// The metric names in PromQL `expr`: identifiers with an underscore that are not functions
/// (no label the platform uses has one), and `ready`.
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    const FUNCTIONS: &[&str] = &["histogram_quantile", "label_replace", "absent_over_time"];
    let mut word = String::new();
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c.is_ascii_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            if (word.contains('_') && !FUNCTIONS.contains(&word.as_str()) || word == "ready")
                && !word.starts_with(|c: char| c.is_ascii_digit())
            {
                into.insert(word.clone());
            }
            word.clear();
        }
    }
}

fn wanted() -> BTreeSet<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut names = BTreeSet::new();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/deploy/grafana/dashboards/commerce.json"))
            .expect("the dashboard"),
    )
    .expect("JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            metric_names(target["expr"].as_str().expect("expr"), &mut names);
        }
    }
    let rules = std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml"))
        .expect("the alert rules");
    // Each rule's `expr:` and its continuation lines (folded YAML).
    let mut in_expr = false;
    for line in rules.lines() {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix("expr:") {
            in_expr = rest.trim() == ">-";
            metric_names(rest, &mut names);
        } else if in_expr && !trimmed.contains(':') {
            metric_names(trimmed, &mut names);
        } else {
            in_expr = false;
        }
    }
    names
}

#[test]
fn the_names_are_read_from_every_panel_and_rule() {
    let names = wanted();
    for name in [
        "consumer_state",
        "consumer_lag_seconds",
        "relay_published_total",
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "saga_deadlines_pending",
        "ready",
        "rate_limit_shared",
    ] {
        assert!(names.contains(name), "{name} missing from {names:?}");
    }
    assert!(!names.contains("histogram_quantile"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_metric_the_dashboards_and_alerts_use_is_exported(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let redis = PrivateRedis::start().await;
    let options = Options {
        args: vec![
            ("--redis-url".to_owned(), redis.url()),
            ("--payment-timeout".to_owned(), "1s".to_owned()),
        ],
    };
    let app = TestApp::spawn_with(&c, options).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "4.00", 10).await;
    // Paid: commands, events, relay, projections. Unpaid: the saga's deadline fires.
    app.order_and_pay(&customer.token, product, json!("5 Oak St, Capital City"))
        .await;
    app.post(
        "/api/v1/orders",
        Some(&customer.token),
        json!({"shipping_address": "5 Oak St, Capital City", "payment_method": "card",
               "items": [{"product_id": product, "quantity": 1}]}),
    )
    .await
    .expect(201);
    let wanted = wanted();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = app
            .client
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let exported: BTreeSet<String> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_owned)
            .collect();
        let missing: Vec<&String> = wanted.iter().filter(|n| !exported.contains(*n)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "named by deploy/ but never exported: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    app.stop().await;
}
