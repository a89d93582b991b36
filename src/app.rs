//! Starting the platform's long-running parts in this process.
//!
//! `serve` starts them all; `api`, `relay`, `sealer`, `project` and `process` start one kind each. Every part
//! has one `run(…, shutdown)` entry and stops when the shared token is cancelled.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use commerce_api::middleware::shared_limit::{RedisCheck, SharedBuckets};
use commerce_api::{AppState, HealthCheck, OpsState};
use commerce_commands::process::deadlines::DeadlineScheduler;
use commerce_commands::process::order_fulfilment::OrderFulfilmentProcess;
use commerce_commands::Dispatcher;
use commerce_event_store::{
    db, BrokerConfig, ConsumerConfig, DurableConsumer, EventStore, Relay, RelayConfig, Sealer,
    SealerConfig,
};
use commerce_notifications::{NotificationSender, NotificationsProcess};
use futures::future::BoxFuture;
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;

/// Which parts to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts {
    /// The HTTP API.
    pub api: bool,
    /// The relay.
    pub relay: bool,
    /// The sealer (guarantee 10).
    pub sealer: bool,
    /// Projection workers.
    pub projections: bool,
    /// Process managers.
    pub process: bool,
    /// Run only this projection (`project --only NAME`).
    pub only: Option<String>,
    /// Run `only` as partitions (`project --only NAME --partitions N [--partition K]`).
    pub partitions: Option<Partitions>,
}

/// Which partitions of a projection a process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partitions {
    /// How many partitions the projection runs as.
    pub count: u32,
    /// The ones this process runs; empty: all of them.
    pub indexes: Vec<u32>,
}

impl Parts {
    /// Everything (`serve`).
    pub const ALL: Self = Self {
        api: true,
        relay: true,
        sealer: true,
        projections: true,
        process: true,
        only: None,
        partitions: None,
    };
    /// Nothing; combine with struct update syntax.
    pub const NONE: Self = Self {
        api: false,
        relay: false,
        sealer: false,
        projections: false,
        process: false,
        only: None,
        partitions: None,
    };
}

/// A started platform.
#[derive(Debug)]
pub struct RunningApp {
    /// Where the API listens, when it runs.
    pub api_addr: Option<SocketAddr>,
    /// Where `/metrics` listens on its own (`METRICS_ADDR`), when set.
    pub metrics_addr: Option<SocketAddr>,
    /// The Postgres pool (event store and read models).
    pub pool: PgPool,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl RunningApp {
    /// The token that stops every part.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops every part and waits for them.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until every part has stopped (after the token is cancelled).
    pub async fn wait(mut self) {
        while let Some(result) = self.tasks.join_next().await {
            if let Err(error) = result {
                tracing::error!(%error, "a part of the platform panicked");
                self.shutdown.cancel();
            }
        }
    }
}

/// Prepares Postgres (database, migrations), checks RabbitMQ, and starts `parts`.
///
/// Fails fast, naming the dependency and its address, when Postgres or RabbitMQ is unreachable.
pub async fn start(settings: &Settings, parts: Parts) -> anyhow::Result<RunningApp> {
    // Installed before anything records a metric.
    let metrics = crate::telemetry::metrics_handle();
    // Checked before anything starts: prod refuses to run the API with a weak key or a cheap
    // password hash.
    // Every part but the relay and the sealer reads or writes personal data (they move and
    // hash ciphertext only).
    let personal = parts.api || parts.projections || parts.process;
    let jwt_secret = if parts.api {
        settings.check_password_hashing()?;
        settings.configured_jwt_secret()?
    } else {
        None
    };
    if personal {
        settings.check_data_key()?;
    }
    // Before anything is written: an unreachable Redis is a configuration error.
    let shared_limits = match (&settings.redis_url, parts.api) {
        (Some(url), true) => Some(Arc::new(
            SharedBuckets::connect(url, &settings.broker.namespace)
                .await
                .map_err(anyhow::Error::msg)?,
        )),
        _ => None,
    };
    let pool = db::prepare(&settings.database_url, settings.max_db_connections).await?;
    let jwt_secret = match jwt_secret {
        Some(secret) => secret,
        None if parts.api => commerce_api::auth::signing_key::stored_or_generated(&pool)
            .await
            .context("cannot read or store the generated token signing key")?,
        None => String::new(),
    };
    let privacy = if personal {
        Some(settings.keyring(&pool).await?)
    } else {
        None
    };
    check_broker(&settings.broker).await?;

    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();

    if parts.relay {
        let relay = Relay::new(
            pool.clone(),
            settings.broker.clone(),
            RelayConfig {
                poll_interval: settings.relay_poll_interval,
                ..RelayConfig::default()
            },
        );
        tasks.spawn(relay.run(shutdown.clone()));
    }

    if parts.sealer {
        let sealer = Sealer::new(pool.clone(), SealerConfig::default());
        tasks.spawn(sealer.run(shutdown.clone()));
    }

    if parts.projections {
        match (&parts.partitions, parts.only.as_deref()) {
            (Some(partitions), Some(name)) => {
                let indexes: Vec<u32> = if partitions.indexes.is_empty() {
                    (0..partitions.count).collect()
                } else {
                    partitions.indexes.clone()
                };
                commerce_projections::registry::spawn_partitions(
                    &mut tasks,
                    &pool,
                    privacy.as_ref(),
                    &settings.broker,
                    name,
                    partitions.count,
                    &indexes,
                    &shutdown,
                )
                .await?;
            }
            _ => commerce_projections::registry::spawn(
                &mut tasks,
                &pool,
                privacy.as_ref(),
                &settings.broker,
                parts.only.as_deref(),
                &shutdown,
            )?,
        }
    }

    // One dispatcher for the API and the process managers of this process: one aggregate cache,
    // so a saga command on an order the API just placed reads nothing before its append.
    let store = EventStore::new(pool.clone());
    let dispatcher = Dispatcher::new(match &privacy {
        Some(privacy) => store.with_privacy(privacy.clone()),
        None => store,
    });
    if parts.process {
        let saga = OrderFulfilmentProcess::new(dispatcher.clone(), settings.payment_timeout);
        let config = ConsumerConfig::new(
            OrderFulfilmentProcess::NAME,
            OrderFulfilmentProcess::bindings(),
        );
        let consumer = DurableConsumer::new(pool.clone(), settings.broker.clone(), config, saga);
        tasks.spawn(consumer.run(shutdown.clone()));
        let deadlines =
            DeadlineScheduler::new(pool.clone(), dispatcher.clone(), Duration::from_millis(500));
        tasks.spawn(deadlines.run(shutdown.clone()));

        let notifications = NotificationsProcess::new(settings.smtp_url.is_some());
        let config =
            ConsumerConfig::new(NotificationsProcess::NAME, NotificationsProcess::bindings());
        let mut consumer =
            DurableConsumer::new(pool.clone(), settings.broker.clone(), config, notifications);
        if let Some(privacy) = &privacy {
            consumer = consumer.with_privacy(privacy.clone());
        }
        tasks.spawn(consumer.run(shutdown.clone()));
        if let Some(url) = &settings.smtp_url {
            let sender = NotificationSender::new(pool.clone(), url, &settings.smtp_from)?;
            tasks.spawn(sender.run(shutdown.clone()));
        }
    }

    let metrics_addr = match (&settings.metrics_addr, &metrics) {
        (Some(address), Some(handle)) => {
            let router = commerce_api::routes::ops::metrics_router(handle.clone());
            Some(listen(address, "metrics", router, &mut tasks, &shutdown).await?)
        }
        _ => None,
    };

    let mut api_addr = None;
    if parts.api {
        let mut checks: Vec<Box<dyn HealthCheck>> = vec![
            Box::new(PostgresCheck(pool.clone())),
            Box::new(MigrationsCheck(pool.clone())),
            Box::new(BrokerCheck::new(settings.broker.clone())),
        ];
        if let Some(shared) = &shared_limits {
            checks.push(Box::new(RedisCheck(shared.clone())));
        }
        let ops = OpsState {
            checks: Arc::new(checks),
            // With METRICS_ADDR, /metrics is served there only.
            metrics: metrics.filter(|_| metrics_addr.is_none()),
        };
        let state = AppState::with_dispatcher(
            pool.clone(),
            dispatcher,
            jwt_secret.as_bytes(),
            settings.api.clone(),
            ops,
        );
        tasks.spawn(export_consumer_metrics(
            pool.clone(),
            settings.broker.namespace.clone(),
            state.ops.checks.clone(),
            shutdown.clone(),
        ));
        if let Some(shared) = shared_limits {
            state.limiter.share_through(shared);
        }
        let router = commerce_api::routes::router(state);
        api_addr = Some(
            listen(
                &settings.listen_addr,
                "HTTP API",
                router,
                &mut tasks,
                &shutdown,
            )
            .await?,
        );
    }

    Ok(RunningApp {
        api_addr,
        metrics_addr,
        pool,
        shutdown,
        tasks,
    })
}

/// Binds `address` and serves `router` there until shutdown; a failing server stops every part.
async fn listen(
    address: &str,
    what: &'static str,
    router: axum::Router,
    tasks: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address} ({what})"))?;
    let addr = listener.local_addr()?;
    let token = shutdown.clone();
    tasks.spawn(async move {
        if let Err(error) = commerce_api::serve(listener, router, token.clone()).await {
            tracing::error!(%error, "{what} server failed");
            token.cancel();
        }
    });
    tracing::info!(%addr, "{what} listening");
    Ok(addr)
}

/// Publishes every consumer's position, lag and state, and the relay's lag, as Prometheus gauges
/// (the same numbers as `projections status`), the saga's pending deadlines, and what `/ready`
/// would answer (`ready`, `ready_check_up{check}`), every few seconds.
async fn export_consumer_metrics(
    pool: PgPool,
    namespace: String,
    checks: Arc<Vec<Box<dyn HealthCheck>>>,
    shutdown: CancellationToken,
) {
    use commerce_event_store::{checkpoint, relay, LogReader};
    loop {
        let mut ready = true;
        for (name, critical, result) in commerce_api::routes::ops::run_checks(&checks).await {
            let up = result.is_ok();
            ready &= up || !critical;
            metrics::gauge!("ready_check_up", "check" => name).set(f64::from(u8::from(up)));
        }
        metrics::gauge!("ready").set(f64::from(u8::from(ready)));
        let pending: Result<i64, _> = sqlx::query_scalar(
            "SELECT count(*) FROM process.deadlines WHERE fired_at IS NULL AND cancelled_at IS NULL",
        )
        .fetch_one(&pool)
        .await;
        if let Ok(pending) = pending {
            metrics::gauge!("saga_deadlines_pending").set(pending as f64);
        }
        match checkpoint::consumer_statuses(&pool).await {
            Ok(statuses) => {
                for s in statuses {
                    let name = s.name.clone();
                    metrics::gauge!("consumer_lag_events", "consumer" => name.clone())
                        .set(s.lag_events as f64);
                    metrics::gauge!("consumer_lag_seconds", "consumer" => name.clone())
                        .set(s.lag_seconds);
                    metrics::gauge!("consumer_position", "consumer" => name.clone())
                        .set(s.position.global_position as f64);
                    for state in ["CATCHING_UP", "LIVE", "REBUILDING", "FAILED", "PARTITIONED"] {
                        let value = if s.status.as_str() == state { 1.0 } else { 0.0 };
                        metrics::gauge!("consumer_state", "consumer" => name.clone(), "state" => state).set(value);
                    }
                }
            }
            Err(error) => tracing::debug!(%error, "consumer metrics not refreshed"),
        }
        if let Ok(Some((position, _))) = relay::relay_cursor(&pool, &namespace).await {
            if let Ok((lag, _)) = LogReader::new(pool.clone()).backlog(position).await {
                metrics::gauge!("relay_lag_events").set(lag as f64);
            }
        }
        if !commerce_event_store::backoff::sleep_or_shutdown(Duration::from_secs(5), &shutdown)
            .await
        {
            return;
        }
    }
}

async fn check_broker(broker: &BrokerConfig) -> anyhow::Result<()> {
    let connection = broker.connect("startup-check").await?;
    let _ = connection.close(200, "startup check done".into()).await;
    Ok(())
}

struct PostgresCheck(PgPool);

impl HealthCheck for PostgresCheck {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&self.0)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

struct MigrationsCheck(PgPool);

impl HealthCheck for MigrationsCheck {
    fn name(&self) -> &'static str {
        "migrations"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match db::migrations_applied(&self.0).await {
                Ok(true) => Ok(()),
                Ok(false) => Err("migrations pending".to_owned()),
                Err(e) => Err(e.to_string()),
            }
        })
    }
}

/// Probes RabbitMQ over one kept connection: a probe opens and closes a channel on it (one round
/// trip that proves the broker answers) instead of a TCP and AMQP handshake per call. A closed or
/// broken connection is dropped and replaced on the next probe. The lock also keeps concurrent
/// probes from opening a connection each.
struct BrokerCheck {
    broker: BrokerConfig,
    connection: tokio::sync::Mutex<Option<lapin::Connection>>,
}

impl BrokerCheck {
    fn new(broker: BrokerConfig) -> Self {
        Self {
            broker,
            connection: tokio::sync::Mutex::new(None),
        }
    }

    async fn probe(&self) -> Result<(), String> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = slot.as_ref() {
            if connection.status().connected() && probe_channel(connection).await.is_ok() {
                return Ok(());
            }
            // Whatever broke it, a fresh connection decides whether the broker is down.
            if let Some(stale) = slot.take() {
                let _ = stale
                    .close(200, "readiness probe reconnecting".into())
                    .await;
            }
        }
        let connection = self
            .broker
            .connect("readiness")
            .await
            .map_err(|e| e.to_string())?;
        probe_channel(&connection).await?;
        *slot = Some(connection);
        Ok(())
    }
}

async fn probe_channel(connection: &lapin::Connection) -> Result<(), String> {
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| e.to_string())?;
    channel
        .close(200, "readiness probe done".into())
        .await
        .map_err(|e| e.to_string())
}

impl HealthCheck for BrokerCheck {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }
    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(self.probe())
    }
}
