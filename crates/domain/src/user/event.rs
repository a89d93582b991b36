//! Events of the `User` aggregate.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Role;

/// What happened to a `User`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum UserEvent {
    /// A user registered (emitted by `RegisterUser`). Carries no credential (guarantee 9); events
    /// written before that rule held had a `password_hash` field, removed from the log by the
    /// recorded redaction in `docs/audit.md`, and ignored here should one remain.
    UserRegistered {
        /// The user's id (derived from the email).
        user_id: Uuid,
        /// The email as given, trimmed.
        email: String,
        /// Display name.
        name: String,
        /// Phone, if given.
        phone: Option<String>,
        /// Initial roles.
        roles: Vec<Role>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The profile changed (emitted by `UpdateProfile`); carries the new full values.
    ProfileUpdated {
        /// The user.
        user_id: Uuid,
        /// Name after the update.
        name: String,
        /// Phone after the update.
        phone: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// The password was replaced (emitted by `ChangePassword`). The fact only: the hash lives in
    /// the credentials table, changed in the same transaction (guarantee 9).
    PasswordChanged {
        /// The user.
        user_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user was deactivated (emitted by `DeactivateUser`).
    UserDeactivated {
        /// The user.
        user_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// The user's personal data was erased (emitted by `ErasePersonalData`): their data key is
    /// destroyed with this event, so every personal field of theirs in the log reads as
    /// [`crate::ERASED`] from now on. Ids, amounts, statuses and times stay.
    PersonalDataErased {
        /// The user.
        user_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
    /// A role was added (emitted by `SetRoles`).
    RoleGranted {
        /// The user.
        user_id: Uuid,
        /// The role added.
        role: Role,
        /// When.
        at: DateTime<Utc>,
    },
    /// A role was removed (emitted by `SetRoles`).
    RoleRevoked {
        /// The user.
        user_id: Uuid,
        /// The role removed.
        role: Role,
        /// When.
        at: DateTime<Utc>,
    },
}

impl UserEvent {
    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::UserRegistered { at, .. }
            | Self::ProfileUpdated { at, .. }
            | Self::PasswordChanged { at, .. }
            | Self::UserDeactivated { at, .. }
            | Self::PersonalDataErased { at, .. }
            | Self::RoleGranted { at, .. }
            | Self::RoleRevoked { at, .. } => *at,
        }
    }
}

impl DomainEvent for UserEvent {
    fn event_type(&self) -> String {
        match self {
            Self::UserRegistered { .. } => "UserRegistered",
            Self::ProfileUpdated { .. } => "ProfileUpdated",
            Self::PasswordChanged { .. } => "PasswordChanged",
            Self::UserDeactivated { .. } => "UserDeactivated",
            Self::PersonalDataErased { .. } => "PersonalDataErased",
            Self::RoleGranted { .. } => "RoleGranted",
            Self::RoleRevoked { .. } => "RoleRevoked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
