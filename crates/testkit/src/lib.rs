//! The one test kit of the workspace: what the event-store, commands, notifications and
//! projections tests share (a private broker namespace, republishing, waiting, an SMTP sink).
//! Tests only; every crate names it as a dev-dependency.
//!
//! # Layout
//! - [`mod@broker`]: namespaces, the tap, republishing with confirms, outages, cleanup.
//! - [`smtp`]: [`SmtpSink`], an SMTP server that records mail.
//! - [`eventually`]: poll until something holds, or fail naming it.
#![allow(clippy::missing_panics_doc)]

pub mod broker;
pub mod smtp;

use std::future::Future;
use std::time::{Duration, Instant};

pub use broker::{
    broker, cleanup, close_broker_connection, collect_events, republish, routed_to, tap, Received,
    AMQP_URL,
};
pub use smtp::{Mail, SmtpSink};

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
