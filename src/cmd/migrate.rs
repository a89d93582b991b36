//! `commerce migrate`: create the database if needed and apply migrations.

use commerce_event_store::db;

use crate::config::Settings;

pub(crate) async fn run(settings: &Settings) -> anyhow::Result<()> {
    let pool = db::prepare(&settings.database_url, 2).await?;
    pool.close().await;
    tracing::info!(
        database = %db::describe_database_url(&settings.database_url),
        "migrations applied"
    );
    Ok(())
}
