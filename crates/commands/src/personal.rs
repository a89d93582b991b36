//! Which fields of which events are personal data (guarantee 9): sealed in the log under the
//! key of the person their payload's `user_id` names, erasable by destroying that key.
//!
//! Amounts, ids, statuses and times are never personal here: after an erasure the accounting
//! still adds up.

use commerce_domain::order::Order;
use commerce_domain::review::Review;
use commerce_domain::user::User;
use commerce_event_store::privacy::{MasterKey, PersonalFields, Privacy, PrivacyError};
use cqrs_es::Aggregate;
use sqlx::PgPool;

/// Every event with personal fields, and those fields.
pub static PERSONAL_FIELDS: &[PersonalFields] = &[
    PersonalFields {
        aggregate_type: User::TYPE,
        event_type: "UserRegistered",
        fields: &["email", "name", "phone"],
    },
    PersonalFields {
        aggregate_type: User::TYPE,
        event_type: "ProfileUpdated",
        fields: &["name", "phone"],
    },
    PersonalFields {
        aggregate_type: Order::TYPE,
        event_type: "OrderPlaced",
        fields: &["shipping_address"],
    },
    PersonalFields {
        aggregate_type: Review::TYPE,
        event_type: "ReviewSubmitted",
        fields: &["comment"],
    },
];

/// The master key `serve` generated in dev, generating and storing one first when there is
/// none (concurrent first starts agree: one insert wins). Logs once per database, when the key is
/// generated (never the key). `prod` never calls this: it requires `DATA_KEY`.
pub async fn stored_or_generated_master(pool: &PgPool) -> Result<MasterKey, PrivacyError> {
    let (_, text) = MasterKey::generate();
    let inserted =
        sqlx::query("INSERT INTO dev_data_key (key) VALUES ($1) ON CONFLICT (id) DO NOTHING")
            .bind(text)
            .execute(pool)
            .await?
            .rows_affected();
    if inserted == 1 {
        tracing::warn!(
            "DATA_KEY is not set: generated a master key for personal data and stored it in the \
             database (table dev_data_key; dev only); set DATA_KEY to choose the key yourself"
        );
    }
    let stored: String = sqlx::query_scalar("SELECT key FROM dev_data_key")
        .fetch_one(pool)
        .await?;
    MasterKey::parse(&stored)
}

/// The keyring of `pool`'s database opened with `master`, for the platform's events.
pub async fn keyring(pool: &PgPool, master: MasterKey) -> Result<Privacy, PrivacyError> {
    Privacy::open_keyring(pool, master, PERSONAL_FIELDS).await
}
