//! Errors of the event store, the relay and the consumers.

/// What went wrong in the store layer. Callers tell conflicts from infrastructure failures.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another writer appended to the same aggregate version first (guarantee 1).
    #[error("optimistic concurrency conflict on {aggregate_type} {aggregate_id}")]
    Conflict {
        /// The aggregate's type.
        aggregate_type: String,
        /// The aggregate's id.
        aggregate_id: String,
    },
    /// Postgres could not be reached at all (connect time: no route, refused or timed-out TCP,
    /// TLS failure).
    #[error("cannot reach Postgres at {target}")]
    Unreachable {
        /// `host:port/database`, never credentials.
        target: String,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Postgres answered but refused the connection (wrong password, no such role or database,
    /// too many connections…): reachable, so not [`StoreError::Unreachable`].
    #[error("Postgres at {target} refused the connection")]
    Refused {
        /// `host:port/database`, never credentials.
        target: String,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
    /// `DATABASE_URL` does not parse.
    #[error("DATABASE_URL is not a valid Postgres URL")]
    InvalidUrl(#[source] sqlx::Error),
    /// The database was missing and creating it failed (other than because a concurrent
    /// process created it first, which counts as created).
    #[error("cannot create the database {target}")]
    CreateDatabase {
        /// `host:port/database`, never credentials.
        target: String,
        /// The server's error.
        #[source]
        source: sqlx::Error,
    },
    /// A query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed to apply.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// An event or aggregate did not (de)serialise.
    #[error("serialisation error: {0}")]
    Serde(#[from] serde_json::Error),
    /// Sealing or opening personal data failed (a wrong or altered key, a payload naming no
    /// person).
    #[error("personal data: {0}")]
    Privacy(#[from] crate::privacy::PrivacyError),
    /// postgres-es reported a failure that is neither a conflict, a database error nor a
    /// serialisation error.
    #[error("event repository error: {0}")]
    Repository(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// What went wrong talking to RabbitMQ.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The broker could not be reached.
    #[error("cannot reach RabbitMQ at {target}")]
    Unreachable {
        /// `host:port/vhost`, never credentials.
        target: String,
        /// The client's error.
        #[source]
        source: lapin::Error,
    },
    /// A channel or protocol operation failed.
    #[error("RabbitMQ error: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker refused (nacked) a publish.
    #[error("RabbitMQ refused to confirm the message for event {0}")]
    Nacked(String),
    /// The broker lacks something the configuration needs (a plugin).
    #[error("{0}")]
    Unsupported(String),
}
