//! `/users`: profiles, deactivation and roles. A user's profile is theirs and the admins': anyone
//! else gets 404 (not 403), so ids cannot be probed. Every write answers with the user as the
//! command left the aggregate (never waiting for the users read model), with the times of its
//! events as the read model records them; no answer ever carries a password or its hash.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use commerce_commands::personal::Erase;
use commerce_domain::user::{Role, User, UserCommand};
use commerce_event_store::Position;
use commerce_projections::users::{self, UserView};
use cqrs_es::Aggregate;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{refresh, Caller};
use crate::consistency::{MinPosition, Written};
use crate::context::RequestId;
use crate::envelope::Data;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::routes::{as_stored, left_no};
use crate::state::AppState;

const READ_MODEL: &[&str] = &["users"];

/// A user's profile, roles and state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserBody {
    id: Uuid,
    email: String,
    name: String,
    phone: Option<String>,
    /// `customer`, `admin`, `auditor`.
    roles: Vec<String>,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<UserView> for UserBody {
    fn from(v: UserView) -> Self {
        let mut roles = v.roles;
        // The read model appends granted roles; the API lists them in one stable order.
        roles.sort_by_key(|r| ["customer", "admin", "auditor"].iter().position(|k| k == r));
        Self {
            id: v.id,
            email: v.email,
            name: v.name,
            phone: v.phone,
            roles,
            is_active: v.is_active,
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

impl UserBody {
    /// The answer for `user` as a command or a login left it; `None` before registration.
    pub(crate) fn of(user: &User) -> Option<Self> {
        let (id, (created_at, updated_at)) = (user.user_id()?, user.times()?);
        Some(Self {
            id,
            email: user.email().to_owned(),
            name: user.name().to_owned(),
            phone: user.phone().map(str::to_owned),
            // The aggregate keeps its roles sorted in the API's order.
            roles: user
                .roles()
                .iter()
                .map(|r| role_name(*r).to_owned())
                .collect(),
            is_active: user.is_active(),
            created_at: as_stored(created_at),
            updated_at: as_stored(updated_at),
        })
    }

    /// The answer for the user a command just wrote (500 if it left no user, which the domain
    /// rules out for every command that succeeds).
    fn written(user: &User) -> ApiResult<Self> {
        Self::of(user).ok_or_else(|| left_no("user"))
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Customer => "customer",
        Role::Admin => "admin",
        Role::Auditor => "auditor",
    }
}

/// The user `id` once the users read model has applied `position` (503 if it does not get there
/// within the read bound).
async fn view_after(state: &AppState, id: Uuid, position: Position) -> ApiResult<UserBody> {
    MinPosition::at(position).wait(state, READ_MODEL).await?;
    users::get(&state.pool, id)
        .await?
        .map(Into::into)
        .ok_or_else(|| ApiError::Unavailable("the user is not readable yet; retry".to_owned()))
}

/// A partial profile update: absent fields are kept.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileInput {
    /// 1 to 100 characters.
    #[serde(default)]
    // 1 to 100 characters once trimmed (the length is checked after trimming, so it is
    // in the pattern, not a `maxLength` of the untrimmed text); no NUL.
    #[schema(pattern = r"^\s*[^\s\u0000]([^\u0000]{0,98}[^\s\u0000])?\s*$")]
    name: Option<String>,
    /// 1 to 32 characters; `null` or `""` removes it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    #[schema(max_length = 32)]
    phone: Option<Option<String>>,
}

/// Tells a field sent as `null` (`Some(None)`) from an absent one (`None`, via `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A role name.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RoleName {
    /// Own data only.
    Customer,
    /// Manages everything.
    Admin,
    /// Reads history and the event log.
    Auditor,
}

impl From<RoleName> for Role {
    fn from(r: RoleName) -> Self {
        match r {
            RoleName::Customer => Self::Customer,
            RoleName::Admin => Self::Admin,
            RoleName::Auditor => Self::Auditor,
        }
    }
}

/// The complete new role set.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolesInput {
    /// At least one role.
    #[schema(min_items = 1)]
    roles: Vec<RoleName>,
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_me, update_me))
        .routes(routes!(get_one, update, deactivate))
        .routes(routes!(set_roles))
        .routes(routes!(erase_personal_data))
}

/// Only the user themself and admins see a user; to anyone else it does not exist.
fn self_or_admin(caller: &Caller, id: Uuid) -> ApiResult<()> {
    if caller.user_id == id || caller.is_admin() {
        Ok(())
    } else {
        Err(ApiError::not_found("user"))
    }
}

async fn read(state: &AppState, min: MinPosition, id: Uuid) -> ApiResult<UserBody> {
    min.wait(state, READ_MODEL).await?;
    if let Some(view) = users::get(&state.pool, id).await? {
        return Ok(view.into());
    }
    // Registered but not projected yet: wait for its stream rather than deny that it exists.
    match state
        .log
        .last_of_stream(User::TYPE, &id.to_string())
        .await?
    {
        Some(position) => view_after(state, id, position).await,
        None => Err(ApiError::not_found("user")),
    }
}

/// The signed-in user's profile.
#[utoipa::path(get, path = "/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Data<UserBody>), (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn get_me(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
) -> ApiResult<axum::Json<Data<UserBody>>> {
    let body = read(&state, min, caller.user_id).await?;
    Ok(axum::Json(Data::new(body)))
}

/// Update the signed-in user's name or phone.
#[utoipa::path(put, path = "/users/me", tag = "users", security(("bearer" = [])),
    request_body = ProfileInput,
    responses((status = 200, body = Data<UserBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)))]
async fn update_me(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Json(input): Json<ProfileInput>,
) -> ApiResult<Written<UserBody>> {
    let id = caller.user_id;
    update_profile(&state, &caller, &request_id, id, input).await
}

/// One user (admin, or the user themself).
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Data<UserBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Data<UserBody>>> {
    self_or_admin(&caller, id)?;
    let body = read(&state, min, id).await?;
    Ok(axum::Json(Data::new(body)))
}

/// Update a user's name or phone (admin, or the user themself).
#[utoipa::path(put, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ProfileInput,
    responses((status = 200, body = Data<UserBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody)))]
async fn update(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
    Json(input): Json<ProfileInput>,
) -> ApiResult<Written<UserBody>> {
    self_or_admin(&caller, id)?;
    update_profile(&state, &caller, &request_id, id, input).await
}

async fn update_profile(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    id: Uuid,
    input: ProfileInput,
) -> ApiResult<Written<UserBody>> {
    let command = UserCommand::UpdateProfile {
        name: input.name,
        // The aggregate reads an empty phone as "remove it".
        phone: input.phone.map(Option::unwrap_or_default),
        at: Utc::now(),
    };
    let executed = state
        .dispatcher
        .execute::<User>(&id.to_string(), command, &request_id.metadata(caller))
        .await?;
    let body = UserBody::written(&executed.aggregate)?;
    Ok(Written::new(StatusCode::OK, executed.position, body))
}

/// Deactivate a user (admin, or the user themself): login, refresh and live access tokens stop
/// working at once.
#[utoipa::path(delete, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn deactivate(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
) -> ApiResult<Written<()>> {
    self_or_admin(&caller, id)?;
    let executed = state
        .dispatcher
        .execute::<User>(
            &id.to_string(),
            UserCommand::DeactivateUser { at: Utc::now() },
            &request_id.metadata(&caller),
        )
        .await?;
    // Access tokens die with the event (the Caller extractor reads the stream); refresh tokens
    // live in their own table and are revoked here.
    refresh::revoke_all(&state.pool, id).await?;
    let position = executed.position;
    Ok(Written::no_content(position))
}

/// Erase a user's personal data (admin): crypto-shredding. Their data key is destroyed and
/// `PersonalDataErased` recorded (actor and correlation on record); from then on their email,
/// name, phone, shipping addresses and review texts read as `"[erased]"` in every read model,
/// order history, `as_of` answer, the admin log and every replay, while ids, amounts, statuses
/// and times stay. They can no longer sign in. Erasing again changes nothing (204).
#[utoipa::path(delete, path = "/users/{id}/personal-data", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn erase_personal_data(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
) -> ApiResult<Written<()>> {
    let position = erase(&state, &caller, &request_id, id).await?;
    Ok(Written::no_content(position))
}

/// Crypto-shreds user `id`'s personal data on `caller`'s behalf (admins only); idempotent.
pub(crate) async fn erase(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    id: Uuid,
) -> ApiResult<commerce_event_store::Position> {
    caller.require_admin()?;
    let privacy = state.privacy.clone().ok_or_else(|| {
        ApiError::Unavailable("this API instance has no keyring of personal data".to_owned())
    })?;
    let executed = state
        .dispatcher
        .execute_with::<User>(
            &id.to_string(),
            UserCommand::ErasePersonalData { at: Utc::now() },
            &request_id.metadata(caller),
            &Erase::new(privacy, id),
        )
        .await?;
    Ok(executed.position)
}

/// Replace a user's roles (admin).
#[utoipa::path(put, path = "/users/{id}/roles", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = RolesInput,
    responses((status = 200, body = Data<UserBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn set_roles(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
    Json(input): Json<RolesInput>,
) -> ApiResult<Written<UserBody>> {
    caller.require_admin()?;
    let command = UserCommand::SetRoles {
        roles: input.roles.into_iter().map(Into::into).collect(),
        at: Utc::now(),
    };
    let executed = state
        .dispatcher
        .execute::<User>(&id.to_string(), command, &request_id.metadata(&caller))
        .await?;
    let body = UserBody::written(&executed.aggregate)?;
    Ok(Written::new(StatusCode::OK, executed.position, body))
}
