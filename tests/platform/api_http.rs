//! HTTP hygiene of the whole application: the OpenAPI document and docs, request ids, security
//! headers, rate limits and proxies, body limits, content types, timeouts, CORS, unknown routes.

use crate::support::{Options, TestApp};
use commerce_event_store::db::MIGRATOR;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn options(args: &[(&str, &str)]) -> Options {
    Options {
        args: args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_openapi_document_is_3_1_complete_and_served_with_interactive_docs(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let spec = app.get("/api/v1/openapi.json", None).await.expect(200).body;
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        spec["openapi"]
    );
    let paths = spec["paths"].as_object().unwrap();
    let operations: usize = paths
        .values()
        .map(|item| {
            ["get", "post", "put", "delete"]
                .iter()
                .filter(|m| item.get(**m).is_some())
                .count()
        })
        .sum();
    assert!(operations >= 50, "only {operations} operations documented");
    let mut all = Vec::new();
    refs(&spec, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .expect("a schema ref");
        assert!(
            spec["components"]["schemas"].get(name).is_some(),
            "{r} is referenced but not defined"
        );
    }
    // Every documented path is routed: a request never falls through to the unknown-route 404.
    for (path, item) in paths {
        let concrete = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') {
                    "00000000-0000-0000-0000-000000000000"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        for method in ["get", "post", "put", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            let resp = app
                .request(
                    method.to_uppercase().parse().unwrap(),
                    &concrete,
                    None,
                    Some(json!({})),
                    &[],
                )
                .await;
            let unrouted = resp.status == 404
                && resp.body["error"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("no route");
            assert!(
                !unrouted && resp.status != 405,
                "{method} {path} is documented but not routed: {} {}",
                resp.status,
                resp.body
            );
        }
    }
    let docs = app.get("/docs/", None).await.expect(200);
    assert!(docs
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn request_ids_are_echoed_or_created_and_security_headers_are_set(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let echoed = app
        .request(
            Method::GET,
            "/api/v1/categories",
            None,
            None,
            &[("x-request-id", "req-abc-123")],
        )
        .await
        .expect(200);
    assert_eq!(
        echoed.header("x-request-id").as_deref(),
        Some("req-abc-123")
    );
    let fresh = app.get("/api/v1/categories", None).await;
    let id = fresh.header("x-request-id").unwrap();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let long = "x".repeat(300);
    let replaced = app
        .request(
            Method::GET,
            "/api/v1/categories",
            None,
            None,
            &[("x-request-id", &long)],
        )
        .await;
    assert_ne!(replaced.header("x-request-id").unwrap(), long);

    for h in [
        "x-content-type-options",
        "x-frame-options",
        "content-security-policy",
        "referrer-policy",
    ] {
        assert!(fresh.header(h).is_some(), "missing {h}");
    }
    assert_eq!(
        fresh.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    let missing = app.get("/api/v1/nothing-here", None).await.expect(404);
    assert_eq!(missing.body["code"], "not_found");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bodies_must_be_json_and_at_most_one_mebibyte(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let before = app.event_count().await;
    let url = format!("{}/api/v1/categories", app.base);
    let huge = format!(r#"{{"name": "{}"}}"#, "a".repeat(1024 * 1024 + 10));
    let resp = app
        .client
        .post(&url)
        .bearer_auth(&admin.token)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["code"], "payload_too_large");

    let xml = app
        .client
        .post(&url)
        .bearer_auth(&admin.token)
        .header("content-type", "application/xml")
        .body("<name>x</name>")
        .send()
        .await
        .unwrap();
    assert_eq!(xml.status().as_u16(), 415);

    let malformed = app
        .client
        .post(&url)
        .bearer_auth(&admin.token)
        .header("content-type", "application/json")
        .body(r#"{"name": "#)
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    let body: Value = malformed.json().await.unwrap();
    assert_eq!(body["code"], "malformed_json");
    assert_eq!(
        app.event_count().await,
        before,
        "rejected requests appended events"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_client_over_its_rate_gets_429_with_retry_after_and_cannot_dodge_it_with_forwarded_for(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app =
        TestApp::spawn_with(&c, options(&[("--rate-limit", "1"), ("--rate-burst", "3")])).await;
    let mut statuses = Vec::new();
    for i in 0..5 {
        let spoof = format!("10.0.0.{i}");
        let resp = app
            .request(
                Method::GET,
                "/api/v1/categories",
                None,
                None,
                &[("x-forwarded-for", &spoof)],
            )
            .await;
        assert_eq!(resp.header("x-ratelimit-limit").as_deref(), Some("1"));
        assert!(resp.header("x-ratelimit-remaining").is_some());
        assert!(resp.header("x-ratelimit-reset").is_some());
        if resp.status == 429 {
            assert!(resp.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
            assert_eq!(resp.body["code"], "rate_limited");
        }
        statuses.push(resp.status);
    }
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert_eq!(
        &statuses[3..],
        &[429, 429],
        "X-Forwarded-For from an untrusted peer changed the bucket"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn forwarded_for_from_a_trusted_proxy_names_the_client(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn_with(
        &c,
        options(&[
            ("--rate-limit", "1"),
            ("--rate-burst", "1"),
            ("--trusted-proxies", "127.0.0.1"),
        ]),
    )
    .await;
    for i in 0..4 {
        let client = format!("203.0.113.{i}");
        app.request(
            Method::GET,
            "/api/v1/categories",
            None,
            None,
            &[("x-forwarded-for", &client)],
        )
        .await
        .expect(200);
    }
    let again = app
        .request(
            Method::GET,
            "/api/v1/categories",
            None,
            None,
            &[("x-forwarded-for", "203.0.113.0")],
        )
        .await;
    assert_eq!(
        again.status, 429,
        "the same client behind the proxy shares one bucket"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_request_slower_than_the_timeout_gets_a_503(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn_with(&c, options(&[("--request-timeout", "1ns")])).await;
    let resp = app.get("/api/v1/categories", None).await.expect(503);
    assert_eq!(resp.body["code"], "unavailable");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn cors_allows_only_configured_origins(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn_with(&c, options(&[("--cors-origins", "https://shop.example")])).await;
    let preflight = |origin: &'static str| {
        app.client
            .request(Method::OPTIONS, format!("{}/api/v1/products", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://shop.example").await.unwrap();
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .unwrap(),
        "https://shop.example"
    );
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(refused
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    app.stop().await;
}
