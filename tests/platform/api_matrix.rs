//! The authorization matrix: for every operation of the OpenAPI document and every kind of
//! caller, the expected answer, from one table. An operation without a row fails the test, so a
//! new route cannot ship without its rule; a row without an operation fails it too.
//!
//! The table checks authorization only: `Ok` means the request got past it (any answer but 401,
//! 403 or a 5xx); the exact success statuses are checked by each resource's own tests.

use std::collections::BTreeSet;

use crate::support::{Session, TestApp, PASSWORD};
use commerce_event_store::db::MIGRATOR;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// What a caller must get.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Past authorization: not 401, not 403, not 5xx.
    Ok,
    /// Past authorization and able to see the resource: also not 404.
    Sees,
    /// 401.
    Unauth,
    /// 403.
    Forbid,
    /// 404: someone else's resource, hidden.
    Hidden,
}

use Expect::{Forbid, Hidden, Ok as Allowed, Sees, Unauth};

/// Who calls.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Who {
    Anonymous,
    Other,
    Auditor,
    Owner,
    Admin,
}

/// Callers in the order they call: the owner and admin last, so their writes cannot hide what
/// the others would have seen.
const CALLERS: [Who; 5] = [
    Who::Anonymous,
    Who::Other,
    Who::Auditor,
    Who::Owner,
    Who::Admin,
];

/// Everything the paths and bodies refer to.
struct Fx {
    owner: Session,
    other: Session,
    auditor: Session,
    admin: Session,
    victim: Session,
    /// A customer whose personal data the admin erases.
    forgotten: Session,
    refresh: Vec<String>,
    category: String,
    spare_category: String,
    product: String,
    spare_product: String,
    order: String,
    cancel_order: String,
    payment: String,
    method: String,
}

type PathFn = fn(&Fx) -> String;
type BodyFn = fn(&Fx, Who) -> Option<Value>;

/// One operation and what each caller (in [`CALLERS`] order) must get.
struct Rule {
    method: Method,
    template: &'static str,
    path: PathFn,
    body: BodyFn,
    expect: [Expect; 5],
    /// The owner of this row is `victim` (for destructive rows).
    victim: bool,
}

fn no_body(_: &Fx, _: Who) -> Option<Value> {
    None
}

fn address() -> Value {
    json!({"line1": "1 Main St", "city": "Springfield", "postal_code": "12345", "country": "US"})
}

const PUBLIC: [Expect; 5] = [Allowed, Allowed, Allowed, Allowed, Allowed];
const SIGNED_IN: [Expect; 5] = [Unauth, Allowed, Allowed, Allowed, Allowed];
const ADMIN_ONLY: [Expect; 5] = [Unauth, Forbid, Forbid, Forbid, Allowed];
const ADMIN_AUDITOR: [Expect; 5] = [Unauth, Forbid, Allowed, Forbid, Allowed];
const OWNER_ADMIN_AUDITOR: [Expect; 5] = [Unauth, Hidden, Sees, Sees, Sees];
const OWNER_OR_ADMIN: [Expect; 5] = [Unauth, Hidden, Hidden, Sees, Sees];

macro_rules! rule {
    ($m:ident $t:literal, $path:expr, $body:expr, $expect:expr) => {
        Rule {
            method: Method::$m,
            template: $t,
            path: $path,
            body: $body,
            expect: $expect,
            victim: false,
        }
    };
}

fn rules() -> Vec<Rule> {
    vec![
        rule!(POST "/api/v1/auth/register", |_| "/api/v1/auth/register".into(),
            |_, _| Some(json!({"email": format!("new-{}@example.com", Uuid::new_v4().simple()), "password": PASSWORD, "name": "New"})),
            PUBLIC),
        rule!(POST "/api/v1/auth/login", |_| "/api/v1/auth/login".into(),
            |f, _| Some(json!({"email": f.owner.email, "password": PASSWORD})), PUBLIC),
        rule!(POST "/api/v1/auth/refresh", |_| "/api/v1/auth/refresh".into(),
            |f, w| Some(json!({"refresh_token": f.refresh[w as usize]})), PUBLIC),
        rule!(POST "/api/v1/auth/logout", |_| "/api/v1/auth/logout".into(), no_body, SIGNED_IN),
        rule!(GET "/api/v1/users/me", |_| "/api/v1/users/me".into(), no_body, SIGNED_IN),
        rule!(PUT "/api/v1/users/me", |_| "/api/v1/users/me".into(),
            |_, _| Some(json!({"name": "Renamed"})), SIGNED_IN),
        // The same password again: every caller keeps signing in with it.
        rule!(PUT "/api/v1/users/me/password", |_| "/api/v1/users/me/password".into(),
            |_, _| Some(json!({"current_password": PASSWORD, "new_password": PASSWORD})), SIGNED_IN),
        rule!(GET "/api/v1/users/{id}", |f| format!("/api/v1/users/{}", f.owner.user_id), no_body,
            [Unauth, Hidden, Hidden, Sees, Sees]),
        rule!(PUT "/api/v1/users/{id}", |f| format!("/api/v1/users/{}", f.owner.user_id),
            |_, _| Some(json!({"name": "Owner"})), OWNER_OR_ADMIN),
        rule!(PUT "/api/v1/users/{id}/roles", |f| format!("/api/v1/users/{}/roles", f.owner.user_id),
            |_, _| Some(json!({"roles": ["customer"]})), ADMIN_ONLY),
        rule!(GET "/api/v1/categories", |_| "/api/v1/categories".into(), no_body, PUBLIC),
        rule!(POST "/api/v1/categories", |_| "/api/v1/categories".into(),
            |_, _| Some(json!({"name": format!("Cat {}", Uuid::new_v4().simple())})), ADMIN_ONLY),
        rule!(GET "/api/v1/categories/{id}", |f| format!("/api/v1/categories/{}", f.category), no_body, PUBLIC),
        rule!(PUT "/api/v1/categories/{id}", |f| format!("/api/v1/categories/{}", f.category),
            |_, _| Some(json!({"name": format!("Cat {}", Uuid::new_v4().simple())})), ADMIN_ONLY),
        rule!(DELETE "/api/v1/categories/{id}", |f| format!("/api/v1/categories/{}", f.spare_category), no_body, ADMIN_ONLY),
        rule!(GET "/api/v1/products", |_| "/api/v1/products".into(), no_body, PUBLIC),
        rule!(POST "/api/v1/products", |_| "/api/v1/products".into(),
            |f, _| Some(json!({"name": "Matrix product", "description": "d", "price": 5, "category_id": f.category})),
            ADMIN_ONLY),
        rule!(GET "/api/v1/products/{id}", |f| format!("/api/v1/products/{}", f.product), no_body, PUBLIC),
        rule!(PUT "/api/v1/products/{id}", |f| format!("/api/v1/products/{}", f.product),
            |_, _| Some(json!({"description": "updated"})), ADMIN_ONLY),
        rule!(DELETE "/api/v1/products/{id}", |f| format!("/api/v1/products/{}", f.spare_product), no_body, ADMIN_ONLY),
        rule!(GET "/api/v1/products/{id}/reviews", |f| format!("/api/v1/products/{}/reviews", f.product), no_body, PUBLIC),
        rule!(POST "/api/v1/products/{id}/reviews", |f| format!("/api/v1/products/{}/reviews", f.product),
            |_, _| Some(json!({"rating": 4, "comment": "good"})), SIGNED_IN),
        rule!(GET "/api/v1/inventory/{product_id}", |f| format!("/api/v1/inventory/{}", f.product), no_body, PUBLIC),
        rule!(PUT "/api/v1/inventory/{product_id}", |f| format!("/api/v1/inventory/{}", f.product),
            |_, _| Some(json!({"quantity": 1, "operation": "add"})), ADMIN_ONLY),
        rule!(POST "/api/v1/inventory/check-availability", |_| "/api/v1/inventory/check-availability".into(),
            |f, _| Some(json!({"items": [{"product_id": f.product, "quantity": 1}]})), PUBLIC),
        rule!(GET "/api/v1/inventory/{product_id}/history", |f| format!("/api/v1/inventory/{}/history", f.product),
            no_body, ADMIN_AUDITOR),
        rule!(GET "/api/v1/cart", |_| "/api/v1/cart".into(), no_body, SIGNED_IN),
        rule!(POST "/api/v1/cart", |_| "/api/v1/cart".into(),
            |f, _| Some(json!({"product_id": f.product, "quantity": 1})), SIGNED_IN),
        rule!(DELETE "/api/v1/cart", |_| "/api/v1/cart".into(), no_body, SIGNED_IN),
        rule!(PUT "/api/v1/cart/{product_id}", |f| format!("/api/v1/cart/{}", f.product),
            |_, _| Some(json!({"quantity": 2})), SIGNED_IN),
        rule!(DELETE "/api/v1/cart/{product_id}", |f| format!("/api/v1/cart/{}", f.product), no_body, SIGNED_IN),
        rule!(POST "/api/v1/orders", |_| "/api/v1/orders".into(),
            |f, _| Some(json!({"shipping_address": address(), "payment_method": "card",
                               "items": [{"product_id": f.product, "quantity": 1}]})), SIGNED_IN),
        rule!(GET "/api/v1/orders", |_| "/api/v1/orders".into(), no_body, SIGNED_IN),
        rule!(GET "/api/v1/orders/{id}", |f| format!("/api/v1/orders/{}", f.order), no_body, OWNER_ADMIN_AUDITOR),
        rule!(DELETE "/api/v1/orders/{id}", |f| format!("/api/v1/orders/{}", f.cancel_order), no_body,
            [Unauth, Hidden, Forbid, Sees, Sees]),
        rule!(GET "/api/v1/orders/{id}/history", |f| format!("/api/v1/orders/{}/history", f.order), no_body,
            OWNER_ADMIN_AUDITOR),
        rule!(POST "/api/v1/orders/{id}/ship", |f| format!("/api/v1/orders/{}/ship", f.order), no_body, ADMIN_ONLY),
        rule!(POST "/api/v1/orders/{id}/deliver", |f| format!("/api/v1/orders/{}/deliver", f.order), no_body, ADMIN_ONLY),
        rule!(POST "/api/v1/payments", |_| "/api/v1/payments".into(),
            |f, _| Some(json!({"order_id": f.cancel_order, "amount": 10, "method": "card"})),
            [Unauth, Hidden, Forbid, Allowed, Forbid]),
        rule!(GET "/api/v1/payments", |_| "/api/v1/payments".into(), no_body, SIGNED_IN),
        rule!(GET "/api/v1/payments/{id}", |f| format!("/api/v1/payments/{}", f.payment), no_body, OWNER_ADMIN_AUDITOR),
        rule!(GET "/api/v1/payments/order/{order_id}", |f| format!("/api/v1/payments/order/{}", f.order), no_body,
            OWNER_ADMIN_AUDITOR),
        rule!(POST "/api/v1/payments/{id}/confirm", |f| format!("/api/v1/payments/{}/confirm", f.payment),
            |_, _| Some(json!({"payment_intent_id": "pi_1"})), [Unauth, Hidden, Forbid, Sees, Forbid]),
        rule!(POST "/api/v1/payments/{id}/refund", |f| format!("/api/v1/payments/{}/refund", f.payment),
            |_, _| Some(json!({"amount": 1, "reason": "matrix"})), ADMIN_ONLY),
        rule!(POST "/api/v1/payment-methods", |_| "/api/v1/payment-methods".into(),
            |_, _| Some(json!({"method_type": "card", "gateway_method_id": "pm_card_visa", "is_default": false})),
            SIGNED_IN),
        rule!(GET "/api/v1/payment-methods", |_| "/api/v1/payment-methods".into(), no_body, SIGNED_IN),
        rule!(DELETE "/api/v1/payment-methods/{id}", |f| format!("/api/v1/payment-methods/{}", f.method), no_body,
            [Unauth, Hidden, Hidden, Sees, Hidden]),
        rule!(GET "/api/v1/notifications", |_| "/api/v1/notifications".into(), no_body, SIGNED_IN),
        rule!(GET "/api/v1/admin/projections", |_| "/api/v1/admin/projections".into(), no_body, ADMIN_ONLY),
        rule!(POST "/api/v1/admin/projections/{name}/rebuild", |_| "/api/v1/admin/projections/reviews/rebuild".into(),
            no_body, ADMIN_ONLY),
        rule!(POST "/api/v1/admin/projections/{name}/retry", |_| "/api/v1/admin/projections/reviews/retry".into(),
            no_body, ADMIN_ONLY),
        rule!(POST "/api/v1/admin/projections/{name}/skip", |_| "/api/v1/admin/projections/reviews/skip".into(),
            no_body, ADMIN_ONLY),
        rule!(GET "/api/v1/admin/events", |_| "/api/v1/admin/events".into(), no_body, ADMIN_AUDITOR),
        rule!(GET "/api/v1/admin/log/verify", |_| "/api/v1/admin/log/verify".into(), no_body, ADMIN_AUDITOR),
        rule!(GET "/api/v1/admin/streams/{aggregate_type}/{aggregate_id}",
            |f| format!("/api/v1/admin/streams/Order/{}", f.order), no_body, ADMIN_AUDITOR),
        Rule {
            victim: true,
            ..rule!(DELETE "/api/v1/users/{id}", |f| format!("/api/v1/users/{}", f.victim.user_id), no_body,
                OWNER_OR_ADMIN)
        },
        rule!(DELETE "/api/v1/users/{id}/personal-data",
            |f| format!("/api/v1/users/{}/personal-data", f.forgotten.user_id), no_body, ADMIN_ONLY),
    ]
}

/// Every operation of the generated document, as (METHOD, path).
fn documented() -> BTreeSet<(String, String)> {
    let spec = serde_json::to_value(commerce_api::routes::openapi()).expect("spec");
    let mut ops = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// Every operation the application's axum router serves, as (METHOD, path), found from the
/// router itself, not the document: axum has no API listing routes, but a router's `Debug` names
/// each route's path and the methods of its `Allow` header. Operations endpoints, the document
/// itself and the docs pages are left out (they are outside the API on purpose).
fn routed() -> BTreeSet<(String, String)> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .connect_lazy("postgres://postgres@127.0.0.1:1/never-connected")
        .expect("a lazy pool");
    let ops = commerce_api::OpsState {
        checks: std::sync::Arc::new(Vec::new()),
        metrics: None,
    };
    let config = commerce_api::ApiConfig::default();
    let state = commerce_api::AppState::new(pool, &[7; 32], config, ops);
    let text = format!("{:?}", commerce_api::routes::router(state));
    // The main path router comes first; the fallback router after it is not a route.
    let (routes, rest) = text
        .split_once("node: Node { paths: {")
        .expect("the router lists its routes");
    // Paths hold braces themselves (`{id}`): the map ends after the last quoted path.
    let paths = rest.split_once("\"} }").expect("the end of the paths").0;
    let mut allowed = std::collections::HashMap::new();
    for entry in routes.split("RouteId(").skip(1) {
        let (id, entry) = entry.split_once(')').expect("a route id");
        if let Some((_, allow)) = entry.split_once("allow_header: Bytes(b\"") {
            let methods = allow.split('"').next().unwrap_or_default();
            allowed.insert(id.to_owned(), methods.to_owned());
        }
    }
    let mut ops = BTreeSet::new();
    for entry in paths.split("RouteId(").skip(1) {
        let (id, path) = entry.split_once("): \"").expect("a route's path");
        let path = path.split('"').next().unwrap_or(path);
        let outside_api = !path.starts_with("/api/v1/") || path == "/api/v1/openapi.json";
        if outside_api {
            continue;
        }
        let methods = allowed
            .get(id)
            .unwrap_or_else(|| panic!("no methods for {path}"));
        for method in methods.split(',').filter(|m| *m != "HEAD") {
            ops.insert((method.to_owned(), path.to_owned()));
        }
    }
    ops
}

#[tokio::test]
async fn every_operation_the_router_serves_is_in_the_document_and_no_other() {
    let routed = routed();
    let documented = documented();
    assert!(routed.len() >= 40, "too few routes found: {routed:?}");
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routed but not in the OpenAPI document: {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "in the document but not routed: {unrouted:?}"
    );
}

#[test]
fn every_documented_operation_has_exactly_one_rule_and_every_rule_is_documented() {
    let documented = documented();
    let mut ruled = BTreeSet::new();
    for rule in rules() {
        let op = (rule.method.to_string(), rule.template.to_owned());
        assert!(ruled.insert(op.clone()), "two rules for {op:?}");
    }
    let unruled: Vec<_> = documented.difference(&ruled).collect();
    assert!(
        unruled.is_empty(),
        "operations without an authorization rule: {unruled:?}"
    );
    let undocumented: Vec<_> = ruled.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "rules for operations that do not exist: {undocumented:?}"
    );
}

async fn place(app: &TestApp, owner: &Session, product: &str) -> String {
    let body = json!({"shipping_address": address(), "payment_method": "card",
                      "items": [{"product_id": product, "quantity": 1}]});
    app.post("/api/v1/orders", Some(&owner.token), body)
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

async fn fixtures(app: &TestApp) -> Fx {
    let admin = app.admin().await;
    let owner = app.customer().await;
    let other = app.customer().await;
    let auditor = app.auditor().await;
    let victim = app.customer().await;
    let forgotten = app.customer().await;
    let mut refresh = Vec::new();
    for _ in CALLERS {
        let login = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": owner.email, "password": PASSWORD}),
            )
            .await
            .expect(200);
        refresh.push(
            login.data()["refresh_token"]
                .as_str()
                .expect("token")
                .to_owned(),
        );
    }
    let product = app.product(&admin, "10.00", 100).await.to_string();
    let spare_product = app.product(&admin, "10.00", 1).await.to_string();
    let category = app
        .get(&format!("/api/v1/products/{product}"), None)
        .await
        .expect(200)
        .data()["category_id"]
        .as_str()
        .expect("category")
        .to_owned();
    let spare_category = app
        .post(
            "/api/v1/categories",
            Some(&admin.token),
            json!({"name": format!("Spare {}", Uuid::new_v4().simple())}),
        )
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let order = place(app, &owner, &product).await;
    let cancel_order = place(app, &owner, &product).await;
    let payment = app
        .post(
            "/api/v1/payments",
            Some(&owner.token),
            json!({"order_id": order, "amount": 10, "method": "card"}),
        )
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let method = app
        .post(
            "/api/v1/payment-methods",
            Some(&owner.token),
            json!({"method_type": "card", "gateway_method_id": "pm_card_visa", "is_default": true}),
        )
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    app.settle().await;
    Fx {
        owner,
        other,
        auditor,
        admin,
        victim,
        forgotten,
        refresh,
        category,
        spare_category,
        product,
        spare_product,
        order,
        cancel_order,
        payment,
        method,
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_route_answers_every_kind_of_caller_as_the_table_says(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let fx = fixtures(&app).await;
    let mut failures = Vec::new();
    for rule in rules() {
        let path = (rule.path)(&fx);
        for (who, expect) in CALLERS.iter().zip(rule.expect) {
            let token = match who {
                Who::Anonymous => None,
                Who::Other => Some(&fx.other.token),
                Who::Auditor => Some(&fx.auditor.token),
                Who::Owner if rule.victim => Some(&fx.victim.token),
                Who::Owner => Some(&fx.owner.token),
                Who::Admin => Some(&fx.admin.token),
            };
            let body = (rule.body)(&fx, *who);
            let resp = app
                .request(
                    rule.method.clone(),
                    &path,
                    token.map(String::as_str),
                    body,
                    &[],
                )
                .await;
            let s = resp.status;
            let fine = match expect {
                Allowed => s != 401 && s != 403 && s < 500,
                Sees => s != 401 && s != 403 && s != 404 && s < 500,
                Unauth => s == 401,
                Forbid => s == 403,
                Hidden => s == 404,
            };
            if !fine {
                failures.push(format!(
                    "{} {} as {who:?}: expected {expect:?}, got {s} {}",
                    rule.method, rule.template, resp.body
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} answers broke the table:\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.stop().await;
}
