//! `PUT /users/me/password`: the signed-in user replaces their password, proving the current one.
//!
//! The new hash goes to the credentials table in the transaction of the `PasswordChanged` event
//! that records the change; the event itself carries no hash (guarantee 9).

use axum::extract::State;
use chrono::Utc;
use commerce_commands::credentials::{self, SetPassword};
use commerce_domain::user::{validate_password, User, UserCommand};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{password, refresh, Caller};
use crate::consistency::Written;
use crate::context::RequestId;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::state::AppState;

/// The current password and its replacement.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordInput {
    /// The password in use now.
    current_password: String,
    /// 8 to 128 characters with a letter and a digit.
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = r"^[^\u0000]*([A-Za-z][^\u0000]*[0-9]|[0-9][^\u0000]*[A-Za-z])[^\u0000]*$"
    )]
    new_password: String,
}

impl std::fmt::Debug for PasswordInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordInput(..)")
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(change_password))
}

/// 403: the caller is signed in, but the password they prove is not theirs.
fn wrong_password() -> ApiError {
    ApiError::Forbidden("current_password does not match".to_owned())
}

/// Change the signed-in user's password. Every refresh token of the user is revoked (all
/// sessions must sign in again once their access token expires).
#[utoipa::path(put, path = "/users/me/password", tag = "users", security(("bearer" = [])),
    request_body = PasswordInput,
    responses((status = 204), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 403, description = "`current_password` does not match", body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
async fn change_password(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Json(input): Json<PasswordInput>,
) -> ApiResult<Written<()>> {
    // Before any hashing: a bad request must not cost an argon2 hash.
    validate_password(&input.new_password)
        .map_err(|e| ApiError::invalid_field("new_password", e.to_string()))?;
    let stored = credentials::password_hash(&state.pool, caller.user_id)
        .await?
        .ok_or_else(wrong_password)?;
    if !password::verify(input.current_password, stored).await? {
        return Err(wrong_password());
    }
    let hash = password::hash(input.new_password, state.config.password_memory_kib).await?;
    // Every session started with the old password ends (whoever may have learnt it): its refresh
    // tokens are revoked first, so a failure below never leaves the new password beside live old
    // sessions. Access tokens already issued run out on their own (minutes).
    refresh::revoke_all(&state.pool, caller.user_id).await?;
    let executed = state
        .dispatcher
        .execute_with::<User>(
            &caller.user_id.to_string(),
            UserCommand::ChangePassword { at: Utc::now() },
            &request_id.metadata(&caller),
            &SetPassword::new(caller.user_id, hash),
        )
        .await?;
    Ok(Written::no_content(executed.position))
}
