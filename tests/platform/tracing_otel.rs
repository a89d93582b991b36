//! One trace per order (issue 18, item 3): with tracing on, one `POST /orders` is one connected
//! trace through the HTTP request, the append, the relay's publish, each consumer's apply and
//! the saga's commands with their own appends, carried from process part to process part only by
//! the trace context stored in each event's metadata. Spans are collected in memory, in-process.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;
use std::time::Duration;

use crate::support::TestApp;
use chrono::Utc;
use clap::Parser;
use commerce::cli::Cli;
use commerce::telemetry::{self, Tracing};
use commerce_commands::Dispatcher;
use commerce_domain::category::{Category, CategoryCommand};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{EventMetadata, EventStore};
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// The process's subscriber, with tracing on and every span kept in memory: installed once (the
/// first test of this process that asks), as `commerce` installs its exporter.
fn collected() -> InMemorySpanExporter {
    static INSTALLED: OnceLock<(InMemorySpanExporter, Tracing)> = OnceLock::new();
    let (exporter, _) = INSTALLED.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let cli = Cli::parse_from(["commerce", "serve"]);
        let tracing = telemetry::init_with(&cli.global, Some(provider));
        (exporter, tracing)
    });
    exporter.clone()
}

/// A finished span as the assertions read it.
#[derive(Debug, Clone)]
struct Seen {
    name: String,
    trace: TraceId,
    id: SpanId,
    parent: SpanId,
}

impl From<&SpanData> for Seen {
    fn from(span: &SpanData) -> Self {
        Self {
            name: span.name.to_string(),
            trace: span.span_context.trace_id(),
            id: span.span_context.span_id(),
            parent: span.parent_span_id,
        }
    }
}

fn finished(exporter: &InMemorySpanExporter) -> Vec<Seen> {
    exporter
        .get_finished_spans()
        .expect("the spans")
        .iter()
        .map(Seen::from)
        .collect()
}

/// Every finished span, once spans of each name of `names` have finished (bounded).
async fn finished_with(exporter: &InMemorySpanExporter, names: &[&str]) -> Vec<Seen> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let spans = finished(exporter);
        if names
            .iter()
            .all(|name| spans.iter().any(|s| s.name == *name))
        {
            return spans;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all of {names:?} among {:?}",
            spans.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The spans of the trace holding the span named `root_name`, once every name of `expected`
/// has finished in it (bounded: the relay and the consumers run on).
async fn trace_with(
    exporter: &InMemorySpanExporter,
    root_name: &str,
    expected: &[&str],
) -> Vec<Seen> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let spans = finished(exporter);
        let roots: Vec<&Seen> = spans.iter().filter(|s| s.name == root_name).collect();
        assert!(roots.len() <= 1, "one span named {root_name}: {roots:?}");
        if let Some(root) = roots.first() {
            let trace: Vec<Seen> = spans
                .iter()
                .filter(|s| s.trace == root.trace)
                .cloned()
                .collect();
            let names: HashSet<&str> = trace.iter().map(|s| s.name.as_str()).collect();
            if expected.iter().all(|name| names.contains(name)) {
                return trace;
            }
            if tokio::time::Instant::now() > deadline {
                let missing: Vec<&&str> =
                    expected.iter().filter(|n| !names.contains(**n)).collect();
                panic!("the trace of {root_name} lacks {missing:?}; it holds {names:?}");
            }
        } else {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no span named {root_name} among {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn one_order_is_one_connected_trace_from_the_request_through_the_log_and_the_saga(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let exporter = collected();
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "19.99", 5).await;

    let order_id = app.place_order(&customer, product).await.id();
    app.settle().await;

    let request = "POST /api/v1/orders";
    let trace = trace_with(
        &exporter,
        request,
        &[
            request,
            "Order command",
            "append Order",
            "publish Order.OrderPlaced",
            "orders apply Order.OrderPlaced",
            "order-fulfilment apply Order.OrderPlaced",
            // The saga reserves the stock: its command, and what that command appends.
            "order-fulfilment on Order.OrderPlaced → Inventory",
            "Inventory command",
            "append Inventory",
            "publish Inventory.StockReserved",
            "order-fulfilment apply Inventory.StockReserved",
            // ...and tells the order.
            "order-fulfilment on Inventory.StockReserved → Order",
        ],
    )
    .await;

    // One tree: a single root, the request, and every other span's parent in the trace.
    let ids: HashSet<SpanId> = trace.iter().map(|s| s.id).collect();
    let roots: Vec<&Seen> = trace.iter().filter(|s| !ids.contains(&s.parent)).collect();
    assert_eq!(roots.len(), 1, "one root: {roots:?}");
    assert_eq!(roots[0].name, request);
    assert_eq!(
        roots[0].parent,
        SpanId::INVALID,
        "the request starts the trace"
    );

    // Each step hangs where it happened: the publish and the applies under the append of the
    // event they carry, the saga's command under its reaction.
    let by_id: HashMap<SpanId, &Seen> = trace.iter().map(|s| (s.id, s)).collect();
    let parent_of = |name: &str| -> &str {
        let span = trace
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}"));
        &by_id[&span.parent].name
    };
    assert_eq!(parent_of("Order command"), request);
    assert_eq!(parent_of("publish Order.OrderPlaced"), "append Order");
    assert_eq!(parent_of("orders apply Order.OrderPlaced"), "append Order");
    assert_eq!(
        parent_of("order-fulfilment on Order.OrderPlaced → Inventory"),
        "append Order"
    );
    assert_eq!(
        parent_of("Inventory command"),
        "order-fulfilment on Order.OrderPlaced → Inventory"
    );
    assert_eq!(
        parent_of("publish Inventory.StockReserved"),
        "append Inventory"
    );

    // The trace id is the one every event of the order stored, and no other request's.
    let trace_id = roots[0].trace.to_string();
    let stored: Vec<(String, Option<String>)> = sqlx::query_as(
        "SELECT event_type, metadata->>'traceparent' FROM events \
         WHERE aggregate_id = $1 OR (aggregate_type = 'Inventory' AND aggregate_id = $2) \
         ORDER BY global_position",
    )
    .bind(order_id.to_string())
    .bind(product.to_string())
    .fetch_all(&app.pool)
    .await
    .expect("events");
    for (event_type, traceparent) in &stored {
        let traceparent = traceparent.as_deref().unwrap_or_default();
        let in_trace = traceparent.split('-').nth(1) == Some(trace_id.as_str());
        let stock_added = event_type == "StockAdjusted";
        assert!(
            in_trace != stock_added,
            "{event_type} stored traceparent {traceparent:?}; the order's trace is {trace_id}"
        );
    }
    assert!(stored.iter().any(|(t, _)| t == "StockReserved"));

    // An auditor's view of the order leads to its trace, and the context is covered by the
    // tamper-evident hash chain like the rest of the metadata.
    let history = app
        .get(
            &format!("/api/v1/admin/streams/Order/{order_id}"),
            Some(&admin.token),
        )
        .await
        .expect(200);
    let entries = history.data().as_array().cloned().unwrap_or_default();
    assert!(!entries.is_empty());
    for entry in &entries {
        let traceparent = entry["traceparent"].as_str().unwrap_or_default();
        assert_eq!(
            traceparent.split('-').nth(1),
            Some(trace_id.as_str()),
            "{entry}"
        );
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let verified = app
            .get("/api/v1/admin/log/verify", Some(&admin.token))
            .await
            .expect(200);
        assert_eq!(verified.data()["ok"], true, "{}", verified.body);
        if verified.data()["events_unsealed"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sealer never caught up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_malformed_trace_context_in_an_event_starts_a_trace_of_its_own_and_fails_nothing(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let exporter = collected();
    let app = TestApp::spawn(&c).await;
    let id = Uuid::new_v4();
    // Written by something else than our dispatch (an import, a hand-typed row): kept as it is.
    let metadata = EventMetadata {
        traceparent: Some("00-not-a-trace-context".to_owned()),
        ..EventMetadata::new("test", Uuid::new_v4().to_string())
    };
    Dispatcher::new(EventStore::new(app.pool.clone()))
        .execute::<Category>(
            &id.to_string(),
            CategoryCommand::CreateCategory {
                category_id: id,
                name: format!("Category {}", id.simple()),
                slug: String::new(),
                at: Utc::now(),
            },
            &metadata,
        )
        .await
        .expect("category created");
    // Every consumer applies it (none halts) ...
    app.settle().await;
    let stored: String =
        sqlx::query_scalar("SELECT metadata->>'traceparent' FROM events WHERE aggregate_id = $1")
            .bind(id.to_string())
            .fetch_one(&app.pool)
            .await
            .expect("the event");
    assert_eq!(stored, "00-not-a-trace-context");
    // ... and its publish and applies are traced, each the root of a trace of its own.
    let names = [
        "publish Category.CategoryCreated",
        "categories apply Category.CategoryCreated",
    ];
    let spans = finished_with(&exporter, &names).await;
    for name in names {
        let span = spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name}"));
        assert_eq!(span.parent, SpanId::INVALID, "{name} starts a trace");
    }
    app.stop().await;
}
