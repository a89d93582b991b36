//! What every handler can reach: the database, the command dispatcher, the log reader, and the
//! API's configuration.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use commerce_commands::Dispatcher;
use commerce_event_store::privacy::Privacy;
use commerce_event_store::{AggregateReader, LogReader};
use commerce_projections::wait::OwnWrites;
use sqlx::PgPool;

use crate::auth::token::TokenKeys;
use crate::middleware::rate_limit::RateLimiter;
use crate::routes::ops::OpsState;

/// Settings of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Lifetime of refresh tokens.
    pub refresh_ttl: Duration,
    /// How long a query with `X-Min-Position` waits for its read model.
    pub read_wait: Duration,
    /// Requests slower than this are answered 503.
    pub request_timeout: Duration,
    /// Sustained requests per second per client.
    pub rate_per_second: u32,
    /// Requests a client may send at once before being limited.
    pub rate_burst: u32,
    /// Peers whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Origins allowed by CORS; `*` allows any.
    pub cors_origins: Vec<String>,
    /// argon2id memory cost in KiB (19456 = OWASP's minimum for argon2id).
    pub password_memory_kib: u32,
    /// The broker namespace whose relay the console's health header follows.
    pub broker_namespace: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            read_wait: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            rate_per_second: 100,
            rate_burst: 200,
            trusted_proxies: Vec::new(),
            cors_origins: Vec::new(),
            password_memory_kib: 19_456,
            broker_namespace: "commerce".to_owned(),
        }
    }
}

/// Shared by every handler; cloning it is one reference count (every request clones it a few
/// times: per layer that takes it, per extractor), whatever it holds.
#[derive(Clone, Debug)]
pub struct AppState(Arc<Shared>);

/// What [`AppState`] holds.
pub struct Shared {
    /// Event store and read models.
    pub pool: PgPool,
    /// Runs commands.
    pub dispatcher: Dispatcher,
    /// Loads aggregates to check a command's preconditions (read-only; shares the dispatcher's
    /// cache).
    pub aggregates: AggregateReader,
    /// Reads the log (history, `as_of`, admin views), personal fields opened.
    pub log: LogReader,
    /// Seals and opens personal data, erases it (the dispatcher's keyring).
    pub privacy: Option<Privacy>,
    /// Finds signed-in callers' latest writes, one statement for all concurrent reads.
    pub own_writes: OwnWrites,
    /// Signs and verifies access tokens.
    pub keys: Arc<TokenKeys>,
    /// Settings.
    pub config: Arc<ApiConfig>,
    /// Per-client request budgets.
    pub limiter: Arc<RateLimiter>,
    /// Readiness checks and the metrics handle.
    pub ops: OpsState,
    /// The HTTP metrics' handles per route.
    pub http_metrics: crate::middleware::metrics::HttpMetrics,
    /// What the console's health header last read, shared by every open console.
    pub console: crate::console::ConsoleCache,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// State over `pool`, signing tokens with `jwt_secret`.
    pub fn new(pool: PgPool, jwt_secret: &[u8], config: ApiConfig, ops: OpsState) -> Self {
        let dispatcher = Dispatcher::new(commerce_event_store::EventStore::new(pool.clone()));
        Self::with_dispatcher(pool, dispatcher, jwt_secret, config, ops)
    }

    /// State with a given dispatcher (shared with the process managers of this process).
    pub fn with_dispatcher(
        pool: PgPool,
        dispatcher: Dispatcher,
        jwt_secret: &[u8],
        config: ApiConfig,
        ops: OpsState,
    ) -> Self {
        let limiter = RateLimiter::new(config.rate_per_second, config.rate_burst);
        Self(Arc::new(Shared {
            log: LogReader::new(pool.clone()).with_privacy(dispatcher.privacy().cloned()),
            privacy: dispatcher.privacy().cloned(),
            own_writes: OwnWrites::new(pool.clone()),
            aggregates: dispatcher.reader(),
            pool,
            dispatcher,
            keys: Arc::new(TokenKeys::new(jwt_secret)),
            limiter: Arc::new(limiter),
            config: Arc::new(config),
            ops,
            http_metrics: Default::default(),
            console: Default::default(),
        }))
    }
}
