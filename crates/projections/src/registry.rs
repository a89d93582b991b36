//! Every projection by name: what `serve`/`project` run and what `replay` rebuilds.

use commerce_event_store::consumer::check_partitions;
use commerce_event_store::privacy::Privacy;
use commerce_event_store::{BrokerConfig, PartitionError};
use sqlx::PgPool;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::carts::CartsProjection;
use crate::catalog::CatalogProjection;
use crate::categories::CategoriesProjection;
use crate::inventory::InventoryProjection;
use crate::orders::OrdersProjection;
use crate::payments::PaymentsProjection;
use crate::rebuild::{self, Finish, Progress, RebuildError, Report};
use crate::reviews::ReviewsProjection;
use crate::users::UsersProjection;
use crate::{projection, Projection};

/// A name that is not a projection.
#[derive(Debug, thiserror::Error)]
#[error("unknown projection {name:?}; known: {known}")]
pub struct UnknownProjection {
    name: String,
    known: String,
}

/// Calls `$body` with `$p` bound to the projection value named `$name`, or evaluates `$unknown`.
macro_rules! with_projection {
    ($name:expr, |$p:ident| $body:expr, $unknown:expr) => {
        match $name {
            UsersProjection::NAME => {
                let $p = UsersProjection;
                $body
            }
            CatalogProjection::NAME => {
                let $p = CatalogProjection;
                $body
            }
            CategoriesProjection::NAME => {
                let $p = CategoriesProjection;
                $body
            }
            InventoryProjection::NAME => {
                let $p = InventoryProjection;
                $body
            }
            CartsProjection::NAME => {
                let $p = CartsProjection;
                $body
            }
            OrdersProjection::NAME => {
                let $p = OrdersProjection;
                $body
            }
            PaymentsProjection::NAME => {
                let $p = PaymentsProjection;
                $body
            }
            ReviewsProjection::NAME => {
                let $p = ReviewsProjection;
                $body
            }
            _ => $unknown,
        }
    };
}

/// Every projection's name, in rebuild order.
pub const NAMES: &[&str] = &[
    UsersProjection::NAME,
    CatalogProjection::NAME,
    CategoriesProjection::NAME,
    InventoryProjection::NAME,
    CartsProjection::NAME,
    OrdersProjection::NAME,
    PaymentsProjection::NAME,
    ReviewsProjection::NAME,
];

fn unknown(name: &str) -> UnknownProjection {
    UnknownProjection {
        name: name.to_owned(),
        known: NAMES.join(", "),
    }
}

/// Checks that `name` is a projection.
pub fn validate(name: &str) -> Result<(), UnknownProjection> {
    if NAMES.contains(&name) {
        Ok(())
    } else {
        Err(unknown(name))
    }
}

/// Spawns the live consumer of every projection (or only `only`) into `tasks`.
pub fn spawn(
    tasks: &mut JoinSet<()>,
    pool: &PgPool,
    privacy: Option<&Privacy>,
    broker: &BrokerConfig,
    only: Option<&str>,
    shutdown: &CancellationToken,
) -> Result<(), UnknownProjection> {
    if let Some(name) = only {
        validate(name)?;
    }
    for name in NAMES.iter().filter(|n| only.is_none_or(|o| o == **n)) {
        let (pool, broker, token) = (pool.clone(), broker.clone(), shutdown.clone());
        let privacy = privacy.cloned();
        with_projection!(
            *name,
            |p| {
                tasks.spawn(projection::run(pool, privacy, broker, p, token));
            },
            return Err(unknown(name))
        );
    }
    Ok(())
}

/// Why a projection cannot run as partitions.
#[derive(Debug, thiserror::Error)]
pub enum PartitionSpawnError {
    /// Not a projection.
    #[error(transparent)]
    Unknown(#[from] UnknownProjection),
    /// Its rows join several aggregates.
    #[error(
        "projection {0:?} cannot run as partitions: its rows combine events of several \
         aggregates; partitionable: {1}"
    )]
    NotPartitionable(String, String),
    /// A bad partition number or count, or one that disagrees with the running group.
    #[error(transparent)]
    Partition(#[from] PartitionError),
}

fn partitionable<P: Projection>(_: &P) -> bool {
    P::PARTITIONABLE
}

/// The projections that can run as partitions.
pub fn partitionable_names() -> Vec<&'static str> {
    NAMES
        .iter()
        .copied()
        .filter(|name| with_projection!(*name, |p| partitionable(&p), false))
        .collect()
}

/// Spawns partitions `indexes` of projection `name` run as `count` partitions into `tasks`,
/// after checking everything that can be checked before they start: the projection can be
/// partitioned, every index is below `count`, and `count` agrees with the partitions already
/// running, if any. Nothing starts when a check fails.
#[allow(clippy::too_many_arguments)]
pub async fn spawn_partitions(
    tasks: &mut JoinSet<()>,
    pool: &PgPool,
    privacy: Option<&Privacy>,
    broker: &BrokerConfig,
    name: &str,
    count: u32,
    indexes: &[u32],
    shutdown: &CancellationToken,
) -> Result<(), PartitionSpawnError> {
    validate(name)?;
    if !with_projection!(name, |p| partitionable(&p), false) {
        return Err(PartitionSpawnError::NotPartitionable(
            name.to_owned(),
            partitionable_names().join(", "),
        ));
    }
    check_partitions(pool, name, count, indexes).await?;
    for index in indexes {
        let (pool, broker, token) = (pool.clone(), broker.clone(), shutdown.clone());
        let privacy = privacy.cloned();
        with_projection!(
            name,
            |p| {
                let consumer =
                    projection::consumer(pool, privacy, broker, p).partitioned(count, *index)?;
                tasks.spawn(consumer.run(token));
            },
            return Err(unknown(name).into())
        );
    }
    Ok(())
}

/// Rebuilds (or verifies) projection `name` from the log.
pub async fn rebuild(
    name: &str,
    pool: &PgPool,
    privacy: Option<&Privacy>,
    finish: Finish,
    on_progress: impl FnMut(Progress) + Send,
) -> Result<Report, RebuildByNameError> {
    with_projection!(
        name,
        |p| Ok(rebuild::rebuild(pool, privacy, &p, finish, on_progress).await?),
        Err(unknown(name).into())
    )
}

/// Why a rebuild by name failed.
#[derive(Debug, thiserror::Error)]
pub enum RebuildByNameError {
    /// Not a projection.
    #[error(transparent)]
    Unknown(#[from] UnknownProjection),
    /// The rebuild failed.
    #[error(transparent)]
    Rebuild(#[from] RebuildError),
}
