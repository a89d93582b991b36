//! The command side of the platform.
//!
//! # Layout
//! - [`credentials`]: password hashes, outside the log, written in the transaction of the event
//!   that records their change.
//! - [`dispatch`]: runs a command against its aggregate, appends the events with metadata, retries
//!   optimistic-concurrency conflicts, and returns the aggregate after its events, with the
//!   version and log position written.
//! - [`personal`]: the personal fields of events, sealed per person (guarantee 9).
//! - [`process`]: process managers: the order fulfilment saga and its deadlines (notifications
//!   are `commerce-notifications`).

pub mod credentials;
pub mod dispatch;
pub mod personal;
pub mod process;

pub use dispatch::{Alongside, DispatchError, Dispatchable, Dispatcher, Executed};
