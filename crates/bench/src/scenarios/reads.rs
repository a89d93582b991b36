//! Scenario `reads`: the catalog's public reads over HTTP against the real platform (`serve`
//! started in this process), each beside the raw Postgres query a hand-written service would run.
//!
//! Setup: 1000 products (with stock) written through the command side, then the catalog
//! projection is waited for. Then, 64 concurrent callers each (HTTP 5 s / raw 3 s in `--quick`,
//! 30 s / 20 s in a full run):
//! - `GET /api/v1/products/{id}` for a random product, beside a bare axum route running the same
//!   primary-key `SELECT` (the API's own statement, `catalog::get_product`, joins included)
//!   through sqlx on a pool the size of the server's, serialising the row it returns, called with
//!   the same client: the ratio is our layers' overhead over a hand-written service, not HTTP's
//!   nor the query's. Halves in the order A B B A (HTTP 2.5 s each in `--quick`, 15 s in a full
//!   run);
//! - the raw primary-key `SELECT` alone through a sqlx pool of 64 (fewer only if Postgres'
//!   `max_connections` would refuse them; the row then says so);
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

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use commerce_commands::Dispatcher;
use commerce_domain::category::{Category, CategoryCommand};
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_domain::product::{Product, ProductCommand};
use commerce_domain::{Currency, Money};
use commerce_event_store::{EventMetadata, EventStore, LogReader};
use futures::{StreamExt, TryStreamExt};
use rand::Rng;
use uuid::Uuid;

use crate::ctx::Ctx;
use crate::report::Row;

use super::platform::{closed_loop, get_ok, Load, Platform};

const PRODUCTS: usize = 1000;
const CONNECTIONS: usize = 64;
/// How often long loops report progress.
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
    let http_time = ctx.pick(Duration::from_secs(5), Duration::from_secs(30));
    let raw_time = ctx.pick(Duration::from_secs(3), Duration::from_secs(20));
    let raw_size = raw_pool_size(ctx, platform).await?;
    let raw_pool = platform.raw_pool(raw_size).await?;
    let (client, base) = (platform.client.clone(), platform.base.clone());

    // The same primary-key SELECT (the API's own statement) behind a bare axum route on a pool
    // the size of the server's, called with the same client: what the API's layers cost beyond
    // a hand-written service over HTTP. Halves in the order A B B A, so drift on a shared
    // machine falls on both sides alike.
    let bare = BareRoute::start(platform).await?;
    let half = http_time / 2;
    let detail_load = || {
        closed_loop(ctx, "GET /products/{id}", CONNECTIONS, half, {
            let (client, base, ids) = (client.clone(), base.clone(), ids.clone());
            move |_| {
                let url = format!("{base}/api/v1/products/{}", pick(&ids));
                let client = client.clone();
                async move { get_ok(&client, &url).await.map(|()| Vec::new()) }
            }
        })
    };
    let bare_load = || {
        closed_loop(ctx, "bare axum + sqlx", CONNECTIONS, half, {
            let (client, base, ids) = (client.clone(), bare.base.clone(), ids.clone());
            move |_| {
                let url = format!("{base}/products/{}", pick(&ids));
                let client = client.clone();
                async move { get_ok(&client, &url).await.map(|()| Vec::new()) }
            }
        })
    };
    let mut detail = detail_load().await.checked("GET /products/{id}")?;
    let mut bare_detail = bare_load().await.checked("bare axum + sqlx")?;
    bare_detail.absorb(bare_load().await.checked("bare axum + sqlx")?);
    detail.absorb(detail_load().await.checked("GET /products/{id}")?);
    bare.stop().await;
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
            &format!(
                "bare axum route, same PK SELECT (the API's) via sqlx, pool {}",
                platform.settings.max_db_connections
            ),
            &bare_detail,
        )
        .with_target(
            "detail ≥ 80% of the bare axum + sqlx route",
            rate(&detail) >= 0.8 * rate(&bare_detail),
        )
        .with_note(format!(
            "random of {PRODUCTS} products, same reqwest client and connections; the raw PK \
             SELECT alone did {:.0}/s{}{}; bare route{}",
            rate(&raw_detail),
            detail.error_note(),
            detail.cpu_note(),
            bare_detail.cpu_note()
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

/// A hand-written service's detail read: one axum route running the raw primary-key SELECT
/// through sqlx and answering the row as JSON, on 127.0.0.1:0 in this process.
struct BareRoute {
    base: String,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl BareRoute {
    async fn start(platform: &Platform) -> anyhow::Result<Self> {
        let pool = platform
            .raw_pool(platform.settings.max_db_connections)
            .await?;
        let router = axum::Router::new().route(
            "/products/{id}",
            axum::routing::get(move |axum::extract::Path(id): axum::extract::Path<Uuid>| {
                let pool = pool.clone();
                async move {
                    let row = commerce_projections::catalog::get_product(&pool, id).await;
                    match row {
                        Ok(Some(row)) => Ok(axum::Json(row)),
                        Ok(None) => Err(axum::http::StatusCode::NOT_FOUND),
                        Err(_) => Err(axum::http::StatusCode::SERVICE_UNAVAILABLE),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(token.cancelled_owned())
                .await;
        });
        Ok(Self { base, stop, task })
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn pick(ids: &[Uuid]) -> Uuid {
    ids[rand::rng().random_range(0..ids.len())]
}

// Driving the platform: shared with `checkout`.
