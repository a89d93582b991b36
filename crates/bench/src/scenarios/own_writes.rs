//! Scenario `own-writes`: what read-your-own-writes by default (guarantee 7) costs a signed-in
//! caller's reads, over HTTP against the real platform (`serve` started in this process).
//!
//! Setup: 64 customers (made through the command side, tokens minted with the server's key) each
//! put a product in their cart through `POST /api/v1/cart`, so each has events of its own in the
//! log; then the carts and users projections are waited for.
//!
//! Measured, 64 callers (one per customer), each reading its own resource:
//! - `GET /api/v1/cart` and `GET /api/v1/users/me` as any client sends them (no header): the API
//!   looks up the caller's latest event by actor (concurrent reads share one statement) and,
//!   since the read model has applied it, answers at once;
//! - baseline: the same requests with `X-Min-Position` set to the start of the log, which asks
//!   for nothing: the read without the own-writes lookup.
//!
//! A third row reads carts while 8 other customers add to theirs (100 writes/s in all), so the
//! carts read model is rarely at the head when a read asks.
//!
//! Both sides alternate in halves (default, baseline, baseline, default) on the same client and
//! connections, so drifting load weighs on both alike. Target: the default costs ≤ 10%.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use commerce_domain::user::Role;
use commerce_event_store::{LogReader, Position};
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::platform::{closed_loop, post, Platform};
use crate::ctx::Ctx;
use crate::report::Row;

const CUSTOMERS: usize = 64;
/// Customers who write while the third row reads.
const WRITERS: usize = 8;
/// Their writes per second, together.
const WRITE_RATE: f64 = 100.0;

/// Runs the scenario.
pub(crate) async fn run(ctx: &Ctx) -> anyhow::Result<Vec<Row>> {
    let platform = Platform::start(ctx, CUSTOMERS, "own_writes").await?;
    let result = measure(ctx, &platform).await;
    platform.stop().await?;
    result
}

/// The readers' tokens (each with the product in its cart), the writers' tokens and the product.
struct Seeded {
    readers: Vec<String>,
    writers: Vec<String>,
    product_id: String,
}

/// One product, and the customers, each with the product in its cart.
async fn seed(ctx: &Ctx, platform: &Platform) -> anyhow::Result<Seeded> {
    let base = &platform.base;
    let (_, admin) = platform.user(Role::Admin).await?;
    let category = post(
        &platform.client,
        &format!("{base}/api/v1/categories"),
        &admin,
        &json!({"name": format!("Own writes {}", Uuid::new_v4().simple())}),
    )
    .await?;
    let product = post(
        &platform.client,
        &format!("{base}/api/v1/products"),
        &admin,
        &json!({"name": "Own writes item", "description": "bench", "price": 4.5,
                "category_id": category["data"]["id"], "initial_stock": 1000}),
    )
    .await?;
    let product_id = product["data"]["id"]
        .as_str()
        .context("no product id")?
        .to_owned();
    let mut tokens = Vec::with_capacity(CUSTOMERS + WRITERS);
    for _ in 0..CUSTOMERS + WRITERS {
        let (_, token) = platform.user(Role::Customer).await?;
        post(
            &platform.client,
            &format!("{base}/api/v1/cart"),
            &token,
            &json!({"product_id": product_id, "quantity": 1}),
        )
        .await?;
        tokens.push(token);
    }
    let head = LogReader::new(platform.pool.clone()).head().await?;
    ctx.progress("own-writes: carts written, waiting for the read models");
    if !commerce_projections::wait::wait_for(
        &platform.pool,
        &["carts", "users"],
        head,
        Duration::from_secs(60),
    )
    .await?
    {
        bail!("the carts and users projections did not catch up within 60 s");
    }
    let writers = tokens.split_off(CUSTOMERS);
    Ok(Seeded {
        readers: tokens,
        writers,
        product_id,
    })
}

/// Other customers adding to their carts at `WRITE_RATE` in turn until `stop`; returns the
/// writes made.
async fn write_meanwhile(
    platform: &Platform,
    seeded: &Seeded,
    stop: CancellationToken,
) -> anyhow::Result<u64> {
    let url = format!("{}/api/v1/cart", platform.base);
    let body = json!({"product_id": seeded.product_id, "quantity": 1});
    let mut interval = tokio::time::interval(Duration::from_secs_f64(1.0 / WRITE_RATE));
    let mut set = JoinSet::new();
    let mut writes = 0_u64;
    while !stop.is_cancelled() {
        tokio::select! {
            _ = interval.tick() => {}
            () = stop.cancelled() => break,
        }
        let token = seeded.writers[usize::try_from(writes)? % seeded.writers.len()].clone();
        let (client, url, body) = (platform.client.clone(), url.clone(), body.clone());
        set.spawn(async move { post(&client, &url, &token, &body).await.map(|_| ()) });
        writes += 1;
        while let Some(done) = set.try_join_next() {
            done??;
        }
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    Ok(writes)
}

/// `GET url` as `token`, optionally with `X-Min-Position: min`; must succeed.
async fn get_as(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    min: Option<&str>,
) -> anyhow::Result<()> {
    let mut request = client.get(url).bearer_auth(token);
    if let Some(min) = min {
        request = request.header("x-min-position", min);
    }
    let response = request.send().await?;
    let status = response.status();
    let bytes = response.bytes().await?;
    if !status.is_success() {
        bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&bytes));
    }
    Ok(())
}

async fn measure(ctx: &Ctx, platform: &Platform) -> anyhow::Result<Vec<Row>> {
    let seeded = seed(ctx, platform).await?;
    let tokens = Arc::new(seeded.readers.clone());
    let half = ctx.pick(Duration::from_millis(2500), Duration::from_secs(15));
    let start = Position::START.to_string();
    let mut rows = Vec::new();
    for (path, writing) in [
        ("/api/v1/cart", false),
        ("/api/v1/users/me", false),
        ("/api/v1/cart", true),
    ] {
        let url = format!("{}{path}", platform.base);
        let load = |label: String, min: Option<String>| {
            let (client, url, tokens) = (platform.client.clone(), url.clone(), tokens.clone());
            async move {
                closed_loop(ctx, &label, CUSTOMERS, half, move |customer| {
                    let (client, url, tokens, min) =
                        (client.clone(), url.clone(), tokens.clone(), min.clone());
                    async move {
                        let token = tokens.get(customer).context("no such customer")?;
                        get_as(&client, &url, token, min.as_deref())
                            .await
                            .map(|()| Vec::new())
                    }
                })
                .await
            }
        };
        let default = || load(format!("GET {path} (own writes)"), None);
        let without = || load(format!("GET {path} (asks nothing)"), Some(start.clone()));
        let stop_writing = CancellationToken::new();
        let writer = async {
            if writing {
                write_meanwhile(platform, &seeded, stop_writing.clone()).await
            } else {
                Ok(0)
            }
        };
        let readers = async {
            let measured = default().await.checked(path);
            let baseline = without().await.checked(path);
            let baseline2 = without().await.checked(path);
            let measured2 = default().await.checked(path);
            stop_writing.cancel();
            let (mut measured, mut baseline) = (measured?, baseline?);
            baseline.absorb(baseline2?);
            measured.absorb(measured2?);
            anyhow::Ok((measured, baseline))
        };
        let (writes, read) = tokio::join!(writer, readers);
        let ((measured, baseline), writes) = (read?, writes?);
        let variant = if writing {
            format!(
                "GET {path} signed in, {CUSTOMERS} customers, no header, while {WRITERS} others \
                 write {WRITE_RATE:.0}/s"
            )
        } else {
            format!("GET {path} signed in, {CUSTOMERS} customers, no header")
        };
        let row = Row::measured(
            "own-writes",
            &variant,
            "req/s",
            measured.ops,
            measured.elapsed,
            &measured.samples,
        )
        .with_baseline(
            &format!("same with X-Min-Position {start} (asks for nothing)"),
            baseline.ops,
            baseline.elapsed,
            &baseline.samples,
        );
        let met = row.ratio.is_some_and(|r| r >= 0.9);
        ctx.progress(&format!(
            "own-writes {variant}: {:.0} req/s vs {:.0} req/s without",
            row.rate,
            row.baseline.as_ref().map_or(0.0, |b| b.rate)
        ));
        let writes = if writing {
            format!("; {writes} cart writes by others meanwhile (both sides)")
        } else {
            String::new()
        };
        rows.push(
            row.with_target("≥ 90% of reads without it (cost ≤ 10%)", met)
                .with_note(format!(
                    "each customer reads its own {}; concurrent reads share one statement for \
                     their callers' latest writes{writes}{}{}; without{}",
                    if path.ends_with("cart") {
                        "cart"
                    } else {
                        "profile"
                    },
                    measured.error_note(),
                    measured.cpu_note(),
                    baseline.cpu_note()
                )),
        );
    }
    Ok(rows)
}
