//! `commerce keys rotate`: re-wrap every data key under a new master key.

use commerce_event_store::db;
use commerce_event_store::privacy::{MasterKey, Privacy};

use crate::cli::KeysCommand;
use crate::config::Settings;
use crate::output;

pub(crate) async fn run(settings: &Settings, command: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Rotate { new_key } = command;
    let new = MasterKey::parse(&new_key).map_err(|_| {
        anyhow::anyhow!(
            "NEW_DATA_KEY must be 32 random bytes in base64 (e.g. `openssl rand -base64 32`)"
        )
    })?;
    let Some(old) = settings.data_key() else {
        anyhow::bail!("DATA_KEY must be set to the master key in use, to re-wrap its data keys");
    };
    let pool = db::prepare(&settings.database_url, 2).await?;
    let rewrapped = Privacy::rotate(&pool, old, &new).await;
    pool.close().await;
    let rewrapped = rewrapped?;
    output::line(&format!(
        "re-wrapped {rewrapped} data keys and the email index key under the new master key; \
         restart every process with DATA_KEY set to it"
    ))?;
    Ok(())
}
