//! `commerce users erase ID`: crypto-shred a user's personal data (guarantee 9).

use chrono::Utc;
use commerce_commands::personal::Erase;
use commerce_commands::{DispatchError, Dispatcher};
use commerce_domain::user::{User, UserCommand, UserError};
use commerce_event_store::{db, EventMetadata, EventStore};

use crate::cli::UsersCommand;
use crate::config::Settings;
use crate::output;

pub(crate) async fn run(settings: &Settings, command: UsersCommand) -> anyhow::Result<()> {
    let UsersCommand::Erase { id } = command;
    let pool = db::prepare(&settings.database_url, 2).await?;
    let privacy = settings.keyring_for_tool(&pool).await?;
    let dispatcher = Dispatcher::new(EventStore::new(pool.clone()).with_privacy(privacy.clone()));
    // The operator, as the machine names them, is the actor on record.
    let operator = std::env::var("USER").unwrap_or_else(|_| "unknown".to_owned());
    let metadata = EventMetadata::new(
        format!("system:cli:{operator}"),
        uuid::Uuid::new_v4().to_string(),
    );
    let outcome = dispatcher
        .execute_with::<User>(
            &id.to_string(),
            UserCommand::ErasePersonalData { at: Utc::now() },
            &metadata,
            &Erase::new(privacy, id),
        )
        .await;
    pool.close().await;
    match outcome {
        Ok(executed) if !executed.wrote => Ok(output::line(&format!(
            "user {id} was erased already; nothing changed"
        ))?),
        Ok(executed) => Ok(output::line(&format!(
            "erased the personal data of user {id} (event at {})",
            executed.position.token()
        ))?),
        Err(DispatchError::Rejected(UserError::NotFound)) => {
            anyhow::bail!("no user with id {id}")
        }
        Err(other) => Err(other.into()),
    }
}
