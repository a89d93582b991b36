//! Settings resolved from the command line and environment.

use std::time::Duration;

use anyhow::{bail, Context};
use commerce_event_store::{BrokerConfig, QueueType};

use crate::cli::GlobalArgs;

/// `dev` relaxes what `prod` refuses (weak or missing secrets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// A developer's machine.
    Dev,
    /// Anything else.
    Prod,
}

/// Everything the long-running parts need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Postgres URL (may hold a password: never log it whole).
    pub database_url: String,
    /// RabbitMQ and the namespace.
    pub broker: BrokerConfig,
    /// Where the HTTP API listens.
    pub listen_addr: String,
    /// `dev` or `prod`.
    pub environment: Environment,
    /// Largest Postgres pool of this process.
    pub max_db_connections: u32,
    /// How often the relay looks for new events when idle.
    pub relay_poll_interval: Duration,
    /// Unpaid orders are cancelled after this long.
    pub payment_timeout: Duration,
    /// SMTP server of email notifications (may hold a password: never log it).
    pub smtp_url: Option<String>,
    /// Sender address of email notifications.
    pub smtp_from: String,
}

impl Settings {
    /// Resolves the global options; `default_env` applies when `COMMERCE_ENV` is unset.
    pub fn from_args(args: &GlobalArgs, default_env: Environment) -> anyhow::Result<Self> {
        let environment = match args.environment.as_deref() {
            None => default_env,
            Some("dev") => Environment::Dev,
            Some("prod") => Environment::Prod,
            Some(other) => bail!("COMMERCE_ENV must be dev or prod, not {other:?}"),
        };
        let queue_type: QueueType = args
            .queue_type
            .parse()
            .map_err(anyhow::Error::msg)
            .context("AMQP_QUEUE_TYPE")?;
        let namespace = args.namespace.trim();
        if namespace.is_empty()
            || !namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            bail!("COMMERCE_NAMESPACE must be non-empty and use only letters, digits, '-', '_' and '.'");
        }
        let payment_timeout =
            humantime::parse_duration(&args.payment_timeout).with_context(|| {
                format!(
                    "PAYMENT_TIMEOUT {:?} is not a duration like 30m",
                    args.payment_timeout
                )
            })?;
        let mut broker = BrokerConfig::new(args.amqp_url.clone(), namespace);
        broker.queue_type = queue_type;
        Ok(Self {
            database_url: args.database_url.clone(),
            broker,
            listen_addr: args.listen_addr.clone(),
            environment,
            max_db_connections: 20,
            relay_poll_interval: Duration::from_millis(10),
            payment_timeout,
            smtp_url: args.smtp_url.clone().filter(|u| !u.trim().is_empty()),
            smtp_from: args.smtp_from.clone(),
        })
    }
}
