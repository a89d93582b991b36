//! The users read model: profile, roles and active flag of every user.
//!
//! Built from `User` events, which carry no credential (guarantee 9): password hashes live in the
//! write side's credentials table only, never here.

use chrono::{DateTime, Utc};
use commerce_domain::user::{Role, UserEvent};
use commerce_event_store::{HandlerError, StoredEvent};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::Projection;

/// The users projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct UsersProjection;

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct UserView {
    /// User id.
    pub id: Uuid,
    /// Email as registered.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Phone, if given.
    pub phone: Option<String>,
    /// `customer`, `admin`, `auditor`.
    pub roles: Vec<String>,
    /// False once deactivated.
    pub is_active: bool,
    /// When registered.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Customer => "customer",
        Role::Admin => "admin",
        Role::Auditor => "auditor",
    }
}

impl Projection for UsersProjection {
    const NAME: &'static str = "users";

    const PARTITIONABLE: bool = true;

    fn bindings() -> Vec<String> {
        vec!["User.*".to_owned()]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        // The event's own time, which the command answered with (so the two agree).
        let event: UserEvent = event.payload_as()?;
        let at = event.at();
        match event {
            UserEvent::UserRegistered {
                user_id,
                email,
                name,
                phone,
                roles,
                ..
            } => {
                let roles: Vec<&str> = roles.into_iter().map(role_name).collect();
                sqlx::query(
                    "INSERT INTO users (id, email, name, phone, roles, is_active, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, true, $6, $6) ON CONFLICT (id) DO NOTHING",
                )
                .bind(user_id)
                .bind(email)
                .bind(name)
                .bind(phone)
                .bind(roles)
                .bind(at)
                .execute(conn)
                .await?;
            }
            UserEvent::ProfileUpdated {
                user_id,
                name,
                phone,
                ..
            } => {
                sqlx::query(
                    "UPDATE users SET name = $2, phone = $3, updated_at = $4 WHERE id = $1",
                )
                .bind(user_id)
                .bind(name)
                .bind(phone)
                .bind(at)
                .execute(conn)
                .await?;
            }
            UserEvent::PersonalDataErased { user_id, .. } => {
                // What a replay builds once the key is gone: every sealed field reads as erased.
                sqlx::query(
                    "UPDATE users SET email = $2, name = $2, \
                     phone = CASE WHEN phone IS NULL THEN NULL ELSE $2 END, \
                     is_active = false, updated_at = $3 WHERE id = $1",
                )
                .bind(user_id)
                .bind(commerce_domain::ERASED)
                .bind(at)
                .execute(conn)
                .await?;
            }
            UserEvent::UserDeactivated { user_id, .. } => {
                sqlx::query("UPDATE users SET is_active = false, updated_at = $2 WHERE id = $1")
                    .bind(user_id)
                    .bind(at)
                    .execute(conn)
                    .await?;
            }
            UserEvent::RoleGranted { user_id, role, .. } => {
                sqlx::query(
                    "UPDATE users SET roles = array_append(array_remove(roles, $2), $2), updated_at = $3 \
                     WHERE id = $1",
                )
                .bind(user_id)
                .bind(role_name(role))
                .bind(at)
                .execute(conn)
                .await?;
            }
            UserEvent::RoleRevoked { user_id, role, .. } => {
                sqlx::query("UPDATE users SET roles = array_remove(roles, $2), updated_at = $3 WHERE id = $1")
                    .bind(user_id)
                    .bind(role_name(role))
                    .bind(at)
                    .execute(conn)
                    .await?;
            }
            UserEvent::PasswordChanged { user_id, .. } => {
                sqlx::query("UPDATE users SET updated_at = $2 WHERE id = $1")
                    .bind(user_id)
                    .bind(at)
                    .execute(conn)
                    .await?;
            }
        }
        Ok(())
    }
}

/// One user by id.
pub async fn get(pool: &PgPool, id: Uuid) -> Result<Option<UserView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, email, name, phone, roles, is_active, created_at, updated_at \
         FROM users.users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A page of users, newest first, with the total count.
pub async fn list(pool: &PgPool, page: crate::Page) -> Result<(Vec<UserView>, i64), sqlx::Error> {
    let rows = sqlx::query_as(
        "SELECT id, email, name, phone, roles, is_active, created_at, updated_at \
         FROM users.users ORDER BY created_at DESC, id LIMIT $1 OFFSET $2",
    )
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar("SELECT count(*) FROM users.users")
        .fetch_one(pool)
        .await?;
    Ok((rows, total))
}
