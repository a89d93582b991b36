//! The Postgres event store and everything that moves events out of it.
//!
//! Generic over aggregates (cqrs-es), never aware of the domain.
//!
//! # Layout
//! - [`db`]: create the database, connect, migrate.
//! - [`store`]: load (postgres-es, snapshots, a cache) and append (one statement of ours)
//!   aggregates, with optimistic concurrency.
//! - [`log`]: the gap-free global log reader (guarantee 2) and stream, correlation and time queries.
//! - [`relay`]: publishes the log to RabbitMQ with confirms, one active relay (guarantee 3).
//! - [`sealer`]: chains the events' content hashes into seals, one sealer active (guarantee 10).
//! - [`verify`]: recomputes the chain and names the first event or seal that does not match.
//! - [`consumer`]: durable consumers with catch-up, exactly-once effect, halt on failure (4, 5).
//! - [`checkpoint`]: consumer cursors, health, operator retry and skip.
//! - [`trace`]: the trace context events carry, so one request is one trace across the log.
//! - [`broker`]: RabbitMQ connections, names and topology.
//! - [`position`], [`record`]: log positions and stored events.

pub mod backoff;
pub mod broker;
pub mod checkpoint;
pub mod consumer;
pub mod db;
mod error;
pub mod log;
pub mod position;
pub mod privacy;
pub mod record;
pub mod relay;
pub mod sealer;
pub mod store;
pub mod trace;
pub mod verify;

pub use broker::{BrokerConfig, QueueType};
pub use checkpoint::{ConsumerState, ConsumerStatus};
pub use consumer::{
    ConsumerConfig, DurableConsumer, EventHandler, HandlerError, PartitionError, MAX_PARTITIONS,
};
pub use error::{BrokerError, StoreError};
pub use log::{LogFilter, LogReader};
pub use position::Position;
pub use record::{EventMetadata, StoredEvent};
pub use relay::{Relay, RelayConfig};
pub use sealer::{Sealer, SealerConfig};
pub use store::{AggregateReader, Appended, EventStore};
