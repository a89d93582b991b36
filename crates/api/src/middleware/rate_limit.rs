//! Per-client rate limiting: a token bucket per client address (`rate_per_second` sustained,
//! `rate_burst` at once). Every response says `X-RateLimit-Limit` (the sustained rate),
//! `X-RateLimit-Remaining` (whole requests left in the bucket) and `X-RateLimit-Reset` (seconds
//! until the bucket is full again); a refused request is a 429 with `Retry-After`.
//!
//! Without Redis, buckets live in this process: behind a load balancer each API instance limits
//! on its own. With `REDIS_URL`, every instance takes from the same buckets
//! ([`super::shared_limit`]), and falls back to its own while Redis does not answer.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::middleware::client_ip::ClientIp;
use crate::middleware::shared_limit::SharedBuckets;
use crate::state::AppState;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets by client address.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
    shared: OnceLock<std::sync::Arc<SharedBuckets>>,
}

/// The outcome of one request's check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Whole requests left.
    pub remaining: u64,
    /// Seconds until the bucket is full.
    pub reset_secs: u64,
    /// Seconds until one request is allowed (for `Retry-After`).
    pub retry_after_secs: u64,
}

impl RateLimiter {
    /// A limiter of `rate` requests per second with bursts of `burst`.
    pub fn new(rate: u32, burst: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
            shared: OnceLock::new(),
        }
    }

    /// Shares the buckets with every instance through `shared` from now on.
    pub fn share_through(&self, shared: std::sync::Arc<SharedBuckets>) {
        if self.shared.set(shared).is_err() {
            tracing::warn!("the rate limiter was already shared; the second Redis is ignored");
        }
    }

    /// The shared buckets, when configured.
    pub fn shared(&self) -> Option<&SharedBuckets> {
        self.shared.get().map(|s| &**s)
    }

    /// Takes one request from `client`'s bucket: the shared one when Redis answers, else this
    /// process's own.
    pub async fn take(&self, client: IpAddr) -> Decision {
        if let Some(shared) = self.shared.get() {
            if let Some((allowed, tokens)) = shared.take(client, self.rate, self.burst).await {
                return self.decision(allowed, tokens);
            }
            metrics::counter!("rate_limit_local_fallbacks_total").increment(1);
        }
        self.check(client, Instant::now())
    }

    /// Takes one request from `client`'s bucket at `now`.
    pub fn check(&self, client: IpAddr, now: Instant) -> Decision {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 100_000 {
            // Forget clients whose buckets have refilled: they are indistinguishable from new.
            let full_after = self.burst / self.rate;
            buckets.retain(|_, b| now.duration_since(b.at).as_secs_f64() < full_after);
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let elapsed = now.duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.at = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let tokens = bucket.tokens;
        drop(buckets);
        self.decision(allowed, tokens)
    }

    /// The answer for a bucket holding `tokens` after the request (`allowed` or not).
    fn decision(&self, allowed: bool, tokens: f64) -> Decision {
        Decision {
            allowed,
            remaining: tokens.floor() as u64,
            reset_secs: ((self.burst - tokens) / self.rate).ceil() as u64,
            retry_after_secs: if allowed {
                0
            } else {
                ((1.0 - tokens) / self.rate).ceil().max(1.0) as u64
            },
        }
    }

    /// The sustained rate (requests per second).
    pub fn limit(&self) -> u64 {
        self.rate as u64
    }
}

/// The client address `req` comes from (assigned by the outer layer).
pub(super) fn client_of(req: &Request) -> IpAddr {
    req.extensions()
        .get::<ClientIp>()
        .map_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), |c| c.0)
}

/// Takes one request from the client's bucket: the refusal to answer instead, if any, and the
/// headers every response carries.
pub(super) async fn check(
    state: &AppState,
    client: IpAddr,
) -> (Option<Response>, [(&'static str, HeaderValue); 3]) {
    let decision = state.limiter.take(client).await;
    let refusal = (!decision.allowed).then(|| {
        ApiError::TooManyRequests {
            retry_after: decision.retry_after_secs,
        }
        .into_response()
    });
    let headers = [
        (
            "x-ratelimit-limit",
            HeaderValue::from(state.limiter.limit()),
        ),
        (
            "x-ratelimit-remaining",
            HeaderValue::from(decision.remaining),
        ),
        ("x-ratelimit-reset", HeaderValue::from(decision.reset_secs)),
    ];
    (refusal, headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_is_allowed_then_refused_then_refilled() {
        let limiter = RateLimiter::new(10, 3);
        let client: IpAddr = "1.2.3.4".parse().unwrap();
        let t0 = Instant::now();
        for left in [2, 1, 0] {
            let d = limiter.check(client, t0);
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        let refused = limiter.check(client, t0);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_secs, 1);
        let other: IpAddr = "5.6.7.8".parse().unwrap();
        assert!(limiter.check(other, t0).allowed, "buckets are per client");
        assert!(
            limiter
                .check(client, t0 + Duration::from_millis(150))
                .allowed
        );
    }
}
