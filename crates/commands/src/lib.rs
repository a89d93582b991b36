//! The command side of the platform.
//!
//! # Layout
//! - [`dispatch`]: runs a command against its aggregate, appends the events with metadata, retries
//!   optimistic-concurrency conflicts, and returns the version and log position written.
//! - [`log`]: the event-store types callers of the command side need (positions, metadata, the
//!   log reader for audit views).
//! - [`process`]: process managers: the order fulfilment saga, its deadlines, notifications.

pub mod dispatch;
pub mod process;

/// The event-store types callers of the command side need: positions and metadata of what they
/// write, and the log reader behind audit views.
pub mod log {
    pub use commerce_event_store::{
        checkpoint, ConsumerState, ConsumerStatus, EventMetadata, EventStore, LogFilter, LogReader,
        Position, StoreError, StoredEvent,
    };
}

pub use dispatch::{DispatchError, Dispatcher, Executed};
