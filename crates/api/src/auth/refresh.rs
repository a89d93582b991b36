//! Rotating refresh tokens. A token is 32 random bytes (base64url) shown to the client once;
//! Postgres keeps only its SHA-256. Each use consumes the token and issues its successor in the
//! same family. A consumed token presented again means it was stolen (or replayed): the whole
//! family is revoked, so neither the thief nor the victim can continue without logging in.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::ApiError;

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A new token in `family` for `user_id`, valid until `expires_at`.
pub async fn issue(
    pool: &PgPool,
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<String, ApiError> {
    let mut bytes = [0_u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = URL_SAFE_NO_PAD.encode(bytes);
    sqlx::query(
        "INSERT INTO api.refresh_tokens (token_hash, user_id, family_id, expires_at) \
         VALUES ($1, $2, $3, $4)",
    )
    .bind(digest(&token))
    .bind(user_id)
    .bind(family_id)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(token)
}

/// Consumes `token`: its user and family, if it was live. A used token revokes its family.
pub async fn consume(pool: &PgPool, token: &str) -> Result<(Uuid, Uuid), ApiError> {
    let hash = digest(token);
    // One statement: of two concurrent uses, exactly one finds `used_at IS NULL`.
    let used: Option<(Uuid, Uuid)> = sqlx::query_as(
        "UPDATE api.refresh_tokens SET used_at = now() \
         WHERE token_hash = $1 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > now() \
         RETURNING user_id, family_id",
    )
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    if let Some(found) = used {
        return Ok(found);
    }
    let reused: Option<(Uuid,)> = sqlx::query_as(
        "SELECT family_id FROM api.refresh_tokens WHERE token_hash = $1 AND used_at IS NOT NULL",
    )
    .bind(&hash)
    .fetch_optional(pool)
    .await?;
    if let Some((family_id,)) = reused {
        tracing::warn!(%family_id, "a used refresh token was presented again; revoking its family");
        sqlx::query(
            "UPDATE api.refresh_tokens SET revoked_at = now() \
             WHERE family_id = $1 AND revoked_at IS NULL",
        )
        .bind(family_id)
        .execute(pool)
        .await?;
    }
    Err(ApiError::Unauthorized(
        "refresh token is invalid, expired or already used".to_owned(),
    ))
}

/// Revokes every live refresh token of `user_id` (logout, deactivation).
pub async fn revoke_all(pool: &PgPool, user_id: Uuid) -> Result<u64, ApiError> {
    let done = sqlx::query(
        "UPDATE api.refresh_tokens SET revoked_at = now() \
         WHERE user_id = $1 AND revoked_at IS NULL AND used_at IS NULL",
    )
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
