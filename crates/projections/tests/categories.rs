//! The categories read model, fed through RabbitMQ: live categories with active product counts,
//! lookups by name; exactly-once effect; rebuilds.

mod support;

use chrono::Utc;
use commerce_domain::category::{Category, CategoryCommand};
use commerce_domain::product::{Product, ProductCommand};
use commerce_domain::{Currency, Money};
use commerce_event_store::db::MIGRATOR;
use commerce_projections::categories::{self, CategoriesProjection, CategoryView};
use commerce_projections::rebuild::{self, Finish};
use commerce_projections::{Page, Projection};
use sqlx::PgPool;
use support::Harness;
use uuid::Uuid;

const NAME: &str = CategoriesProjection::NAME;

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

async fn product(h: &Harness, name: &str, category_id: Uuid) -> Uuid {
    let id = Uuid::new_v4();
    h.exec::<Product>(
        id,
        ProductCommand::CreateProduct {
            product_id: id,
            name: name.into(),
            slug: String::new(),
            description: String::new(),
            price: Money::new(1_000, Currency::USD),
            category_id,
            image_url: None,
            at: Utc::now(),
        },
    )
    .await;
    id
}

async fn move_product(h: &Harness, product_id: Uuid, category_id: Uuid) {
    h.exec::<Product>(
        product_id,
        ProductCommand::UpdateProduct {
            name: None,
            slug: None,
            description: None,
            price: None,
            category_id: Some(category_id),
            image_url: None,
            at: Utc::now(),
        },
    )
    .await;
}

async fn deactivate(h: &Harness, product_id: Uuid) {
    h.exec::<Product>(
        product_id,
        ProductCommand::DeactivateProduct { at: Utc::now() },
    )
    .await;
}

#[derive(Debug, Clone, Copy)]
struct Shop {
    books: Uuid,
    electronics: Uuid,
    garden: Uuid,
    toys: Uuid,
}

/// 4 categories (one renamed, one deleted), 4 products (one moved, two deactivated).
/// Events: 6 category + 7 product = 13.
async fn workload(h: &Harness) -> Shop {
    let electronics = category(h, "electronics").await;
    let books = category(h, "Books").await;
    let garden = category(h, "Garden").await;
    let toys = category(h, "Toys").await;
    let _phone = product(h, "Phone", electronics).await;
    let reader = product(h, "E-reader", electronics).await;
    let novel = product(h, "Novel", books).await;
    let rake = product(h, "Rake", garden).await;
    h.exec::<Category>(
        electronics,
        CategoryCommand::RenameCategory {
            name: "Electronics".into(),
            slug: String::new(),
            at: Utc::now(),
        },
    )
    .await;
    move_product(h, reader, books).await;
    deactivate(h, novel).await;
    deactivate(h, rake).await;
    h.exec::<Category>(garden, CategoryCommand::DeleteCategory { at: Utc::now() })
        .await;
    Shop {
        books,
        electronics,
        garden,
        toys,
    }
}

fn summary(rows: &[CategoryView]) -> Vec<(&str, i64)> {
    rows.iter()
        .map(|c| (c.name.as_str(), c.product_count))
        .collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn categories_count_their_active_products_and_deleted_ones_disappear(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CategoriesProjection);
    let s = workload(&h).await;
    h.caught_up(NAME).await;

    let (rows, total) = categories::list(&pool, Page::new(1, 10)).await.unwrap();
    assert_eq!(
        summary(&rows),
        vec![("Books", 1), ("Electronics", 1), ("Toys", 0)],
        "by name; the e-reader moved to Books, the novel and the rake were deactivated"
    );
    assert_eq!(total, 3, "the deleted Garden is not counted");

    let electronics = categories::get(&pool, s.electronics)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (electronics.name.as_str(), electronics.slug.as_str()),
        ("Electronics", "electronics")
    );
    assert!(electronics.updated_at > electronics.created_at, "renamed");
    let books = categories::get(&pool, s.books).await.unwrap().unwrap();
    assert_eq!(
        books.updated_at, books.created_at,
        "product moves do not change the category"
    );
    assert_eq!(books.product_count, 1);
    assert!(categories::get(&pool, s.garden).await.unwrap().is_none());
    assert!(categories::get(&pool, Uuid::new_v4())
        .await
        .unwrap()
        .is_none());

    assert_eq!(
        categories::product_count(&pool, s.electronics)
            .await
            .unwrap(),
        1
    );
    assert_eq!(categories::product_count(&pool, s.books).await.unwrap(), 1);
    assert_eq!(categories::product_count(&pool, s.toys).await.unwrap(), 0);
    assert_eq!(categories::product_count(&pool, s.garden).await.unwrap(), 0);
    assert_eq!(
        categories::product_count(&pool, Uuid::new_v4())
            .await
            .unwrap(),
        0
    );

    let (page, total) = categories::list(&pool, Page::new(2, 2)).await.unwrap();
    assert_eq!((summary(&page), total), (vec![("Toys", 0)], 3));
    let (page, total) = categories::list(&pool, Page::new(3, 2)).await.unwrap();
    assert_eq!((page.len(), total), (0, 3));
    let json = serde_json::to_value(&books).unwrap();
    assert_eq!(json["product_count"], 1);
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn names_are_found_case_insensitively_among_live_categories(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CategoriesProjection);
    let s = workload(&h).await;
    h.caught_up(NAME).await;

    let find = |name: &'static str| {
        let pool = pool.clone();
        async move {
            categories::find_by_name(&pool, name)
                .await
                .unwrap()
                .map(|c| c.id)
        }
    };
    assert_eq!(find("ELECTRONICS").await, Some(s.electronics));
    assert_eq!(find("  books ").await, Some(s.books));
    assert_eq!(find("Garden").await, None, "deleted");
    assert_eq!(find("Gadgets").await, None);
    assert_eq!(find("B%").await, None, "no pattern matching");

    // A deleted category's name is free again.
    let garden = category(&h, "garden").await;
    h.caught_up(NAME).await;
    assert_eq!(find("GARDEN").await, Some(garden));
    assert_ne!(garden, s.garden);
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_event_delivered_twice_leaves_the_same_read_model(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run_live(CategoriesProjection).await;
    let s = workload(&h).await;
    h.assert_redelivery_changes_nothing::<CategoriesProjection>(async {
        category(&h, "Music").await.to_string()
    })
    .await;
    assert!(
        categories::get(&pool, s.garden).await.unwrap().is_none(),
        "a redelivered creation does not bring a deleted category back"
    );
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn applying_each_event_twice_in_a_row_changes_nothing(pool: PgPool) {
    let h = Harness::start(pool);
    workload(&h).await;
    support::assert_each_apply_is_idempotent(&h, &CategoriesProjection).await;
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_live_model_equals_a_replay_of_the_log(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CategoriesProjection);
    workload(&h).await;
    h.assert_replay_matches(&CategoriesProjection).await;
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rebuild_swaps_in_while_serving_and_the_live_consumer_goes_on(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(CategoriesProjection);
    let s = workload(&h).await;
    h.caught_up(NAME).await;

    let before = h.dump(NAME).await;
    let report = rebuild::rebuild(&pool, None, &CategoriesProjection, Finish::Swap, |_| {})
        .await
        .unwrap();
    assert_eq!(report.applied, 13, "6 category and 7 product events");
    assert_eq!(
        h.dump(NAME).await,
        before,
        "the swapped-in model equals the old one"
    );
    assert_eq!(categories::list(&pool, Page::default()).await.unwrap().1, 3);

    // The live consumer goes on applying into the swapped-in schema.
    product(&h, "Kite", s.toys).await;
    h.caught_up(NAME).await;
    assert_eq!(
        categories::get(&pool, s.toys)
            .await
            .unwrap()
            .unwrap()
            .product_count,
        1
    );
    h.assert_replay_matches(&CategoriesProjection).await;
    h.shutdown().await;
}
