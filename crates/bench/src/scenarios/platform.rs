//! What the HTTP scenarios (`reads`, `checkout`) share: [`Platform`] (the platform started
//! in-process, users made through the command side, cleanup of its broker namespace),
//! [`closed_loop`] (N callers looping an operation for a while, with progress and CPU accounting)
//! and small HTTP helpers.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use commerce::app::{Parts, RunningApp};
use commerce::config::Settings;
use commerce_api::auth::{password, token::TokenKeys};
use commerce_commands::credentials::SetPassword;
use commerce_commands::Dispatcher;
use commerce_domain::ids::normalize_email;
use commerce_domain::user::{Role, User, UserCommand};
use commerce_event_store::{EventMetadata, EventStore, LogReader};
use serde_json::Value;
use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::ctx::Ctx;

pub(super) const PROGRESS_EVERY: Duration = Duration::from_secs(3);

/// The platform running in this process, an HTTP client pooled for `connections`, and the
/// broker namespace to delete afterwards.
pub(super) struct Platform {
    pub(super) base: String,
    pub(super) client: reqwest::Client,
    pub(super) pool: PgPool,
    pub(super) settings: Settings,
    running: RunningApp,
    password_hash: String,
    scratch: super::relay::Scratch,
}

impl Platform {
    /// `serve` on a scratch database of its own (`<bench db>_<name>`) in a fresh namespace,
    /// rate limit out of the way. Its own database: on the shared one, a fresh namespace's relay
    /// would republish everything earlier scenarios wrote, and the consumers would drain those
    /// duplicates from their queues before reaching the measured traffic.
    pub(super) async fn start(ctx: &Ctx, connections: usize, name: &str) -> anyhow::Result<Self> {
        let scratch = super::relay::Scratch::create(ctx, name).await?;
        let namespace = ctx.fresh_namespace();
        let mut settings = ctx.settings(
            &namespace,
            &[
                ("--listen-addr", "127.0.0.1:0"),
                ("--rate-limit", "1000000"),
                ("--rate-burst", "1000000"),
                ("--queue-type", "classic"),
                ("--password-memory-kib", "1024"),
            ],
        )?;
        settings.database_url.clone_from(&scratch.url);
        let running = commerce::app::start(&settings, Parts::ALL).await?;
        let addr = running.api_addr.context("the API does not run")?;
        // A fresh namespace means fresh consumers: they first catch up with what earlier
        // scenarios left in the bench database. Measuring starts once they have.
        let log = LogReader::new(running.pool.clone());
        log.settle(Duration::from_secs(60)).await?;
        let head = log.head().await?;
        let mut names: Vec<&str> = commerce_projections::registry::NAMES.to_vec();
        names.push(commerce_commands::process::order_fulfilment::OrderFulfilmentProcess::NAME);
        names.push(commerce_notifications::NotificationsProcess::NAME);
        ctx.progress("platform started; its consumers are catching up with the bench database");
        if !commerce_projections::wait::wait_for(
            &running.pool,
            &names,
            head,
            Duration::from_secs(300),
        )
        .await?
        {
            bail!("the platform's consumers did not catch up within 300 s");
        }
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(connections)
            .timeout(Duration::from_secs(30))
            .build()?;
        let password_hash = password::hash("bench-password-1".to_owned(), 1024).await?;
        Ok(Self {
            base: format!("http://{addr}"),
            client,
            pool: running.pool.clone(),
            settings,
            running,
            password_hash,
            scratch,
        })
    }

    /// A user with `role` registered through the command side; returns its id and a bearer
    /// token minted with the server's key.
    pub(super) async fn user(&self, role: Role) -> anyhow::Result<(Uuid, String)> {
        let email = format!("bench-{}@example.com", Uuid::new_v4().simple());
        // As the platform registers users: a keyed id, the data key made with the registration.
        let privacy = self.settings.keyring(&self.pool).await?;
        let user_id = privacy.user_id_for_email(&normalize_email(&email));
        Dispatcher::new(EventStore::new(self.pool.clone()).with_privacy(privacy))
            .execute_with::<User>(
                &user_id.to_string(),
                UserCommand::RegisterUser {
                    user_id,
                    email,
                    name: format!("Bench {role:?}"),
                    phone: None,
                    roles: vec![role],
                    at: chrono::Utc::now(),
                },
                &EventMetadata::new("bench", Uuid::new_v4().to_string()),
                &SetPassword::new(user_id, self.password_hash.clone()),
            )
            .await?;
        let keys = TokenKeys::new(self.settings.jwt_secret()?.as_bytes());
        let (token, _) = keys.issue(
            user_id,
            &[role],
            chrono::Utc::now(),
            Duration::from_secs(3600),
        )?;
        Ok((user_id, token))
    }

    /// A pool of `size` connections on the platform's database, for raw baselines and polling.
    pub(super) async fn raw_pool(&self, size: u32) -> anyhow::Result<PgPool> {
        Ok(sqlx::postgres::PgPoolOptions::new()
            .max_connections(size)
            .connect(&self.settings.database_url)
            .await?)
    }

    /// Stops the platform and deletes its exchange and queues.
    pub(super) async fn stop(self) -> anyhow::Result<()> {
        self.running.stop().await;
        self.scratch.drop().await?;
        let broker = &self.settings.broker;
        let connection = broker.connect("bench-cleanup").await?;
        let channel = connection.create_channel().await?;
        let mut consumers: Vec<&str> = commerce_projections::registry::NAMES.to_vec();
        consumers.push(commerce_commands::process::order_fulfilment::OrderFulfilmentProcess::NAME);
        consumers.push(commerce_notifications::NotificationsProcess::NAME);
        for name in consumers {
            channel
                .queue_delete(broker.queue(name).as_str().into(), Default::default())
                .await?;
        }
        channel
            .exchange_delete(broker.exchange().into(), Default::default())
            .await?;
        let _ = connection.close(200, "bench done".into()).await;
        Ok(())
    }
}

/// A POST of `body` with `token`; the JSON answer, or an error naming the status and body.
pub(super) async fn post(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
) -> anyhow::Result<Value> {
    let response = client
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        bail!("POST {url}: {status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(serde_json::from_slice(&bytes)?)
}

/// A GET that must succeed; the body is read and dropped.
pub(super) async fn get_ok(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let response = client.get(url).send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(())
}

/// What a load phase did: per-operation total latencies, plus the parts each operation reported
/// (e.g. `[place, pay]`).
#[derive(Debug, Default)]
pub(super) struct Load {
    pub(super) ops: u64,
    pub(super) errors: u64,
    pub(super) first_error: Option<String>,
    pub(super) elapsed: Duration,
    pub(super) samples: Vec<Duration>,
    pub(super) parts: Vec<Vec<Duration>>,
    /// CPU used meanwhile: (this process, the whole machine busy fraction).
    pub(super) cpu: Option<(Duration, f64)>,
}

impl Load {
    fn add(&mut self, result: anyhow::Result<Vec<Duration>>, took: Duration) {
        match result {
            Ok(parts) => {
                self.ops += 1;
                self.samples.push(took);
                self.add_parts(parts.into_iter().map(|p| vec![p]));
            }
            Err(error) => {
                self.errors += 1;
                self.first_error.get_or_insert_with(|| format!("{error:#}"));
            }
        }
    }

    fn add_parts(&mut self, parts: impl Iterator<Item = Vec<Duration>>) {
        for (i, part) in parts.enumerate() {
            if self.parts.len() <= i {
                self.parts.resize_with(i + 1, Vec::new);
            }
            self.parts[i].extend(part);
        }
    }

    fn merge(&mut self, other: Self) {
        self.ops += other.ops;
        self.errors += other.errors;
        self.first_error = self.first_error.take().or(other.first_error);
        self.samples.extend(other.samples);
        self.add_parts(other.parts.into_iter());
    }

    /// Adds another phase's operations, time and CPU (the phases ran one after the other).
    pub(super) fn absorb(&mut self, other: Self) {
        let elapsed = self.elapsed + other.elapsed;
        let cpu = self
            .cpu
            .zip(other.cpu)
            .map(|((a, busy_a), (b, busy_b))| (a + b, (busy_a + busy_b) / 2.0));
        self.merge(other);
        self.elapsed = elapsed;
        self.cpu = cpu;
    }

    /// Fails when nothing succeeded, with the first error.
    pub(super) fn checked(self, what: &str) -> anyhow::Result<Self> {
        if self.ops == 0 {
            bail!(
                "{what}: no operation succeeded ({})",
                self.first_error.as_deref().unwrap_or("none ran")
            );
        }
        Ok(self)
    }

    /// `", N errors (first: …)"` when there were errors.
    pub(super) fn error_note(&self) -> String {
        match &self.first_error {
            Some(first) => format!("; {} errors (first: {first})", self.errors),
            None => String::new(),
        }
    }

    /// Adds what a spawned operation returned.
    pub(super) fn joined(
        &mut self,
        joined: Result<(anyhow::Result<Vec<Duration>>, Duration), tokio::task::JoinError>,
    ) {
        match joined {
            Ok((result, took)) => self.add(result, took),
            Err(error) => self.add(Err(error.into()), Duration::ZERO),
        }
    }

    /// `"; this process 85 µs CPU/op, machine 100% busy"`, when measured.
    pub(super) fn cpu_note(&self) -> String {
        match self.cpu {
            Some((cpu, busy)) if self.ops > 0 => format!(
                "; bench process (client+server) {:.0} µs CPU/op, machine {:.0}% busy",
                cpu.as_secs_f64() * 1e6 / self.ops as f64,
                busy * 100.0
            ),
            _ => String::new(),
        }
    }

    /// The latencies of part `i` of each operation.
    pub(super) fn part(&self, i: usize) -> &[Duration] {
        self.parts.get(i).map_or(&[], Vec::as_slice)
    }
}

/// `workers` callers each running `op(worker)` back to back for `duration`.
pub(super) async fn closed_loop<F, Fut>(
    ctx: &Ctx,
    label: &str,
    workers: usize,
    duration: Duration,
    op: F,
) -> Load
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<Vec<Duration>>> + Send,
{
    let op = Arc::new(op);
    let done = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu_ticks();
    let started = Instant::now();
    let deadline = started + duration;
    let mut set = JoinSet::new();
    for worker in 0..workers {
        let op = Arc::clone(&op);
        let done = Arc::clone(&done);
        set.spawn(async move {
            let mut load = Load::default();
            while Instant::now() < deadline {
                let t = Instant::now();
                let result = op(worker).await;
                let failed = result.is_err();
                load.add(result, t.elapsed());
                done.fetch_add(1, Ordering::Relaxed);
                if failed {
                    // A failing path must not spin.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            load
        });
    }
    let mut total = Load::default();
    let mut ticker =
        tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
    while !set.is_empty() {
        tokio::select! {
            joined = set.join_next() => match joined {
                Some(Ok(load)) => total.merge(load),
                Some(Err(error)) => total.add(Err(error.into()), Duration::ZERO),
                None => break,
            },
            _ = ticker.tick() => ctx.progress(&format!(
                "{label}: {} done in {:.0} s",
                done.load(Ordering::Relaxed),
                started.elapsed().as_secs_f64()
            )),
        }
    }
    total.elapsed = started.elapsed();
    total.cpu = cpu_before.zip(cpu_ticks()).map(|(b, a)| cpu_between(b, a));
    total
}

/// CPU ticks (at Linux's `USER_HZ`, 100/s) so far: this process (load generator and in-process
/// server alike), and the machine's busy and total; `None` off Linux.
fn cpu_ticks() -> Option<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let process = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let machine = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = (machine.lines().next()?.split_whitespace().skip(1).take(8))
        .filter_map(|t| t.parse().ok())
        .collect();
    let total: u64 = ticks.iter().sum();
    Some((process, total - ticks.get(3)? - ticks.get(4)?, total))
}

/// This process's CPU time between two [`cpu_ticks`], and the machine's busy fraction.
fn cpu_between(before: (u64, u64, u64), after: (u64, u64, u64)) -> (Duration, f64) {
    let process = Duration::from_millis(after.0.saturating_sub(before.0) * 10);
    let total = after.2.saturating_sub(before.2).max(1);
    (
        process,
        after.1.saturating_sub(before.1) as f64 / total as f64,
    )
}
