//! Reaching Postgres: create the database if it is missing, connect, apply migrations.

use std::time::Duration;

use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool, Postgres};

use crate::StoreError;

/// The schema: every migration in the workspace's `migrations/` folder.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// `host:port/database` of a Postgres URL, without user or password, for messages and logs.
pub fn describe_database_url(url: &str) -> String {
    match url.parse::<PgConnectOptions>() {
        Ok(opts) => format!(
            "{}:{}/{}",
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or("")
        ),
        Err(_) => "an unparsable DATABASE_URL".to_owned(),
    }
}

/// Creates the database named in `url` if it does not exist yet.
pub async fn create_database_if_missing(url: &str) -> Result<(), StoreError> {
    let unreachable = |source| StoreError::Unreachable {
        target: describe_database_url(url),
        source,
    };
    if !Postgres::database_exists(url).await.map_err(unreachable)? {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!(database = %describe_database_url(url), "created database"),
            // Another process created it between our check and our create.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(unreachable(e)),
        }
    }
    Ok(())
}

/// Connections idle longer than this are pinged before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// A connection pool of at most `max_connections`, failing fast when Postgres is unreachable.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url.parse().map_err(|e| StoreError::Unreachable {
        target: describe_database_url(url),
        source: e,
    })?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // A round trip on every checkout is a fifth of a short query's cost: ping only the
        // connections that sat idle long enough to have been cut (a Postgres restart, a proxy).
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
        .connect_with(options)
        .await
        .map_err(|source| StoreError::Unreachable {
            target: describe_database_url(url),
            source,
        })
}

/// Creates the database if needed, connects and applies pending migrations.
pub async fn prepare(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    create_database_if_missing(url).await?;
    let pool = connect(url, max_connections).await?;
    migrate(&pool).await?;
    Ok(pool)
}

/// Applies pending migrations (safe to run from several processes at once: sqlx takes a lock).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await.map_err(StoreError::Migrate)
}

/// Whether every migration this binary knows is applied (for readiness checks).
pub async fn migrations_applied(pool: &PgPool) -> Result<bool, StoreError> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await?;
    Ok(MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .all(|m| applied.contains(&m.version)))
}
