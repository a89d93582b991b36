//! The generated token signing key: without `JWT_SECRET` (dev only) the first API process
//! generates 48 random bytes and stores them in `api.signing_key`; every process on the database,
//! then and after restarts, signs with the stored key. No key is ever in the source.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sqlx::PgPool;

/// The stored key, generating and storing one first when there is none. Concurrent first starts
/// agree: one insert wins and every process reads the winner. Logs once per database, when the
/// key is generated (never the key).
pub async fn stored_or_generated(pool: &PgPool) -> Result<String, sqlx::Error> {
    let mut bytes = [0_u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let inserted =
        sqlx::query("INSERT INTO api.signing_key (secret) VALUES ($1) ON CONFLICT (id) DO NOTHING")
            .bind(URL_SAFE_NO_PAD.encode(bytes))
            .execute(pool)
            .await?
            .rows_affected();
    if inserted == 1 {
        tracing::warn!(
            "JWT_SECRET is not set: generated a random token signing key and stored it in the \
             database (table api.signing_key); set JWT_SECRET to choose the key yourself"
        );
    }
    sqlx::query_scalar("SELECT secret FROM api.signing_key")
        .fetch_one(pool)
        .await
}
