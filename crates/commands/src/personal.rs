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
use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::dispatch::Alongside;

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

/// What an erasure changes beside its `PersonalDataErased` event, in the same transaction
/// (through [`crate::Dispatcher::execute_with`]): the person's data key is destroyed (the
/// ciphertext of their personal fields in the log can never be opened again), their password hash
/// and refresh tokens go (they cannot sign in), and the stored answers of their idempotent
/// requests (which repeat their shipping address) are deleted.
pub struct Erase {
    privacy: Privacy,
    user_id: Uuid,
}

impl Erase {
    /// The erasure of `user_id`'s personal data with `privacy`'s keyring.
    pub fn new(privacy: Privacy, user_id: Uuid) -> Self {
        Self { privacy, user_id }
    }
}

impl std::fmt::Debug for Erase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Erase")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl Alongside for Erase {
    fn write<'c>(&'c self, conn: &'c mut PgConnection) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        Box::pin(async move {
            self.privacy
                .erase(&mut *conn, self.user_id)
                .await
                .map_err(|e| match e {
                    PrivacyError::Database(e) => e,
                    other => sqlx::Error::Protocol(other.to_string()),
                })?;
            for statement in [
                "DELETE FROM user_credentials WHERE user_id = $1",
                "DELETE FROM api.idempotency_keys WHERE user_id = $1",
                "UPDATE api.refresh_tokens SET revoked_at = now() \
                 WHERE user_id = $1 AND revoked_at IS NULL",
                "DELETE FROM api.console_sessions WHERE user_id = $1",
            ] {
                sqlx::query(statement)
                    .bind(self.user_id)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        })
    }
}

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

/// The master key a `dev` platform generated and keeps in `pool`'s database, if it has one
/// (never generating one).
pub async fn stored_master(pool: &PgPool) -> Result<Option<MasterKey>, PrivacyError> {
    let stored: Option<String> = sqlx::query_scalar("SELECT key FROM dev_data_key")
        .fetch_optional(pool)
        .await?;
    stored.as_deref().map(MasterKey::parse).transpose()
}

/// The keyring of `pool`'s database opened with `master`, for the platform's events.
pub async fn keyring(pool: &PgPool, master: MasterKey) -> Result<Privacy, PrivacyError> {
    Privacy::open_keyring(pool, master, PERSONAL_FIELDS).await
}

#[cfg(test)]
mod tests {
    /// What a destroyed key opens as (the store) and what read models scrub to (the domain) are
    /// one text, or a replay would not equal the live read models.
    #[test]
    fn the_store_and_the_domain_say_erased_alike() {
        assert_eq!(
            commerce_event_store::privacy::ERASED,
            commerce_domain::ERASED
        );
    }
}
