//! `Idempotency-Key` on `POST /orders` and `POST /payments`, kept in Postgres so it holds across
//! API instances and restarts.
//!
//! The first request with a key claims a row (user, route, key) with a hash of its body, runs, and
//! stores its answer. A repeat with the same body gets that stored answer and does nothing else;
//! a repeat with a different body is a 409. A concurrent repeat waits for the first to finish. A
//! 5xx is not stored (the claim is dropped), so the client may retry; a claim left behind by a
//! crashed process is taken over after [`STALE_AFTER`] (until then a repeat is a 409).
//!
//! In both cases the work runs again although its first run may have written: it died after
//! appending but before its answer was stored, or failed after the append. So the work must find
//! what its first run wrote instead of writing it twice: `POST /orders` derives the order id from
//! the key (`routes/orders/place.rs`); `POST /payments` is refused by the order it already paid.

use std::future::Future;
use std::time::Duration;

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// The request header.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on a replayed answer.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// An unfinished claim older than this is presumed abandoned.
pub const STALE_AFTER: Duration = Duration::from_secs(60);
/// Headers of the first answer that a replay repeats.
const KEPT_HEADERS: &[&str] = &["content-type", "x-event-position", "location"];

/// The `Idempotency-Key` of a request, if it sent one (1..=255 visible ASCII characters).
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(&IDEMPOTENCY_KEY) else {
            return Ok(Self(None));
        };
        value
            .to_str()
            .ok()
            .filter(|v| (1..=255).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
            .map(|v| Self(Some(v.to_owned())))
            .ok_or_else(|| {
                ApiError::invalid_field(
                    "Idempotency-Key",
                    "must be 1 to 255 visible ASCII characters",
                )
            })
    }
}

/// Request hash, response status, kept headers, body, and whether the claim is stale.
type StoredRow = (
    Vec<u8>,
    Option<i16>,
    Option<serde_json::Value>,
    Option<Vec<u8>>,
    bool,
);

enum Claim {
    Mine,
    Done(Response),
}

/// Runs `work` once per (`user_id`, `route`, key): without a key it simply runs. `fingerprint`
/// identifies the request body (e.g. its JSON serialisation).
pub async fn once<F, Fut>(
    state: &AppState,
    user_id: Uuid,
    route: &str,
    key: &IdempotencyKey,
    fingerprint: &[u8],
    work: F,
) -> Response
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Response, ApiError>>,
{
    let Some(key) = key.0.as_deref() else {
        return work().await.into_response();
    };
    let hash = Sha256::digest(fingerprint).to_vec();
    match claim(state, user_id, route, key, &hash).await {
        Ok(Claim::Done(response)) => return response,
        Ok(Claim::Mine) => {}
        Err(error) => return error.into_response(),
    }
    let response = work().await.into_response();
    match finish(state, user_id, route, key, response).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn claim(
    state: &AppState,
    user_id: Uuid,
    route: &str,
    key: &str,
    hash: &[u8],
) -> Result<Claim, ApiError> {
    let deadline =
        tokio::time::Instant::now() + state.config.request_timeout.min(Duration::from_secs(20));
    loop {
        let claimed = sqlx::query(
            "INSERT INTO api.idempotency_keys (user_id, route, idempotency_key, request_hash) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(user_id)
        .bind(route)
        .bind(key)
        .bind(hash)
        .execute(&state.pool)
        .await?;
        if claimed.rows_affected() == 1 {
            return Ok(Claim::Mine);
        }
        let row: Option<StoredRow> = sqlx::query_as(
            "SELECT request_hash, response_status, response_headers, response_body, \
                        created_at < now() - make_interval(secs => $4) \
                 FROM api.idempotency_keys \
                 WHERE user_id = $1 AND route = $2 AND idempotency_key = $3",
        )
        .bind(user_id)
        .bind(route)
        .bind(key)
        .bind(STALE_AFTER.as_secs_f64())
        .fetch_optional(&state.pool)
        .await?;
        let Some((stored_hash, status, headers, body, stale)) = row else {
            continue; // the first attempt failed and dropped its claim: try to claim it again
        };
        if stored_hash != hash {
            return Err(ApiError::Conflict {
                code: "idempotency_key_reused",
                message: "this Idempotency-Key was used with a different request".to_owned(),
            });
        }
        if let Some(status) = status {
            return Ok(Claim::Done(replay(
                status,
                headers,
                body.unwrap_or_default(),
            )));
        }
        if stale {
            let taken = sqlx::query(
                "UPDATE api.idempotency_keys SET created_at = now() \
                 WHERE user_id = $1 AND route = $2 AND idempotency_key = $3 \
                   AND response_status IS NULL AND created_at < now() - make_interval(secs => $4)",
            )
            .bind(user_id)
            .bind(route)
            .bind(key)
            .bind(STALE_AFTER.as_secs_f64())
            .execute(&state.pool)
            .await?;
            if taken.rows_affected() == 1 {
                return Ok(Claim::Mine);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::Conflict {
                code: "idempotency_key_in_progress",
                message: "a request with this Idempotency-Key is still being processed".to_owned(),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn finish(
    state: &AppState,
    user_id: Uuid,
    route: &str,
    key: &str,
    response: Response,
) -> Result<Response, ApiError> {
    let status = response.status();
    if status.is_server_error() {
        sqlx::query(
            "DELETE FROM api.idempotency_keys \
             WHERE user_id = $1 AND route = $2 AND idempotency_key = $3 AND response_status IS NULL",
        )
        .bind(user_id)
        .bind(route)
        .bind(key)
        .execute(&state.pool)
        .await?;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, crate::extract::BODY_LIMIT * 4)
        .await
        .map_err(|e| ApiError::Internal(e.to_string().into()))?;
    let kept: serde_json::Map<String, serde_json::Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = parts.headers.get(*name)?.to_str().ok()?;
            Some((
                (*name).to_owned(),
                serde_json::Value::String(value.to_owned()),
            ))
        })
        .collect();
    sqlx::query(
        "UPDATE api.idempotency_keys \
         SET response_status = $4, response_headers = $5, response_body = $6, completed_at = now() \
         WHERE user_id = $1 AND route = $2 AND idempotency_key = $3",
    )
    .bind(user_id)
    .bind(route)
    .bind(key)
    .bind(i16::try_from(status.as_u16()).unwrap_or(200))
    .bind(serde_json::Value::Object(kept))
    .bind(bytes.to_vec())
    .execute(&state.pool)
    .await?;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn replay(status: i16, headers: Option<serde_json::Value>, body: Vec<u8>) -> Response {
    let status = u16::try_from(status)
        .ok()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut map = HeaderMap::new();
    if let Some(serde_json::Value::Object(stored)) = headers {
        for (name, value) in stored {
            if let (Ok(name), Some(Ok(value))) = (
                HeaderName::try_from(name.as_str()),
                value.as_str().map(HeaderValue::from_str),
            ) {
                map.insert(name, value);
            }
        }
    }
    map.insert(REPLAYED, HeaderValue::from_static("true"));
    (status, map, body).into_response()
}
