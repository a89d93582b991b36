//! The `Caller` extractor: a bearer access token whose user is registered and active *now*.
//!
//! The token proves who the caller is; the roles and the active flag come from the user's own
//! event stream at request time (a few rows, by primary key), not from the token or a read model.
//! That is what locks a deactivated user out at once, live tokens included, on every API
//! instance, and makes a role change effective on the next request.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use commerce_domain::user::{Role, User};
use uuid::Uuid;

use crate::error::ApiError;
use crate::state::AppState;

/// An authenticated, active user.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The user's id.
    pub user_id: Uuid,
    /// The user's current roles.
    pub roles: Vec<Role>,
}

impl Caller {
    /// Whether the caller has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Whether the caller is an admin.
    pub fn is_admin(&self) -> bool {
        self.has(Role::Admin)
    }

    /// 403 unless the caller has one of `roles`.
    pub fn require_any(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.iter().any(|r| self.has(*r)) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "your role does not allow this".to_owned(),
            ))
        }
    }

    /// 403 unless the caller is an admin.
    pub fn require_admin(&self) -> Result<(), ApiError> {
        self.require_any(&[Role::Admin])
    }

    /// Whether the caller may read every user's orders, payments and history (admin, auditor).
    pub fn reads_everything(&self) -> bool {
        self.has(Role::Admin) || self.has(Role::Auditor)
    }

    /// Who the event metadata names as actor.
    pub fn actor(&self) -> String {
        self.user_id.to_string()
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Self>() {
            return Ok(caller.clone());
        }
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .ok_or_else(|| ApiError::Unauthorized("missing bearer token".to_owned()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthorized("expected `Authorization: Bearer <token>`".to_owned())
            })?;
        let claims = state.keys.verify(token)?;
        let (user, _) = state
            .aggregates
            .load::<User>(&claims.sub.to_string())
            .await?;
        if !user.is_active() {
            return Err(ApiError::Unauthorized(
                "this account is deactivated".to_owned(),
            ));
        }
        let caller = Self {
            user_id: claims.sub,
            roles: user.roles().to_vec(),
        };
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}

/// An optional caller: `None` without an `Authorization` header; a bad token is still a 401.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.contains_key(AUTHORIZATION) {
            Caller::from_request_parts(parts, state)
                .await
                .map(|c| Self(Some(c)))
        } else {
            Ok(Self(None))
        }
    }
}
