//! The carts read model, fed through RabbitMQ: lines, totals, exactly-once effect, rebuilds.

mod support;

use chrono::Utc;
use commerce_domain::cart::{Cart, CartClearReason, CartCommand};
use commerce_domain::{Currency, Money};
use commerce_event_store::db::MIGRATOR;
use commerce_projections::carts::{self, CartsProjection};
use commerce_projections::rebuild::{self, Finish};
use commerce_projections::Projection;
use sqlx::PgPool;
use support::Harness;
use uuid::Uuid;

async fn add(h: &Harness, user: Uuid, product: Uuid, name: &str, price: Money, quantity: u32) {
    h.exec::<Cart>(
        user,
        CartCommand::AddToCart {
            user_id: user,
            product_id: product,
            product_name: name.into(),
            unit_price: price,
            quantity,
            at: Utc::now(),
        },
    )
    .await;
}

fn usd(cents: i64) -> Money {
    Money::new(cents, Currency::USD)
}

struct Ids {
    ada: Uuid,
    bob: Uuid,
    eve: Uuid,
    widget: Uuid,
    gadget: Uuid,
    gizmo: Uuid,
}

/// 12 cart events.
async fn workload(h: &Harness) -> Ids {
    let ids = Ids {
        ada: Uuid::new_v4(),
        bob: Uuid::new_v4(),
        eve: Uuid::new_v4(),
        widget: Uuid::new_v4(),
        gadget: Uuid::new_v4(),
        gizmo: Uuid::new_v4(),
    };
    let (ada, bob) = (ids.ada, ids.bob);
    // Ada: a line re-added at a new name and price, a quantity change, a removed line.
    add(h, ada, ids.widget, "Widget", usd(250), 2).await;
    add(h, ada, ids.gadget, "Gadget", usd(1_000), 1).await;
    add(h, ada, ids.widget, "Widget v2", usd(300), 1).await;
    let at = Utc::now();
    h.exec::<Cart>(
        ada,
        CartCommand::SetCartQuantity {
            product_id: ids.gadget,
            quantity: 4,
            at,
        },
    )
    .await;
    add(h, ada, ids.gizmo, "Gizmo", usd(99), 1).await;
    h.exec::<Cart>(
        ada,
        CartCommand::RemoveFromCart {
            product_id: ids.gizmo,
            at,
        },
    )
    .await;
    // Bob: checks out, then starts again; a removed and re-added line goes last.
    add(h, bob, ids.widget, "Widget", usd(250), 1).await;
    let reason = CartClearReason::CheckedOut {
        order_id: Uuid::new_v4(),
    };
    h.exec::<Cart>(bob, CartCommand::ClearCart { reason, at })
        .await;
    add(h, bob, ids.gizmo, "Gizmo", usd(99), 1).await;
    add(h, bob, ids.gadget, "Gadget", usd(1_000), 1).await;
    h.exec::<Cart>(
        bob,
        CartCommand::RemoveFromCart {
            product_id: ids.gizmo,
            at,
        },
    )
    .await;
    // Eve shops in euros.
    add(
        h,
        ids.eve,
        ids.widget,
        "Widget",
        Money::new(199, Currency::EUR),
        3,
    )
    .await;
    ids
}

fn lines(cart: &carts::CartView) -> Vec<(Uuid, &str, i64, i64, i64)> {
    cart.items
        .iter()
        .map(|i| {
            (
                i.product_id,
                i.product_name.as_str(),
                i.quantity,
                i.price_minor,
                i.subtotal_minor,
            )
        })
        .collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn carts_are_projected_with_lines_totals_and_currency(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CartsProjection);
    let ids = workload(&h).await;
    h.caught_up(CartsProjection::NAME).await;

    let ada = carts::get(&pool, ids.ada).await.unwrap();
    assert_eq!(ada.user_id, ids.ada);
    assert_eq!(
        lines(&ada),
        vec![
            (ids.widget, "Widget v2", 3, 300, 900),
            (ids.gadget, "Gadget", 4, 1_000, 4_000),
        ],
        "first-added order; name and price refreshed on re-add; quantity change keeps the price"
    );
    assert_eq!((ada.total_minor, ada.item_count), (4_900, 7));
    assert_eq!(ada.currency, "USD");
    assert!(ada.items.iter().all(|i| i.currency == "USD"));

    let bob = carts::get(&pool, ids.bob).await.unwrap();
    assert_eq!(
        lines(&bob),
        vec![(ids.gadget, "Gadget", 1, 1_000, 1_000)],
        "a checkout empties the cart; a removed line is gone"
    );
    assert_eq!((bob.total_minor, bob.item_count), (1_000, 1));

    let eve = carts::get(&pool, ids.eve).await.unwrap();
    assert_eq!(
        (eve.total_minor, eve.item_count, eve.currency.as_str()),
        (597, 3, "EUR")
    );

    let nobody = Uuid::new_v4();
    let empty = carts::get(&pool, nobody).await.unwrap();
    assert_eq!(
        (
            empty.user_id,
            empty.items.len(),
            empty.total_minor,
            empty.item_count
        ),
        (nobody, 0, 0, 0),
        "no cart yet is an empty cart"
    );
    assert_eq!(empty.currency, "USD");
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_line_removed_and_added_again_goes_last(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CartsProjection);
    let (user, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    add(&h, user, a, "A", usd(100), 1).await;
    add(&h, user, b, "B", usd(200), 1).await;
    h.exec::<Cart>(
        user,
        CartCommand::RemoveFromCart {
            product_id: a,
            at: Utc::now(),
        },
    )
    .await;
    add(&h, user, a, "A", usd(100), 2).await;
    h.caught_up(CartsProjection::NAME).await;
    let cart = carts::get(&pool, user).await.unwrap();
    assert_eq!(
        lines(&cart),
        vec![(b, "B", 1, 200, 200), (a, "A", 2, 100, 200)]
    );
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_event_delivered_twice_leaves_the_same_read_model(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run_live(CartsProjection).await;
    let ids = workload(&h).await;
    h.assert_redelivery_changes_nothing::<CartsProjection>(async {
        let later = Uuid::new_v4();
        add(&h, later, ids.widget, "Widget", usd(250), 1).await;
        later.to_string()
    })
    .await;

    // Below the consumer's de-duplication: removed and cleared lines must not come back.
    h.stop_projection(CartsProjection::NAME).await;
    let before = h.dump("carts").await;
    support::apply_log_directly(&pool, &CartsProjection, support::Reapply::Backwards).await;
    assert_eq!(h.dump("carts").await, before, "re-applied, newest first");
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_live_model_equals_a_replay_of_the_log(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CartsProjection);
    workload(&h).await;
    h.assert_replay_matches(&CartsProjection).await;
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rebuild_swaps_in_while_serving_and_the_consumer_continues(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CartsProjection);
    let ids = workload(&h).await;
    h.caught_up(CartsProjection::NAME).await;

    let before = h.dump("carts").await;
    let report = rebuild::rebuild(&pool, None, &CartsProjection, Finish::Swap, |_| {})
        .await
        .unwrap();
    assert_eq!(report.applied, 12);
    assert_eq!(
        h.dump("carts").await,
        before,
        "the swapped-in model equals the old one"
    );
    assert_eq!(
        carts::get(&pool, ids.ada).await.unwrap().item_count,
        7,
        "still serving"
    );

    let at = Utc::now();
    h.exec::<Cart>(
        ids.ada,
        CartCommand::ClearCart {
            reason: CartClearReason::UserRequest,
            at,
        },
    )
    .await;
    h.caught_up(CartsProjection::NAME).await;
    let ada = carts::get(&pool, ids.ada).await.unwrap();
    assert_eq!((ada.items.len(), ada.total_minor), (0, 0));
    h.assert_replay_matches(&CartsProjection).await;
    h.shutdown().await;
}
