//! The payments read model, fed through RabbitMQ: captures, declines and refunds, saved payment
//! methods with one default per user, exactly-once effect, rebuilds.

mod support;

use chrono::Utc;
use commerce_domain::payment::{GatewayOutcome, Payment, PaymentCommand};
use commerce_domain::payment_method::{PaymentMethod, PaymentMethodCommand};
use commerce_domain::{Currency, Money};
use commerce_event_store::db::MIGRATOR;
use commerce_projections::payments::{self, PaymentView, PaymentsProjection};
use commerce_projections::rebuild::{self, Finish};
use commerce_projections::{Page, Projection};
use sqlx::PgPool;
use support::Harness;
use uuid::Uuid;

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::USD)
}

/// Captures (or, with `declined`, fails) a payment of `amount` for `order_id`.
async fn capture(h: &Harness, user_id: Uuid, order_id: Uuid, amount: i64, declined: bool) -> Uuid {
    let payment_id = Uuid::new_v4();
    let outcome = if declined {
        GatewayOutcome::Declined {
            reason: "card_declined".into(),
        }
    } else {
        GatewayOutcome::Approved {
            transaction_id: format!("txn_{}", payment_id.simple()),
        }
    };
    h.exec::<Payment>(
        payment_id,
        PaymentCommand::CapturePayment {
            payment_id,
            order_id,
            user_id,
            amount: usd(amount),
            method: "card".into(),
            payment_method_id: None,
            outcome,
            at: Utc::now(),
        },
    )
    .await;
    payment_id
}

async fn refund(h: &Harness, payment_id: Uuid, amount: i64) {
    h.exec::<Payment>(
        payment_id,
        PaymentCommand::RefundPayment {
            refund_id: Uuid::new_v4(),
            amount: usd(amount),
            reason: "requested by customer".into(),
            at: Utc::now(),
        },
    )
    .await;
}

async fn add_method(h: &Harness, user_id: Uuid, method_type: &str, is_default: bool) -> Uuid {
    let method_id = Uuid::new_v4();
    h.exec::<PaymentMethod>(
        user_id,
        PaymentMethodCommand::AddPaymentMethod {
            method_id,
            user_id,
            method_type: method_type.into(),
            gateway_method_id: format!("pm_{}", method_id.simple()),
            is_default,
            at: Utc::now(),
        },
    )
    .await;
    method_id
}

async fn remove_method(h: &Harness, user_id: Uuid, method_id: Uuid) {
    let at = Utc::now();
    h.exec::<PaymentMethod>(
        user_id,
        PaymentMethodCommand::RemovePaymentMethod { method_id, at },
    )
    .await;
}

struct Workload {
    ada: Uuid,
    bob: Uuid,
    /// Ada's second order: a declined payment, then a captured one.
    retried_order: Uuid,
    /// Ada, captured.
    captured: Uuid,
    /// Ada, declined.
    declined: Uuid,
    /// Bob, refunded in two steps.
    refunded: Uuid,
    /// Bob, partly refunded.
    partly_refunded: Uuid,
    /// Ada, captured on the second attempt.
    retried: Uuid,
    /// Ada's saved methods: the first (default again once the third is removed), a second.
    card: Uuid,
    paypal: Uuid,
    /// Ada's removed default.
    removed: Uuid,
    /// Ada's newest, not the default.
    newest: Uuid,
}

async fn workload(h: &Harness) -> Workload {
    let (ada, bob) = (Uuid::new_v4(), Uuid::new_v4());
    let retried_order = Uuid::new_v4();
    let captured = capture(h, ada, Uuid::new_v4(), 4_498, false).await;
    let declined = capture(h, ada, retried_order, 1_000, true).await;
    let refunded = capture(h, bob, Uuid::new_v4(), 1_999, false).await;
    refund(h, refunded, 500).await;
    refund(h, refunded, 1_499).await;
    let partly_refunded = capture(h, bob, Uuid::new_v4(), 2_000, false).await;
    refund(h, partly_refunded, 750).await;
    let retried = capture(h, ada, retried_order, 1_000, false).await;

    let card = add_method(h, ada, "card", false).await;
    let paypal = add_method(h, ada, "paypal", false).await;
    let removed = add_method(h, ada, "card", true).await;
    remove_method(h, ada, removed).await;
    let newest = add_method(h, ada, "card", false).await;
    let gone = add_method(h, bob, "card", true).await;
    remove_method(h, bob, gone).await;
    Workload {
        ada,
        bob,
        retried_order,
        captured,
        declined,
        refunded,
        partly_refunded,
        retried,
        card,
        paypal,
        removed,
        newest,
    }
}

async fn payment(pool: &PgPool, id: Uuid) -> PaymentView {
    payments::get_payment(pool, id)
        .await
        .unwrap()
        .expect("payment projected")
}

fn ids(rows: &[PaymentView]) -> Vec<Uuid> {
    rows.iter().map(|p| p.id).collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn payments_show_captures_declines_and_refunds(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(PaymentsProjection);
    let w = workload(&h).await;
    h.caught_up(PaymentsProjection::NAME).await;

    let p = payment(&pool, w.captured).await;
    assert_eq!(
        (p.user_id, p.amount, p.currency.as_str(), p.method.as_str()),
        (w.ada, 4_498, "USD", "card")
    );
    assert_eq!(
        (p.status.as_str(), p.refunded_amount, p.failure_reason),
        ("COMPLETED", 0, None)
    );
    assert_eq!(
        p.gateway_transaction_id,
        Some(format!("txn_{}", w.captured.simple()))
    );
    assert_eq!(p.created_at, p.updated_at);

    let p = payment(&pool, w.declined).await;
    assert_eq!(
        (p.status.as_str(), p.failure_reason.as_deref()),
        ("FAILED", Some("card_declined"))
    );
    assert_eq!(
        (p.gateway_transaction_id, p.order_id),
        (None, w.retried_order)
    );

    let p = payment(&pool, w.refunded).await;
    assert_eq!(
        (p.status.as_str(), p.refunded_amount, p.amount),
        ("REFUNDED", 1_999, 1_999)
    );
    assert!(p.updated_at > p.created_at);
    let p = payment(&pool, w.partly_refunded).await;
    assert_eq!(
        (p.status.as_str(), p.refunded_amount),
        ("PARTIALLY_REFUNDED", 750)
    );
    assert!(payments::get_payment(&pool, Uuid::new_v4())
        .await
        .unwrap()
        .is_none());

    let attempts = payments::payments_for_order(&pool, w.retried_order)
        .await
        .unwrap();
    assert_eq!(
        ids(&attempts),
        vec![w.retried, w.declined],
        "newest attempt first"
    );
    assert!(payments::payments_for_order(&pool, Uuid::new_v4())
        .await
        .unwrap()
        .is_empty());

    let (rows, total) = payments::list_payments(&pool, None, Page::new(1, 2))
        .await
        .unwrap();
    assert_eq!((ids(&rows), total), (vec![w.retried, w.partly_refunded], 5));
    let (rows, total) = payments::list_payments(&pool, None, Page::new(3, 2))
        .await
        .unwrap();
    assert_eq!((ids(&rows), total), (vec![w.captured], 5));
    let (rows, total) = payments::list_payments(&pool, Some(w.ada), Page::default())
        .await
        .unwrap();
    assert_eq!(
        (ids(&rows), total),
        (vec![w.retried, w.declined, w.captured], 3)
    );
    let (rows, total) = payments::list_payments(&pool, Some(w.bob), Page::new(2, 1))
        .await
        .unwrap();
    assert_eq!((ids(&rows), total), (vec![w.refunded], 2));
    let (rows, total) = payments::list_payments(&pool, Some(Uuid::new_v4()), Page::default())
        .await
        .unwrap();
    assert_eq!((rows.len(), total), (0, 0));
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn saved_methods_list_the_one_default_first_then_the_newest(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(PaymentsProjection);
    let w = workload(&h).await;
    h.caught_up(PaymentsProjection::NAME).await;

    let methods = payments::list_methods(&pool, w.ada).await.unwrap();
    let listed: Vec<(Uuid, bool)> = methods.iter().map(|m| (m.id, m.is_default)).collect();
    assert_eq!(
        listed,
        vec![(w.card, true), (w.newest, false), (w.paypal, false)],
        "the removed default gave way to the oldest method"
    );
    assert!(!listed.iter().any(|(id, _)| *id == w.removed));
    let paypal = &methods[2];
    assert_eq!(
        (paypal.user_id, paypal.method_type.as_str()),
        (w.ada, "paypal")
    );
    assert_eq!(
        paypal.gateway_method_id,
        format!("pm_{}", w.paypal.simple())
    );
    assert!(
        payments::list_methods(&pool, w.bob)
            .await
            .unwrap()
            .is_empty(),
        "bob removed his only one"
    );

    // A new default takes the flag from the old one.
    let fresh = add_method(&h, w.ada, "card", true).await;
    h.caught_up(PaymentsProjection::NAME).await;
    let methods = payments::list_methods(&pool, w.ada).await.unwrap();
    let listed: Vec<(Uuid, bool)> = methods.iter().map(|m| (m.id, m.is_default)).collect();
    assert_eq!(
        listed,
        vec![
            (fresh, true),
            (w.newest, false),
            (w.paypal, false),
            (w.card, false)
        ]
    );
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_event_delivered_twice_leaves_the_same_read_model(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run_live(PaymentsProjection).await;
    let w = workload(&h).await;
    let once = h
        .assert_redelivery_changes_nothing::<PaymentsProjection>(async {
            capture(&h, w.bob, Uuid::new_v4(), 100, false)
                .await
                .to_string()
        })
        .await;
    assert_eq!(
        once.len(),
        5 + 5,
        "payments and methods, removed ones included"
    );

    // Even applied again out of order, an event never moves a row backwards, and a removed
    // method does not come back.
    h.stop_projection(PaymentsProjection::NAME).await;
    let before = h.dump("payments").await;
    support::apply_log_directly(&pool, &PaymentsProjection, support::Reapply::Backwards).await;
    assert_eq!(h.dump("payments").await, before);
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_live_read_model_equals_a_replay(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(PaymentsProjection);
    workload(&h).await;
    h.assert_replay_matches(&PaymentsProjection).await;
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rebuild_swaps_in_while_serving_and_the_live_consumer_goes_on(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(PaymentsProjection);
    let w = workload(&h).await;
    h.caught_up(PaymentsProjection::NAME).await;
    let before = h.dump("payments").await;

    let reader = {
        let (pool, id) = (pool.clone(), w.captured);
        tokio::spawn(async move {
            for _ in 0..50 {
                let p = payments::get_payment(&pool, id).await.unwrap();
                assert!(p.is_some(), "reads keep being served");
                tokio::task::yield_now().await;
            }
        })
    };
    let report = rebuild::rebuild(&pool, None, &PaymentsProjection, Finish::Swap, |_| {})
        .await
        .unwrap();
    reader.await.unwrap();
    // 5 payments and 3 refunds; 5 methods added, 2 removed and 4 default changes (the first
    // method of each user, one asked for, one replacing a removed default).
    assert_eq!(report.applied, 5 + 3 + (5 + 2 + 4));
    assert_eq!(
        h.dump("payments").await,
        before,
        "the swapped-in model equals the old one"
    );

    refund(&h, w.captured, 4_498).await;
    h.caught_up(PaymentsProjection::NAME).await;
    let p = payment(&pool, w.captured).await;
    assert_eq!((p.status.as_str(), p.refunded_amount), ("REFUNDED", 4_498));
    h.assert_replay_matches(&PaymentsProjection).await;
    h.shutdown().await;
}
