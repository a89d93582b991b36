//! Commands accepted by the `User` aggregate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Role;

/// What can be asked of a `User`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserCommand {
    /// Create the user. Preconditions: `user_id` derived from the normalised email (by the
    /// command layer: a keyed hash, or [`crate::ids::user_id_for_email`]), a valid email
    /// ([`super::validate_email`]), a name of 1..=100 characters. An empty `roles` means
    /// `[Customer]`. Emits `UserRegistered`. The password is no part of it: its hash is a
    /// credential, written beside the event by the command layer (guarantee 9: no secret in the
    /// log).
    RegisterUser {
        /// Derived from the normalised `email`, so one email is one stream.
        user_id: Uuid,
        /// As typed by the user; stored trimmed.
        email: String,
        /// Display name, 1..=100 characters after trimming.
        name: String,
        /// Optional phone, 1..=32 characters after trimming.
        phone: Option<String>,
        /// Initial roles; empty means `[Customer]`.
        #[serde(default)]
        roles: Vec<Role>,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Partial profile update; `None` keeps a field, `Some("")` for the phone removes it. Emits
    /// `ProfileUpdated` only when something changes. Requires an active user.
    UpdateProfile {
        /// New name, 1..=100 characters.
        name: Option<String>,
        /// New phone (1..=32 characters), or empty to remove it.
        phone: Option<String>,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Record that the password was replaced. Requires an active user. Emits `PasswordChanged`;
    /// the new hash itself is a credential the command layer writes beside the event.
    ChangePassword {
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Deactivate the user (login and tokens stop working). Emits `UserDeactivated`; a second
    /// deactivation emits nothing.
    DeactivateUser {
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Forget the user's personal data (crypto-shredding, guarantee 9): emits
    /// `PersonalDataErased`, after which the email, name and phone read as [`crate::ERASED`]
    /// everywhere and the user can no longer sign in. Erasing again emits nothing.
    ErasePersonalData {
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Replace the role set (at least one role). Requires an active user. Emits one `RoleGranted`
    /// per added role and one `RoleRevoked` per removed role.
    SetRoles {
        /// The complete new role set.
        roles: Vec<Role>,
        /// When it happened.
        at: DateTime<Utc>,
    },
}
