//! `commerce admin create-user`: bootstrap an admin or auditor (registration through the API only
//! ever creates customers). Running it again for an existing email adds the role instead.

use chrono::Utc;
use commerce_api::auth::password;
use commerce_commands::credentials::SetPassword;
use commerce_commands::{DispatchError, Dispatcher};
use commerce_domain::ids::{normalize_email, user_id_for_email};
use commerce_domain::user::{validate_password, Role, User, UserCommand, UserError};
use commerce_event_store::{db, EventMetadata, EventStore};

use crate::cli::AdminCommand;
use crate::config::Settings;
use crate::output;

pub(crate) async fn run(settings: &Settings, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateUser {
            email,
            password,
            name,
            role,
        } => create_user(settings, &email, password, &name, &role).await,
    }
}

async fn create_user(
    settings: &Settings,
    email: &str,
    password: String,
    name: &str,
    role: &str,
) -> anyhow::Result<()> {
    let role: Role = serde_json::from_value(serde_json::Value::String(role.to_owned()))
        .map_err(|_| anyhow::anyhow!("--role must be admin, auditor or customer, not {role:?}"))?;
    validate_password(&password)?;
    let role_name = serde_json::to_value(role)?
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let pool = db::prepare(&settings.database_url, 2).await?;
    let privacy = settings.keyring_for_tool(&pool).await?;
    // The keyed id (guarantee 9), unless the user registered under the plain one before ids
    // were keyed.
    let legacy = user_id_for_email(email);
    let user_id = privacy.user_id_for_email(&normalize_email(email));
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()).with_privacy(privacy));
    let (existing, _) = dispatcher
        .reader()
        .load::<User>(&legacy.to_string())
        .await?;
    let user_id = if existing.user_id().is_some() {
        legacy
    } else {
        user_id
    };
    let metadata = EventMetadata::new("system:admin-cli", uuid::Uuid::new_v4().to_string());
    let hash = password::hash(password, settings.api.password_memory_kib)
        .await
        .map_err(|e| anyhow::anyhow!("hashing the password failed: {e}"))?;
    let register = UserCommand::RegisterUser {
        user_id,
        email: email.to_owned(),
        name: name.to_owned(),
        phone: None,
        roles: vec![role],
        at: Utc::now(),
    };
    let id = user_id.to_string();
    let credential = SetPassword::new(user_id, hash);
    match dispatcher
        .execute_with::<User>(&id, register, &metadata, &credential)
        .await
    {
        Ok(_) => output::line(&format!(
            "created user {user_id} ({email}) with role {role_name}"
        ))?,
        Err(DispatchError::Rejected(UserError::EmailTaken { .. })) => {
            let (user, _) = dispatcher.reader().load::<User>(&id).await?;
            let mut roles = user.roles().to_vec();
            if !roles.contains(&role) {
                roles.push(role);
            }
            let set = UserCommand::SetRoles {
                roles,
                at: Utc::now(),
            };
            dispatcher.execute::<User>(&id, set, &metadata).await?;
            output::line(&format!(
                "user {user_id} ({email}) already existed; it now has role {role_name} (password unchanged)"
            ))?;
        }
        Err(other) => return Err(other.into()),
    }
    pool.close().await;
    Ok(())
}
