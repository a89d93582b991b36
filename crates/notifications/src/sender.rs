//! The notification sender: emails pending notifications over SMTP (lettre), with retries.
//!
//! Each notification is claimed with `FOR UPDATE SKIP LOCKED` and marked `SENT` in its own
//! transaction, right after the SMTP server accepted it: several senders never take the same one,
//! and a restart resends nothing already marked. SMTP cannot commit with Postgres, so a crash
//! between the server's acceptance and the commit can resend that one message; its `Message-ID`
//! is the notification id, so mail systems can recognise the repeat. A failure counts an attempt
//! and waits (doubling) before the next; after `max_attempts`, or at once for a failure that can
//! never succeed (no address, a permanent SMTP rejection), the notification is `FAILED`.

use std::fmt;
use std::time::Duration;

use commerce_event_store::backoff::{sleep_or_shutdown, Backoff};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The sender address used when `SMTP_FROM` is not set.
pub const DEFAULT_FROM: &str = "shop@localhost";

/// Why a sender could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum SmtpConfigError {
    /// `SMTP_URL` is not `smtp://[user[:password]@]host[:port]` (the text never repeats the URL,
    /// which may hold a password).
    #[error("invalid SMTP_URL: {0}")]
    InvalidUrl(&'static str),
    /// `SMTP_FROM` is not an email address (`shop@example.com` or `Shop <shop@example.com>`).
    #[error("invalid SMTP_FROM {address:?}: {source}")]
    InvalidFrom {
        /// The address as given.
        address: String,
        /// Why lettre refused it.
        source: lettre::address::AddressError,
    },
}

/// Emails pending notifications until shut down.
#[derive(Clone)]
pub struct NotificationSender {
    pool: PgPool,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    from: Mailbox,
    batch_size: usize,
    poll_interval: Duration,
    retry_delay: Duration,
    max_attempts: i32,
}

impl fmt::Debug for NotificationSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NotificationSender")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .field("batch_size", &self.batch_size)
            .field("poll_interval", &self.poll_interval)
            .field("retry_delay", &self.retry_delay)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

/// A pending notification, locked by this sender, with its recipient (if known).
#[derive(sqlx::FromRow)]
struct Claimed {
    id: Uuid,
    subject: String,
    body: String,
    attempts: i32,
    email: Option<String>,
    name: Option<String>,
}

/// Why one delivery attempt failed.
struct Failure {
    error: String,
    /// Never going to work (no or invalid address, a 5xx rejection); otherwise worth another
    /// attempt (the server is down, busy, or answered 4xx).
    permanent: bool,
}

impl Failure {
    fn permanent(error: String) -> Self {
        Self {
            error,
            permanent: true,
        }
    }
}

impl NotificationSender {
    /// A sender to the SMTP server of `smtp_url` (`smtp://[user[:password]@]host[:port]`, port 25
    /// by default, no TLS: a relay on a trusted network), writing from `from`. Sends up to 20 per
    /// round, polls every second, retries after 30 s (doubling), gives up after 5 attempts.
    pub fn new(pool: PgPool, smtp_url: &str, from: &str) -> Result<Self, SmtpConfigError> {
        let target = SmtpTarget::parse(smtp_url)?;
        let from = from
            .parse::<Mailbox>()
            .map_err(|source| SmtpConfigError::InvalidFrom {
                address: from.to_owned(),
                source,
            })?;
        let server = format!("{}:{}", target.host, target.port);
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(target.host)
            .port(target.port)
            .timeout(Some(Duration::from_secs(10)));
        if let Some(credentials) = target.credentials {
            builder = builder.credentials(credentials);
        }
        Ok(Self {
            pool,
            transport: builder.build(),
            server,
            from,
            batch_size: 20,
            poll_interval: Duration::from_secs(1),
            retry_delay: Duration::from_secs(30),
            max_attempts: 5,
        })
    }

    /// How often to look for pending notifications when there were none.
    pub fn with_poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The wait after a first failed attempt; it doubles with each further one, up to an hour.
    pub fn with_retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// Sends pending notifications until `shutdown`; a database outage is waited out.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(server = %self.server, "notification sender started");
        let mut backoff = Backoff::new(self.poll_interval, Duration::from_secs(30));
        while !shutdown.is_cancelled() {
            let pause = match self.send_round(Some(&shutdown)).await {
                // A full round: more may be waiting.
                Ok(sent) if sent == self.batch_size => continue,
                Ok(_) => {
                    backoff.reset();
                    self.poll_interval
                }
                Err(error) => {
                    tracing::warn!(%error, "notification sender interrupted; retrying");
                    backoff.next_delay()
                }
            };
            if !sleep_or_shutdown(pause, &shutdown).await {
                break;
            }
        }
        tracing::info!("notification sender stopped");
    }

    /// One round: attempts up to a batch of due notifications; returns how many it attempted.
    pub async fn send_pending(&self) -> Result<usize, sqlx::Error> {
        self.send_round(None).await
    }

    async fn send_round(&self, shutdown: Option<&CancellationToken>) -> Result<usize, sqlx::Error> {
        // A notification that failed in this round waits for the next one, even with no delay.
        let mut attempted = Vec::new();
        while attempted.len() < self.batch_size
            && !shutdown.is_some_and(CancellationToken::is_cancelled)
        {
            match self.send_next(&attempted).await? {
                Some(id) => attempted.push(id),
                None => break,
            }
        }
        Ok(attempted.len())
    }

    /// Claims, sends and records one due notification not in `skip`; `None` when none is due.
    async fn send_next(&self, skip: &[Uuid]) -> Result<Option<Uuid>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        // The row stays locked until its outcome commits: no other sender can take it meanwhile.
        let claimed: Option<Claimed> = sqlx::query_as(
            "SELECT n.id, n.subject, n.body, n.attempts, r.email, r.name \
             FROM notifications.notifications n \
             LEFT JOIN notifications.recipients r ON r.user_id = n.user_id \
             WHERE n.status = 'PENDING' AND n.channel = 'email' AND n.next_attempt_at <= now() \
               AND NOT (n.id = ANY($1)) \
             ORDER BY n.next_attempt_at, n.created_at \
             LIMIT 1 FOR UPDATE OF n SKIP LOCKED",
        )
        .bind(skip)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(claimed) = claimed else {
            return Ok(None);
        };
        let (id, attempts) = (claimed.id, claimed.attempts.saturating_add(1));
        let outcome = self.deliver(claimed).await;
        match outcome {
            Ok(()) => {
                sqlx::query(
                    "UPDATE notifications.notifications \
                     SET status = 'SENT', sent_at = clock_timestamp(), attempts = $2, \
                         last_error = NULL \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(attempts)
                .execute(&mut *tx)
                .await?;
                tracing::debug!(notification = %id, "notification emailed");
            }
            Err(Failure { error, permanent }) => {
                let give_up = permanent || attempts >= self.max_attempts;
                let delay_ms = retry_after(self.retry_delay, attempts).as_millis();
                sqlx::query(
                    "UPDATE notifications.notifications \
                     SET attempts = $2, last_error = $3, \
                         status = CASE WHEN $4 THEN 'FAILED' ELSE 'PENDING' END, \
                         next_attempt_at = clock_timestamp() + $5 * interval '1 millisecond' \
                     WHERE id = $1",
                )
                .bind(id)
                .bind(attempts)
                .bind(&error)
                .bind(give_up)
                .bind(i64::try_from(delay_ms).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
                if give_up {
                    tracing::error!(notification = %id, attempts, %error, "notification failed");
                } else {
                    tracing::warn!(
                        notification = %id, attempts, %error,
                        "notification not sent; will retry"
                    );
                }
            }
        }
        tx.commit().await?;
        Ok(Some(id))
    }

    async fn deliver(&self, notification: Claimed) -> Result<(), Failure> {
        let Claimed {
            id,
            subject,
            body,
            email,
            name,
            ..
        } = notification;
        let Some(email) = email else {
            return Err(Failure::permanent(
                "no email address is known for the user".to_owned(),
            ));
        };
        let address = match email.parse::<Address>() {
            Ok(address) => address,
            Err(e) => {
                return Err(Failure::permanent(format!(
                    "invalid recipient address: {e}"
                )))
            }
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(name, address))
            .subject(subject)
            .message_id(Some(format!("<{id}@notifications.commerce>")))
            .header(ContentType::TEXT_PLAIN)
            .body(body);
        let message = match message {
            Ok(message) => message,
            Err(e) => return Err(Failure::permanent(format!("cannot build the email: {e}"))),
        };
        match self.transport.send(message).await {
            Ok(_) => Ok(()),
            Err(e) => Err(Failure {
                error: format!("SMTP: {e}"),
                permanent: e.is_permanent(),
            }),
        }
    }
}

/// The wait after the `attempts`-th failure: `first`, doubling, at most an hour.
fn retry_after(first: Duration, attempts: i32) -> Duration {
    let doublings = u32::try_from(attempts.saturating_sub(1))
        .unwrap_or(0)
        .min(16);
    first
        .saturating_mul(1 << doublings)
        .min(Duration::from_secs(3600))
}

/// Where `SMTP_URL` points.
#[derive(Debug)]
struct SmtpTarget {
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

impl SmtpTarget {
    fn parse(url: &str) -> Result<Self, SmtpConfigError> {
        let invalid = SmtpConfigError::InvalidUrl;
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid("expected smtp://host[:port]"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "smtp" => {}
            "smtps" => return Err(invalid("TLS (smtps) is not supported; use smtp://")),
            _ => return Err(invalid("the scheme must be smtp")),
        }
        if rest.contains(['?', '#']) {
            return Err(invalid("options (TLS, EHLO name) are not supported"));
        }
        let authority = match rest.split_once('/') {
            None => rest,
            Some((authority, "")) => authority,
            Some(_) => return Err(invalid("a path (EHLO name) is not supported")),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or(invalid("unclosed [ in the host"))?;
            match after {
                "" => (host, None),
                _ => (
                    host,
                    Some(after.strip_prefix(':').ok_or(invalid("bad port"))?),
                ),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(invalid("the host is missing"));
        }
        let port = match port {
            None => 25,
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| invalid("the port is not a number from 0 to 65535"))?,
        };
        let credentials = match userinfo {
            None => None,
            Some(userinfo) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                Some(Credentials::new(
                    percent_decode(user).ok_or(invalid("bad percent-encoding in the user"))?,
                    percent_decode(password)
                        .ok_or(invalid("bad percent-encoding in the password"))?,
                ))
            }
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            credentials,
        })
    }
}

/// Decodes `%XX` escapes (URL userinfo); `None` for a malformed escape or non-UTF-8 result.
fn percent_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next()?, bytes.next()?];
            out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> SmtpTarget {
        SmtpTarget::parse(url).unwrap()
    }

    #[test]
    fn a_plain_smtp_url_names_host_and_port() {
        let t = target("smtp://127.0.0.1:2525");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 2525));
        assert!(t.credentials.is_none());
        let t = target("SMTP://mail.internal/");
        assert_eq!((t.host.as_str(), t.port), ("mail.internal", 25));
        let t = target("smtp://[::1]:2525");
        assert_eq!((t.host.as_str(), t.port), ("::1", 2525));
    }

    #[test]
    fn credentials_are_percent_decoded() {
        let t = target("smtp://shop%40example.com:p%3Ass@relay:587");
        assert_eq!((t.host.as_str(), t.port), ("relay", 587));
        assert_eq!(
            t.credentials,
            Some(Credentials::new("shop@example.com".into(), "p:ss".into()))
        );
    }

    #[test]
    fn unsupported_or_malformed_urls_are_refused_without_echoing_them() {
        for url in [
            "smtps://user:secret@host",
            "smtp://host?tls=required",
            "smtp://host/ehlo",
            "http://host",
            "smtp://",
            "smtp://host:port",
            "smtp://host:70000",
            "smtp://user:%zz@host",
            "host:25",
        ] {
            let error = SmtpTarget::parse(url).unwrap_err().to_string();
            assert!(!error.contains("secret"), "{url}: {error}");
        }
    }

    #[test]
    fn a_bad_from_address_is_refused() {
        assert!("shop@localhost".parse::<Mailbox>().is_ok());
        assert!("Shop <shop@example.com>".parse::<Mailbox>().is_ok());
        assert!("not an address".parse::<Mailbox>().is_err());
    }

    #[test]
    fn retry_delays_double_and_stay_capped() {
        let delay = |attempts| retry_after(Duration::from_secs(30), attempts);
        assert_eq!(delay(1), Duration::from_secs(30));
        assert_eq!(delay(2), Duration::from_secs(60));
        assert_eq!(delay(4), Duration::from_secs(240));
        assert_eq!(delay(30), Duration::from_secs(3600));
    }
}
