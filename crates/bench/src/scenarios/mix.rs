//! The event mix the `rebuild` and `relay` scenarios load: real `commerce_domain` events
//! serialised as the event store writes them, multiplied in SQL by [`generate_events`].

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use commerce_domain::inventory::InventoryEvent;
use commerce_domain::order::{OrderEvent, OrderLineItem, PostalAddress};
use commerce_domain::product::ProductEvent;
use commerce_domain::{Currency, Money};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::ctx::Ctx;

/// Placeholders in the templates, replaced in SQL per block.
const PRODUCT: Uuid = Uuid::from_u128(0x0000_0001_0000_4000_8000_0000_0000_0001);
const ORDER: Uuid = Uuid::from_u128(0x0000_0002_0000_4000_8000_0000_0000_0002);
const USER: Uuid = Uuid::from_u128(0x0000_0003_0000_4000_8000_0000_0000_0003);
const PAYMENT: Uuid = Uuid::from_u128(0x0000_0004_0000_4000_8000_0000_0000_0004);
const CATEGORY: Uuid = Uuid::from_u128(0x0000_0005_0000_4000_8000_0000_0000_0005);
const NUMBER: &str = "#N#";

/// One kind of event of a block: aggregate type, event type, sequence in its stream, and the
/// payload with placeholders.
struct Template {
    aggregate_type: &'static str,
    event_type: String,
    sequence: i64,
    payload: String,
}

fn template<E: Serialize>(
    aggregate_type: &'static str,
    sequence: i64,
    event: &E,
) -> anyhow::Result<Template> {
    let value = serde_json::to_value(event)?;
    let event_type = value
        .as_object()
        .and_then(|o| o.keys().next())
        .ok_or_else(|| anyhow::anyhow!("an event does not serialise as {{\"Variant\": ...}}"))?
        .clone();
    Ok(Template {
        aggregate_type,
        event_type,
        sequence,
        payload: value.to_string(),
    })
}

/// The ten events of one block: a product, its stock, one order of it through to shipping.
fn templates() -> anyhow::Result<Vec<Template>> {
    let at = Utc
        .with_ymd_and_hms(2026, 11, 25, 12, 0, 0)
        .single()
        .ok_or_else(|| anyhow::anyhow!("bad template time"))?;
    let price = Money::new(1_999, Currency::USD);
    let total = Money::new(3_998, Currency::USD);
    let name = format!("Product {NUMBER}");
    let lines = vec![OrderLineItem {
        product_id: PRODUCT,
        product_name: name.clone(),
        quantity: 2,
        unit_price: price,
        subtotal: total,
    }];
    let (o, u, p, y) = (ORDER, USER, PRODUCT, PAYMENT);
    Ok(vec![
        template(
            "Product",
            1,
            &ProductEvent::ProductCreated {
                product_id: p,
                name,
                slug: format!("product-{NUMBER}"),
                description: format!(
                    "Product number {NUMBER}: a sturdy, well-reviewed item for everyday use, \
                     shipped in recyclable packaging with a two-year warranty."
                ),
                price,
                category_id: CATEGORY,
                image_url: Some(format!("https://cdn.example.com/products/{NUMBER}.jpg")),
                at,
            },
        )?,
        template(
            "Inventory",
            1,
            &InventoryEvent::StockAdjusted {
                product_id: p,
                delta: 100,
                available_before: 0,
                available_after: 100,
                reserved: 0,
                reason: Some("initial stock".to_owned()),
                at,
            },
        )?,
        template(
            "Order",
            1,
            &OrderEvent::OrderPlaced {
                order_id: o,
                user_id: u,
                lines: lines.clone(),
                total,
                shipping_address: PostalAddress {
                    line1: format!("{NUMBER} Main Street"),
                    line2: None,
                    city: "Springfield".to_owned(),
                    postal_code: "12345".to_owned(),
                    country: "US".to_owned(),
                }
                .into(),
                payment_method: "card".to_owned(),
                at,
            },
        )?,
        template(
            "Inventory",
            2,
            &InventoryEvent::StockReserved {
                product_id: p,
                order_id: o,
                quantity: 2,
                available_after: 98,
                reserved_after: 2,
                at,
            },
        )?,
        template(
            "Order",
            2,
            &OrderEvent::OrderStockReserved { order_id: o, at },
        )?,
        template(
            "Order",
            3,
            &OrderEvent::OrderPaymentRequested {
                order_id: o,
                payment_id: y,
                amount: total,
                at,
            },
        )?,
        template(
            "Order",
            4,
            &OrderEvent::OrderPaid {
                order_id: o,
                user_id: u,
                payment_id: y,
                amount: total,
                at,
            },
        )?,
        template(
            "Order",
            5,
            &OrderEvent::OrderConfirmed {
                order_id: o,
                user_id: u,
                total,
                lines,
                at,
            },
        )?,
        template(
            "Inventory",
            3,
            &InventoryEvent::StockCommitted {
                product_id: p,
                order_id: o,
                quantity: 2,
                reserved_after: 0,
                at,
            },
        )?,
        template(
            "Order",
            6,
            &OrderEvent::OrderShipped {
                order_id: o,
                user_id: u,
                at,
            },
        )?,
    ])
}

/// Appends `n` realistic events (whole blocks of ten, see the module doc) to `pool`'s log with
/// `INSERT ... SELECT generate_series`, in chunks (one transaction each), showing progress.
/// Product, order, payment and user ids are derived from the block number (users repeat every
/// 5,000 blocks); every block's events share a correlation id.
pub(super) async fn generate_events(ctx: &Ctx, pool: &PgPool, n: u64) -> anyhow::Result<()> {
    let templates = templates()?;
    let aggregate_types: Vec<&str> = templates.iter().map(|t| t.aggregate_type).collect();
    let event_types: Vec<&str> = templates.iter().map(|t| t.event_type.as_str()).collect();
    let sequences: Vec<i64> = templates.iter().map(|t| t.sequence).collect();
    let payloads: Vec<&str> = templates.iter().map(|t| t.payload.as_str()).collect();
    let kinds = templates.len() as i64;
    let total = i64::try_from(n)?;
    let chunk = 50_000_i64;
    let started = Instant::now();
    let mut last_report = Instant::now();
    ctx.progress(&format!("generating {n} events (not measured)"));
    let mut from = 0_i64;
    while from < total {
        let to = (from + chunk).min(total) - 1;
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
               event_version, payload, metadata) \
             SELECT ($1::text[])[k + 1], \
               CASE WHEN ($1::text[])[k + 1] = 'Order' THEN o ELSE p END, \
               ($3::bigint[])[k + 1], ($2::text[])[k + 1], '1.0', \
               replace(replace(replace(replace(replace(($4::text[])[k + 1], \
                 $7, p), $8, o), $9, u), $10, y), $11, b::text)::jsonb, \
               jsonb_build_object('actor', u, 'correlation_id', 'bench-' || b) \
             FROM (SELECT g / $12 AS b, g % $12 AS k FROM generate_series($5::bigint, $6::bigint) g) s, \
             LATERAL (SELECT md5('p' || s.b)::uuid::text AS p, md5('o' || s.b)::uuid::text AS o, \
               md5('u' || (s.b % 5000))::uuid::text AS u, md5('y' || s.b)::uuid::text AS y) ids",
        )
        .bind(&aggregate_types)
        .bind(&event_types)
        .bind(&sequences)
        .bind(&payloads)
        .bind(from)
        .bind(to)
        .bind(PRODUCT.to_string())
        .bind(ORDER.to_string())
        .bind(USER.to_string())
        .bind(PAYMENT.to_string())
        .bind(NUMBER)
        .bind(kinds)
        .execute(pool)
        .await?;
        from = to + 1;
        if last_report.elapsed() >= Duration::from_secs(3) || from >= total {
            last_report = Instant::now();
            ctx.progress(&format!(
                "generated {from}/{total} events ({:.0}/s)",
                from as f64 / started.elapsed().as_secs_f64().max(1e-3)
            ));
        }
    }
    Ok(())
}
