//! One module per subcommand, dispatched from the clap enum.

mod admin;
mod events;
mod keys;
mod migrate;
mod projections;
mod replay;
mod run;
mod users;

use crate::cli::{Cli, Command};
use crate::config::{Environment, Settings};

pub(crate) async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    use crate::app::Parts;
    let default_env = match cli.command {
        Command::Serve => Environment::Dev,
        _ => Environment::Prod,
    };
    let settings = Settings::from_args(&cli.global, default_env)?;
    match cli.command {
        Command::Serve => run::run(&settings, Parts::ALL).await,
        Command::Api => {
            run::run(
                &settings,
                Parts {
                    api: true,
                    ..Parts::NONE
                },
            )
            .await
        }
        Command::Relay => {
            run::run(
                &settings,
                Parts {
                    relay: true,
                    ..Parts::NONE
                },
            )
            .await
        }
        Command::Sealer => {
            run::run(
                &settings,
                Parts {
                    sealer: true,
                    ..Parts::NONE
                },
            )
            .await
        }
        Command::Project {
            only,
            partitions,
            partition,
        } => {
            let parts = Parts {
                projections: true,
                only,
                partitions: partitions.map(|count| crate::app::Partitions {
                    count,
                    indexes: partition,
                }),
                ..Parts::NONE
            };
            run::run(&settings, parts).await
        }
        Command::Replay { name, all, verify } => replay::run(&settings, name, all, verify).await,
        Command::Process => {
            run::run(
                &settings,
                Parts {
                    process: true,
                    ..Parts::NONE
                },
            )
            .await
        }
        Command::Migrate => migrate::run(&settings).await,
        Command::Events { command } => events::run(&settings, command).await,
        Command::Projections { command } => projections::run(&settings, command).await,
        Command::Admin { command } => admin::run(&settings, command).await,
        Command::Users { command } => users::run(&settings, command).await,
        Command::Keys { command } => keys::run(&settings, command).await,
    }
}
