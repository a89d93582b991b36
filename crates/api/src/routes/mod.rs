//! One module per resource, each exporting its own `router()`, merged in [`router`].

pub mod ops;

use axum::Router;

/// Every route of the API.
pub fn router(ops: ops::OpsState) -> Router {
    Router::new().merge(ops::router(ops))
}
