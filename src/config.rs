//! Settings resolved from the command line and environment.

use std::time::Duration;

use anyhow::{bail, Context};
use commerce_commands::personal;
use commerce_event_store::privacy::{MasterKey, Privacy};
use commerce_event_store::{BrokerConfig, QueueType};

use commerce_api::ApiConfig;

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
    /// Where `/metrics` listens on its own, if anywhere (then not on the API's address).
    pub metrics_addr: Option<String>,
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
    /// Redis of shared rate limits (may hold a password: never log it).
    pub redis_url: Option<String>,
    /// Token signing key (a secret: never log it); checked by [`Settings::jwt_secret`].
    jwt_secret: Option<String>,
    /// The master key of personal data (its `Debug` hides it); see [`Settings::keyring`].
    data_key: Option<MasterKey>,
    /// HTTP API settings.
    pub api: ApiConfig,
}

/// OWASP's minimum argon2id memory cost (19 MiB), below which `prod` refuses to start.
pub const OWASP_MIN_PASSWORD_MEMORY_KIB: u32 = 19_456;

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
        let duration = |name: &str, value: &str| {
            humantime::parse_duration(value)
                .with_context(|| format!("{name} {value:?} is not a duration like 30s"))
        };
        let list = |value: &str| -> Vec<String> {
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let trusted_proxies = list(&args.trusted_proxies)
            .iter()
            .map(|ip| {
                ip.parse()
                    .with_context(|| format!("TRUSTED_PROXIES: {ip:?} is not an IP address"))
            })
            .collect::<anyhow::Result<_>>()?;
        if args.rate_limit == 0 || args.rate_burst == 0 {
            bail!("RATE_LIMIT_PER_SECOND and RATE_LIMIT_BURST must be at least 1");
        }
        if !(1024..=1_048_576).contains(&args.password_memory_kib) {
            bail!("PASSWORD_HASH_MEMORY_KIB must be between 1024 and 1048576");
        }
        let api = ApiConfig {
            access_ttl: duration("ACCESS_TOKEN_TTL", &args.access_token_ttl)?,
            request_timeout: duration("REQUEST_TIMEOUT", &args.request_timeout)?,
            rate_per_second: args.rate_limit,
            rate_burst: args.rate_burst,
            trusted_proxies,
            cors_origins: list(&args.cors_origins),
            password_memory_kib: args.password_memory_kib,
            broker_namespace: namespace.to_owned(),
            ..ApiConfig::default()
        };
        let mut broker = BrokerConfig::new(args.amqp_url.clone(), namespace);
        broker.queue_type = queue_type;
        Ok(Self {
            database_url: args.database_url.clone(),
            broker,
            listen_addr: args.listen_addr.clone(),
            metrics_addr: args.metrics_addr.clone().filter(|a| !a.trim().is_empty()),
            environment,
            max_db_connections: 20,
            relay_poll_interval: Duration::from_millis(10),
            payment_timeout,
            smtp_url: args.smtp_url.clone().filter(|u| !u.trim().is_empty()),
            redis_url: args.redis_url.clone().filter(|u| !u.trim().is_empty()),
            smtp_from: args.smtp_from.clone(),
            jwt_secret: args.jwt_secret.clone().filter(|s| !s.is_empty()),
            data_key: args
                .data_key
                .as_deref()
                .filter(|k| !k.trim().is_empty())
                .map(MasterKey::parse)
                .transpose()?,
            api,
        })
    }

    /// The token signing key. In `prod` a missing or weak key is refused (fewer than 32
    /// characters or fewer than 8 distinct ones); in `dev` a missing key is `None`: the platform
    /// then signs with the key it generated and keeps in the database
    /// (`commerce_api::auth::signing_key`), so no key is ever in the source.
    pub fn configured_jwt_secret(&self) -> anyhow::Result<Option<String>> {
        match (&self.jwt_secret, self.environment) {
            (Some(secret), Environment::Prod) => {
                let distinct: std::collections::HashSet<char> = secret.chars().collect();
                if secret.chars().count() < 32 || distinct.len() < 8 {
                    bail!("JWT_SECRET is too weak for COMMERCE_ENV=prod: use at least 32 random characters (e.g. `openssl rand -base64 48`)");
                }
                Ok(Some(secret.clone()))
            }
            (Some(secret), Environment::Dev) => Ok(Some(secret.clone())),
            (None, Environment::Prod) => bail!(
                "JWT_SECRET is required when COMMERCE_ENV=prod (at least 32 random characters)"
            ),
            (None, Environment::Dev) => Ok(None),
        }
    }

    /// The configured key ([`Settings::configured_jwt_secret`]), for tools that mint tokens
    /// without the platform's database (tests, the bench); an error when none is configured.
    pub fn jwt_secret(&self) -> anyhow::Result<String> {
        self.configured_jwt_secret()?
            .context("JWT_SECRET is not set (the platform uses the key stored in its database)")
    }

    /// Refuses, in `prod`, to run without `DATA_KEY` (checked before anything starts).
    pub fn check_data_key(&self) -> anyhow::Result<()> {
        if self.environment == Environment::Prod && self.data_key.is_none() {
            bail!(
                "DATA_KEY is required when COMMERCE_ENV=prod: 32 random bytes in base64 \
                 (e.g. `openssl rand -base64 32`); it wraps every person's data key (for a \
                 development database, set COMMERCE_ENV=dev)"
            );
        }
        Ok(())
    }

    /// The keyring of `pool`'s database: opened with `DATA_KEY`, or in `dev` without one with
    /// the master key the platform generated and keeps in the database (`dev_data_key`).
    pub async fn keyring(&self, pool: &sqlx::PgPool) -> anyhow::Result<Privacy> {
        self.check_data_key()?;
        let master = match &self.data_key {
            Some(key) => key.clone(),
            None => personal::stored_or_generated_master(pool)
                .await
                .context("cannot read or store the generated DATA_KEY")?,
        };
        Ok(personal::keyring(pool, master).await?)
    }

    /// The keyring for a one-shot tool (`admin`, `users erase`, `events`, `replay`): `DATA_KEY`
    /// when set; else the master key a `dev` platform generated and keeps in this database, in
    /// any environment (a production database never has one: `prod` never stores a key); else,
    /// in `dev`, one generated now; else the refusal that names `DATA_KEY`.
    pub async fn keyring_for_tool(&self, pool: &sqlx::PgPool) -> anyhow::Result<Privacy> {
        if self.data_key.is_none() {
            if let Some(master) = personal::stored_master(pool).await? {
                return Ok(personal::keyring(pool, master).await?);
            }
        }
        self.keyring(pool).await
    }

    /// The configured `DATA_KEY`, if any (for `commerce keys rotate`).
    pub fn data_key(&self) -> Option<&MasterKey> {
        self.data_key.as_ref()
    }

    /// What `prod` refuses beyond the signing key: an argon2 memory cost below OWASP's minimum.
    pub fn check_password_hashing(&self) -> anyhow::Result<()> {
        if self.environment == Environment::Prod
            && self.api.password_memory_kib < OWASP_MIN_PASSWORD_MEMORY_KIB
        {
            bail!(
                "PASSWORD_HASH_MEMORY_KIB {} is below OWASP's minimum of {OWASP_MIN_PASSWORD_MEMORY_KIB} for COMMERCE_ENV=prod",
                self.api.password_memory_kib
            );
        }
        Ok(())
    }
}
