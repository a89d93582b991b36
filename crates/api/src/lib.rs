//! The HTTP API of the platform.
//!
//! # Layout
//! - [`routes::ops`]: `/health`, `/ready`, `/metrics`.
//! - [`server`]: binds, serves and shuts down gracefully.

pub mod routes;
pub mod server;

pub use routes::ops::{HealthCheck, OpsState};
pub use server::serve;
