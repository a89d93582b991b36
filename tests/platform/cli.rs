//! The `commerce` binary as an operator meets it: clear failures, migrations, log and status
//! commands, and no secrets in its help.

use std::process::Output;

use sqlx::PgPool;
use tokio::process::Command;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432";

fn commerce() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_commerce"));
    cmd.env_remove("DATABASE_URL")
        .env_remove("AMQP_URL")
        .env("DATA_KEY", crate::support::DATA_KEY)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A database name no other test uses; dropped by [`drop_database`].
fn fresh_database() -> (String, String) {
    let name = format!("commerce_cli_{}", uuid::Uuid::new_v4().simple());
    (format!("{SERVER}/{name}"), name)
}

async fn drop_database(name: &str) {
    if let Ok(pool) = PgPool::connect(&format!("{SERVER}/postgres")).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&pool)
            .await;
    }
}

async fn run(cmd: &mut Command) -> Output {
    tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finished in time")
        .expect("the binary runs")
}

#[tokio::test]
async fn serve_names_an_unreachable_postgres_and_exits_non_zero() {
    let out = run(commerce()
        .args(["serve", "--listen-addr", "127.0.0.1:0"])
        .env(
            "DATABASE_URL",
            "postgres://postgres:hunter2@127.0.0.1:1/commerce",
        ))
    .await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach Postgres at 127.0.0.1:1/commerce"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("hunter2"),
        "{stderr}"
    );
}

#[tokio::test]
async fn serve_names_an_unreachable_rabbitmq_and_exits_non_zero() {
    let (url, name) = fresh_database();
    let out = run(commerce()
        .args(["serve", "--listen-addr", "127.0.0.1:0"])
        .env("DATABASE_URL", &url)
        .env("AMQP_URL", "amqp://guest:s3cret@127.0.0.1:1/%2f"))
    .await;
    drop_database(&name).await;
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach RabbitMQ at 127.0.0.1:1"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("s3cret"),
        "{stderr}"
    );
}

/// "cannot reach" only when Postgres never answered: a server that refuses the role, a
/// `CREATE DATABASE` it denies and a migration that fails each say what happened.
#[tokio::test]
async fn a_reachable_postgres_that_refuses_is_never_called_unreachable() {
    let admin = PgPool::connect(&format!("{SERVER}/postgres"))
        .await
        .unwrap();
    let role = format!("commerce_cli_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE ROLE {role} LOGIN NOCREATEDB"))
        .execute(&admin)
        .await
        .unwrap();
    let (url, name) = fresh_database();
    let missing_role = url.replace("postgres@", "nobody_at_all@");
    let without_createdb = url.replace("postgres@", &format!("{role}@"));
    // A database whose `events` table is not ours: the first migration fails on it.
    let (taken_url, taken) = fresh_database();
    sqlx::query(&format!("CREATE DATABASE {taken}"))
        .execute(&admin)
        .await
        .unwrap();
    let taken_pool = PgPool::connect(&taken_url).await.unwrap();
    sqlx::query("CREATE TABLE events (id int)")
        .execute(&taken_pool)
        .await
        .unwrap();
    taken_pool.close().await;

    for (database_url, expected) in [
        (missing_role.as_str(), "refused the connection"),
        (without_createdb.as_str(), "cannot create the database"),
        (taken_url.as_str(), "migration failed"),
    ] {
        let out = run(commerce().arg("migrate").env("DATABASE_URL", database_url)).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(expected), "{database_url}: {stderr}");
        assert!(!stderr.contains("cannot reach"), "{database_url}: {stderr}");
    }
    drop_database(&name).await;
    drop_database(&taken).await;
    let _ = sqlx::query(&format!("DROP ROLE {role}"))
        .execute(&admin)
        .await;
}

#[tokio::test]
async fn help_never_shows_connection_secrets() {
    let out = run(commerce()
        .arg("--help")
        .env("DATABASE_URL", "postgres://app:pg-secret@db/commerce")
        .env("AMQP_URL", "amqp://app:mq-secret@mq:5672/%2f")
        .env("JWT_SECRET", "jwt-secret-from-the-environment-0123456789")
        .env("SMTP_URL", "smtp://mailer:smtp-secret@mail:25"))
    .await;
    let help = text(&out.stdout);
    assert!(out.status.success());
    assert!(
        help.contains("--database-url")
            && help.contains("--amqp-url")
            && help.contains("--jwt-secret")
            && help.contains("--smtp-url"),
        "{help}"
    );
    for secret in [
        "pg-secret",
        "mq-secret",
        "guest",
        "jwt-secret-from",
        "smtp-secret",
    ] {
        assert!(!help.contains(secret), "{secret} shown in {help}");
    }
}

#[tokio::test]
async fn migrate_creates_a_missing_database_and_the_log_commands_read_it() {
    let (url, name) = fresh_database();
    let out = run(commerce().arg("migrate").env("DATABASE_URL", &url)).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Running it again is harmless.
    let again = run(commerce().arg("migrate").env("DATABASE_URL", &url)).await;
    assert!(again.status.success(), "{}", text(&again.stderr));

    let pool = PgPool::connect(&url).await.unwrap();
    for (id, seq, kind) in [
        ("o1", 1, "OrderPlaced"),
        ("o2", 1, "OrderPlaced"),
        ("o1", 2, "OrderShipped"),
    ] {
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
             VALUES ('Order', $1, $2, $3, '1.0', '{}', '{\"actor\": \"u1\", \"correlation_id\": \"req-9\"}')",
        )
        .bind(id)
        .bind(seq)
        .bind(kind)
        .execute(&pool)
        .await
        .unwrap();
    }
    pool.close().await;

    let tail = run(commerce()
        .args(["events", "tail", "--json"])
        .env("DATABASE_URL", &url))
    .await;
    assert!(tail.status.success(), "{}", text(&tail.stderr));
    let events: Vec<serde_json::Value> = text(&tail.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["OrderPlaced", "OrderPlaced", "OrderShipped"]);
    assert_eq!(events[0]["metadata"]["correlation_id"], "req-9");

    let last = run(commerce()
        .args(["events", "tail", "-n", "1"])
        .env("DATABASE_URL", &url))
    .await;
    let last_out = text(&last.stdout);
    assert_eq!(last_out.lines().count(), 1, "{last_out}");
    assert!(
        last_out.contains("Order/o1 v2 OrderShipped actor=u1"),
        "{last_out}"
    );

    let stream = run(commerce()
        .args(["events", "stream", "Order", "o1"])
        .env("DATABASE_URL", &url))
    .await;
    let stream_out = text(&stream.stdout);
    assert_eq!(stream_out.lines().count(), 2, "{stream_out}");
    let missing = run(commerce()
        .args(["events", "stream", "Order", "nope"])
        .env("DATABASE_URL", &url))
    .await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no events for Order nope"));

    let status = run(commerce()
        .args(["projections", "status", "--json"])
        .env("DATABASE_URL", &url))
    .await;
    assert!(status.status.success(), "{}", text(&status.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status is JSON");
    assert!(doc["consumers"].is_array(), "{doc}");

    let retry = run(commerce()
        .args(["projections", "retry", "nobody"])
        .env("DATABASE_URL", &url))
    .await;
    assert_eq!(retry.status.code(), Some(1));
    assert!(
        text(&retry.stderr).contains("no consumer named \"nobody\""),
        "{}",
        text(&retry.stderr)
    );
    drop_database(&name).await;
}

#[tokio::test]
async fn replay_rebuilds_every_read_model_and_refuses_unknown_names() {
    let (url, name) = fresh_database();
    let all = run(commerce()
        .args(["replay", "--all"])
        .env("DATABASE_URL", &url))
    .await;
    let stdout = text(&all.stdout);
    assert!(all.status.success(), "{}", text(&all.stderr));
    for projection in [
        "users",
        "catalog",
        "categories",
        "inventory",
        "carts",
        "orders",
        "payments",
        "reviews",
    ] {
        assert!(
            stdout.contains(&format!("{projection}: rebuilt from 0 events")),
            "{stdout}"
        );
    }
    assert!(text(&all.stderr).contains("100.0%"), "progress is shown");

    let verify = run(commerce()
        .args(["replay", "orders", "--verify"])
        .env("DATABASE_URL", &url))
    .await;
    assert!(
        text(&verify.stdout).contains("orders: verified against 0 events"),
        "{}",
        text(&verify.stdout)
    );

    let unknown = run(commerce()
        .args(["replay", "nope"])
        .env("DATABASE_URL", &url))
    .await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        text(&unknown.stderr).contains("unknown projection \"nope\""),
        "{}",
        text(&unknown.stderr)
    );
    drop_database(&name).await;
}
