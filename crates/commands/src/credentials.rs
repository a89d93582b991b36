//! Credentials: each user's password hash, kept outside the log (guarantee 9: no secret in the
//! log, on the broker or in a read model).
//!
//! A hash is written only beside the `User` event that records its change (`UserRegistered`,
//! `PasswordChanged`), in the same transaction ([`SetPassword`] through
//! [`crate::Dispatcher::execute_with`]), so the log and this table never disagree about whether a
//! password was set. Logins read it with [`password_hash`].

use futures::future::BoxFuture;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::dispatch::Alongside;

/// Stores `hash` as the password hash of `user_id`, replacing any earlier one, in the transaction
/// of the event that records the change.
pub struct SetPassword {
    user_id: Uuid,
    hash: String,
}

impl SetPassword {
    /// The credential write for `user_id`'s new password hash (a PHC string, never the password).
    pub fn new(user_id: Uuid, hash: String) -> Self {
        Self { user_id, hash }
    }
}

impl std::fmt::Debug for SetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPassword")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl Alongside for SetPassword {
    fn write<'c>(&'c self, conn: &'c mut PgConnection) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO user_credentials (user_id, password_hash) VALUES ($1, $2) \
                 ON CONFLICT (user_id) DO UPDATE \
                 SET password_hash = EXCLUDED.password_hash, updated_at = now()",
            )
            .bind(self.user_id)
            .bind(&self.hash)
            .execute(conn)
            .await
            .map(drop)
        })
    }
}

/// The current password hash of `user_id`, if one was ever set.
pub async fn password_hash(pool: &PgPool, user_id: Uuid) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT password_hash FROM user_credentials WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(pool)
        .await
}
