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

/// Creates the database named in `url` if it does not exist yet. Any number of processes may
/// run this at once (pods starting together): when another one creates the database between our
/// check and our `CREATE DATABASE`, Postgres answers `duplicate_database`, or a unique violation
/// on `pg_database` when both inserts race in the catalog; either means it exists now.
pub async fn create_database_if_missing(url: &str) -> Result<(), StoreError> {
    if Postgres::database_exists(url)
        .await
        .map_err(|e| connect_error(url, e))?
    {
        return Ok(());
    }
    match Postgres::create_database(url).await {
        Ok(()) => {
            tracing::info!(database = %describe_database_url(url), "created database");
            Ok(())
        }
        Err(sqlx::Error::Database(e))
            if matches!(
                e.code().as_deref(),
                Some(DUPLICATE_DATABASE | UNIQUE_VIOLATION)
            ) =>
        {
            tracing::debug!(database = %describe_database_url(url), "created concurrently by another process");
            Ok(())
        }
        Err(e) if is_unreachable(&e) => Err(connect_error(url, e)),
        Err(source) => Err(StoreError::CreateDatabase {
            target: describe_database_url(url),
            source,
        }),
    }
}

/// SQLSTATE of `CREATE DATABASE` for a name that exists.
const DUPLICATE_DATABASE: &str = "42P04";
/// SQLSTATE of two `CREATE DATABASE` of one name racing on `pg_database_datname_index`.
const UNIQUE_VIOLATION: &str = "23505";

/// Whether a connection attempt failed without the server answering (so "cannot reach" is true).
fn is_unreachable(error: &sqlx::Error) -> bool {
    matches!(
        error,
        sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
    )
}

/// A failed connection attempt, named by its real cause: [`StoreError::Unreachable`] only when
/// the server never answered, [`StoreError::Refused`] when it answered no.
fn connect_error(url: &str, source: sqlx::Error) -> StoreError {
    let target = describe_database_url(url);
    if is_unreachable(&source) {
        StoreError::Unreachable { target, source }
    } else {
        StoreError::Refused { target, source }
    }
}

/// Connections idle longer than this are pinged before use.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(1);

/// A connection pool of at most `max_connections`, failing fast when Postgres is unreachable.
pub async fn connect(url: &str, max_connections: u32) -> Result<PgPool, StoreError> {
    let options: PgConnectOptions = url.parse().map_err(StoreError::InvalidUrl)?;
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
        .map_err(|source| connect_error(url, source))
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
