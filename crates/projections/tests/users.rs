//! The users read model, fed through RabbitMQ: queries, exactly-once effect, rebuilds.

mod support;

use chrono::Utc;
use commerce_domain::ids::user_id_for_email;
use commerce_domain::user::{Role, User, UserCommand};
use commerce_event_store::db::MIGRATOR;
use commerce_projections::rebuild::{self, Finish};
use commerce_projections::users::{self, UsersProjection};
use commerce_projections::{Page, Projection};
use sqlx::PgPool;
use support::Harness;

async fn register(h: &Harness, email: &str, name: &str) -> uuid::Uuid {
    let user_id = user_id_for_email(email);
    h.exec::<User>(
        user_id,
        UserCommand::RegisterUser {
            user_id,
            email: email.into(),
            name: name.into(),
            phone: None,
            roles: vec![],
            at: Utc::now(),
        },
    )
    .await;
    user_id
}

async fn workload(h: &Harness) -> (uuid::Uuid, uuid::Uuid) {
    let ada = register(h, "ada@example.com", "Ada").await;
    let bob = register(h, "bob@example.com", "Bob").await;
    h.exec::<User>(
        ada,
        UserCommand::UpdateProfile {
            name: Some("Ada L.".into()),
            phone: Some("+44 20 1234".into()),
            at: Utc::now(),
        },
    )
    .await;
    h.exec::<User>(
        ada,
        UserCommand::SetRoles {
            roles: vec![Role::Customer, Role::Admin],
            at: Utc::now(),
        },
    )
    .await;
    h.exec::<User>(bob, UserCommand::DeactivateUser { at: Utc::now() })
        .await;
    (ada, bob)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn users_are_projected_without_password_hashes(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(UsersProjection);
    let (ada, bob) = workload(&h).await;
    h.caught_up(UsersProjection::NAME).await;

    let a = users::get(&pool, ada).await.unwrap().unwrap();
    assert_eq!(
        (a.name.as_str(), a.phone.as_deref()),
        ("Ada L.", Some("+44 20 1234"))
    );
    assert_eq!(a.roles, vec!["customer", "admin"]);
    assert!(a.is_active);
    assert!(a.updated_at > a.created_at);
    let b = users::get(&pool, bob).await.unwrap().unwrap();
    assert!(!b.is_active);
    let (page, total) = users::list(&pool, Page::new(1, 1)).await.unwrap();
    assert_eq!((page.len(), total), (1, 2));
    assert_eq!(page[0].id, bob, "newest first");
    assert!(
        !h.dump("users").await.concat().contains("argon2id"),
        "a password hash reached the read model"
    );
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_event_delivered_twice_leaves_the_same_read_model(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run_live(UsersProjection).await;
    workload(&h).await;
    h.assert_redelivery_changes_nothing::<UsersProjection>(async {
        register(&h, "carol@example.com", "Carol").await;
        "carol@example.com".to_owned()
    })
    .await;
    h.shutdown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rebuild_reproduces_the_live_model_and_swaps_in_while_serving(pool: PgPool) {
    let mut h = Harness::start(pool.clone());
    h.run(UsersProjection);
    let (ada, _) = workload(&h).await;
    h.assert_replay_matches(&UsersProjection).await;

    let before = h.dump("users").await;
    let mut seen = Vec::new();
    let report = rebuild::rebuild(&pool, None, &UsersProjection, Finish::Swap, |p| {
        seen.push(p)
    })
    .await
    .unwrap();
    assert_eq!(
        report.applied, 5,
        "2 registrations, a profile update, a role grant, a deactivation"
    );
    assert!(
        seen.last().is_some_and(|p| p.percent() >= 100.0),
        "progress reaches 100%"
    );
    assert_eq!(
        h.dump("users").await,
        before,
        "the swapped-in model equals the old one"
    );
    // The live consumer goes on applying into the swapped-in schema.
    h.exec::<User>(ada, UserCommand::DeactivateUser { at: Utc::now() })
        .await;
    h.caught_up(UsersProjection::NAME).await;
    assert!(!users::get(&pool, ada).await.unwrap().unwrap().is_active);
    h.assert_replay_matches(&UsersProjection).await;
    h.shutdown().await;
}
