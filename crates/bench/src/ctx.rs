//! The bench's own database (created at start, dropped at the end) and broker namespaces, and
//! progress output.

use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use commerce::cli::Cli;
use commerce::config::{Environment, Settings};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

/// What every scenario gets.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The bench database (migrated).
    pub(crate) pool: PgPool,
    /// Its URL.
    pub(crate) database_url: String,
    /// RabbitMQ.
    pub(crate) amqp_url: String,
    /// A short run.
    pub(crate) quick: bool,
    admin: PgConnectOptions,
    database: String,
    started: Instant,
}

impl Ctx {
    /// Creates and migrates a fresh database on the server `database_url` points at.
    pub(crate) async fn create(
        database_url: &str,
        amqp_url: &str,
        quick: bool,
    ) -> anyhow::Result<Self> {
        let base: PgConnectOptions = database_url.parse().context("DATABASE_URL")?;
        let admin = base.clone().database("postgres");
        let database = format!("commerce_bench_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin.connect().await.context("connecting to Postgres")?;
        sqlx::query(&format!("CREATE DATABASE \"{database}\""))
            .execute(&mut conn)
            .await?;
        let url = base.clone().database(&database).to_url_lossy().to_string();
        let pool = commerce_event_store::db::prepare(&url, 80).await?;
        Ok(Self {
            pool,
            database_url: url,
            amqp_url: amqp_url.to_owned(),
            quick,
            admin,
            database,
            started: Instant::now(),
        })
    }

    /// `quick` or `full` of something.
    pub(crate) fn pick<T>(&self, quick: T, full: T) -> T {
        if self.quick {
            quick
        } else {
            full
        }
    }

    /// A namespace no other run uses.
    pub(crate) fn fresh_namespace(&self) -> String {
        format!("bench-{}", uuid::Uuid::new_v4().simple())
    }

    /// Settings of a platform on the bench database in `namespace`, as `commerce` would resolve
    /// them from `extra` flags (e.g. `--listen-addr 127.0.0.1:0`).
    pub(crate) fn settings(
        &self,
        namespace: &str,
        extra: &[(&str, &str)],
    ) -> anyhow::Result<Settings> {
        let mut argv: Vec<String> = vec![
            "commerce".into(),
            "--database-url".into(),
            self.database_url.clone(),
            "--amqp-url".into(),
            self.amqp_url.clone(),
            "--namespace".into(),
            namespace.to_owned(),
            "--env".into(),
            "dev".into(),
            "--jwt-secret".into(),
            "bench-secret-0123456789-abcdefghijklmnopq".into(),
        ];
        for (flag, value) in extra {
            argv.push((*flag).to_owned());
            argv.push((*value).to_owned());
        }
        argv.push("serve".into());
        let cli = Cli::try_parse_from(argv)?;
        Settings::from_args(&cli.global, Environment::Dev)
    }

    /// A progress line on stderr, with the time since the run started.
    pub(crate) fn progress(&self, message: &str) {
        eprintln!("[{:>6.1}s] {message}", self.started.elapsed().as_secs_f64());
    }

    /// A fresh pool of `size` connections on the bench database.
    pub(crate) async fn pool(&self, size: u32) -> anyhow::Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(size)
            .connect(&self.database_url)
            .await?)
    }

    /// Drops the bench database.
    pub(crate) async fn drop_database(&self) -> anyhow::Result<()> {
        self.pool.close().await;
        let mut conn = self.admin.connect().await?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
            self.database
        ))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}
