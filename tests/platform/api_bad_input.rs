//! Bad input across the API gets the documented 4xx, never a 5xx, and appends no event.

use crate::support::TestApp;
use commerce_event_store::db::MIGRATOR;
use reqwest::Method;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

/// Who sends a case.
#[derive(Debug, Clone, Copy)]
enum As {
    Nobody,
    Customer,
    Admin,
}

struct Case {
    who: As,
    method: Method,
    path: String,
    /// Raw body text (sent as `application/json`).
    body: Option<String>,
    status: u16,
}

fn case(who: As, method: Method, path: impl Into<String>, body: Option<&str>, status: u16) -> Case {
    Case {
        who,
        method,
        path: path.into(),
        body: body.map(str::to_owned),
        status,
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_input_gets_a_4xx_and_appends_nothing(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "10.00", 5).await;
    let order = app
        .post(
            "/api/v1/orders",
            Some(&customer.token),
            json!({"shipping_address": {"line1": "1 Main St", "city": "X", "postal_code": "1", "country": "US"},
                   "payment_method": "card", "items": [{"product_id": product, "quantity": 1}]}),
        )
        .await
        .expect(201)
        .data()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.settle().await;
    let unknown = Uuid::new_v4();
    let long = "x".repeat(10_000);
    let addr = r#"{"line1": "1 Main St", "city": "X", "postal_code": "1", "country": "US"}"#;
    use As::{Admin, Customer, Nobody};
    let cases = vec![
        // Malformed JSON and wrong types.
        case(
            Nobody,
            Method::POST,
            "/api/v1/auth/register",
            Some(r#"{"email": "#),
            400,
        ),
        case(
            Nobody,
            Method::POST,
            "/api/v1/auth/register",
            Some(r#"{"email": 5, "password": "abc12345", "name": "N"}"#),
            400,
        ),
        case(
            Nobody,
            Method::POST,
            "/api/v1/auth/register",
            Some(r#"["not", "an", "object"]"#),
            400,
        ),
        case(
            Nobody,
            Method::POST,
            "/api/v1/auth/register",
            Some(r#"{"email": "no-at-sign", "password": "abc12345", "name": "N"}"#),
            400,
        ),
        case(
            Nobody,
            Method::POST,
            "/api/v1/auth/register",
            Some(r#"{"email": "a@b.co", "password": "short1", "name": "N"}"#),
            400,
        ),
        case(
            Nobody,
            Method::POST,
            "/api/v1/auth/register",
            Some(&format!(
                r#"{{"email": "a@b.co", "password": "abc12345", "name": "{long}"}}"#
            )),
            400,
        ),
        // Overlong strings, bad money.
        case(
            Admin,
            Method::POST,
            "/api/v1/categories",
            Some(&format!(r#"{{"name": "{long}"}}"#)),
            400,
        ),
        case(
            Admin,
            Method::POST,
            "/api/v1/products",
            Some(&format!(
                r#"{{"name": "P", "description": "d", "price": 1.999, "category_id": "{unknown}"}}"#
            )),
            400,
        ),
        case(
            Admin,
            Method::POST,
            "/api/v1/products",
            Some(&format!(
                r#"{{"name": "P", "description": "d", "price": -1, "category_id": "{unknown}"}}"#
            )),
            400,
        ),
        case(
            Admin,
            Method::POST,
            "/api/v1/products",
            Some(&format!(
                r#"{{"name": "P", "description": "d", "price": "10", "category_id": "{unknown}"}}"#
            )),
            400,
        ),
        case(
            Admin,
            Method::POST,
            "/api/v1/products",
            Some(r#"{"name": "P", "description": "d", "price": 10, "category_id": "not-a-uuid"}"#),
            400,
        ),
        case(
            Admin,
            Method::POST,
            "/api/v1/products",
            Some(&format!(
                r#"{{"name": "{long}", "description": "d", "price": 10, "category_id": "{unknown}"}}"#
            )),
            400,
        ),
        // Ids.
        case(
            Nobody,
            Method::GET,
            "/api/v1/products/not-a-uuid",
            None,
            400,
        ),
        case(
            Nobody,
            Method::GET,
            format!("/api/v1/products/{unknown}"),
            None,
            404,
        ),
        case(
            Nobody,
            Method::GET,
            format!("/api/v1/inventory/{unknown}"),
            None,
            404,
        ),
        case(Customer, Method::GET, "/api/v1/orders/12345", None, 400),
        case(
            Customer,
            Method::GET,
            format!("/api/v1/orders/{unknown}"),
            None,
            404,
        ),
        // Queries.
        case(Nobody, Method::GET, "/api/v1/products?page=0", None, 400),
        case(
            Nobody,
            Method::GET,
            "/api/v1/products?page_size=101",
            None,
            400,
        ),
        case(Nobody, Method::GET, "/api/v1/products?page=abc", None, 400),
        case(
            Nobody,
            Method::GET,
            "/api/v1/products?min_price=1.234",
            None,
            400,
        ),
        case(
            Nobody,
            Method::GET,
            "/api/v1/products?sort=cheapest",
            None,
            400,
        ),
        case(
            Nobody,
            Method::GET,
            "/api/v1/products?search=%27%20OR%201%3D1%3B%20DROP%20TABLE%20events%3B%20--",
            None,
            200,
        ),
        case(
            Customer,
            Method::GET,
            "/api/v1/orders?status=LOST",
            None,
            400,
        ),
        case(
            Customer,
            Method::GET,
            format!("/api/v1/orders/{order}?as_of=yesterday"),
            None,
            400,
        ),
        case(
            Admin,
            Method::GET,
            "/api/v1/admin/events?after=garbage",
            None,
            400,
        ),
        case(
            Admin,
            Method::GET,
            "/api/v1/admin/events?from=yesterday",
            None,
            400,
        ),
        // Quantities.
        case(
            Customer,
            Method::POST,
            "/api/v1/cart",
            Some(&format!(r#"{{"product_id": "{product}", "quantity": -1}}"#)),
            400,
        ),
        case(
            Customer,
            Method::POST,
            "/api/v1/cart",
            Some(&format!(
                r#"{{"product_id": "{product}", "quantity": 1.5}}"#
            )),
            400,
        ),
        case(
            Customer,
            Method::POST,
            "/api/v1/cart",
            Some(&format!(r#"{{"product_id": "{product}", "quantity": 0}}"#)),
            400,
        ),
        case(
            Customer,
            Method::POST,
            "/api/v1/cart",
            Some(&format!(
                r#"{{"product_id": "{product}", "quantity": "2"}}"#
            )),
            400,
        ),
        case(
            Customer,
            Method::POST,
            "/api/v1/cart",
            Some(&format!(r#"{{"product_id": "{unknown}", "quantity": 1}}"#)),
            404,
        ),
        case(
            Admin,
            Method::PUT,
            format!("/api/v1/inventory/{product}"),
            Some(r#"{"quantity": 1.5, "operation": "add"}"#),
            400,
        ),
        case(
            Admin,
            Method::PUT,
            format!("/api/v1/inventory/{product}"),
            Some(r#"{"quantity": 2, "operation": "multiply"}"#),
            400,
        ),
        case(
            Customer,
            Method::POST,
            "/api/v1/orders",
            Some(&format!(
                r#"{{"shipping_address": {addr}, "payment_method": "card", "items": [{{"product_id": "{product}", "quantity": -1}}]}}"#
            )),
            400,
        ),
        case(
            Customer,
            Method::POST,
            "/api/v1/orders",
            Some(&format!(
                r#"{{"shipping_address": {addr}, "payment_method": "card", "items": []}}"#
            )),
            400,
        ),
        case(
            Customer,
            Method::POST,
            "/api/v1/orders",
            Some(&format!(
                r#"{{"payment_method": "card", "items": [{{"product_id": "{product}", "quantity": 1}}]}}"#
            )),
            400,
        ),
        case(
            Customer,
            Method::POST,
            "/api/v1/products/{product}/reviews".replace("{product}", &product.to_string()),
            Some(r#"{"rating": 6, "comment": "x"}"#),
            400,
        ),
        case(
            Customer,
            Method::POST,
            format!("/api/v1/products/{product}/reviews"),
            Some(r#"{"rating": 4.5, "comment": "x"}"#),
            400,
        ),
        case(
            Customer,
            Method::POST,
            format!("/api/v1/products/{product}/reviews"),
            Some(&format!(r#"{{"rating": 4, "comment": "{long}"}}"#)),
            400,
        ),
        // Payments.
        case(
            Customer,
            Method::POST,
            "/api/v1/payments",
            Some(&format!(
                r#"{{"order_id": "{order}", "amount": 10.001, "method": "card"}}"#
            )),
            400,
        ),
        case(
            Customer,
            Method::POST,
            "/api/v1/payments",
            Some(&format!(
                r#"{{"order_id": "{order}", "amount": -10, "method": "card"}}"#
            )),
            400,
        ),
        case(
            Customer,
            Method::POST,
            "/api/v1/payments",
            Some(&format!(
                r#"{{"order_id": "{order}", "amount": 9.99, "method": "card"}}"#
            )),
            400,
        ),
        case(
            Customer,
            Method::POST,
            "/api/v1/payments",
            Some(r#"{"order_id": "nope", "amount": 10, "method": "card"}"#),
            400,
        ),
        case(
            Customer,
            Method::POST,
            "/api/v1/payments",
            Some(&format!(
                r#"{{"order_id": "{unknown}", "amount": 10, "method": "card"}}"#
            )),
            404,
        ),
    ];
    let before = app.event_count().await;
    let mut failures = Vec::new();
    for case in &cases {
        let url = format!("{}{}", app.base, case.path);
        let mut req = app.client.request(case.method.clone(), url);
        match case.who {
            As::Nobody => {}
            As::Customer => req = req.bearer_auth(&customer.token),
            As::Admin => req = req.bearer_auth(&admin.token),
        }
        if let Some(body) = &case.body {
            req = req
                .header("content-type", "application/json")
                .body(body.clone());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if status != case.status {
            failures.push(format!(
                "{} {} → {status} (expected {}): {text}",
                case.method, case.path, case.status
            ));
        }
        if status >= 400 {
            let body: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if !(body["error"].is_string() && body["code"].is_string()) {
                failures.push(format!(
                    "{} {} → error body without error/code: {text}",
                    case.method, case.path
                ));
            }
            let lower = text.to_lowercase();
            if lower.contains("sqlx")
                || lower.contains("syntax error at")
                || lower.contains("panicked")
            {
                failures.push(format!(
                    "{} {} leaked internals: {text}",
                    case.method, case.path
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(app.event_count().await, before, "bad input appended events");
    app.stop().await;
}

/// Every operation of the document that takes a JSON body refuses one that is not an object
/// (`PUT /users/me` with `[null, null]` once answered 200, as an empty update).
#[sqlx::test(migrator = "MIGRATOR")]
async fn every_json_body_that_is_not_an_object_is_a_400(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let spec = app.get("/api/v1/openapi.json", None).await.expect(200);
    let before = app.event_count().await;
    let mut checked = 0;
    for (path, item) in spec.body["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("operations") {
            if operation.get("requestBody").is_none() {
                continue;
            }
            let path = path
                .split('/')
                .map(|part| {
                    if part.starts_with('{') {
                        Uuid::new_v4().to_string()
                    } else {
                        part.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let method: Method = method.to_uppercase().parse().expect("a method");
            for body in ["[null, null]", "[]", "null", "7", "\"text\""] {
                for who in [&admin, &customer] {
                    let resp = app
                        .client
                        .request(method.clone(), format!("{}{path}", app.base))
                        .bearer_auth(&who.token)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("an answer");
                    assert_eq!(resp.status(), 400, "{method} {path} with {body}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} operations take a body");
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}
