//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations as the
//! routers are built (utoipa-axum), so a routed operation cannot be missing from it.

use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Title, version, tags and the bearer scheme; paths are added by the routers.
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Commerce API",
        description = "Event-sourced commerce backend: commands append events to the log; queries read projections. \
Command responses carry `X-Event-Position`; send it back as `X-Min-Position` to read your own writes.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ErrorBody, crate::envelope::Pagination)),
    tags(
        (name = "auth", description = "Registration, login and tokens"),
        (name = "users", description = "Profiles, roles, deactivation"),
        (name = "categories", description = "Catalog categories"),
        (name = "products", description = "The catalog"),
        (name = "reviews", description = "Product reviews"),
        (name = "inventory", description = "Stock levels and movements"),
        (name = "cart", description = "The signed-in user's cart"),
        (name = "orders", description = "Orders, cancellation, shipping, history"),
        (name = "payments", description = "Payments and refunds"),
        (name = "payment-methods", description = "Saved payment methods"),
        (name = "notifications", description = "The signed-in user's notifications"),
        (name = "admin", description = "Projections and the event log")
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut scheme = Http::new(HttpAuthScheme::Bearer);
        scheme.bearer_format = Some("JWT".to_owned());
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}
