//! The `User` aggregate: registration, profile, password, roles, deactivation and erasure. Its
//! id is derived from the normalised email by the command layer (a keyed hash, so the id reveals
//! nothing of the email; [`crate::ids::user_id_for_email`] on a store without a keyring), which
//! makes email uniqueness race-free: a second registration of the same email loads the same
//! stream.

mod command;
mod error;
mod event;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use command::UserCommand;
pub use error::UserError;
pub use event::UserEvent;

use crate::validate::{char_len, len_within};

/// A role granting access to parts of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Default for every registered user: their own data only.
    Customer,
    /// Manages the catalog, stock, orders and users.
    Admin,
    /// Reads history and the event log.
    Auditor,
}

/// Checks a plain password before it is hashed: 8..=128 characters, at least one letter and one
/// digit. Only the hash reaches the aggregate, so the API calls this first.
pub fn validate_password(password: &str) -> Result<(), UserError> {
    let weak = |reason| Err(UserError::WeakPassword { reason });
    if !len_within(password, 8, 128) {
        return weak("must have 8 to 128 characters");
    }
    if !password.chars().any(char::is_alphabetic) {
        return weak("must contain a letter");
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        return weak("must contain a digit");
    }
    Ok(())
}

/// Structural email check on the trimmed input: at most 254 characters, one `@`, a non-empty
/// local part of at most 64 characters, a dotted domain of non-empty labels, no whitespace.
pub fn validate_email(email: &str) -> Result<(), UserError> {
    let invalid = |reason| Err(UserError::InvalidEmail { reason });
    let email = email.trim();
    if char_len(email) > 254 {
        return invalid("longer than 254 characters");
    }
    if email.chars().any(char::is_whitespace) {
        return invalid("contains whitespace");
    }
    let Some((local, domain)) = email.split_once('@') else {
        return invalid("missing @");
    };
    if local.is_empty() || char_len(local) > 64 {
        return invalid("local part must have 1 to 64 characters");
    }
    if domain.contains('@') {
        return invalid("more than one @");
    }
    if !domain.contains('.') || domain.split('.').any(str::is_empty) {
        return invalid("domain must be dotted labels like example.com");
    }
    Ok(())
}

fn validate_name(name: &str) -> Result<String, UserError> {
    let name = name.trim();
    if len_within(name, 1, 100) {
        Ok(name.to_owned())
    } else {
        Err(UserError::InvalidName {
            length: char_len(name),
        })
    }
}

fn validate_phone(phone: &str) -> Result<String, UserError> {
    let phone = phone.trim();
    if len_within(phone, 1, 32) {
        Ok(phone.to_owned())
    } else {
        Err(UserError::InvalidPhone {
            length: char_len(phone),
        })
    }
}

/// A user account, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    user_id: Option<Uuid>,
    email: String,
    name: String,
    phone: Option<String>,
    roles: Vec<Role>,
    active: bool,
    /// Whether the personal data was erased.
    #[serde(default)]
    erased: bool,
    /// When registered and when last changed (the `at` of the first and of the latest event);
    /// required, so a snapshot from before they were kept does not deserialise and is replayed.
    times: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl User {
    /// The user's id, once registered.
    pub fn user_id(&self) -> Option<Uuid> {
        self.user_id
    }

    /// The email as registered (trimmed, original case).
    pub fn email(&self) -> &str {
        &self.email
    }

    /// The display name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The phone, if any.
    pub fn phone(&self) -> Option<&str> {
        self.phone.as_deref()
    }

    /// When the user registered and when anything about them last changed (the `at` of their
    /// first and latest event); `None` before registration.
    pub fn times(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.times
    }

    /// The current roles, sorted.
    pub fn roles(&self) -> &[Role] {
        &self.roles
    }

    /// Whether the user's personal data was erased.
    pub fn is_erased(&self) -> bool {
        self.erased
    }

    /// Whether the user is registered and not deactivated.
    pub fn is_active(&self) -> bool {
        self.user_id.is_some() && self.active
    }

    fn active_id(&self) -> Result<Uuid, UserError> {
        let id = self.user_id.ok_or(UserError::NotFound)?;
        if self.active {
            Ok(id)
        } else {
            Err(UserError::Deactivated)
        }
    }

    fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::RegisterUser {
                user_id,
                email,
                name,
                phone,
                roles,
                at,
            } => {
                if self.user_id.is_some() {
                    return Err(UserError::EmailTaken {
                        email: email.trim().to_owned(),
                    });
                }
                validate_email(&email)?;
                let name = validate_name(&name)?;
                let phone = phone.as_deref().map(validate_phone).transpose()?;
                let mut roles = if roles.is_empty() {
                    vec![Role::Customer]
                } else {
                    roles
                };
                roles.sort();
                roles.dedup();
                Ok(vec![UserEvent::UserRegistered {
                    user_id,
                    email: email.trim().to_owned(),
                    name,
                    phone,
                    roles,
                    at,
                }])
            }
            UserCommand::UpdateProfile { name, phone, at } => {
                let user_id = self.active_id()?;
                let name = name
                    .as_deref()
                    .map(validate_name)
                    .transpose()?
                    .unwrap_or_else(|| self.name.clone());
                let phone = match phone.as_deref().map(str::trim) {
                    None => self.phone.clone(),
                    Some("") => None,
                    Some(phone) => Some(validate_phone(phone)?),
                };
                if name == self.name && phone == self.phone {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::ProfileUpdated {
                    user_id,
                    name,
                    phone,
                    at,
                }])
            }
            UserCommand::ChangePassword { at } => {
                let user_id = self.active_id()?;
                Ok(vec![UserEvent::PasswordChanged { user_id, at }])
            }
            UserCommand::DeactivateUser { at } => {
                let user_id = self.user_id.ok_or(UserError::NotFound)?;
                if !self.active {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::UserDeactivated { user_id, at }])
            }
            UserCommand::ErasePersonalData { at } => {
                let user_id = self.user_id.ok_or(UserError::NotFound)?;
                if self.erased {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::PersonalDataErased { user_id, at }])
            }
            UserCommand::SetRoles { roles, at } => {
                let user_id = self.active_id()?;
                if roles.is_empty() {
                    return Err(UserError::NoRoles);
                }
                let mut roles = roles;
                roles.sort();
                roles.dedup();
                let granted = roles
                    .iter()
                    .filter(|role| !self.roles.contains(role))
                    .map(|&role| UserEvent::RoleGranted { user_id, role, at });
                let revoked = self
                    .roles
                    .iter()
                    .filter(|role| !roles.contains(role))
                    .map(|&role| UserEvent::RoleRevoked { user_id, role, at });
                Ok(granted.chain(revoked).collect())
            }
        }
    }
}

impl Aggregate for User {
    const TYPE: &'static str = "User";
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
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
                *self = Self {
                    user_id: Some(user_id),
                    email,
                    name,
                    phone,
                    roles,
                    active: true,
                    erased: false,
                    times: None,
                };
            }
            UserEvent::ProfileUpdated { name, phone, .. } => {
                self.name = name;
                self.phone = phone;
            }
            UserEvent::PasswordChanged { .. } => {}
            UserEvent::UserDeactivated { .. } => self.active = false,
            UserEvent::PersonalDataErased { .. } => {
                crate::ERASED.clone_into(&mut self.email);
                crate::ERASED.clone_into(&mut self.name);
                if self.phone.is_some() {
                    self.phone = Some(crate::ERASED.to_owned());
                }
                self.active = false;
                self.erased = true;
            }
            UserEvent::RoleGranted { role, .. } => {
                if !self.roles.contains(&role) {
                    self.roles.push(role);
                    self.roles.sort();
                }
            }
            UserEvent::RoleRevoked { role, .. } => self.roles.retain(|r| *r != role),
        }
        self.times = Some(self.times.map_or((at, at), |(created, _)| (created, at)));
    }
}
