//! The orders read model, fed through RabbitMQ: statuses along every path of the fulfilment
//! flow, items, filters and pagination, verified purchases, exactly-once effect, rebuilds.

mod support;

use chrono::Utc;
use commerce_domain::order::{
    CancellationReason, Order, OrderCommand, OrderLine, OrderStatus, PostalAddress, ShippingAddress,
};
use commerce_domain::{Currency, Money};
use commerce_event_store::db::MIGRATOR;
use commerce_projections::orders::{self, OrderFilter, OrdersProjection};
use commerce_projections::rebuild::{self, Finish};
use commerce_projections::{Page, Projection};
use sqlx::PgPool;
use support::Harness;
use uuid::Uuid;

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::USD)
}

fn address() -> ShippingAddress {
    PostalAddress {
        line1: "1 Main St".into(),
        line2: None,
        city: "Springfield".into(),
        postal_code: "12345".into(),
        country: "US".into(),
    }
    .into()
}

struct Products {
    widget: Uuid,
    gadget: Uuid,
    gizmo: Uuid,
}

async fn run(h: &Harness, order: Uuid, command: OrderCommand) {
    h.exec::<Order>(order, command).await;
}

async fn place(h: &Harness, user_id: Uuid, lines: &[(Uuid, &str, u32, i64)]) -> Uuid {
    let order_id = Uuid::new_v4();
    let lines = lines
        .iter()
        .map(|&(product_id, name, quantity, price)| OrderLine {
            product_id,
            product_name: name.into(),
            quantity,
            unit_price: usd(price),
        })
        .collect();
    run(
        h,
        order_id,
        OrderCommand::PlaceOrder {
            order_id,
            user_id,
            lines,
            shipping_address: address(),
            payment_method: "card".into(),
            at: Utc::now(),
        },
    )
    .await;
    order_id
}

/// Reserves stock and pays `amount` with a new payment: the order is confirmed.
async fn reserve_and_pay(h: &Harness, order: Uuid, amount: i64) -> Uuid {
    let payment_id = Uuid::new_v4();
    let at = Utc::now();
    run(h, order, OrderCommand::MarkStockReserved { at }).await;
    let (amount, at) = (usd(amount), Utc::now());
    run(
        h,
        order,
        OrderCommand::RequestPayment {
            payment_id,
            amount,
            at,
        },
    )
    .await;
    run(
        h,
        order,
        OrderCommand::MarkPaid {
            payment_id,
            amount,
            at,
        },
    )
    .await;
    payment_id
}

async fn refund(h: &Harness, order: Uuid, payment_id: Uuid, amount: i64, total: i64) {
    let (amount, total_refunded, at) = (usd(amount), usd(total), Utc::now());
    run(
        h,
        order,
        OrderCommand::RecordRefund {
            payment_id,
            amount,
            total_refunded,
            at,
        },
    )
    .await;
}

/// The orders along every path of the flow, oldest first.
struct Workload {
    ada: Uuid,
    bob: Uuid,
    p: Products,
    /// Ada: paid, committed, shipped, delivered.
    delivered: Uuid,
    /// Ada: out of stock.
    out_of_stock: Uuid,
    /// Bob: confirmed, cancelled by the customer, stock released, refunded.
    refunded: Uuid,
    /// Bob: a declined payment, still pending.
    pending: Uuid,
    /// Ada: confirmed, partly refunded.
    partly_refunded: Uuid,
    /// Bob: payment timeout, then a late capture refunded.
    timed_out: Uuid,
}

async fn workload(h: &Harness) -> Workload {
    let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let p = Products {
        widget: Uuid::new_v4(),
        gadget: Uuid::new_v4(),
        gizmo: Uuid::new_v4(),
    };
    let at = Utc::now;

    let delivered = place(
        h,
        ada,
        &[(p.widget, "Widget", 2, 1_999), (p.gadget, "Gadget", 1, 500)],
    )
    .await;
    reserve_and_pay(h, delivered, 4_498).await;
    run(h, delivered, OrderCommand::MarkStockCommitted { at: at() }).await;
    run(h, delivered, OrderCommand::ShipOrder { at: at() }).await;
    run(h, delivered, OrderCommand::DeliverOrder { at: at() }).await;

    let out_of_stock = place(h, ada, &[(p.gadget, "Gadget", 3, 500)]).await;
    run(
        h,
        out_of_stock,
        OrderCommand::MarkStockRejected { at: at() },
    )
    .await;
    let reason = CancellationReason::OutOfStock;
    run(
        h,
        out_of_stock,
        OrderCommand::CancelOrder { reason, at: at() },
    )
    .await;

    let refunded = place(h, bob, &[(p.widget, "Widget", 1, 1_999)]).await;
    let payment = reserve_and_pay(h, refunded, 1_999).await;
    let reason = CancellationReason::CustomerRequest;
    run(h, refunded, OrderCommand::CancelOrder { reason, at: at() }).await;
    run(h, refunded, OrderCommand::MarkStockReleased { at: at() }).await;
    refund(h, refunded, payment, 1_999, 1_999).await;

    let pending = place(h, bob, &[(p.gizmo, "Gizmo", 1, 250)]).await;
    let (payment_id, amount) = (Uuid::new_v4(), usd(250));
    run(
        h,
        pending,
        OrderCommand::RequestPayment {
            payment_id,
            amount,
            at: at(),
        },
    )
    .await;
    let reason = "card_declined".to_owned();
    run(
        h,
        pending,
        OrderCommand::MarkPaymentFailed {
            payment_id,
            reason,
            at: at(),
        },
    )
    .await;

    let partly_refunded = place(h, ada, &[(p.gizmo, "Gizmo", 4, 250)]).await;
    let payment = reserve_and_pay(h, partly_refunded, 1_000).await;
    refund(h, partly_refunded, payment, 300, 300).await;

    let timed_out = place(h, bob, &[(p.gadget, "Gadget", 1, 500)]).await;
    run(h, timed_out, OrderCommand::ExpirePayment { at: at() }).await;
    let (payment_id, amount) = (Uuid::new_v4(), usd(500));
    run(
        h,
        timed_out,
        OrderCommand::MarkPaid {
            payment_id,
            amount,
            at: at(),
        },
    )
    .await;
    refund(h, timed_out, payment_id, 500, 500).await;

    Workload {
        ada,
        bob,
        p,
        delivered,
        out_of_stock,
        refunded,
        pending,
        partly_refunded,
        timed_out,
    }
}

async fn statuses(pool: &PgPool, id: Uuid) -> (String, String, String, Option<String>) {
    let o = orders::get(pool, id)
        .await
        .unwrap()
        .expect("order projected");
    (
        o.status,
        o.stock_status,
        o.payment_status,
        o.cancellation_reason,
    )
}

fn s(
    status: &str,
    stock: &str,
    payment: &str,
    reason: Option<&str>,
) -> (String, String, String, Option<String>) {
    (
        status.into(),
        stock.into(),
        payment.into(),
        reason.map(Into::into),
    )
}

async fn ids(pool: &PgPool, filter: OrderFilter, page: Page) -> (Vec<Uuid>, i64) {
    let (rows, total) = orders::list(pool, &filter, page).await.unwrap();
    (rows.into_iter().map(|o| o.id).collect(), total)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn orders_follow_every_path_of_the_fulfilment_flow(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(OrdersProjection);
    let w = workload(&h).await;
    h.caught_up(OrdersProjection::NAME).await;

    let o = orders::get(&pool, w.delivered).await.unwrap().unwrap();
    assert_eq!(
        (o.user_id, o.total_amount, o.currency.as_str()),
        (w.ada, 4_498, "USD")
    );
    assert_eq!(
        (o.payment_method.as_str(), &o.shipping_address),
        ("card", &address())
    );
    let items: Vec<_> = o
        .items
        .iter()
        .map(|i| {
            (
                i.product_id,
                i.product_name.as_str(),
                i.quantity,
                i.price,
                i.subtotal,
            )
        })
        .collect();
    assert_eq!(
        items,
        vec![
            (w.p.widget, "Widget", 2, 1_999, 3_998),
            (w.p.gadget, "Gadget", 1, 500, 500)
        ]
    );
    assert!(o.updated_at > o.created_at);
    let json = serde_json::to_value(&o).unwrap();
    assert_eq!(json["shipping_address"]["city"], "Springfield");
    assert_eq!(json["items"][0]["subtotal"], 3_998);

    assert_eq!(
        statuses(&pool, w.delivered).await,
        s("DELIVERED", "COMMITTED", "PAID", None)
    );
    assert_eq!(
        statuses(&pool, w.out_of_stock).await,
        s("CANCELLED", "REJECTED", "UNPAID", Some("OUT_OF_STOCK"))
    );
    assert_eq!(
        statuses(&pool, w.refunded).await,
        s(
            "CANCELLED",
            "RELEASED",
            "REFUNDED",
            Some("CUSTOMER_REQUEST")
        )
    );
    assert_eq!(
        statuses(&pool, w.pending).await,
        s("PENDING", "PENDING", "UNPAID", None)
    );
    assert_eq!(
        statuses(&pool, w.partly_refunded).await,
        s("CONFIRMED", "COMMITTED", "PARTIALLY_REFUNDED", None)
    );
    // A late capture refunded is not the order's payment: it stays unpaid, like the aggregate.
    assert_eq!(
        statuses(&pool, w.timed_out).await,
        s("CANCELLED", "PENDING", "UNPAID", Some("PAYMENT_TIMEOUT"))
    );
    assert!(orders::get(&pool, Uuid::new_v4()).await.unwrap().is_none());

    // Filters, newest first, pagination.
    let all = ids(&pool, OrderFilter::default(), Page::new(1, 100)).await;
    assert_eq!(
        all,
        (
            vec![
                w.timed_out,
                w.partly_refunded,
                w.pending,
                w.refunded,
                w.out_of_stock,
                w.delivered
            ],
            6
        )
    );
    assert_eq!(
        ids(&pool, OrderFilter::default(), Page::new(2, 4)).await,
        (vec![w.out_of_stock, w.delivered], 6)
    );
    assert_eq!(
        ids(&pool, OrderFilter::default(), Page::new(3, 4)).await,
        (vec![], 6)
    );
    let ada = OrderFilter {
        user_id: Some(w.ada),
        status: None,
    };
    assert_eq!(
        ids(&pool, ada, Page::new(1, 2)).await,
        (vec![w.partly_refunded, w.out_of_stock], 3)
    );
    let cancelled = OrderFilter {
        user_id: None,
        status: Some(OrderStatus::Cancelled),
    };
    assert_eq!(
        ids(&pool, cancelled, Page::default()).await,
        (vec![w.timed_out, w.refunded, w.out_of_stock], 3)
    );
    let bob_pending = OrderFilter {
        user_id: Some(w.bob),
        status: Some(OrderStatus::Pending),
    };
    assert_eq!(
        ids(&pool, bob_pending, Page::default()).await,
        (vec![w.pending], 1)
    );
    let nobody = OrderFilter {
        user_id: Some(Uuid::new_v4()),
        status: None,
    };
    assert_eq!(ids(&pool, nobody, Page::default()).await, (vec![], 0));
    let (rows, _) = orders::list(&pool, &OrderFilter::default(), Page::default())
        .await
        .unwrap();
    assert!(
        rows.iter().all(|o| !o.items.is_empty()),
        "listed orders carry their items"
    );

    // Verified purchases: confirmed or later, and not cancelled.
    let verified = |user, product| orders::has_confirmed_order_with(&pool, user, product);
    assert!(verified(w.ada, w.p.widget).await.unwrap(), "delivered");
    assert!(
        verified(w.ada, w.p.gadget).await.unwrap(),
        "delivered, though another order was out of stock"
    );
    assert!(
        verified(w.ada, w.p.gizmo).await.unwrap(),
        "confirmed, partly refunded"
    );
    assert!(
        !verified(w.bob, w.p.widget).await.unwrap(),
        "confirmed, then cancelled"
    );
    assert!(!verified(w.bob, w.p.gizmo).await.unwrap(), "still pending");
    assert!(!verified(w.bob, w.p.gadget).await.unwrap(), "timed out");
    assert!(
        !verified(w.ada, Uuid::new_v4()).await.unwrap(),
        "never ordered"
    );
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_event_delivered_twice_leaves_the_same_read_model(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run_live(OrdersProjection).await;
    let w = workload(&h).await;
    let once = h
        .assert_redelivery_changes_nothing::<OrdersProjection>(async {
            place(&h, w.bob, &[(w.p.widget, "Widget", 1, 1_999)])
                .await
                .to_string()
        })
        .await;
    assert_eq!(once.len(), 6 + 7, "orders and their items");

    // Even applied again out of order, an event never moves a row backwards.
    h.stop_projection(OrdersProjection::NAME).await;
    let before = h.dump("orders").await;
    support::apply_log_directly(&pool, &OrdersProjection, support::Reapply::Backwards).await;
    assert_eq!(h.dump("orders").await, before);
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_live_read_model_equals_a_replay(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(OrdersProjection);
    workload(&h).await;
    h.assert_replay_matches(&OrdersProjection).await;
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rebuild_swaps_in_while_serving_and_the_live_consumer_goes_on(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(OrdersProjection);
    let w = workload(&h).await;
    h.caught_up(OrdersProjection::NAME).await;
    let before = h.dump("orders").await;

    let reader = {
        let pool = pool.clone();
        let id = w.delivered;
        tokio::spawn(async move {
            for _ in 0..50 {
                let o = orders::get(&pool, id).await.unwrap();
                assert!(
                    o.is_some_and(|o| o.items.len() == 2),
                    "reads keep being served"
                );
                tokio::task::yield_now().await;
            }
        })
    };
    let report = rebuild::rebuild(&pool, None, &OrdersProjection, Finish::Swap, |_| {})
        .await
        .unwrap();
    reader.await.unwrap();
    // Each of the two confirmations records its stock committed with it.
    assert_eq!(report.applied, 34, "every order event of the workload");
    assert_eq!(
        h.dump("orders").await,
        before,
        "the swapped-in model equals the old one"
    );

    run(
        &h,
        w.partly_refunded,
        OrderCommand::ShipOrder { at: Utc::now() },
    )
    .await;
    h.caught_up(OrdersProjection::NAME).await;
    assert_eq!(
        statuses(&pool, w.partly_refunded).await,
        s("SHIPPED", "COMMITTED", "PARTIALLY_REFUNDED", None)
    );
    h.assert_replay_matches(&OrdersProjection).await;
    h.shutdown().await;
}
