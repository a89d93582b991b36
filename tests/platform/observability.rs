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

/// Debian's `prometheus` (the server beside promtool; `scripts/test` installs the package) run
/// with the shipped `prometheus.yml` and `alerts.yml`, its targets pointed at a running platform:
/// it scrapes the platform, loads every shipped rule and evaluates each without error, and
/// `ready` reads 1. What `docker compose --profile observability up` starts, minus Docker.
#[sqlx::test(migrator = "MIGRATOR")]
async fn prometheus_scrapes_the_platform_and_evaluates_every_shipped_rule(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let root = env!("CARGO_MANIFEST_DIR");
    let app = TestApp::spawn(&c).await;
    let target = app.base.trim_start_matches("http://").to_owned();

    // The shipped configuration, with the compose file's service names replaced by this
    // platform's address and the rules' path by the repository's.
    let shipped = std::fs::read_to_string(format!("{root}/deploy/prometheus/prometheus.yml"))
        .expect("the shipped prometheus.yml");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&shipped).expect("YAML");
    config["global"]["scrape_interval"] = "1s".into();
    config["global"]["evaluation_interval"] = "1s".into();
    config["rule_files"] = vec![serde_yaml::Value::from(format!(
        "{root}/deploy/prometheus/alerts.yml"
    ))]
    .into();
    let jobs = config["scrape_configs"]
        .as_sequence_mut()
        .expect("scrape_configs");
    jobs.retain(|job| job["job_name"] == "commerce-api");
    assert_eq!(jobs.len(), 1, "the shipped config scrapes the api");
    jobs[0]["static_configs"] =
        serde_yaml::from_str(&format!("[{{targets: [\"{target}\"]}}]")).expect("targets");
    let dir = std::env::temp_dir().join(format!("commerce-prometheus-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("a directory");
    let config_path = dir.join("prometheus.yml");
    std::fs::write(&config_path, serde_yaml::to_string(&config).expect("YAML")).expect("write");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let binary = std::env::var("PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
    let mut server = tokio::process::Command::new(&binary)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {binary} ({e}): install Debian's prometheus (scripts/test does)")
        });
    let api = format!("http://127.0.0.1:{port}/api/v1");
    let get = |path: String| {
        let client = app.client.clone();
        async move {
            let answer = client.get(path).send().await.ok()?;
            answer.json::<Value>().await.ok()
        }
    };
    let groups_shipped = std::fs::read_to_string(format!("{root}/deploy/prometheus/alerts.yml"))
        .expect("alerts.yml")
        .lines()
        .filter(|l| l.trim_start().starts_with("- alert:"))
        .count();

    let deadline = Instant::now() + Duration::from_secs(60);
    let outcome = loop {
        let targets = get(format!("{api}/targets")).await;
        let rules = get(format!("{api}/rules")).await;
        let ready = get(format!("{api}/query?query=ready")).await;
        let up = targets.as_ref().is_some_and(|t| {
            t["data"]["activeTargets"]
                .as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(|t| t["health"] == "up"))
        });
        let evaluated: Vec<Value> = rules
            .as_ref()
            .and_then(|r| r["data"]["groups"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let all_ok =
            evaluated.len() == groups_shipped && evaluated.iter().all(|r| r["health"] == "ok");
        let ready_one = ready.as_ref().is_some_and(|q| {
            q["data"]["result"]
                .as_array()
                .is_some_and(|r| r.iter().any(|s| s["value"][1] == "1"))
        });
        if up && all_ok && ready_one {
            break Ok(evaluated);
        }
        if Instant::now() > deadline {
            break Err(format!(
                "targets up: {up}, rules {}/{groups_shipped} ok: {all_ok}, ready 1: {ready_one}; \
                 rules: {evaluated:#?}",
                evaluated.len()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let _ = server.start_kill();
    let _ = server.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    app.stop().await;
    let evaluated = outcome.unwrap_or_else(|e| panic!("{e}"));
    // Nothing is wrong with a healthy platform: no alert fires (pending or firing).
    let active: Vec<&Value> = evaluated
        .iter()
        .filter(|r| r["alerts"].as_array().is_some_and(|a| !a.is_empty()))
        .collect();
    assert!(
        active.is_empty(),
        "alerts on a healthy platform: {active:#?}"
    );
}
