//! Scenario `checkout`: the whole order pipeline end to end over HTTP, against the real platform
//! (`serve`: API, relay, projections and sagas) started in this process on port 0.
//!
//! Phase 1, 32 customers (made through the command side, tokens minted with the server's key),
//! each in a loop: `POST /api/v1/orders` (one line, quantity 1, one of 32 products at random),
//! `POST /api/v1/payments` (the order's `total_amount` and `currency`, method `card`), then wait
//! until the orders read model shows the order `CONFIRMED` (a background task polls
//! `orders.orders` every 5 ms for the outstanding ids). So at most 32 orders are in the pipeline
//! (relay → broker → saga → order → relay → orders projection) at once, and the rate measured is
//! what the pipeline confirms, not how fast HTTP can pile orders up in front of it. Figures:
//! confirmed orders/s, place→CONFIRMED latency (from the start of `POST /orders` until the poll
//! saw it), p50/p99 of each POST, and where the pipeline stood: events the saga applied per
//! second, Postgres transactions per order, which consumers lagged at the end. 12 s (`--quick`)
//! or 60 s.
//!
//! Phase 2, open loop: checkouts (place and pay, not waiting) started at half the phase-1 rate,
//! paced by a timer whatever the answers take: `POST /orders` p99 at that rate (6 s or 30 s).
//!
//! Baseline: raw single-event INSERTs (autocommit, the `append` scenario's baseline: same event
//! shape, content hash included, into a copy of `events` with all its indexes) by 16 callers on
//! the same database, after the two phases, while the platform idles (4 s quick, 15 s full). It
//! is compared with the events the whole pipeline appended per second in phase 1 (orders,
//! payments, stock, the saga's steps): what the pipeline writes against what Postgres alone can
//! write in the same shape. (Bare HTTP, `GET /health`, says nothing about a pipeline of
//! appends, relay and consumers, so it is not a baseline here.)

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use commerce_domain::user::Role;
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::append::raw_insert_only;
use super::checkout_shop::{counters, lag_snapshot, ms, Shop, Tracker, POLL_EVERY};
use super::platform::{closed_loop, post, Load, Platform, PROGRESS_EVERY};
use crate::ctx::Ctx;
use crate::report::Row;

const CUSTOMERS: usize = 32;
const PRODUCTS: usize = 32;

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let platform = Platform::start(ctx, CUSTOMERS, "checkout").await?;
    let result = measure(ctx, &platform).await;
    platform.stop().await?;
    result
}

/// The admin's category and products (through HTTP), and the customers (command side).
async fn open_shop(platform: &Platform, tracker: Arc<Tracker>) -> anyhow::Result<Shop> {
    let base = platform.base.clone();
    let (_, admin) = platform.user(Role::Admin).await?;
    let category = post(
        &platform.client,
        &format!("{base}/api/v1/categories"),
        &admin,
        &json!({"name": format!("Bench {}", Uuid::new_v4().simple())}),
    )
    .await?;
    let mut products = Vec::with_capacity(PRODUCTS);
    for i in 0..PRODUCTS {
        let product = post(
            &platform.client,
            &format!("{base}/api/v1/products"),
            &admin,
            &json!({"name": format!("Checkout item {i}"), "description": "bench", "price": 19.99,
                    "category_id": category["data"]["id"], "initial_stock": 1_000_000}),
        )
        .await?;
        let id = product["data"]["id"].as_str().context("no product id")?;
        products.push(id.parse()?);
    }
    let mut tokens = Vec::with_capacity(CUSTOMERS);
    for _ in 0..CUSTOMERS {
        tokens.push(platform.user(Role::Customer).await?.1);
    }
    Ok(Shop {
        client: platform.client.clone(),
        base,
        tokens,
        products,
        tracker,
    })
}

/// Callers of the raw INSERT baseline.
const RAW_CALLERS: usize = 16;

/// What the two phases measured.
struct Phases {
    /// Phase 1, closed loop, waiting for each confirmation.
    full: Load,
    /// Events the pipeline appended during phase 1.
    events: u64,
    /// Saga events, transactions per order and lag at the end of phase 1, in words.
    lag: String,
    /// Phase 2's rate.
    half_rate: f64,
    /// Phase 2, open loop.
    half: Load,
    /// Phase 2's place → CONFIRMED latencies.
    half_confirm: Vec<Duration>,
}

async fn measure(ctx: &Ctx, platform: &Platform) -> anyhow::Result<Vec<Row>> {
    let tracker = Arc::new(Tracker::default());
    let shop = Arc::new(open_shop(platform, Arc::clone(&tracker)).await?);
    ctx.progress(&format!("{PRODUCTS} products, {CUSTOMERS} customers ready"));

    let stop_polling = CancellationToken::new();
    let poller =
        tokio::spawn(Arc::clone(&tracker).poll(platform.raw_pool(2).await?, stop_polling.clone()));
    let result = phases(ctx, platform, &shop).await;
    stop_polling.cancel();
    poller.await?;
    let phases = result?;
    let (full, half, events) = (&phases.full, &phases.half, phases.events);
    let (lag, half_rate, half_confirm) = (&phases.lag, phases.half_rate, &phases.half_confirm);
    let poll_errors = tracker.poll_errors.load(Ordering::Relaxed);

    ctx.progress(&format!("baseline: raw INSERT, {RAW_CALLERS} callers"));
    let raw_pool = platform.raw_pool(u32::try_from(RAW_CALLERS)?).await?;
    let raw = raw_insert_only(
        ctx,
        &raw_pool,
        RAW_CALLERS,
        ctx.pick(Duration::from_millis(500), Duration::from_secs(2)),
        ctx.pick(Duration::from_secs(4), Duration::from_secs(15)),
    )
    .await;
    raw_pool.close().await;
    let raw = raw?;

    let confirmed_rate = full.ops as f64 / full.elapsed.as_secs_f64();
    let confirmed_p99 = ms(&full.samples, 99.0);
    let half_place_p99 = ms(half.part(0), 99.0);
    let row = |variant: String, unit: &str, load: &Load, samples: &[Duration]| {
        Row::measured("checkout", &variant, unit, load.ops, load.elapsed, samples)
    };
    Ok(vec![
        row(
            format!("place+pay → CONFIRMED, {CUSTOMERS} customers"),
            "orders/s",
            full,
            &full.samples,
        )
        .with_target(
            "≥ 200 confirmed orders/s, p99 < 250 ms",
            confirmed_rate >= 200.0 && confirmed_p99 < 250.0,
        )
        .with_note(format!(
            "latency = POST /orders start → CONFIRMED in orders.orders (polled every {} ms); \
             {lag}; poll errors {poll_errors}{}{}",
            POLL_EVERY.as_millis(),
            full.error_note(),
            full.cpu_note(),
        )),
        Row::measured(
            "checkout",
            &format!("events appended by the pipeline, {CUSTOMERS} customers"),
            "events/s",
            events,
            full.elapsed,
            &[],
        )
        .with_baseline(
            &format!("raw INSERT (autocommit), {RAW_CALLERS} callers"),
            raw.ops(),
            raw.elapsed,
            &raw.latencies(|_| true),
        )
        .with_note(format!(
            "phase 1's events ({:.1} per confirmed order: order, payment, stock, saga steps), \
             each through HTTP or the saga, the relay and the consumers; the raw INSERTs of the \
             append scenario's event shape ran after, while the platform idled",
            events as f64 / full.ops.max(1) as f64
        )),
        row(
            format!("POST /orders, {CUSTOMERS} customers"),
            "orders/s",
            full,
            full.part(0),
        )
        .with_note("each customer waits for its order's confirmation before the next"),
        row(
            format!("POST /payments, {CUSTOMERS} customers"),
            "payments/s",
            full,
            full.part(1),
        ),
        row(
            "POST /orders at half the confirmed rate".to_owned(),
            "orders/s",
            half,
            half.part(0),
        )
        .with_target(
            "POST /orders p99 < 30 ms at half rate",
            half_place_p99 < 30.0,
        )
        .with_note(format!(
            "open loop, {half_rate:.1} checkouts/s; POST /payments p50 {:.1} / p99 {:.1} ms; place→CONFIRMED p50 {:.1} / \
             p99 {:.1} ms ({} of {} confirmed){}",
            ms(half.part(1), 50.0),
            ms(half.part(1), 99.0),
            ms(half_confirm, 50.0),
            ms(half_confirm, 99.0),
            half_confirm.len(),
            half.ops,
            half.error_note()
        )),
    ])
}

/// Phase 1 (closed loop, waiting for confirmation), the lag it left, then phase 2 (open loop at
/// half the confirmed rate) and its confirmation latencies.
async fn phases(ctx: &Ctx, platform: &Platform, shop: &Arc<Shop>) -> anyhow::Result<Phases> {
    let before = counters(&platform.pool).await?;
    let polls_before = shop.tracker.polls.load(Ordering::Relaxed);
    let full = {
        let shop = Arc::clone(shop);
        closed_loop(
            ctx,
            "checkout",
            CUSTOMERS,
            ctx.pick(Duration::from_secs(12), Duration::from_secs(60)),
            move |customer| {
                let shop = Arc::clone(&shop);
                async move { shop.checkout(customer, true).await }
            },
        )
        .await
        .checked("checkout")?
    };
    let after = counters(&platform.pool).await?;
    // The platform's transactions: the bench's own confirmation polls (and the two counter
    // reads) are not the pipeline's.
    let polls = shop.tracker.polls.load(Ordering::Relaxed) - polls_before;
    let saga_events = after.saga_applied - before.saga_applied;
    let xacts = after.xacts - before.xacts - i64::try_from(polls)? - 2;
    let events = u64::try_from(after.events - before.events)?;
    let confirmed_rate = full.ops as f64 / full.elapsed.as_secs_f64();
    let lag = format!(
        "saga applied {saga_events} events ({:.0}/s, {:.1} per order); {:.1} Postgres \
         transactions per confirmed order (target ≤ 15; the bench's own polls excluded); lag behind the log head at the end (events): {}",
        saga_events as f64 / full.elapsed.as_secs_f64(),
        saga_events as f64 / full.ops as f64,
        xacts as f64 / full.ops as f64,
        lag_snapshot(&platform.pool, &platform.settings.broker.namespace).await?
    );
    ctx.progress(&format!(
        "checkout: {} confirmed ({confirmed_rate:.1}/s), p99 {:.0} ms; {events} events appended; {lag}",
        full.ops,
        ms(&full.samples, 99.0)
    ));
    shop.tracker.take_confirmed();

    let half_rate = confirmed_rate / 2.0;
    let half = {
        let shop = Arc::clone(shop);
        paced(
            ctx,
            half_rate,
            ctx.pick(Duration::from_secs(6), Duration::from_secs(30)),
            move |customer| {
                let shop = Arc::clone(&shop);
                async move { shop.checkout(customer, false).await }
            },
        )
        .await
        .checked("checkout at half rate")?
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while shop.tracker.outstanding() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let half_confirm = shop.tracker.take_confirmed();
    Ok(Phases {
        full,
        events,
        lag,
        half_rate,
        half,
        half_confirm,
    })
}

/// Starts `op` at `rate` per second for `duration` (open loop: a slow answer does not delay the
/// next start), customers in turn.
async fn paced<F, Fut>(ctx: &Ctx, rate: f64, duration: Duration, op: F) -> Load
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<Vec<Duration>>> + Send + 'static,
{
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(0.1)));
    let started = Instant::now();
    let mut last_progress = started;
    let mut set = JoinSet::new();
    let mut total = Load::default();
    let mut started_ops = 0;
    while started.elapsed() < duration {
        interval.tick().await;
        let run = op(started_ops);
        set.spawn(async move {
            let t = Instant::now();
            (run.await, t.elapsed())
        });
        started_ops += 1;
        while let Some(joined) = set.try_join_next() {
            total.joined(joined);
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            last_progress = Instant::now();
            ctx.progress(&format!(
                "checkout at {rate:.1}/s: {started_ops} started, {} in flight",
                set.len()
            ));
        }
    }
    while let Some(joined) = set.join_next().await {
        total.joined(joined);
    }
    total.elapsed = started.elapsed();
    total
}
