//! `/auth`: registration, login, token refresh and logout.
//!
//! Credentials stay on the write side: the hash lives in the credentials table, written in the
//! transaction of the event that records it (guarantee 9: never in the log), login verifies
//! against it, and no answer or log line carries a password or a hash. Every
//! credential failure is the same 401, and an unknown email spends the same argon2 verification
//! as a known one, so neither the body nor the timing tells which emails are registered.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use commerce_commands::credentials::{self, SetPassword};
use commerce_commands::DispatchError;
use commerce_domain::ids::{normalize_email, user_id_for_email};
use commerce_domain::user::{
    validate_email, validate_password, Role, User, UserCommand, UserError,
};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{password, refresh, Caller};
use crate::consistency::Written;
use crate::context::RequestId;
use crate::envelope::Data;
use crate::error::{ApiError, ApiResult};
use crate::extract::Json;
use crate::routes::left_no;
use crate::routes::users::UserBody;
use crate::state::AppState;

/// The one answer to a wrong password, an unknown email and a deactivated account.
const BAD_CREDENTIALS: &str = "invalid email or password";

/// Verified against when the email is unknown; hashed once per process.
static DUMMY_HASH: OnceCell<String> = OnceCell::const_new();

/// A new account.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterInput {
    /// The login; unique case-insensitively.
    #[schema(format = Email, max_length = 254)]
    email: String,
    /// 8 to 128 characters with a letter and a digit.
    #[schema(
        min_length = 8,
        max_length = 128,
        pattern = r"^[^\u0000]*([A-Za-z][^\u0000]*[0-9]|[0-9][^\u0000]*[A-Za-z])[^\u0000]*$"
    )]
    password: String,
    /// 1 to 100 characters.
    // 1 to 100 characters once trimmed (the length is checked after trimming, so it is
    // in the pattern, not a `maxLength` of the untrimmed text); no NUL.
    #[schema(pattern = r"^\s*[^\s\u0000]([^\u0000]{0,98}[^\s\u0000])?\s*$")]
    name: String,
    /// At most 32 characters; empty (or blank) means none.
    #[serde(default)]
    #[schema(max_length = 32)]
    phone: Option<String>,
}

impl std::fmt::Debug for RegisterInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisterInput")
            .field("email", &self.email)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Credentials.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    /// The login, in any letter case.
    email: String,
    /// The password.
    password: String,
}

impl std::fmt::Debug for LoginInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginInput")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

/// A refresh token to exchange.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshInput {
    /// The refresh token from the last login or refresh.
    refresh_token: String,
}

impl std::fmt::Debug for RefreshInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshInput(..)")
    }
}

/// A fresh access token and its refresh token.
#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    /// Bearer token for `Authorization`.
    access_token: String,
    /// Exchanged once at `/auth/refresh` for a new pair.
    refresh_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// When the access token expires.
    expires_at: DateTime<Utc>,
    /// The signed-in user.
    user: UserBody,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_at", &self.expires_at)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh_pair))
        .routes(routes!(logout))
}

fn email_taken() -> ApiError {
    ApiError::Conflict {
        code: "email_taken",
        message: "this email is already registered".to_owned(),
    }
}

/// Register a customer account.
#[utoipa::path(post, path = "/auth/register", tag = "auth",
    request_body = RegisterInput,
    responses((status = 201, body = Data<UserBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    request_id: RequestId,
    Json(input): Json<RegisterInput>,
) -> ApiResult<Written<UserBody>> {
    // Before hashing: a bad request must not cost an argon2 hash.
    validate_email(&input.email).map_err(|e| ApiError::invalid_field("email", e.to_string()))?;
    validate_password(&input.password)
        .map_err(|e| ApiError::invalid_field("password", e.to_string()))?;
    let [user_id, legacy] = user_ids(&state, &input.email);
    let id = user_id.to_string();
    // Spares the hash on a plain duplicate; a concurrent one is still refused by the aggregate.
    let (existing, _) = state.aggregates.load::<User>(&id).await?;
    if existing.user_id().is_some() {
        return Err(email_taken());
    }
    if legacy != user_id && registered_at(&state, legacy).await?.is_some() {
        return Err(email_taken());
    }
    let phone = input.phone.filter(|p| !p.trim().is_empty());
    let password_hash = password::hash(input.password, state.config.password_memory_kib).await?;
    let at = Utc::now();
    let command = UserCommand::RegisterUser {
        user_id,
        email: input.email.clone(),
        name: input.name.clone(),
        phone: phone.clone(),
        roles: vec![Role::Customer],
        at,
    };
    let executed = state
        .dispatcher
        .execute_with::<User>(
            &id,
            command,
            &request_id.metadata_as(id.clone()),
            &SetPassword::new(user_id, password_hash),
        )
        .await
        .map_err(|e| match e {
            DispatchError::Rejected(UserError::EmailTaken { .. }) => email_taken(),
            other => other.into(),
        })?;
    let body = UserBody::of(&executed.aggregate).ok_or_else(|| left_no("user"))?;
    Ok(Written::new(StatusCode::CREATED, executed.position, body))
}

/// The ids an email may be registered under: first the one new registrations get, a keyed hash
/// of the normalised email (guarantee 9: the id reveals nothing of it); then the plain
/// derivation users registered under before ids were keyed (the same on a store without a
/// keyring).
fn user_ids(state: &AppState, email: &str) -> [Uuid; 2] {
    let legacy = user_id_for_email(email);
    match &state.privacy {
        Some(privacy) => [privacy.user_id_for_email(&normalize_email(email)), legacy],
        None => [legacy, legacy],
    }
}

/// The user registered under `user_id`, if any.
async fn registered_at(state: &AppState, user_id: Uuid) -> ApiResult<Option<User>> {
    let (user, _) = state.aggregates.load::<User>(&user_id.to_string()).await?;
    Ok(user.user_id().is_some().then_some(user))
}

/// The user registered under `email`, if any: under its keyed id, or under the plain id of
/// accounts registered before ids were keyed.
pub(crate) async fn find_by_email(
    state: &AppState,
    email: &str,
) -> ApiResult<Option<(Uuid, User)>> {
    let [keyed, legacy] = user_ids(state, email);
    if let Some(user) = registered_at(state, keyed).await? {
        return Ok(Some((keyed, user)));
    }
    if legacy != keyed {
        if let Some(user) = registered_at(state, legacy).await? {
            return Ok(Some((legacy, user)));
        }
    }
    Ok(None)
}

/// The active user whose credentials these are; 401 otherwise, the same answer and about the
/// same time whether the email is unknown, the password wrong or the account deactivated (the
/// API's and the console's sign-in).
pub(crate) async fn authenticate(
    state: &AppState,
    email: &str,
    password: String,
) -> ApiResult<User> {
    let found = find_by_email(state, email).await?;
    // Made on the first login of either kind, so not even that one tells the two apart.
    let dummy = DUMMY_HASH
        .get_or_try_init(|| password::dummy_hash(state.config.password_memory_kib))
        .await?;
    let stored = match &found {
        Some((user_id, _)) => credentials::password_hash(&state.pool, *user_id).await?,
        None => None,
    };
    let registered = stored.is_some();
    let phc = stored.unwrap_or_else(|| dummy.clone());
    // Verified before the active flag is looked at, so a deactivated account costs the same.
    let matches = password::verify(password, phc).await?;
    match found {
        Some((_, user)) if registered && matches && user.is_active() => Ok(user),
        _ => Err(ApiError::Unauthorized(BAD_CREDENTIALS.to_owned())),
    }
}

/// Sign in with email and password.
#[utoipa::path(post, path = "/auth/login", tag = "auth",
    request_body = LoginInput,
    responses((status = 200, body = Data<TokenPair>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)))]
async fn login(
    State(state): State<AppState>,
    Json(input): Json<LoginInput>,
) -> ApiResult<axum::Json<Data<TokenPair>>> {
    let user = authenticate(&state, &input.email, input.password).await?;
    let pair = issue_pair(&state, &user, Uuid::new_v4()).await?;
    Ok(axum::Json(Data::new(pair)))
}

/// Exchange a refresh token for a new pair; the old token stops working. Presenting a used token
/// again revokes every token of its login.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth",
    request_body = RefreshInput,
    responses((status = 200, body = Data<TokenPair>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)))]
async fn refresh_pair(
    State(state): State<AppState>,
    Json(input): Json<RefreshInput>,
) -> ApiResult<axum::Json<Data<TokenPair>>> {
    let (user_id, family) = refresh::consume(&state.pool, &input.refresh_token).await?;
    let (user, _) = state.aggregates.load::<User>(&user_id.to_string()).await?;
    if !user.is_active() {
        refresh::revoke_all(&state.pool, user_id).await?;
        return Err(ApiError::Unauthorized(
            "this account is deactivated".to_owned(),
        ));
    }
    let pair = issue_pair(&state, &user, family).await?;
    Ok(axum::Json(Data::new(pair)))
}

/// Sign out: every refresh token of the caller stops working. A body, if any, is ignored.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody)))]
async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<StatusCode> {
    refresh::revoke_all(&state.pool, caller.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// An access token with the user's current roles and a refresh token in `family`, for `user`
/// as just loaded from their stream (which also gives the answer's profile: no read model).
async fn issue_pair(state: &AppState, user: &User, family: Uuid) -> ApiResult<TokenPair> {
    let (Some(user_id), Some(body)) = (user.user_id(), UserBody::of(user)) else {
        return Err(left_no("user"));
    };
    let now = Utc::now();
    let (access_token, expires_at) =
        state
            .keys
            .issue(user_id, user.roles(), now, state.config.access_ttl)?;
    let refresh_ttl =
        chrono::Duration::from_std(state.config.refresh_ttl).map_err(ApiError::internal)?;
    let refresh_token = refresh::issue(&state.pool, user_id, family, now + refresh_ttl).await?;
    Ok(TokenPair {
        access_token,
        refresh_token,
        token_type: "Bearer".to_owned(),
        expires_at,
        user: body,
    })
}
