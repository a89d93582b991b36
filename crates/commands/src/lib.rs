//! The command side of the platform.
//!
//! # Layout
//! - [`dispatch`]: runs a command against its aggregate, appends the events with metadata, retries
//!   optimistic-concurrency conflicts, and returns the aggregate after its events, with the
//!   version and log position written.
//! - [`process`]: process managers: the order fulfilment saga and its deadlines (notifications
//!   are `commerce-notifications`).

pub mod dispatch;
pub mod process;

pub use dispatch::{DispatchError, Dispatchable, Dispatcher, Executed};
