//! Many API instances act as one: with `REDIS_URL`, every `commerce api` process takes from the
//! same rate-limit buckets; when Redis goes away the API keeps serving on per-process buckets,
//! says so in `/ready` and `/metrics`, and shares again once Redis is back; an unreachable Redis
//! at start is a clear error that changes nothing.
//!
//! Each test runs a Redis server of its own (`redis-server` on a free port, nothing on disk), so
//! tests never share buckets and one can stop its Redis without touching the others.

use std::process::Stdio;
use std::time::{Duration, Instant};

use commerce_event_store::db::MIGRATOR;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::process::{Child, Command};

use crate::api_own_writes::OtherApi;
use crate::support::TestApp;

/// A private Redis server.
pub(crate) struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    pub(crate) async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut redis = Self { port, child: None };
        redis.restart().await;
        redis
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts (Debian's redis-server package)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.exists("ping-probe").await.is_none() {
            assert!(Instant::now() < deadline, "redis-server did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("redis stops");
        }
    }

    /// Whether `key` exists; `None` when Redis does not answer.
    async fn exists(&self, key: &str) -> Option<bool> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut connection = tokio::time::timeout(
            Duration::from_millis(500),
            client.get_multiplexed_async_connection(),
        )
        .await
        .ok()?
        .ok()?;
        redis::cmd("EXISTS")
            .arg(key)
            .query_async::<bool>(&mut connection)
            .await
            .ok()
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn three_api_instances_share_one_rate_limit_through_redis(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let redis = PrivateRedis::start().await;
    let url = redis.url();
    let (rate, burst) = (40.0, 40.0);
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(OtherApi::start_with(&app, "40", "40", &["--redis-url", &url]).await);
    }
    // Let the buckets the readiness probes took from fill up again.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Eight clients at once, one address, spread over the three instances for 3 seconds.
    let started = Instant::now();
    let until = started + Duration::from_secs(3);
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let client = app.client.clone();
        let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();
        tasks.push(tokio::spawn(async move {
            let (mut allowed, mut refused, mut other) = (0u32, 0u32, Vec::new());
            let mut i = worker;
            while Instant::now() < until {
                let base = &bases[i % bases.len()];
                i += 1;
                let status = client
                    .get(format!("{base}/api/v1/categories"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                match status {
                    200 => allowed += 1,
                    429 => refused += 1,
                    s => other.push(s),
                }
            }
            (allowed, refused, other)
        }));
    }
    let (mut allowed, mut refused) = (0, 0);
    for task in tasks {
        let (a, r, other) = task.await.expect("worker");
        assert!(other.is_empty(), "only 200 and 429: {other:?}");
        allowed += a;
        refused += r;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let expected = burst + rate * elapsed;
    let off = (f64::from(allowed) - expected).abs() / expected;
    assert!(refused > 0, "the clients sent more than the limit");
    assert!(
        off <= 0.10,
        "{allowed} allowed in {elapsed:.2} s across three instances; one shared limit allows \
         {expected:.0} (each instance on its own would allow three times that)"
    );
    assert_eq!(
        redis
            .exists(&format!(
                "{}:ratelimit:127.0.0.1",
                app.settings.broker.namespace
            ))
            .await,
        Some(true)
    );
    drop(instances);
    app.stop().await;
}

async fn ready(app: &TestApp, base: &str) -> (u16, serde_json::Value) {
    let response = app
        .client
        .get(format!("{base}/ready"))
        .send()
        .await
        .expect("answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn shared_gauge(app: &TestApp, base: &str) -> Option<String> {
    let text = app
        .client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find(|l| l.starts_with("rate_limit_shared "))
        .map(|l| l.trim_start_matches("rate_limit_shared ").trim().to_owned())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_api_keeps_serving_while_redis_is_away_and_shares_again_when_it_is_back(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let api = OtherApi::start_with(&app, "100000", "100000", &["--redis-url", &url]).await;
    let key = format!("{}:ratelimit:127.0.0.1", app.settings.broker.namespace);
    let traffic = |n: usize| {
        let client = app.client.clone();
        let base = api.base.clone();
        async move {
            let mut statuses = Vec::new();
            for _ in 0..n {
                let started = Instant::now();
                let status = client
                    .get(format!("{base}/api/v1/categories"))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                statuses.push((status, started.elapsed()));
            }
            statuses
        }
    };

    for (status, _) in traffic(20).await {
        assert_eq!(status, 200);
    }
    assert_eq!(
        redis.exists(&key).await,
        Some(true),
        "the bucket lives in Redis"
    );
    let (status, body) = ready(&app, &api.base).await;
    assert_eq!(
        (status, &body["checks"]["redis"]["status"]),
        (200, &serde_json::json!("ok"))
    );
    assert_eq!(shared_gauge(&app, &api.base).await.as_deref(), Some("1"));

    // Redis goes away under traffic: every request is still served, promptly.
    redis.stop().await;
    for (status, took) in traffic(50).await {
        assert_eq!(status, 200, "served on per-process buckets");
        assert!(
            took < Duration::from_secs(1),
            "no request waits on the dead Redis: {took:?}"
        );
    }
    let (status, body) = ready(&app, &api.base).await;
    assert_eq!(status, 200, "still ready: {body}");
    assert_eq!(body["checks"]["redis"]["status"], "degraded", "{body}");
    assert!(
        body["checks"]["redis"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("per process") && r.contains(&url)),
        "{body}"
    );
    assert_eq!(shared_gauge(&app, &api.base).await.as_deref(), Some("0"));

    // Back: shared again within seconds, the bucket in the new Redis.
    redis.restart().await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        for (status, _) in traffic(5).await {
            assert_eq!(status, 200);
        }
        if redis.exists(&key).await == Some(true) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the limits never went back to Redis"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, body) = ready(&app, &api.base).await;
    assert_eq!(body["checks"]["redis"]["status"], "ok", "{body}");
    assert_eq!(shared_gauge(&app, &api.base).await.as_deref(), Some("1"));
    drop(api);
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_redis_at_start_is_a_clear_error_and_changes_nothing() {
    let database = format!("never_{}", uuid::Uuid::new_v4().simple());
    let output = Command::new(env!("CARGO_BIN_EXE_commerce"))
        .args([
            "--database-url",
            &format!("postgres://postgres@127.0.0.1:5432/{database}"),
            "--redis-url",
            "redis://:hunter2@127.0.0.1:1",
            "--listen-addr",
            "127.0.0.1:0",
            "api",
        ])
        .env("JWT_SECRET", crate::support::JWT_SECRET)
        .env("DATA_KEY", crate::support::DATA_KEY)
        .output()
        .await
        .expect("runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("redis://127.0.0.1:1") && stderr.contains("REDIS_URL"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "the password is never shown");
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&database)
        .fetch_optional(
            &sqlx::PgPool::connect("postgres://postgres@127.0.0.1:5432/postgres")
                .await
                .expect("postgres"),
        )
        .await
        .expect("query");
    assert!(exists.is_none(), "no database was created");
}
