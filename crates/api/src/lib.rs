//! The HTTP API of the platform: commands in (through `commerce-commands`), projections out
//! (through `commerce-projections`), with auth, limits, OpenAPI and operations endpoints.
//!
//! # Layout
//! - [`routes`]: one module per resource, each with its own `router()`, merged in one place.
//! - [`state`]: what handlers reach (pool, dispatcher, log reader, keys, settings).
//! - [`error`]: the one place errors become HTTP statuses and JSON bodies.
//! - [`extract`]: JSON, path and query extractors with the API's own rejections.
//! - [`envelope`]: `{"data"}` and paginated envelopes; page validation.
//! - [`money`]: decimal money on the wire, never through floating point.
//! - [`auth`]: passwords, access and refresh tokens, the `Caller` extractor.
//! - [`context`]: the request id and the event metadata a request writes with.
//! - [`idempotency`]: `Idempotency-Key` on order and payment creation, stored in Postgres.
//! - [`consistency`]: `X-Event-Position` and `X-Min-Position` (read-your-writes).
//! - [`middleware`]: request id, metrics, security headers, CORS, rate limit, timeout.
//! - [`openapi`]: the generated OpenAPI 3.1 document.
//! - [`server`]: binds, serves and shuts down gracefully.
//! - [`console`]: the operators' and auditors' web console at `/console/`.

pub mod auth;
pub mod consistency;
pub mod console;
pub mod context;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod middleware;
pub mod money;
pub mod openapi;
pub mod routes;
pub mod server;
pub mod state;

pub use routes::ops::{HealthCheck, OpsState};
pub use server::serve;
pub use state::{ApiConfig, AppState, Shared};
