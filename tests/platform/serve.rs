//! `serve` in-process: it prepares the database, reports ready, and relays what is appended.

use std::time::Duration;

use clap::Parser;
use commerce::app::{self, Parts};
use commerce::cli::Cli;
use commerce::config::{Environment, Settings};
use commerce_event_store::{db::MIGRATOR, relay, LogReader};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal HTTP/1.1 GET, enough for the operations endpoints.
async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response[9..12].parse().unwrap();
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn serve_is_ready_and_relays_appended_events(
    _opts: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let database = connect.get_database().unwrap().to_owned();
    let cli = Cli::parse_from([
        "commerce".to_owned(),
        "--database-url".to_owned(),
        format!("postgres://postgres@127.0.0.1:5432/{database}"),
        "--namespace".to_owned(),
        format!("test-{}", uuid::Uuid::new_v4().simple()),
        "--listen-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--queue-type".to_owned(),
        "classic".to_owned(),
        "serve".to_owned(),
    ]);
    let args = cli.global;
    let settings = Settings::from_args(&args, Environment::Dev).unwrap();
    let running = app::start(&settings, Parts::ALL).await.unwrap();
    let addr = running.api_addr.unwrap();

    assert_eq!(get(addr, "/health").await.0, 200);
    let (status, body) = get(addr, "/ready").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"rabbitmq\":{\"status\":\"ok\"}"), "{body}");

    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         VALUES ('Order', 'o1', 1, 'OrderPlaced', '1.0', '{}', '{}')",
    )
    .execute(&running.pool)
    .await
    .unwrap();
    let head = LogReader::new(running.pool.clone()).head().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let cursor = relay::relay_cursor(&running.pool, &settings.broker.namespace)
            .await
            .unwrap();
        if cursor.map(|(p, _)| p) == Some(head) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay never published the event"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The counter moves just after the cursor is saved.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, metrics) = get(addr, "/metrics").await;
        assert_eq!(status, 200);
        if metrics.contains("relay_published_total") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    running.stop().await;
    if let Ok(conn) = settings.broker.connect("test-cleanup").await {
        if let Ok(ch) = conn.create_channel().await {
            let _ = ch
                .exchange_delete(settings.broker.exchange().into(), Default::default())
                .await;
        }
    }
}
