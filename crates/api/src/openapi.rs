//! The OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]` annotations as the
//! routers are built (utoipa-axum), so a routed operation cannot be missing from it.
//!
//! Answers that the layers around every handler give (rate limit, timeout, body and path
//! rejections, the bearer check) are added to each operation by [`add_common_responses`], so the
//! document describes every status a client can receive, not only those a handler returns.

use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayItems, Object, ObjectBuilder, Schema, SchemaType, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
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

/// Adds to every operation the error answers of the layers around it, where the operation does
/// not document them already: 429 and 503 everywhere (rate limit; timeout or a dependency down),
/// 400 where there are parameters or a body to reject, 413 and 415 where there is a JSON body,
/// 401 where a bearer token is required.
pub fn add_common_responses(openapi: &mut utoipa::openapi::OpenApi) {
    operations_mut(openapi).for_each(add_to);
}

/// Every operation of the document (the methods the API routes).
fn operations_mut(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = &mut Operation> + '_ {
    openapi.paths.paths.values_mut().flat_map(|item| {
        [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ]
        .into_iter()
        .flatten()
    })
}

fn add_to(operation: &mut Operation) {
    let has_body = operation.request_body.is_some();
    let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let mut statuses: Vec<(&str, &str)> = vec![
        ("429", "Rate limited: retry after `Retry-After` seconds"),
        (
            "503",
            "A dependency is down, the request took too long, or the server is overloaded",
        ),
    ];
    if has_body || has_parameters {
        statuses.push(("400", "Malformed or invalid input"));
    }
    if has_body {
        statuses.push(("413", "Request body larger than 1 MiB"));
        statuses.push(("415", "Request body is not `application/json`"));
    }
    if secured {
        statuses.push(("401", "Missing, invalid or expired bearer token"));
    }
    for (status, description) in statuses {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                    )
                    .build()
                    .into()
            });
    }
}

/// No string of the API may hold NUL (Postgres text cannot): the JSON body, query and path
/// extractors refuse it with a 400. Written as a `pattern` on every free string.
pub const NO_NUL: &str = "^[^\\u0000]*$";

/// Adds [`NO_NUL`] to every string schema of the document that has no pattern, format or enum of
/// its own (those already exclude NUL): component schemas, parameters and request bodies.
pub fn forbid_nul(openapi: &mut utoipa::openapi::OpenApi) {
    if let Some(components) = openapi.components.as_mut() {
        for schema in components.schemas.values_mut() {
            forbid_nul_in(schema);
        }
    }
    for operation in operations_mut(openapi) {
        for parameter in operation.parameters.iter_mut().flatten() {
            if let Some(schema) = parameter.schema.as_mut() {
                forbid_nul_in(schema);
            }
        }
        if let Some(body) = operation.request_body.as_mut() {
            for content in body.content.values_mut() {
                if let Some(schema) = content.schema.as_mut() {
                    forbid_nul_in(schema);
                }
            }
        }
    }
}

/// What the server trims from text before checking it: Rust's `char::is_whitespace` (Unicode
/// `White_Space`). A pattern's `\s` (ECMA-262) is not quite that set: it lacks U+0085 and adds
/// U+FEFF, so a client would send `"\u0085"` as a name the server finds blank.
const TRIMMED: &str =
    r"\t\n\u000b\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";

/// `pattern` with every `\s` (written for readability in the routes) spelled as [`TRIMMED`]:
/// inside a negated class (`[^\s…]`) and on its own (`\s*`).
fn trimmed_as_the_server_trims(pattern: &str) -> String {
    pattern
        .replace(r"[^\s", &format!("[^{TRIMMED}"))
        .replace(r"\s", &format!("[{TRIMMED}]"))
}

fn forbid_nul_in(schema: &mut RefOr<Schema>) {
    let RefOr::T(schema) = schema else {
        return;
    };
    match schema {
        Schema::Object(object) => {
            let string = match &object.schema_type {
                SchemaType::Type(t) => *t == Type::String,
                SchemaType::Array(types) => types.contains(&Type::String),
                SchemaType::AnyValue => false,
            };
            if string
                && object.pattern.is_none()
                && object.format.is_none()
                && object.enum_values.is_none()
            {
                object.pattern = Some(NO_NUL.to_owned());
            }
            if let Some(pattern) = object.pattern.as_mut() {
                *pattern = trimmed_as_the_server_trims(pattern);
            }
            for property in object.properties.values_mut() {
                forbid_nul_in(property);
            }
            if let Some(AdditionalProperties::RefOr(extra)) =
                object.additional_properties.as_deref_mut()
            {
                forbid_nul_in(extra);
            }
        }
        Schema::Array(array) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                forbid_nul_in(items);
            }
        }
        Schema::OneOf(one) => one.items.iter_mut().for_each(forbid_nul_in),
        Schema::AllOf(all) => all.items.iter_mut().for_each(forbid_nul_in),
        Schema::AnyOf(any) => any.items.iter_mut().for_each(forbid_nul_in),
        _ => {}
    }
}

/// An operation taking a created id: (path, method, path parameter).
type LinkTarget = (&'static str, &'static str, &'static str);

/// The resources a creating operation answers with (`data.id`), and the operations that take that
/// id in their path: (creating path, status, [(path, method, parameter)]). They become OpenAPI
/// links, which clients (and schemathesis' stateful phase) follow from a creation to its uses.
const LINKS: &[(&str, &str, &[LinkTarget])] = &[
    (
        "/api/v1/categories",
        "201",
        &[
            ("/api/v1/categories/{id}", "get", "id"),
            ("/api/v1/categories/{id}", "put", "id"),
            ("/api/v1/categories/{id}", "delete", "id"),
        ],
    ),
    (
        "/api/v1/products",
        "201",
        &[
            ("/api/v1/products/{id}", "get", "id"),
            ("/api/v1/products/{id}", "put", "id"),
            ("/api/v1/products/{id}", "delete", "id"),
            ("/api/v1/products/{id}/reviews", "get", "id"),
            ("/api/v1/products/{id}/reviews", "post", "id"),
            ("/api/v1/inventory/{product_id}", "get", "product_id"),
            ("/api/v1/inventory/{product_id}", "put", "product_id"),
            (
                "/api/v1/inventory/{product_id}/history",
                "get",
                "product_id",
            ),
            ("/api/v1/cart/{product_id}", "put", "product_id"),
            ("/api/v1/cart/{product_id}", "delete", "product_id"),
        ],
    ),
    (
        "/api/v1/orders",
        "201",
        &[
            ("/api/v1/orders/{id}", "get", "id"),
            ("/api/v1/orders/{id}", "delete", "id"),
            ("/api/v1/orders/{id}/history", "get", "id"),
            ("/api/v1/orders/{id}/ship", "post", "id"),
            ("/api/v1/orders/{id}/deliver", "post", "id"),
            ("/api/v1/payments/order/{order_id}", "get", "order_id"),
        ],
    ),
    (
        "/api/v1/payments",
        "201",
        &[
            ("/api/v1/payments/{id}", "get", "id"),
            ("/api/v1/payments/{id}/confirm", "post", "id"),
            ("/api/v1/payments/{id}/refund", "post", "id"),
        ],
    ),
    (
        "/api/v1/payment-methods",
        "201",
        &[("/api/v1/payment-methods/{id}", "delete", "id")],
    ),
    (
        "/api/v1/auth/register",
        "201",
        &[
            ("/api/v1/users/{id}", "get", "id"),
            ("/api/v1/users/{id}", "put", "id"),
        ],
    ),
];

/// Adds the `LINKS` table to the creating operations' responses (POST of each creating path).
/// Panics on a link to an operation or response the document lacks, so the table cannot drift
/// from the routes (the document is built in tests).
pub fn add_links(openapi: &mut utoipa::openapi::OpenApi) {
    for (source, status, targets) in LINKS {
        for (path, method, parameter) in *targets {
            let documented = openapi
                .paths
                .paths
                .get(*path)
                .and_then(|item| match *method {
                    "get" => item.get.as_ref(),
                    "put" => item.put.as_ref(),
                    "post" => item.post.as_ref(),
                    "delete" => item.delete.as_ref(),
                    _ => None,
                })
                .is_some();
            assert!(
                documented,
                "link to {method} {path}, which is not documented"
            );
            // `get_products_id_reviews`: unique per target, and within the names links may have.
            let name = std::iter::once(*method)
                .chain(path.trim_start_matches("/api/v1/").split('/'))
                .map(|part| {
                    part.trim_matches(|c| c == '{' || c == '}')
                        .replace('-', "_")
                })
                .collect::<Vec<_>>()
                .join("_");
            let pointer = path.replace('~', "~0").replace('/', "~1");
            // utoipa 5.5 writes `LinkBuilder::operation_ref` as `operation_ref`, a key OpenAPI does
            // not know: the field goes in as the `operationRef` it must be, through the flattened
            // extensions (their `FromIterator` adds no `x-` prefix).
            let operation_ref = format!("#/paths/{pointer}/{method}");
            let link = LinkBuilder::new()
                .extensions(Some(Extensions::from_iter([(
                    "operationRef",
                    operation_ref,
                )])))
                .parameter(*parameter, "$response.body#/data/id")
                .description(format!("The created resource's `data.id` as `{parameter}`"))
                .build();
            let response = openapi
                .paths
                .paths
                .get_mut(*source)
                .and_then(|item| item.post.as_mut())
                .and_then(|op| op.responses.responses.get_mut(*status))
                .unwrap_or_else(|| panic!("no {status} answer documented for POST {source}"));
            let RefOr::T(response) = response else {
                panic!("the {status} answer of POST {source} is a reference");
            };
            response.links.insert(name, RefOr::T(link));
        }
    }
}

/// A string parameter that takes one of `values` (for `#[param(schema_with = …)]`, where
/// utoipa has no `enum` attribute).
pub(crate) fn string_enum(values: &[&str]) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    fn document() -> Value {
        serde_json::to_value(crate::routes::openapi()).expect("the document serialises")
    }

    fn query_parameter(doc: &Value, path: &str, name: &str) -> Value {
        doc["paths"][path]["get"]["parameters"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == name))
            .map(|p| p["schema"].clone())
            .unwrap_or_else(|| panic!("no parameter {name} on GET {path}"))
    }

    /// Generated clients send what the document allows; every limit here is one the server
    /// enforces with a 400.
    #[test]
    fn the_document_states_the_limits_the_server_enforces() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        let sort = query_parameter(&doc, "/api/v1/products", "sort");
        assert_eq!(
            sort["enum"],
            json!(["newest", "price_asc", "price_desc", "rating"])
        );
        let status = query_parameter(&doc, "/api/v1/orders", "status");
        assert_eq!(
            status["enum"],
            json!(["PENDING", "CONFIRMED", "SHIPPED", "DELIVERED", "CANCELLED"])
        );
        let page_size = query_parameter(&doc, "/api/v1/orders", "page_size");
        assert_eq!(
            (page_size["minimum"].clone(), page_size["maximum"].clone()),
            (json!(1), json!(100))
        );
        assert_eq!(
            query_parameter(&doc, "/api/v1/products", "page")["minimum"],
            1
        );
        assert_eq!(
            query_parameter(&doc, "/api/v1/products", "search")["maxLength"],
            200
        );
        assert_eq!(
            query_parameter(&doc, "/api/v1/products", "min_price")["minimum"],
            0
        );

        let register = &schemas["RegisterInput"]["properties"];
        assert_eq!(register["email"]["format"], "email");
        assert_eq!(register["email"]["maxLength"], 254);
        assert_eq!(register["password"]["minLength"], 8);
        assert_eq!(register["password"]["maxLength"], 128);
        // Names are trimmed before their length is checked: the bound is in the pattern.
        assert!(
            register["name"]["pattern"]
                .as_str()
                .is_some_and(|p| p.contains("{0,98}")),
            "{register}"
        );
        // The blanks are the ones the server trims (U+0085 among them, U+FEFF not), not `\s`.
        let ws = super::TRIMMED;
        assert_eq!(
            schemas["CategoryInput"]["properties"]["name"]["pattern"],
            format!(r"^[{ws}]*[^{ws}\u0000]([^\u0000]{{0,98}}[^{ws}\u0000])?[{ws}]*$")
        );
        assert!(ws.contains(r"\u0085") && !ws.contains("feff"));
        let trimmed: String = ['\u{85}', '\u{3000}', '\u{a0}', ' '].iter().collect();
        assert!(trimmed.trim().is_empty(), "each of these the server trims");
        assert_ne!("\u{feff}".trim(), "", "and this it keeps");
        assert!(schemas["NewProduct"]["properties"]["name"]["pattern"]
            .as_str()
            .is_some_and(|p| p.contains("{0,198}")));
        assert_eq!(schemas["ReviewInput"]["properties"]["rating"]["maximum"], 5);
        assert_eq!(
            schemas["ReviewInput"]["properties"]["comment"]["maxLength"],
            2000
        );
        assert_eq!(
            schemas["PlaceOrderInput"]["properties"]["items"]["maxItems"],
            100
        );
        assert_eq!(
            schemas["PostalAddress"]["properties"]["city"]["maxLength"],
            100
        );
        let address = &schemas["Address"]["oneOf"];
        assert_eq!(address[0]["maxLength"], 500, "{address}");
    }

    /// Clients (and schemathesis' stateful phase) follow a creation to the operations on what it
    /// created.
    #[test]
    fn creations_link_to_the_operations_on_what_they_created() {
        let doc = document();
        let links = &doc["paths"]["/api/v1/products"]["post"]["responses"]["201"]["links"];
        assert_eq!(
            links["get_products_id"],
            json!({
                "operationRef": "#/paths/~1api~1v1~1products~1{id}/get",
                "parameters": {"id": "$response.body#/data/id"},
                "description": "The created resource's `data.id` as `id`",
            })
        );
        assert_eq!(
            links["get_inventory_product_id_history"]["parameters"],
            json!({"product_id": "$response.body#/data/id"})
        );
        let order = &doc["paths"]["/api/v1/orders"]["post"]["responses"]["201"]["links"];
        assert!(order["post_orders_id_ship"].is_object(), "{order}");
    }

    /// Every limit a fuzzer needs to send only what the server takes: NUL nowhere, names not
    /// blank, the bounds of a stock adjustment by kind.
    #[test]
    fn strings_exclude_nul_and_adjustments_are_one_object_per_kind() {
        let doc = document();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["ReviewInput"]["properties"]["comment"]["pattern"],
            super::NO_NUL
        );
        assert_eq!(
            query_parameter(&doc, "/api/v1/products", "search")["pattern"],
            super::NO_NUL
        );
        assert!(schemas["CategoryInput"]["properties"]["name"]["maxLength"].is_null());
        let kinds = schemas["AdjustmentInput"]["oneOf"]
            .as_array()
            .expect("oneOf");
        assert_eq!(kinds.len(), 3, "{kinds:?}");
        assert_eq!(kinds[1]["properties"]["operation"]["enum"], json!(["set"]));
        assert_eq!(kinds[1]["properties"]["quantity"]["minimum"], 0);
        assert_eq!(kinds[2]["properties"]["reason"]["pattern"], super::NO_NUL);
    }
}
