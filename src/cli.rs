//! The command line. Every global option is also an environment variable (DESIGN.md's operating
//! contract); values that may hold secrets are never shown in `--help`.

use clap::{Args, Parser, Subcommand};
use commerce_event_store::Position;

/// Event-sourced commerce backend.
#[derive(Debug, Parser)]
#[command(name = "commerce", version, about, propagate_version = true)]
pub struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by every command.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Postgres holding the event store and read models; created if missing.
    #[arg(
        long,
        env = "DATABASE_URL",
        global = true,
        default_value = "postgres://postgres@127.0.0.1:5432/commerce",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub database_url: String,

    /// RabbitMQ.
    #[arg(
        long,
        env = "AMQP_URL",
        global = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub amqp_url: String,

    /// Prefix of every exchange and queue (`<ns>.events`, `<ns>.<consumer>`).
    #[arg(
        long,
        env = "COMMERCE_NAMESPACE",
        global = true,
        default_value = "commerce"
    )]
    pub namespace: String,

    /// Address of the HTTP API.
    #[arg(
        long,
        env = "LISTEN_ADDR",
        global = true,
        default_value = "127.0.0.1:8080"
    )]
    pub listen_addr: String,

    /// `dev` or `prod` (default: `dev` for `serve`, otherwise `prod`).
    #[arg(long = "env", env = "COMMERCE_ENV", global = true)]
    pub environment: Option<String>,

    /// RabbitMQ queue type of consumer queues: `quorum` or `classic`.
    #[arg(long, env = "AMQP_QUEUE_TYPE", global = true, default_value = "quorum")]
    pub queue_type: String,

    /// Unpaid orders are cancelled after this long (e.g. `30m`, `90s`).
    #[arg(long, env = "PAYMENT_TIMEOUT", global = true, default_value = "30m")]
    pub payment_timeout: String,

    /// SMTP server for email notifications (`smtp://[user[:password]@]host[:port]`); without it
    /// notifications are in-app only.
    #[arg(long, env = "SMTP_URL", global = true, hide_env_values = true)]
    pub smtp_url: Option<String>,

    /// Sender address of email notifications.
    #[arg(
        long,
        env = "SMTP_FROM",
        global = true,
        default_value = "shop@localhost"
    )]
    pub smtp_from: String,

    /// Key signing access tokens (HS256), at least 32 characters; required in `prod`.
    #[arg(long, env = "JWT_SECRET", global = true, hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Master key wrapping every person's data key (32 random bytes in base64, e.g.
    /// `openssl rand -base64 32`); required in `prod`.
    #[arg(long, env = "DATA_KEY", global = true, hide_env_values = true)]
    pub data_key: Option<String>,

    /// Lifetime of access tokens (e.g. `15m`).
    #[arg(long, env = "ACCESS_TOKEN_TTL", global = true, default_value = "15m")]
    pub access_token_ttl: String,

    /// Sustained requests per second allowed per client.
    #[arg(
        long,
        env = "RATE_LIMIT_PER_SECOND",
        global = true,
        default_value_t = 100
    )]
    pub rate_limit: u32,

    /// Requests a client may send in a burst.
    #[arg(long, env = "RATE_LIMIT_BURST", global = true, default_value_t = 200)]
    pub rate_burst: u32,

    /// Proxies (comma-separated IPs) whose `X-Forwarded-For` is believed.
    #[arg(long, env = "TRUSTED_PROXIES", global = true, default_value = "")]
    pub trusted_proxies: String,

    /// Origins allowed by CORS (comma-separated, or `*`).
    #[arg(long, env = "CORS_ORIGINS", global = true, default_value = "")]
    pub cors_origins: String,

    /// Requests taking longer are answered 503 (e.g. `30s`).
    #[arg(long, env = "REQUEST_TIMEOUT", global = true, default_value = "30s")]
    pub request_timeout: String,

    /// argon2id memory cost in KiB (OWASP's minimum is 19456).
    #[arg(
        long,
        env = "PASSWORD_HASH_MEMORY_KIB",
        global = true,
        default_value_t = 19_456
    )]
    pub password_memory_kib: u32,

    /// Serve `/metrics` on this address of its own (e.g. `127.0.0.1:9100`), in every process
    /// kind, and no longer on the API's address; without it the API serves `/metrics`.
    #[arg(long, env = "METRICS_ADDR", global = true)]
    pub metrics_addr: Option<String>,

    /// Redis shared by every API instance for rate limits (e.g. `redis://127.0.0.1:6379`);
    /// without it each instance limits on its own.
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    pub redis_url: Option<String>,

    /// `text` or `json` (one JSON object per line).
    #[arg(long, env = "LOG_FORMAT", global = true, default_value = "text")]
    pub log_format: String,

    /// OpenTelemetry collector (OTLP over HTTP, e.g. `http://127.0.0.1:4318`) to export traces
    /// to; without it tracing is off. The other `OTEL_*` variables (`OTEL_SERVICE_NAME`,
    /// `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_TRACES_SAMPLER`, ...) apply as usual.
    #[arg(
        long,
        env = "OTEL_EXPORTER_OTLP_ENDPOINT",
        global = true,
        hide_env_values = true
    )]
    pub otlp_endpoint: Option<String>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process: API, relay, projections and process managers.
    Serve,
    /// Only the HTTP API.
    Api,
    /// Only the relay (log → RabbitMQ); extra instances stand by.
    Relay,
    /// Only the sealer (chains the log's content hashes into seals); extra instances stand by.
    Sealer,
    /// Only the projection workers.
    Project {
        /// Run only this projection.
        #[arg(long)]
        only: Option<String>,
        /// Run it as this many partitions by aggregate id, spread by RabbitMQ's consistent-hash
        /// exchange (2 to 64; omit for one consumer). Every process running a partition of it
        /// must give the same number.
        #[arg(long, requires = "only", value_parser = clap::value_parser!(u32).range(2..=64))]
        partitions: Option<u32>,
        /// Which of the partitions this process runs, 0 to N-1 (repeat the flag or separate
        /// with commas); all of them by default. A partition run by two processes has one
        /// active consumer and one standby.
        #[arg(long, requires = "partitions", value_delimiter = ',')]
        partition: Vec<u32>,
    },
    /// Only the process managers (sagas) and their deadlines.
    Process,
    /// Create the database if needed, apply migrations, exit.
    Migrate,
    /// Rebuild read models from the log into fresh tables, then switch over atomically; reads
    /// are served from the old tables meanwhile.
    Replay {
        /// The projection to rebuild.
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Rebuild every projection.
        #[arg(long)]
        all: bool,
        /// Only compare the replayed model with the live one; change nothing.
        #[arg(long)]
        verify: bool,
    },
    /// Read the event log.
    Events {
        /// What to read.
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Users: erase a person's personal data.
    Users {
        /// What to do.
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// The keyring of personal data: rotate the master key.
    Keys {
        /// What to do.
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Administration: bootstrap users.
    Admin {
        /// What to do.
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Health and repair of projections and process managers.
    Projections {
        /// What to do.
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
}

impl Command {
    /// The service name this process reports its traces under: one per process kind.
    pub fn service_name(&self) -> &'static str {
        match self {
            Self::Serve => "commerce",
            Self::Api => "commerce-api",
            Self::Relay => "commerce-relay",
            Self::Sealer => "commerce-sealer",
            Self::Project { .. } => "commerce-project",
            Self::Process => "commerce-process",
            _ => "commerce-cli",
        }
    }
}

/// `commerce events ...`
#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// The global log, in order.
    Tail {
        /// Keep following new events.
        #[arg(long)]
        follow: bool,
        /// Start after this position token (default: the beginning).
        #[arg(long)]
        after: Option<String>,
        /// Show only the last N events (ignored with --after).
        #[arg(long, short = 'n')]
        last: Option<i64>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Recompute the log's hash chain and name the first position that does not match; prints
    /// the latest seal. Exits with status 1 when something does not match.
    Verify {
        /// Start at the seal covering this position token (default: the beginning).
        #[arg(long, value_parser = parse_position)]
        from: Option<Position>,
    },
    /// One aggregate's stream, by version.
    Stream {
        /// Aggregate type, e.g. `Order`.
        aggregate_type: String,
        /// Aggregate id.
        aggregate_id: String,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// `commerce users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Crypto-shred a user's personal data: destroys their data key and records
    /// `PersonalDataErased`; their email, name, phone, addresses and review texts read as
    /// `[erased]` everywhere from then on, and they can no longer sign in. Idempotent.
    Erase {
        /// The user's id.
        id: uuid::Uuid,
    },
}

/// `commerce keys ...`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Re-wrap every data key from the master key in `DATA_KEY` to the one in `NEW_DATA_KEY`, in
    /// one transaction; then restart every process with `DATA_KEY` set to the new key.
    Rotate {
        /// The new master key (32 random bytes in base64). Prefer the environment variable.
        #[arg(long, env = "NEW_DATA_KEY", hide_env_values = true)]
        new_key: String,
    },
}

/// `commerce admin ...`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a user with the given role (e.g. the first admin or an auditor).
    CreateUser {
        /// Email (the login).
        #[arg(long)]
        email: String,
        /// Password (8 to 128 characters, a letter and a digit). Prefer the environment variable.
        #[arg(long, env = "ADMIN_PASSWORD", hide_env_values = true)]
        password: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// `admin`, `auditor` or `customer`.
        #[arg(long, default_value = "admin")]
        role: String,
    },
}

/// `commerce projections ...`
#[derive(Debug, Subcommand)]
pub enum ProjectionsCommand {
    /// Position, lag and state of every projection and process manager, and of the relay.
    Status {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Resume a FAILED consumer by trying its failed event again.
    Retry {
        /// Consumer name.
        name: String,
    },
    /// Resume a FAILED consumer by passing over its failed event (recorded).
    Skip {
        /// Consumer name.
        name: String,
    },
}

/// A position token (`<transaction>.<position>`), or clap's usage error.
fn parse_position(token: &str) -> Result<Position, String> {
    token.parse::<Position>().map_err(|e| e.to_string())
}
