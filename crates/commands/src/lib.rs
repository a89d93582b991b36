//! The command side of the platform.
//!
//! # Layout
//! - [`dispatch`]: runs a command against its aggregate, appends the events with metadata, retries
//!   optimistic-concurrency conflicts, and returns the version and log position written.

pub mod dispatch;

pub use dispatch::{DispatchError, Dispatcher, Executed};
