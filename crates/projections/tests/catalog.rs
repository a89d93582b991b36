//! The catalog read model, fed through RabbitMQ: one read per product with category name, stock
//! and rating; search, filters, sorting and pagination; exactly-once effect; rebuilds.

mod support;

use chrono::Utc;
use commerce_domain::category::{Category, CategoryCommand};
use commerce_domain::ids::review_id;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_domain::product::{Product, ProductCommand};
use commerce_domain::review::{Review, ReviewCommand};
use commerce_domain::{Currency, Money};
use commerce_event_store::db::MIGRATOR;
use commerce_projections::catalog::{
    self, CatalogProjection, ProductFilter, ProductSort, ProductView,
};
use commerce_projections::rebuild::{self, Finish};
use commerce_projections::{Page, Projection};
use sqlx::PgPool;
use support::Harness;
use uuid::Uuid;

const NAME: &str = CatalogProjection::NAME;

fn usd(cents: i64) -> Money {
    Money::new(cents, Currency::USD)
}

async fn category(h: &Harness, name: &str) -> Uuid {
    let id = Uuid::new_v4();
    h.exec::<Category>(
        id,
        CategoryCommand::CreateCategory {
            category_id: id,
            name: name.into(),
            slug: String::new(),
            at: Utc::now(),
        },
    )
    .await;
    id
}

async fn product(
    h: &Harness,
    name: &str,
    description: &str,
    cents: i64,
    category_id: Uuid,
) -> Uuid {
    let id = Uuid::new_v4();
    h.exec::<Product>(
        id,
        ProductCommand::CreateProduct {
            product_id: id,
            name: name.into(),
            slug: String::new(),
            description: description.into(),
            price: usd(cents),
            category_id,
            image_url: Some(format!("https://img.example.com/{id}.png")),
            at: Utc::now(),
        },
    )
    .await;
    id
}

async fn inventory(h: &Harness, product_id: Uuid, command: InventoryCommand) {
    h.exec::<Inventory>(product_id, command).await;
}

async fn review(h: &Harness, product_id: Uuid, user_id: Uuid, rating: u8) {
    h.exec::<Review>(
        review_id(user_id, product_id),
        ReviewCommand::SubmitReview {
            review_id: review_id(user_id, product_id),
            product_id,
            user_id,
            rating,
            comment: "fine".into(),
            verified_purchase: false,
            at: Utc::now(),
        },
    )
    .await;
}

async fn delete_review(h: &Harness, product_id: Uuid, user_id: Uuid) {
    h.exec::<Review>(
        review_id(user_id, product_id),
        ReviewCommand::DeleteReview { at: Utc::now() },
    )
    .await;
}

#[derive(Debug, Clone, Copy)]
struct Catalog {
    electronics: Uuid,
    books: Uuid,
    pro: Uuid,
    air: Uuid,
    rust_book: Uuid,
    cable: Uuid,
    lamp: Uuid,
}

/// 2 categories (one renamed), 5 products (one moved and repriced, one deactivated), stock moves
/// on one, 5 reviews over two products (one deleted, one submitted again).
/// Catalog events: 3 category, 7 product, 5 inventory, 6 review = 21.
async fn workload(h: &Harness) -> Catalog {
    let electronics = category(h, "Electronics").await;
    let books = category(h, "Books").await;
    let pro = product(
        h,
        "Laptop Pro 16",
        "A powerful laptop for professionals",
        150_000,
        electronics,
    )
    .await;
    let air = product(
        h,
        "Laptop Air",
        "Light and thin notebook",
        99_900,
        electronics,
    )
    .await;
    let rust_book = product(
        h,
        "Rust Programming",
        "Learn systems programming with Rust",
        3_999,
        books,
    )
    .await;
    let cable = product(h, "USB-C Cable", "Braided, 2 metres", 3_999, electronics).await;
    let lamp = product(
        h,
        "Desk Lamp",
        "Warm light for your laptop desk",
        2_500,
        books,
    )
    .await;
    h.exec::<Category>(
        electronics,
        CategoryCommand::RenameCategory {
            name: "Computers".into(),
            slug: String::new(),
            at: Utc::now(),
        },
    )
    .await;
    // The lamp moves to Computers and gets cheaper.
    h.exec::<Product>(
        lamp,
        ProductCommand::UpdateProduct {
            name: None,
            slug: None,
            description: None,
            price: Some(usd(1_999)),
            category_id: Some(electronics),
            image_url: None,
            at: Utc::now(),
        },
    )
    .await;
    h.exec::<Product>(cable, ProductCommand::DeactivateProduct { at: Utc::now() })
        .await;

    let order = Uuid::new_v4();
    inventory(
        h,
        pro,
        InventoryCommand::AdjustStock {
            product_id: pro,
            adjustment: StockAdjustment::Add(10),
            reason: Some("initial stock".into()),
            at: Utc::now(),
        },
    )
    .await;
    for o in [order, Uuid::new_v4()] {
        inventory(
            h,
            pro,
            InventoryCommand::ReserveStock {
                product_id: pro,
                order_id: o,
                quantity: 3,
                at: Utc::now(),
            },
        )
        .await;
    }
    inventory(
        h,
        pro,
        InventoryCommand::CommitStock {
            product_id: pro,
            order_id: order,
            at: Utc::now(),
        },
    )
    .await;
    inventory(
        h,
        air,
        InventoryCommand::AdjustStock {
            product_id: air,
            adjustment: StockAdjustment::Add(5),
            reason: None,
            at: Utc::now(),
        },
    )
    .await;

    let (ann, ben, cat) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    review(h, pro, ann, 5).await;
    review(h, pro, ben, 4).await;
    review(h, pro, cat, 1).await;
    delete_review(h, pro, cat).await;
    review(h, pro, cat, 4).await; // resubmitted after deletion: 5 + 4 + 4 = 13 / 3
    review(h, air, ann, 5).await;

    Catalog {
        electronics,
        books,
        pro,
        air,
        rust_book,
        cable,
        lamp,
    }
}

async fn ids(pool: &PgPool, filter: &ProductFilter, page: Page) -> (Vec<Uuid>, i64) {
    let (rows, total) = catalog::list_products(pool, filter, page).await.unwrap();
    (rows.into_iter().map(|p| p.id).collect(), total)
}

async fn search(pool: &PgPool, text: &str) -> Vec<Uuid> {
    let filter = ProductFilter {
        search: Some(text.into()),
        sort: ProductSort::PriceAsc,
        ..ProductFilter::default()
    };
    ids(pool, &filter, Page::new(1, 100)).await.0
}

async fn get(pool: &PgPool, id: Uuid) -> ProductView {
    catalog::get_product(pool, id).await.unwrap().unwrap()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn products_are_served_with_category_stock_and_rating_in_one_read(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CatalogProjection);
    let c = workload(&h).await;
    h.caught_up(NAME).await;

    let pro = get(&pool, c.pro).await;
    assert_eq!(pro.name, "Laptop Pro 16");
    assert_eq!(pro.slug, "laptop-pro-16");
    assert_eq!((pro.price_minor, pro.currency.as_str()), (150_000, "USD"));
    assert_eq!(pro.category_id, c.electronics);
    assert_eq!(pro.category_name.as_deref(), Some("Computers"), "renamed");
    assert!(pro.is_active);
    assert_eq!(
        (pro.stock.available, pro.stock.reserved),
        (4, 3),
        "10 in, 6 reserved, 3 of them committed"
    );
    assert_eq!(
        (pro.rating.average_hundredths, pro.rating.count),
        (433, 3),
        "13 / 3 = 4.33"
    );
    assert_eq!(
        pro.created_at, pro.updated_at,
        "stock and reviews leave updated_at"
    );
    let json = serde_json::to_value(&pro).unwrap();
    assert_eq!(json["stock"]["available"], 4);
    assert_eq!(json["rating"]["count"], 3);

    let air = get(&pool, c.air).await;
    assert_eq!((air.stock.available, air.stock.reserved), (5, 0));
    assert_eq!((air.rating.average_hundredths, air.rating.count), (500, 1));

    let lamp = get(&pool, c.lamp).await;
    assert_eq!((lamp.price_minor, lamp.category_id), (1_999, c.electronics));
    assert!(lamp.updated_at > lamp.created_at);
    assert_eq!(
        (
            lamp.stock.available,
            lamp.rating.average_hundredths,
            lamp.rating.count
        ),
        (0, 0, 0),
        "no inventory, no reviews"
    );

    let cable = get(&pool, c.cable).await;
    assert!(
        !cable.is_active,
        "an inactive product is still served by id"
    );
    assert!(catalog::get_product(&pool, Uuid::new_v4())
        .await
        .unwrap()
        .is_none());

    let cart = catalog::product_for_cart(&pool, c.cable)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            cart.name.as_str(),
            cart.price_minor,
            cart.currency.as_str(),
            cart.is_active
        ),
        ("USB-C Cable", 3_999, "USD", false)
    );
    let cart = catalog::product_for_cart(&pool, c.lamp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((cart.price_minor, cart.is_active), (1_999, true));
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn listing_filters_sorts_and_pages_active_products(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CatalogProjection);
    let c = workload(&h).await;
    h.caught_up(NAME).await;
    let all = Page::new(1, 100);

    let newest = ProductFilter::default();
    assert_eq!(
        ids(&pool, &newest, all).await,
        (vec![c.lamp, c.rust_book, c.air, c.pro], 4),
        "newest first, the inactive cable left out"
    );
    let by = |sort| ProductFilter {
        sort,
        ..ProductFilter::default()
    };
    assert_eq!(
        ids(&pool, &by(ProductSort::PriceAsc), all).await.0,
        vec![c.lamp, c.rust_book, c.air, c.pro]
    );
    assert_eq!(
        ids(&pool, &by(ProductSort::PriceDesc), all).await.0,
        vec![c.pro, c.air, c.rust_book, c.lamp]
    );
    let (rated, _) = ids(&pool, &by(ProductSort::Rating), all).await;
    assert_eq!(&rated[..2], &[c.air, c.pro], "5.00, then 4.33");
    let mut unrated = [c.rust_book, c.lamp];
    unrated.sort();
    assert_eq!(&rated[2..], &unrated[..], "unrated last, by id");

    let in_computers = ProductFilter {
        category_id: Some(c.electronics),
        ..ProductFilter::default()
    };
    assert_eq!(
        ids(&pool, &in_computers, all).await,
        (vec![c.lamp, c.air, c.pro], 3)
    );
    let in_books = ProductFilter {
        category_id: Some(c.books),
        ..ProductFilter::default()
    };
    assert_eq!(ids(&pool, &in_books, all).await, (vec![c.rust_book], 1));

    let mid_range = ProductFilter {
        min_price_minor: Some(3_999),
        max_price_minor: Some(99_900),
        sort: ProductSort::PriceAsc,
        ..ProductFilter::default()
    };
    assert_eq!(
        ids(&pool, &mid_range, all).await,
        (vec![c.rust_book, c.air], 2),
        "bounds are inclusive"
    );
    let none = ProductFilter {
        min_price_minor: Some(200_000),
        ..ProductFilter::default()
    };
    assert_eq!(ids(&pool, &none, all).await, (vec![], 0));

    // Pages of one, in every order: together they are the whole list, without overlap.
    for sort in [
        ProductSort::Newest,
        ProductSort::PriceAsc,
        ProductSort::PriceDesc,
        ProductSort::Rating,
    ] {
        let (whole, total) = ids(&pool, &by(sort), all).await;
        let mut paged = Vec::new();
        for n in 1..=total {
            let (page, t) = ids(&pool, &by(sort), Page::new(n, 1)).await;
            assert_eq!(t, total);
            paged.extend(page);
        }
        assert_eq!(paged, whole, "{sort:?}");
    }
    let (page, total) = ids(&pool, &newest, Page::new(2, 3)).await;
    assert_eq!((page, total), (vec![c.pro], 4));
    let (page, total) = ids(&pool, &newest, Page::new(9, 3)).await;
    assert_eq!(
        (page, total),
        (vec![], 4),
        "past the end: empty page, same total"
    );
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn equal_prices_are_ordered_by_id(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CatalogProjection);
    let cat = category(&h, "Socks").await;
    let mut same = Vec::new();
    for n in 0..4 {
        same.push(product(&h, &format!("Sock {n}"), "", 500, cat).await);
    }
    h.caught_up(NAME).await;
    same.sort();
    for sort in [
        ProductSort::PriceAsc,
        ProductSort::PriceDesc,
        ProductSort::Rating,
    ] {
        let filter = ProductFilter {
            sort,
            ..ProductFilter::default()
        };
        assert_eq!(
            ids(&pool, &filter, Page::new(1, 10)).await.0,
            same,
            "{sort:?}"
        );
    }
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn full_text_search_covers_name_and_description_and_accepts_any_input(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CatalogProjection);
    let c = workload(&h).await;
    h.caught_up(NAME).await;

    assert_eq!(
        search(&pool, "laptop").await,
        vec![c.lamp, c.air, c.pro],
        "name or description"
    );
    assert_eq!(
        search(&pool, "LAPTOP").await,
        vec![c.lamp, c.air, c.pro],
        "any case"
    );
    assert_eq!(
        search(&pool, "lap").await,
        vec![c.lamp, c.air, c.pro],
        "a prefix"
    );
    assert_eq!(
        search(&pool, "notebook").await,
        vec![c.air],
        "description only"
    );
    assert_eq!(
        search(&pool, "laptop desk").await,
        vec![c.lamp],
        "every word"
    );
    assert_eq!(
        search(&pool, "laptop -desk").await,
        vec![c.air, c.pro],
        "exclusion"
    );
    assert_eq!(
        search(&pool, "notebook or rust").await,
        vec![c.rust_book, c.air]
    );
    assert_eq!(
        search(&pool, "\"systems programming\"").await,
        vec![c.rust_book],
        "a phrase"
    );
    assert_eq!(
        search(&pool, "\"programming systems\"").await,
        Vec::<Uuid>::new()
    );
    assert_eq!(
        search(&pool, "cable").await,
        Vec::<Uuid>::new(),
        "inactive products are not found"
    );
    assert_eq!(search(&pool, "   ").await.len(), 4, "blank is no filter");

    for hostile in [
        "'; DROP TABLE catalog.products; --",
        "laptop' OR '1'='1",
        "a:* | !b & (c",
        "\\ \" ' ) ( ! & | : * <-> <2>",
        "%_%",
        "ĉu ² ß 🦀",
    ] {
        let filter = ProductFilter {
            search: Some(hostile.into()),
            ..ProductFilter::default()
        };
        let result = catalog::list_products(&pool, &filter, Page::new(1, 10)).await;
        assert!(result.is_ok(), "{hostile:?}: {result:?}");
    }
    assert_eq!(get(&pool, c.pro).await.name, "Laptop Pro 16", "still there");
    assert_eq!(
        search(&pool, "'; DROP TABLE catalog.products; --").await,
        Vec::<Uuid>::new(),
        "SQL is only words to search for"
    );
    assert_eq!(
        search(&pool, "rust' OR '1'='1").await,
        vec![c.rust_book],
        "quotes are text, OR is the search operator: rust, or the word 1"
    );
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_event_delivered_twice_leaves_the_same_read_model(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run_live(CatalogProjection).await;
    let c = workload(&h).await;
    h.assert_redelivery_changes_nothing::<CatalogProjection>(async {
        category(&h, "Garden").await.to_string()
    })
    .await;
    let pro = get(&pool, c.pro).await;
    assert_eq!((pro.rating.count, pro.stock.reserved), (3, 3));
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn applying_each_event_twice_in_a_row_changes_nothing(pool: PgPool) {
    let h = Harness::start(pool);
    workload(&h).await;
    support::assert_each_apply_is_idempotent(&h, &CatalogProjection).await;
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_live_model_equals_a_replay_of_the_log(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CatalogProjection);
    workload(&h).await;
    h.assert_replay_matches(&CatalogProjection).await;
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rebuild_swaps_in_while_serving_and_the_live_consumer_goes_on(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CatalogProjection);
    let c = workload(&h).await;
    h.caught_up(NAME).await;

    let before = h.dump(NAME).await;
    let report = rebuild::rebuild(&pool, None, &CatalogProjection, Finish::Swap, |_| {})
        .await
        .unwrap();
    assert_eq!(
        report.applied, 21,
        "every catalog event of the workload, once"
    );
    assert_eq!(
        h.dump(NAME).await,
        before,
        "the swapped-in model equals the old one"
    );
    let (_, total) = catalog::list_products(&pool, &ProductFilter::default(), Page::default())
        .await
        .unwrap();
    assert_eq!(total, 4, "served from the swapped-in schema");

    // The live consumer goes on applying into the swapped-in schema.
    h.exec::<Product>(c.pro, ProductCommand::DeactivateProduct { at: Utc::now() })
        .await;
    review(&h, c.air, Uuid::new_v4(), 4).await;
    h.caught_up(NAME).await;
    assert!(!get(&pool, c.pro).await.is_active);
    assert_eq!(get(&pool, c.air).await.rating.average_hundredths, 450);
    let (rows, _) = catalog::list_products(&pool, &ProductFilter::default(), Page::default())
        .await
        .unwrap();
    assert!(rows.iter().all(|p| p.id != c.pro));
    h.assert_replay_matches(&CatalogProjection).await;
    h.shutdown().await;
}
