//! What a projection is, and how a durable consumer runs one.

use std::future::Future;

use commerce_event_store::privacy::Privacy;
use commerce_event_store::{
    BrokerConfig, ConsumerConfig, DurableConsumer, EventHandler, HandlerError, StoredEvent,
};
use sqlx::{PgConnection, PgPool};
use tokio_util::sync::CancellationToken;

/// A read model built from the log.
pub trait Projection: Send + Sync + 'static {
    /// Module, schema, queue and checkpoint name (`catalog`, `orders`, ...).
    const NAME: &'static str;

    /// The routing keys (`<AggregateType>.<EventType>` patterns) it applies.
    fn bindings() -> Vec<String>;

    /// Whether it can run as partitions by aggregate id (`commerce project --partitions N`):
    /// true when each of its rows is built from the events of one aggregate, so partitions
    /// never race over a row and the order across aggregates does not matter. (An erasure,
    /// which scrubs rows of other aggregates, qualifies: the events it races with open their
    /// personal fields as erased anyway.) A projection that joins aggregates (a product's row
    /// counting its stock) must stay one consumer.
    const PARTITIONABLE: bool = false;

    /// Applies one event. Tables are named without their schema: the caller has pointed the
    /// `search_path` at the live schema, or at the shadow schema of a rebuild. Timestamps come
    /// from the event (`recorded_at`, or times inside the payload), never from the clock, so a
    /// rebuild reproduces the rows exactly.
    fn apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Applies `events`, in order, with the same result as [`Projection::apply`] on each in turn,
    /// whatever the batch boundaries and however aggregates interleave, events already applied
    /// included. A rebuild calls it per batch of the log; an override writes a batch in a handful
    /// of statements instead of one or more per event. The caller's transaction must be the only
    /// writer of the read model meanwhile (an override may read rows, fold in memory and write
    /// them back). The default applies one by one.
    fn apply_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            for event in events {
                self.apply(conn, event).await?;
            }
            Ok(())
        }
    }
}

/// Points the current transaction's `search_path` at `schema`.
pub(crate) async fn use_schema(conn: &mut PgConnection, schema: &str) -> Result<(), sqlx::Error> {
    set_search_path(conn, schema, true).await
}

/// Points `conn`'s `search_path` at `schema`: for the current transaction only (`local`), or for
/// the session.
async fn set_search_path(
    conn: &mut PgConnection,
    schema: &str,
    local: bool,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT set_config('search_path', $1, $2)")
        .bind(format!("\"{schema}\", public"))
        .bind(local)
        .execute(conn)
        .await?;
    Ok(())
}

/// Runs a [`Projection`] as a durable consumer's handler against its live schema.
#[derive(Debug)]
pub struct ProjectionHandler<P>(pub P);

impl<P: Projection> EventHandler for ProjectionHandler<P> {
    /// The consumer session's connection is its own: its `search_path` is set once, not in every
    /// transaction.
    async fn prepare_session(&self, conn: &mut PgConnection) -> Result<(), HandlerError> {
        set_search_path(conn, P::NAME, false).await?;
        Ok(())
    }

    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        self.0.apply(conn, event).await
    }

    async fn handle_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), HandlerError> {
        self.0.apply_batch(conn, events).await
    }
}

/// Runs projection `projection` until `shutdown`: catch up from the log, then follow its queue.
pub async fn run<P: Projection>(
    pool: PgPool,
    privacy: Option<Privacy>,
    broker: BrokerConfig,
    projection: P,
    shutdown: CancellationToken,
) {
    consumer(pool, privacy, broker, projection)
        .run(shutdown)
        .await;
}

/// The durable consumer that runs `projection`.
pub(crate) fn consumer<P: Projection>(
    pool: PgPool,
    privacy: Option<Privacy>,
    broker: BrokerConfig,
    projection: P,
) -> DurableConsumer<ProjectionHandler<P>> {
    let config = ConsumerConfig::new(P::NAME, P::bindings());
    let consumer = DurableConsumer::new(pool, broker, config, ProjectionHandler(projection));
    match privacy {
        Some(privacy) => consumer.with_privacy(privacy),
        None => consumer,
    }
}
