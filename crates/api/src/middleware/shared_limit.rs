//! Rate limits shared by every API instance through Redis (`REDIS_URL`): each client's token
//! bucket is one Redis hash, taken from by one Lua script per request (one round trip, atomic, on
//! Redis's clock, so instances with skewed clocks agree).
//!
//! When Redis does not answer (in 100 ms), the request is limited by this process's own bucket
//! instead, and Redis is left alone for a second before the next request tries it again: an
//! outage costs no latency, and the limits are shared again as soon as Redis answers. Each change
//! is logged once, counted in `rate_limit_shared` (1 shared, 0 local) and shown by `/ready`
//! (degraded, never failing: the API keeps serving).

use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::Script;

use crate::routes::ops::HealthCheck;

/// How long a request waits for Redis before it is limited locally.
const ANSWER_WITHIN: Duration = Duration::from_millis(100);
/// How long Redis is left alone after it failed to answer.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Takes one token from the bucket `KEYS[1]` (rate `ARGV[1]` per second, `ARGV[2]` at most):
/// `{1 or 0, tokens left}`. Times are Redis's own, in microseconds.
const TAKE: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1])
local at = tonumber(bucket[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) / 1000000 * rate)
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.6f', tokens), 'at', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return {allowed, string.format('%.6f', tokens)}
";

/// `url` without its password, for messages.
pub fn describe_redis_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{host}")
        }
        None => "(unparsable REDIS_URL)".to_owned(),
    }
}

#[derive(Debug, Default)]
struct Health {
    /// Set while Redis is failing: when it last failed and why.
    down: Option<(Instant, String)>,
}

/// The Redis side of the rate limiter.
pub struct SharedBuckets {
    connection: ConnectionManager,
    script: Script,
    prefix: String,
    address: String,
    health: Mutex<Health>,
}

impl std::fmt::Debug for SharedBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedBuckets")
            .field("address", &self.address)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl SharedBuckets {
    /// Connects to `url` (a clear error when it cannot be reached); bucket keys start with
    /// `prefix` (the broker namespace, so platforms sharing a Redis do not share limits).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let address = describe_redis_url(url);
        let client = redis::Client::open(url)
            .map_err(|e| format!("REDIS_URL {address} is not a Redis URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(ANSWER_WITHIN))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = tokio::time::timeout(
            Duration::from_secs(5),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| format!("Redis at {address} (REDIS_URL) did not answer within 5 s"))?
        .map_err(|e| format!("Redis at {address} (REDIS_URL) is unreachable: {e}"))?;
        let shared = Self {
            connection,
            script: Script::new(TAKE),
            prefix: prefix.to_owned(),
            address,
            health: Mutex::new(Health::default()),
        };
        shared.ping().await?;
        metrics::gauge!("rate_limit_shared").set(1.0);
        Ok(shared)
    }

    fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn failed(&self, reason: String) {
        let mut health = self.health();
        if health.down.is_none() {
            tracing::warn!(redis = %self.address, error = %reason,
                "Redis does not answer: rate limits are per process until it is back");
            metrics::gauge!("rate_limit_shared").set(0.0);
        }
        health.down = Some((Instant::now(), reason));
    }

    fn answered(&self) {
        let mut health = self.health();
        if health.down.take().is_some() {
            tracing::info!(redis = %self.address, "Redis answers again: rate limits are shared again");
            metrics::gauge!("rate_limit_shared").set(1.0);
        }
    }

    /// Takes one request from `client`'s shared bucket: whether it is allowed and the tokens
    /// left; `None` when Redis did not answer (or is being left alone after failing).
    pub async fn take(&self, client: IpAddr, rate: f64, burst: f64) -> Option<(bool, f64)> {
        if let Some((at, _)) = &self.health().down {
            if at.elapsed() < RETRY_AFTER {
                return None;
            }
        }
        let key = format!("{}:ratelimit:{client}", self.prefix);
        let mut connection = self.connection.clone();
        let mut invocation = self.script.key(key);
        invocation.arg(rate).arg(burst);
        let call = invocation.invoke_async::<(i64, String)>(&mut connection);
        match tokio::time::timeout(ANSWER_WITHIN, call).await {
            Ok(Ok((allowed, tokens))) => {
                self.answered();
                Some((allowed == 1, tokens.parse().unwrap_or(0.0)))
            }
            Ok(Err(e)) => {
                self.failed(e.to_string());
                None
            }
            Err(_) => {
                self.failed(format!("no answer within {} ms", ANSWER_WITHIN.as_millis()));
                None
            }
        }
    }

    async fn ping(&self) -> Result<(), String> {
        let mut connection = self.connection.clone();
        let pong = tokio::time::timeout(
            Duration::from_secs(1),
            redis::cmd("PING").query_async::<String>(&mut connection),
        )
        .await;
        match pong {
            Ok(Ok(_)) => {
                self.answered();
                Ok(())
            }
            Ok(Err(e)) => {
                let reason = format!("Redis at {} does not answer: {e}", self.address);
                self.failed(reason.clone());
                Err(reason)
            }
            Err(_) => {
                let reason = format!("Redis at {} did not answer within 1 s", self.address);
                self.failed(reason.clone());
                Err(reason)
            }
        }
    }
}

/// `/ready`'s view of Redis: degraded (limits per process), never failing.
#[derive(Debug)]
pub struct RedisCheck(pub std::sync::Arc<SharedBuckets>);

impl HealthCheck for RedisCheck {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn critical(&self) -> bool {
        false
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.0
                .ping()
                .await
                .map_err(|e| format!("{e}; rate limits are per process until it is back"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_never_carry_the_password() {
        assert_eq!(
            describe_redis_url("redis://:s3cret@cache.internal:6379/0"),
            "redis://cache.internal:6379/0"
        );
        assert_eq!(
            describe_redis_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert!(!describe_redis_url("s3cret").contains("s3cret"));
    }
}
