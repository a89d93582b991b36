//! Scenario `reads`: the catalog's public reads over HTTP against the real platform (`serve`
//! started in this process), each beside the raw Postgres query a hand-written service would run.
//!
//! Setup: 1000 products (with stock) written through the command side, then the catalog
//! projection is waited for. Then, 64 concurrent callers each (HTTP 7 s / raw 4 s in `--quick`,
//! 30 s / 20 s in a full run):
//! - `GET /api/v1/products/{id}` for a random product, beside the raw primary-key `SELECT` of the
//!   same row of `catalog.products` (every stored column, decoded) through a sqlx pool of 64
//!   (fewer only if Postgres' `max_connections` would refuse them; the row then says so);
//! - the API's own query (`catalog::get_product`, with its joins) called directly on the server's
//!   pool, beside the same raw `SELECT`: the read without HTTP, so the two rows split the cost
//!   between the query and the HTTP layer;
//! - `GET /api/v1/products?search=<word>` for a random word of the products' vocabulary (each word
//!   is in roughly a quarter of the products), beside the raw full-text page `SELECT` on the same
//!   GIN index (no joins, no total count) through the same raw pool.
//!
//! The HTTP paths include everything a client pays for: the reqwest client (64 pooled
//! connections), the middleware stack, the read model query with its joins, JSON. Client and
//! server share this process and its 2 cores with Postgres, so each row's note also gives this
//! process's CPU per operation and how busy the machine was.
//!
//! Also here, shared with `checkout`: [`Platform`] (the platform started in-process, users made
//! through the command side, cleanup of its broker namespace) and [`closed_loop`] (N callers
//! looping an operation for a while, with progress and CPU accounting).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use commerce::app::{Parts, RunningApp};
use commerce::config::Settings;
use commerce_api::auth::{password, token::TokenKeys};
use commerce_commands::Dispatcher;
use commerce_domain::category::{Category, CategoryCommand};
use commerce_domain::ids::user_id_for_email;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_domain::product::{Product, ProductCommand};
use commerce_domain::user::{Role, User, UserCommand};
use commerce_domain::{Currency, Money};
use commerce_event_store::{EventMetadata, EventStore, LogReader};
use futures::{StreamExt, TryStreamExt};
use rand::Rng;
use serde_json::Value;
use sqlx::PgPool;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::ctx::Ctx;
use crate::report::Row;

const PRODUCTS: usize = 1000;
const CONNECTIONS: usize = 64;
/// How often long loops report progress.
pub(super) const PROGRESS_EVERY: Duration = Duration::from_secs(3);
const WORDS: &[&str] = &[
    "amber", "basalt", "cedar", "dune", "ember", "fjord", "granite", "harbor", "indigo", "juniper",
    "kestrel", "lagoon", "marble", "nectar", "onyx", "prairie",
];

/// Every stored column of a catalog row but the generated `search`.
type RawProduct = (
    Uuid,
    String,
    String,
    String,
    i64,
    String,
    Uuid,
    Option<String>,
    bool,
    chrono::DateTime<chrono::Utc>,
    chrono::DateTime<chrono::Utc>,
);

const RAW_COLUMNS: &str = "id, name, slug, description, price_minor, currency, category_id, \
     image_url, is_active, created_at, updated_at";

fn word(rng: &mut impl Rng) -> &'static str {
    WORDS[rng.random_range(0..WORDS.len())]
}

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let platform = Platform::start(ctx, CONNECTIONS, "reads").await?;
    let result = measure(ctx, &platform).await;
    platform.stop().await?;
    result
}

/// Writes the catalog through the command side and waits for the catalog projection.
async fn seed(ctx: &Ctx, platform: &Platform) -> anyhow::Result<Vec<Uuid>> {
    let dispatcher = Dispatcher::new(EventStore::new(platform.pool.clone()));
    let metadata = EventMetadata::new("bench", Uuid::new_v4().to_string());
    let category_id = Uuid::new_v4();
    dispatcher
        .execute::<Category>(
            &category_id.to_string(),
            CategoryCommand::CreateCategory {
                category_id,
                name: format!("Reads {}", category_id.simple()),
                slug: String::new(),
                at: chrono::Utc::now(),
            },
            &metadata,
        )
        .await?;
    let ids: Vec<Uuid> = (0..PRODUCTS).map(|_| Uuid::new_v4()).collect();
    futures::stream::iter(ids.iter().copied().enumerate())
        .map(|(i, id)| {
            let (dispatcher, metadata) = (&dispatcher, &metadata);
            let (name, description) = {
                let mut rng = rand::rng();
                (
                    format!("{} {} {i}", word(&mut rng), word(&mut rng)),
                    format!("A {} thing made of {}", word(&mut rng), word(&mut rng)),
                )
            };
            async move {
                let at = chrono::Utc::now();
                dispatcher
                    .execute::<Product>(
                        &id.to_string(),
                        ProductCommand::CreateProduct {
                            product_id: id,
                            name,
                            slug: String::new(),
                            description,
                            price: Money::new(1000 + (i as i64 % 9000), Currency::USD),
                            category_id,
                            image_url: None,
                            at,
                        },
                        metadata,
                    )
                    .await?;
                dispatcher
                    .execute::<Inventory>(
                        &id.to_string(),
                        InventoryCommand::AdjustStock {
                            product_id: id,
                            adjustment: StockAdjustment::Add(100),
                            reason: Some("bench".to_owned()),
                            at,
                        },
                        metadata,
                    )
                    .await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<()>()
        .await?;
    // Every write above has committed; settling lets the horizon (cluster-wide, so other
    // databases' transactions hold it back too) pass them, so `head` includes them all.
    let log = LogReader::new(platform.pool.clone());
    log.settle(Duration::from_secs(60)).await?;
    let head = log.head().await?;
    ctx.progress(&format!(
        "reads: {PRODUCTS} products written, waiting for the catalog"
    ));
    if !commerce_projections::wait::wait_for(
        &platform.pool,
        &["catalog"],
        head,
        Duration::from_secs(120),
    )
    .await?
    {
        bail!("the catalog projection did not catch up within 120 s");
    }
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM catalog.products WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&platform.pool)
        .await?;
    if seen != PRODUCTS as i64 {
        bail!("the catalog shows {seen} of {PRODUCTS} products");
    }
    Ok(ids)
}

async fn measure(ctx: &Ctx, platform: &Platform) -> anyhow::Result<Vec<Row>> {
    let ids = Arc::new(seed(ctx, platform).await?);
    let http_time = ctx.pick(Duration::from_secs(7), Duration::from_secs(30));
    let raw_time = ctx.pick(Duration::from_secs(4), Duration::from_secs(20));
    let raw_size = raw_pool_size(ctx, platform).await?;
    let raw_pool = platform.raw_pool(raw_size).await?;
    let (client, base) = (platform.client.clone(), platform.base.clone());

    let detail = closed_loop(ctx, "GET /products/{id}", CONNECTIONS, http_time, {
        let (client, base, ids) = (client.clone(), base.clone(), ids.clone());
        move |_| {
            let url = format!("{base}/api/v1/products/{}", pick(&ids));
            let client = client.clone();
            async move { get_ok(&client, &url).await.map(|()| Vec::new()) }
        }
    })
    .await
    .checked("GET /products/{id}")?;
    let raw_detail = closed_loop(ctx, "raw PK SELECT", CONNECTIONS, raw_time, {
        let (pool, ids) = (raw_pool.clone(), ids.clone());
        let sql = format!("SELECT {RAW_COLUMNS} FROM catalog.products WHERE id = $1");
        move |_| {
            let (pool, sql, id) = (pool.clone(), sql.clone(), pick(&ids));
            async move {
                let row: Option<RawProduct> =
                    sqlx::query_as(&sql).bind(id).fetch_optional(&pool).await?;
                row.context("row missing").map(|_| Vec::new())
            }
        }
    })
    .await
    .checked("raw PK SELECT")?;
    // The API's own query, called directly on the server's pool: the read without HTTP.
    let query = closed_loop(ctx, "catalog::get_product", CONNECTIONS, raw_time, {
        let (pool, ids) = (platform.pool.clone(), ids.clone());
        move |_| {
            let (pool, id) = (pool.clone(), pick(&ids));
            async move {
                let view = commerce_projections::catalog::get_product(&pool, id).await?;
                view.context("product missing").map(|_| Vec::new())
            }
        }
    })
    .await
    .checked("catalog::get_product")?;
    let search = closed_loop(ctx, "GET /products?search", CONNECTIONS, http_time, {
        let (client, base) = (client.clone(), base.clone());
        move |_| {
            let url = format!("{base}/api/v1/products?search={}", word(&mut rand::rng()));
            let client = client.clone();
            async move { get_ok(&client, &url).await.map(|()| Vec::new()) }
        }
    })
    .await
    .checked("GET /products?search")?;
    let raw_search = closed_loop(ctx, "raw search SELECT", CONNECTIONS, raw_time, {
        let pool = raw_pool.clone();
        let sql = format!(
            "SELECT {RAW_COLUMNS} FROM catalog.products \
             WHERE is_active AND search @@ to_tsquery('simple', $1) \
             ORDER BY created_at DESC, id LIMIT 10"
        );
        move |_| {
            let (pool, sql) = (pool.clone(), sql.clone());
            let query = format!("{}:*", word(&mut rand::rng()));
            async move {
                let rows: Vec<RawProduct> =
                    sqlx::query_as(&sql).bind(query).fetch_all(&pool).await?;
                if rows.is_empty() {
                    bail!("no product matched");
                }
                Ok(Vec::new())
            }
        }
    })
    .await
    .checked("raw search SELECT")?;
    raw_pool.close().await;

    let rate = |l: &Load| l.ops as f64 / l.elapsed.as_secs_f64();
    let raw_pk = format!("raw PK SELECT catalog.products, pool {raw_size}");
    let row = |variant: String, load: &Load, raw_name: &str, raw: &Load| {
        Row::measured(
            "reads",
            &variant,
            "req/s",
            load.ops,
            load.elapsed,
            &load.samples,
        )
        .with_baseline(raw_name, raw.ops, raw.elapsed, &raw.samples)
    };
    Ok(vec![
        row(
            format!("GET /products/{{id}}, {CONNECTIONS} conns"),
            &detail,
            &raw_pk,
            &raw_detail,
        )
        .with_target(
            "detail ≥ 50% of raw",
            rate(&detail) >= 0.5 * rate(&raw_detail),
        )
        .with_note(format!(
            "random of {PRODUCTS} products{}{}; raw{}",
            detail.error_note(),
            detail.cpu_note(),
            raw_detail.cpu_note()
        )),
        row(
            format!("catalog::get_product without HTTP, {CONNECTIONS} callers"),
            &query,
            &raw_pk,
            &raw_detail,
        )
        .with_note(format!(
            "the API's query (joins categories, stock, ratings) on the server's pool of {}{}{}",
            platform.settings.max_db_connections,
            query.error_note(),
            query.cpu_note()
        )),
        row(
            format!("GET /products?search=<word>, {CONNECTIONS} conns"),
            &search,
            &format!("raw tsquery page SELECT, pool {raw_size}"),
            &raw_search,
        )
        .with_note(format!(
            "1 of {} words (~1/4 of products match), page of 10; the API adds joins and a \
             count(*){}{}; raw{}",
            WORDS.len(),
            search.error_note(),
            search.cpu_note(),
            raw_search.cpu_note()
        )),
    ])
}

/// 64, or fewer when Postgres would refuse that many more connections (its `max_connections`
/// is shared with the platform's own pool and whatever else runs on the server).
async fn raw_pool_size(ctx: &Ctx, platform: &Platform) -> anyhow::Result<u32> {
    let (max, used): (i32, i64) = sqlx::query_as(
        "SELECT current_setting('max_connections')::int, (SELECT count(*) FROM pg_stat_activity)",
    )
    .fetch_one(&ctx.pool)
    .await?;
    let app_growth =
        i64::from(platform.settings.max_db_connections) - i64::from(platform.pool.size());
    let free = i64::from(max) - used - app_growth.max(0) - 5;
    let size = free.clamp(8, CONNECTIONS as i64) as u32;
    if size < CONNECTIONS as u32 {
        ctx.progress(&format!(
            "reads: raw pool of {size}, not {CONNECTIONS}: Postgres allows {max} connections, {used} in use"
        ));
    }
    Ok(size)
}

fn pick(ids: &[Uuid]) -> Uuid {
    ids[rand::rng().random_range(0..ids.len())]
}

// Driving the platform: shared with `checkout`.

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
        names.push(commerce_commands::process::notifications::NotificationsProcess::NAME);
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
        let user_id = user_id_for_email(&email);
        Dispatcher::new(EventStore::new(self.pool.clone()))
            .execute::<User>(
                &user_id.to_string(),
                UserCommand::RegisterUser {
                    user_id,
                    email,
                    name: format!("Bench {role:?}"),
                    phone: None,
                    password_hash: self.password_hash.clone(),
                    roles: vec![role],
                    at: chrono::Utc::now(),
                },
                &EventMetadata::new("bench", Uuid::new_v4().to_string()),
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
        consumers.push(commerce_commands::process::notifications::NotificationsProcess::NAME);
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
