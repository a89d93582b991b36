//! One module per resource, each exporting its own `router()`, merged in [`router`].
//!
//! Every API route is registered through utoipa-axum's `routes!`, which adds it to the router and
//! its operation to the OpenAPI document in one step.

pub mod admin;
pub mod auth;
pub mod cart;
pub mod categories;
pub mod inventory;
pub mod notifications;
pub mod ops;
pub mod orders;
pub mod password;
pub mod payment_methods;
pub mod payments;
pub mod products;
pub mod reviews;
pub mod users;

use axum::http::Uri;
use axum::Router;
use chrono::{DateTime, SubsecRound, Utc};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::openapi::ApiDoc;
use crate::state::AppState;

/// Where the OpenAPI document is served.
pub const OPENAPI_PATH: &str = "/api/v1/openapi.json";

/// Every `/api/v1` route with its OpenAPI operation.
pub fn api() -> OpenApiRouter<AppState> {
    let v1 = OpenApiRouter::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(password::router())
        .merge(categories::router())
        .merge(products::router())
        .merge(reviews::router())
        .merge(inventory::router())
        .merge(cart::router())
        .merge(orders::router())
        .merge(payments::router())
        .merge(payment_methods::router())
        .merge(notifications::router())
        .merge(admin::router());
    let mut api = OpenApiRouter::with_openapi(ApiDoc::openapi()).nest("/api/v1", v1);
    crate::openapi::add_common_responses(api.get_openapi_mut());
    crate::openapi::add_links(api.get_openapi_mut());
    crate::openapi::forbid_nul(api.get_openapi_mut());
    api
}

/// The generated OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// The whole HTTP application: `/api/v1`, the OpenAPI document and docs, the operations
/// endpoints, the console, wrapped in every middleware layer.
pub fn router(state: AppState) -> Router {
    let (api, spec) = api().split_for_parts();
    let app = Router::new()
        .merge(api.with_state(state.clone()))
        .merge(SwaggerUi::new("/docs").url(OPENAPI_PATH, spec))
        .merge(ops::router(state.ops.clone()))
        .merge(crate::console::router(state.clone()))
        .fallback(not_found);
    crate::middleware::apply(app, &state)
}

/// An event's time as the read models store it (Postgres keeps microseconds), so a command's
/// answer, built from its events, and a later read of the same resource agree to the digit.
pub(crate) fn as_stored(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// The slug to send with a new or renamed `name`: the one asked for, or, when none is asked for
/// and the name has no ASCII letter or digit to derive one from (`"!!!"`), `{kind}-` and the
/// start of the id, so every valid name can be written.
pub(crate) fn slug_for(
    slug: Option<String>,
    name: &str,
    kind: &str,
    id: uuid::Uuid,
) -> Option<String> {
    let blank = slug.as_deref().is_none_or(|s| s.trim().is_empty());
    if blank && commerce_domain::category::slugify(name).is_empty() {
        let id = id.simple().to_string();
        Some(format!("{kind}-{}", &id[..8]))
    } else {
        slug
    }
}

/// The 500 for a command that succeeded yet left no `what` to answer with: the domain rules it
/// out, so it is a bug, never a client's fault.
pub(crate) fn left_no(what: &str) -> ApiError {
    ApiError::Internal(format!("a successful command left no {what} to answer with").into())
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("no route for {}", uri.path()))
}
