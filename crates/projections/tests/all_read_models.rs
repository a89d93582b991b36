//! Every projection and the order saga together, on a realistic mixed workload: the rebuilt read
//! models equal the live ones row for row, status reports them, and read-your-writes holds.

mod support;

use std::time::Duration;

use chrono::Utc;
use commerce_commands::process::order_fulfilment::OrderFulfilmentProcess;
use commerce_domain::cart::{Cart, CartCommand};
use commerce_domain::category::{Category, CategoryCommand};
use commerce_domain::ids::{review_id, user_id_for_email};
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_domain::money::{Currency, Money};
use commerce_domain::order::{CancellationReason, Order, OrderCommand, OrderLine, PostalAddress};
use commerce_domain::payment::{GatewayOutcome, Payment, PaymentCommand};
use commerce_domain::payment_method::{PaymentMethod, PaymentMethodCommand};
use commerce_domain::product::{Product, ProductCommand};
use commerce_domain::review::{Review, ReviewCommand};
use commerce_domain::user::{User, UserCommand};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{checkpoint, ConsumerConfig, ConsumerState, DurableConsumer, Position};
use commerce_projections::rebuild::Finish;
use commerce_projections::{orders, registry, wait};
use sqlx::PgPool;
use support::Harness;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::USD)
}

/// Shoppers, a catalog, stock, carts, orders that confirm, run out of stock, get cancelled and
/// refunded, declined payments, saved methods and reviews.
async fn workload(h: &Harness) -> Vec<Uuid> {
    let category = Uuid::new_v4();
    h.exec::<Category>(
        category,
        CategoryCommand::CreateCategory {
            category_id: category,
            name: "Lamps".into(),
            slug: String::new(),
            at: Utc::now(),
        },
    )
    .await;
    let mut products = Vec::new();
    for (i, stock) in [(0, 20_u32), (1, 3), (2, 0)] {
        let product = Uuid::new_v4();
        h.exec::<Product>(
            product,
            ProductCommand::CreateProduct {
                product_id: product,
                name: format!("Lamp {i}"),
                slug: format!("lamp-{i}"),
                description: "A warm desk lamp".into(),
                price: usd(1999 + i),
                category_id: category,
                image_url: None,
                at: Utc::now(),
            },
        )
        .await;
        if stock > 0 {
            h.exec::<Inventory>(
                product,
                InventoryCommand::AdjustStock {
                    product_id: product,
                    adjustment: StockAdjustment::Add(stock),
                    reason: Some("delivery".into()),
                    at: Utc::now(),
                },
            )
            .await;
        }
        products.push(product);
    }
    let mut orders = Vec::new();
    for n in 0..6 {
        let email = format!("shopper{n}@example.com");
        let user = user_id_for_email(&email);
        h.exec::<User>(
            user,
            UserCommand::RegisterUser {
                user_id: user,
                email,
                name: format!("Shopper {n}"),
                phone: None,
                roles: vec![],
                at: Utc::now(),
            },
        )
        .await;
        h.exec::<PaymentMethod>(
            user,
            PaymentMethodCommand::AddPaymentMethod {
                method_id: Uuid::new_v4(),
                user_id: user,
                method_type: "card".into(),
                gateway_method_id: format!("pm_{n}"),
                is_default: true,
                at: Utc::now(),
            },
        )
        .await;
        let product = products[n % 3];
        let price = usd(1999 + (n % 3) as i64);
        h.exec::<Cart>(
            user,
            CartCommand::AddToCart {
                user_id: user,
                product_id: product,
                product_name: "Lamp".into(),
                unit_price: price,
                quantity: 2,
                at: Utc::now(),
            },
        )
        .await;
        let order = Uuid::new_v4();
        h.exec::<Order>(
            order,
            OrderCommand::PlaceOrder {
                order_id: order,
                user_id: user,
                lines: vec![OrderLine {
                    product_id: product,
                    product_name: "Lamp".into(),
                    quantity: 1,
                    unit_price: price,
                }],
                shipping_address: PostalAddress {
                    line1: "1 Main St".into(),
                    line2: None,
                    city: "Springfield".into(),
                    postal_code: "12345".into(),
                    country: "US".into(),
                }
                .into(),
                payment_method: "card".into(),
                at: Utc::now(),
            },
        )
        .await;
        let payment = Uuid::new_v4();
        h.exec::<Order>(
            order,
            OrderCommand::RequestPayment {
                payment_id: payment,
                amount: price,
                at: Utc::now(),
            },
        )
        .await;
        let outcome = if n == 4 {
            GatewayOutcome::Declined {
                reason: "card declined".into(),
            }
        } else {
            GatewayOutcome::Approved {
                transaction_id: format!("tx{n}"),
            }
        };
        h.exec::<Payment>(
            payment,
            PaymentCommand::CapturePayment {
                payment_id: payment,
                order_id: order,
                user_id: user,
                amount: price,
                method: "card".into(),
                payment_method_id: None,
                outcome,
                at: Utc::now(),
            },
        )
        .await;
        if n == 3 {
            h.exec::<Order>(
                order,
                OrderCommand::CancelOrder {
                    reason: CancellationReason::CustomerRequest,
                    at: Utc::now(),
                },
            )
            .await;
        }
        if n == 0 {
            h.exec::<Review>(
                review_id(user, product),
                ReviewCommand::SubmitReview {
                    review_id: review_id(user, product),
                    product_id: product,
                    user_id: user,
                    rating: 4,
                    comment: "Bright".into(),
                    verified_purchase: true,
                    at: Utc::now(),
                },
            )
            .await;
        }
        orders.push(order);
    }
    orders
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn rebuilt_read_models_equal_the_live_ones_row_for_row(pool: PgPool) {
    let h = Harness::start(pool.clone());
    let stop = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    registry::spawn(&mut tasks, &pool, None, &h.broker, None, &stop).unwrap();
    let saga = OrderFulfilmentProcess::new(h.dispatcher.clone(), Duration::from_secs(3600));
    let config = ConsumerConfig::new(
        OrderFulfilmentProcess::NAME,
        OrderFulfilmentProcess::bindings(),
    );
    tasks.spawn(
        DurableConsumer::new(pool.clone(), h.broker.clone(), config, saga).run(stop.clone()),
    );

    let orders_placed = workload(&h).await;
    // The saga keeps writing for a while: wait until everyone has seen everything, twice over.
    for _ in 0..3 {
        for name in registry::NAMES
            .iter()
            .chain([&OrderFulfilmentProcess::NAME])
        {
            h.caught_up(name).await;
        }
    }
    let confirmed = orders::get(&pool, orders_placed[0]).await.unwrap().unwrap();
    assert_eq!(confirmed.status, "CONFIRMED", "the saga ran: {confirmed:?}");

    // Status: every projection LIVE and caught up.
    let statuses = checkpoint::consumer_statuses(&pool).await.unwrap();
    for name in registry::NAMES {
        let s = statuses
            .iter()
            .find(|s| s.name == *name)
            .unwrap_or_else(|| panic!("{name} missing from status"));
        assert_eq!((s.status, s.lag_events), (ConsumerState::Live, 0), "{s:?}");
    }

    let mut before = Vec::new();
    for name in registry::NAMES {
        registry::rebuild(name, &pool, None, Finish::Verify, |_| {})
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        before.push(h.dump(name).await);
    }

    // `replay --all`, while a poller watches the status report REBUILDING.
    let watcher = {
        let pool = pool.clone();
        tokio::spawn(async move {
            for _ in 0..2000 {
                let statuses = checkpoint::consumer_statuses(&pool).await.unwrap();
                if statuses
                    .iter()
                    .any(|s| s.status == ConsumerState::Rebuilding && s.rebuild.is_some())
                {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            false
        })
    };
    for name in registry::NAMES {
        registry::rebuild(name, &pool, None, Finish::Swap, |_| {})
            .await
            .unwrap();
    }
    let mut after = Vec::new();
    for name in registry::NAMES {
        after.push(h.dump(name).await);
    }
    assert_eq!(after, before, "a swap rebuild changed a read model");
    assert!(watcher.await.unwrap(), "no status ever showed REBUILDING");

    stop.cancel();
    while tasks.join_next().await.is_some() {}
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_query_can_wait_until_its_projection_has_applied_a_write(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(commerce_projections::users::UsersProjection);
    for n in 0..20 {
        let email = format!("rw{n}@example.com");
        let user = user_id_for_email(&email);
        let position = h
            .exec::<User>(
                user,
                UserCommand::RegisterUser {
                    user_id: user,
                    email,
                    name: "R".into(),
                    phone: None,
                    roles: vec![],
                    at: Utc::now(),
                },
            )
            .await
            .unwrap();
        assert!(
            wait::wait_for(&pool, &["users"], position, Duration::from_secs(10))
                .await
                .unwrap()
        );
        assert!(
            commerce_projections::users::get(&pool, user)
                .await
                .unwrap()
                .is_some(),
            "write {n} not visible"
        );
    }
    let future = Position::new(i64::MAX / 2, 1);
    assert!(
        !wait::wait_for(&pool, &["users"], future, Duration::from_millis(200))
            .await
            .unwrap(),
        "the wait is bounded"
    );
    h.shutdown().await;
}
