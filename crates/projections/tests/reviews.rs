//! The reviews read model, fed through RabbitMQ: listing, existence, deletion, exactly-once
//! effect, rebuilds.

mod support;

use chrono::Utc;
use commerce_domain::ids::review_id;
use commerce_domain::review::{Review, ReviewCommand};
use commerce_event_store::db::MIGRATOR;
use commerce_projections::rebuild::{self, Finish};
use commerce_projections::reviews::{self, ReviewsProjection};
use commerce_projections::{Page, Projection};
use sqlx::PgPool;
use support::Harness;
use uuid::Uuid;

async fn submit(h: &Harness, user: Uuid, product: Uuid, rating: u8, comment: &str, verified: bool) {
    h.exec::<Review>(
        review_id(user, product),
        ReviewCommand::SubmitReview {
            review_id: review_id(user, product),
            product_id: product,
            user_id: user,
            rating,
            comment: comment.into(),
            verified_purchase: verified,
            at: Utc::now(),
        },
    )
    .await;
}

async fn delete(h: &Harness, user: Uuid, product: Uuid) {
    h.exec::<Review>(
        review_id(user, product),
        ReviewCommand::DeleteReview { at: Utc::now() },
    )
    .await;
}

struct Ids {
    users: [Uuid; 3],
    kettle: Uuid,
    toaster: Uuid,
}

/// 7 review events.
async fn workload(h: &Harness) -> Ids {
    let ids = Ids {
        users: [(); 3].map(|()| Uuid::new_v4()),
        kettle: Uuid::new_v4(),
        toaster: Uuid::new_v4(),
    };
    let ([ann, ben, cy], kettle) = (ids.users, ids.kettle);
    submit(h, ann, kettle, 5, "Boils fast", true).await;
    submit(h, ben, kettle, 2, "Too loud", false).await;
    submit(h, cy, kettle, 1, "Broke in a week, secret-remark", false).await;
    submit(h, ann, ids.toaster, 4, "", true).await;
    delete(h, cy, kettle).await;
    delete(h, ben, kettle).await;
    submit(h, ben, kettle, 4, "Quieter than I thought", false).await;
    ids
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn live_reviews_are_listed_newest_first_and_deleted_ones_disappear(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(ReviewsProjection);
    let ids = workload(&h).await;
    h.caught_up(ReviewsProjection::NAME).await;
    let ([ann, ben, cy], kettle) = (ids.users, ids.kettle);

    let (page, total) = reviews::list_for_product(&pool, kettle, Page::default())
        .await
        .unwrap();
    assert_eq!(total, 2, "the deleted review is gone");
    let listed: Vec<(Uuid, i16, &str, bool)> = page
        .iter()
        .map(|r| (r.user_id, r.rating, r.comment.as_str(), r.verified_purchase))
        .collect();
    assert_eq!(
        listed,
        vec![
            (ben, 4, "Quieter than I thought", false),
            (ann, 5, "Boils fast", true),
        ],
        "newest first: a review submitted again after deletion is new"
    );
    assert!(page.iter().all(|r| r.product_id == kettle));
    assert_eq!(page[0].id, review_id(ben, kettle));
    assert!(page[0].created_at > page[1].created_at);

    let (second, total) = reviews::list_for_product(&pool, kettle, Page::new(2, 1))
        .await
        .unwrap();
    assert_eq!((second.len(), total), (1, 2));
    assert_eq!(second[0].user_id, ann);
    let (beyond, _) = reviews::list_for_product(&pool, kettle, Page::new(3, 1))
        .await
        .unwrap();
    assert!(beyond.is_empty());
    let (toaster, total) = reviews::list_for_product(&pool, ids.toaster, Page::default())
        .await
        .unwrap();
    assert_eq!(
        (toaster.len(), total, toaster[0].comment.as_str()),
        (1, 1, "")
    );
    let (none, total) = reviews::list_for_product(&pool, Uuid::new_v4(), Page::default())
        .await
        .unwrap();
    assert_eq!((none.len(), total), (0, 0));

    assert!(reviews::exists_for(&pool, ann, kettle).await.unwrap());
    assert!(reviews::exists_for(&pool, ben, kettle).await.unwrap());
    assert!(reviews::exists_for(&pool, ann, ids.toaster).await.unwrap());
    assert!(
        !reviews::exists_for(&pool, cy, kettle).await.unwrap(),
        "deleted"
    );
    assert!(!reviews::exists_for(&pool, ben, ids.toaster).await.unwrap());
    assert!(
        !reviews::exists_for(&pool, kettle, ann).await.unwrap(),
        "user and product in order"
    );

    assert_eq!(
        reviews::get(&pool, review_id(cy, kettle)).await.unwrap(),
        None
    );
    let annie = reviews::get(&pool, review_id(ann, kettle))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((annie.rating, annie.verified_purchase), (5, true));
    assert!(
        !h.dump("reviews").await.concat().contains("secret-remark"),
        "a deleted review's text stays nowhere in the read model"
    );
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_event_delivered_twice_leaves_the_same_read_model(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run_live(ReviewsProjection).await;
    let ids = workload(&h).await;
    h.assert_redelivery_changes_nothing::<ReviewsProjection>(async {
        let later = Uuid::new_v4();
        submit(&h, later, ids.kettle, 3, "Fine", false).await;
        later.to_string()
    })
    .await;

    // Below the consumer's de-duplication: a deleted review must not come back.
    h.stop_projection(ReviewsProjection::NAME).await;
    let before = h.dump("reviews").await;
    support::apply_log_directly(&pool, &ReviewsProjection, support::Reapply::Backwards).await;
    assert_eq!(h.dump("reviews").await, before, "re-applied, newest first");
    let [_, _, cy] = ids.users;
    assert!(!reviews::exists_for(&pool, cy, ids.kettle).await.unwrap());
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_live_model_equals_a_replay_of_the_log(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(ReviewsProjection);
    workload(&h).await;
    h.assert_replay_matches(&ReviewsProjection).await;
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rebuild_swaps_in_while_serving_and_the_consumer_continues(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(ReviewsProjection);
    let ids = workload(&h).await;
    h.caught_up(ReviewsProjection::NAME).await;

    let before = h.dump("reviews").await;
    let report = rebuild::rebuild(&pool, None, &ReviewsProjection, Finish::Swap, |_| {})
        .await
        .unwrap();
    assert_eq!(report.applied, 7);
    assert_eq!(
        h.dump("reviews").await,
        before,
        "the swapped-in model equals the old one"
    );
    let (_, total) = reviews::list_for_product(&pool, ids.kettle, Page::default())
        .await
        .unwrap();
    assert_eq!(total, 2, "still serving");

    let [ann, ..] = ids.users;
    delete(&h, ann, ids.kettle).await;
    h.caught_up(ReviewsProjection::NAME).await;
    assert!(!reviews::exists_for(&pool, ann, ids.kettle).await.unwrap());
    let (_, total) = reviews::list_for_product(&pool, ids.kettle, Page::default())
        .await
        .unwrap();
    assert_eq!(total, 1);
    h.assert_replay_matches(&ReviewsProjection).await;
    h.shutdown().await;
}
