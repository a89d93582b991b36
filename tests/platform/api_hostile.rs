//! Hostile input end to end: forged, tampered and expired access tokens are refused with 401 over
//! HTTP (and can write nothing), and search or filter parameters carrying SQL are answered with a
//! 2xx or a 4xx and leave the log and the read models exactly as they were.

use std::time::Duration;

use crate::support::{Resp, Session, TestApp};
use commerce_api::auth::token::TokenKeys;
use commerce_domain::user::Role;
use commerce_event_store::db::MIGRATOR;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Unpadded base64url, as JWTs use.
fn b64_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

fn b64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .unwrap_or_else(|| panic!("not base64url: {text}")) as u32;
        acc = acc << 6 | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits & 0xff) as u8);
        }
    }
    out
}

/// The JSON of a token's payload.
fn payload(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT has a payload");
    serde_json::from_slice(&b64_decode(part)).expect("the payload is JSON")
}

/// `header.payload.signature` with the given JSON header and payload.
fn jwt(header: &Value, payload: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64_encode(header.to_string().as_bytes()),
        b64_encode(payload.to_string().as_bytes())
    )
}

fn keys(app: &TestApp) -> TokenKeys {
    TokenKeys::new(app.settings.jwt_secret().expect("secret").as_bytes())
}

#[test]
fn base64url_round_trips() {
    for text in ["", "a", "ab", "abc", "abcd", "{\"alg\":\"none\"}"] {
        assert_eq!(b64_decode(&b64_encode(text.as_bytes())), text.as_bytes());
    }
    assert_eq!(b64_encode(b"\xfb\xff"), "-_8");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn forged_tampered_and_expired_tokens_are_refused_with_401_and_write_nothing(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let now = chrono::Utc::now();

    // The genuine tokens work: the customer reads their profile and may not create a category.
    app.get("/api/v1/users/me", Some(&customer.token))
        .await
        .expect(200);
    app.post(
        "/api/v1/categories",
        Some(&customer.token),
        json!({"name": "Not yours"}),
    )
    .await
    .expect(403);

    let genuine = payload(&customer.token);
    let signature = customer.token.rsplit('.').next().expect("signature");
    let as_admin = {
        let mut claims = genuine.clone();
        claims["roles"] = json!(["admin"]);
        claims["sub"] = json!(admin.user_id);
        claims
    };
    let wrong_key = TokenKeys::new(b"not-the-server-key-but-long-enough-0123456789")
        .issue(admin.user_id, &[Role::Admin], now, Duration::from_secs(600))
        .expect("token")
        .0;
    let expired = keys(&app)
        .issue(
            admin.user_id,
            &[Role::Admin],
            now - chrono::Duration::hours(1),
            Duration::from_secs(60),
        )
        .expect("token")
        .0;
    let just_expired = keys(&app)
        .issue(
            admin.user_id,
            &[Role::Admin],
            now - chrono::Duration::seconds(61),
            Duration::from_secs(60),
        )
        .expect("token")
        .0;
    let tampered = {
        let parts: Vec<&str> = admin.token.split('.').collect();
        let mut claims = payload(&admin.token);
        claims["exp"] = json!(claims["exp"].as_i64().expect("exp") + 3600);
        format!(
            "{}.{}.{}",
            parts[0],
            b64_encode(claims.to_string().as_bytes()),
            parts[2]
        )
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "alg none, no signature",
            jwt(&json!({"alg": "none", "typ": "JWT"}), &as_admin, ""),
        ),
        (
            "alg None, no signature",
            jwt(&json!({"alg": "None", "typ": "JWT"}), &as_admin, ""),
        ),
        (
            "alg none, the genuine signature kept",
            jwt(&json!({"alg": "none", "typ": "JWT"}), &as_admin, signature),
        ),
        (
            "alg HS512 claimed over an HS256 signature",
            jwt(&json!({"alg": "HS512", "typ": "JWT"}), &genuine, signature),
        ),
        ("signed with another key", wrong_key),
        (
            "customer payload raised to admin, signature kept",
            jwt(&json!({"alg": "HS256", "typ": "JWT"}), &as_admin, signature),
        ),
        ("admin token with a lengthened expiry", tampered),
        ("expired an hour ago", expired),
        ("expired a second ago", just_expired),
        ("the signature cut off", {
            let cut = admin.token.rsplit_once('.').expect("three parts").0;
            format!("{cut}.")
        }),
        ("not a JWT", "garbage".to_owned()),
        ("empty", String::new()),
    ];

    let events = app.event_count().await;
    for (what, token) in &cases {
        for (method, path, body) in [
            ("GET", "/api/v1/users/me", None),
            ("GET", "/api/v1/admin/events", None),
            (
                "POST",
                "/api/v1/categories",
                Some(json!({"name": format!("Forged {}", Uuid::new_v4().simple())})),
            ),
        ] {
            let auth = format!("Bearer {token}");
            let resp = app
                .request(
                    method.parse().expect("method"),
                    path,
                    None,
                    body,
                    &[("authorization", auth.as_str())],
                )
                .await;
            assert_eq!(
                resp.status, 401,
                "{what}: {method} {path} answered {}: {}",
                resp.status, resp.body
            );
            assert_eq!(resp.body["code"], "unauthorized", "{what}: {}", resp.body);
            assert_eq!(
                resp.header("www-authenticate").as_deref(),
                Some("Bearer"),
                "{what}"
            );
        }
    }
    // A token in the wrong scheme or in a query string is no credential either.
    for (name, value) in [
        ("authorization", format!("Basic {}", admin.token)),
        ("authorization", admin.token.clone()),
        ("authorization", format!("Token {}", admin.token)),
    ] {
        let resp = app
            .request(
                reqwest::Method::GET,
                "/api/v1/users/me",
                None,
                None,
                &[(name, value.as_str())],
            )
            .await;
        assert_eq!(resp.status, 401, "{value:?}: {}", resp.body);
    }
    app.get(
        &format!("/api/v1/users/me?access_token={}", admin.token),
        None,
    )
    .await
    .expect(401);
    assert_eq!(
        app.event_count().await,
        events,
        "a refused token appended events"
    );

    // The genuine admin token still works after all that.
    app.get("/api/v1/admin/events", Some(&admin.token))
        .await
        .expect(200);
    app.stop().await;
}

/// Text that would change a query's meaning if it were pasted into SQL, LIKE patterns, `tsquery`
/// syntax, or that strains encodings.
const HOSTILE: &[&str] = &[
    "' OR 1=1 --",
    "' OR '1'='1",
    "'; DROP TABLE events; --",
    "\"; DROP TABLE events; --",
    "1; DELETE FROM catalog.products",
    "') OR ('a'='a",
    "' UNION SELECT email, password_hash FROM users.users --",
    "1' AND pg_sleep(3) IS NULL --",
    "$1",
    "%",
    "%%",
    "_",
    "\\",
    "\\'",
    "'",
    "''",
    "\"",
    "*",
    "a:* | b:*",
    "!(a & b)",
    "<->",
    "(",
    ")",
    "--",
    "/*",
    "NULL",
    "null",
    "true",
    "-1",
    "0",
    "99999999999999999999999999",
    "1e309",
    "NaN",
    "ünïcödé 漢字 😀",
    "\u{202e}gnp.exe",
    "\u{feff}bom",
    "\u{200b}",
    "\r\n\t",
    " ",
    "\u{0}",
    "\u{7f}",
    "%00",
    "%27%20OR%201%3D1",
];

/// `value` as a query-string component.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Every read model's row counts and a full listing of what the API shows, to compare before
/// and after.
async fn snapshot(app: &TestApp, admin: &Session) -> Value {
    let tables = [
        "events",
        "users.users",
        "catalog.products",
        "catalog.categories",
        "catalog.stock",
        "categories.categories",
        "orders.orders",
        "orders.order_items",
        "payments.payments",
        "inventory.levels",
        "inventory.movements",
        "carts.items",
        "reviews.reviews",
        "notifications.notifications",
    ];
    let mut counts = serde_json::Map::new();
    for table in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&app.pool)
            .await
            .unwrap_or_else(|e| panic!("{table} is readable: {e}"));
        counts.insert(table.to_owned(), json!(n));
    }
    let mut api = serde_json::Map::new();
    for path in [
        "/api/v1/products?page_size=100",
        "/api/v1/categories?page_size=100",
        "/api/v1/orders?page_size=100",
        "/api/v1/payments?page_size=100",
        "/api/v1/admin/events?limit=1000",
    ] {
        let resp = app.get(path, Some(&admin.token)).await.expect(200);
        api.insert(path.to_owned(), resp.body);
    }
    json!({"counts": counts, "api": api})
}

/// 2xx or 4xx, never a 5xx; the data of a 2xx.
#[track_caller]
fn harmless(resp: &Resp, what: &str) -> Option<Value> {
    assert!(
        (200..500).contains(&resp.status),
        "{what} answered {}: {}",
        resp.status,
        resp.body
    );
    let text = resp.body.to_string().to_lowercase();
    for leak in [
        "syntax error",
        "sqlx",
        "postgres",
        "panicked",
        "stack backtrace",
    ] {
        assert!(
            !text.contains(leak),
            "{what} leaked {leak:?}: {}",
            resp.body
        );
    }
    (resp.status < 300).then(|| resp.body["data"].clone())
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn search_and_filters_carrying_sql_change_nothing_and_match_nothing_they_should_not(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    let other = app.customer().await;
    let shown = app.product(&admin, "10.00", 50).await;
    let hidden = app.product(&admin, "20.00", 50).await;
    app.delete(&format!("/api/v1/products/{hidden}"), Some(&admin.token))
        .await
        .expect(204);
    let address = json!({"line1": "1 Main St", "city": "X", "postal_code": "1", "country": "US"});
    for session in [&customer, &other] {
        app.post(
            "/api/v1/orders",
            Some(&session.token),
            json!({"shipping_address": address, "payment_method": "card",
                   "items": [{"product_id": shown, "quantity": 1}]}),
        )
        .await
        .expect(201);
    }
    app.settle().await;
    let before = snapshot(&app, &admin).await;
    let orders_before = before["api"]["/api/v1/orders?page_size=100"]["data"]
        .as_array()
        .expect("orders")
        .len();
    assert_eq!(orders_before, 2, "the setup placed two orders");

    let mut answered = std::collections::BTreeMap::<u16, usize>::new();
    for value in HOSTILE {
        let v = encode(value);
        let mut check = |resp: &Resp, what: String| {
            *answered.entry(resp.status).or_default() += 1;
            harmless(resp, &what)
        };

        // The public catalog: search, category and price filters, sorting, paging.
        for query in [
            format!("search={v}"),
            format!("search={v}&sort=price_asc&page_size=100"),
            format!("category_id={v}"),
            format!("min_price={v}"),
            format!("max_price={v}"),
            format!("min_price=0&max_price={v}"),
            format!("sort={v}"),
            format!("page={v}"),
            format!("page_size={v}"),
        ] {
            let path = format!("/api/v1/products?{query}");
            let resp = app.get(&path, None).await;
            if let Some(data) = check(&resp, format!("GET {path}")) {
                for item in data.as_array().expect("a list") {
                    assert_ne!(item["id"], json!(hidden), "{path} listed a deleted product");
                }
            }
        }
        let resp = app.get(&format!("/api/v1/products/{v}"), None).await;
        check(&resp, format!("GET /products/{value:?}"));
        let resp = app.get(&format!("/api/v1/categories?page={v}"), None).await;
        check(&resp, format!("GET /categories?page={value:?}"));

        // Orders: a customer's filters never reach anyone else's orders, and a filter carrying
        // SQL matches no order at all.
        for (who, session) in [("customer", &customer), ("admin", &admin)] {
            for query in [format!("status={v}"), format!("user_id={v}")] {
                let path = format!("/api/v1/orders?{query}");
                let resp = app.get(&path, Some(&session.token)).await;
                if let Some(data) = check(&resp, format!("{who}: GET {path}")) {
                    for order in data.as_array().expect("a list") {
                        if who == "customer" {
                            assert_eq!(
                                order["user_id"],
                                json!(customer.user_id),
                                "{path} showed someone else's order"
                            );
                        }
                    }
                    if query.starts_with("status=") {
                        assert!(
                            data.as_array().is_some_and(Vec::is_empty),
                            "{who}: {path} matched orders: {data}"
                        );
                    }
                }
            }
            let path = format!("/api/v1/orders/{}?as_of={v}", Uuid::new_v4());
            let resp = app.get(&path, Some(&session.token)).await;
            check(&resp, format!("{who}: GET {path}"));
        }

        // The admin's view of the log: a text filter carrying SQL matches no event.
        for field in ["aggregate_type", "event_type", "correlation_id"] {
            let path = format!("/api/v1/admin/events?{field}={v}");
            let resp = app.get(&path, Some(&admin.token)).await;
            if let Some(data) = check(&resp, format!("GET {path}")) {
                assert!(
                    data.as_array().is_some_and(Vec::is_empty),
                    "{path} matched events: {data}"
                );
            }
        }
        for field in ["after", "limit", "from", "to"] {
            let path = format!("/api/v1/admin/events?{field}={v}");
            let resp = app.get(&path, Some(&admin.token)).await;
            check(&resp, format!("GET {path}"));
        }
        let path = format!("/api/v1/admin/streams/{v}/{v}");
        let resp = app.get(&path, Some(&admin.token)).await;
        check(&resp, format!("GET {path}"));
        let path = format!("/api/v1/admin/streams/Order/{v}");
        let resp = app.get(&path, Some(&admin.token)).await;
        check(&resp, format!("GET {path}"));

        // A read-your-writes token carrying SQL (a header holds visible ASCII only).
        if !value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            continue;
        }
        let resp = app
            .request(
                reqwest::Method::GET,
                "/api/v1/products",
                None,
                None,
                &[("x-min-position", value)],
            )
            .await;
        check(&resp, format!("X-Min-Position {value:?}"));
    }

    app.settle().await;
    let after = snapshot(&app, &admin).await;
    assert_eq!(
        before["counts"], after["counts"],
        "hostile queries changed the log or a read model"
    );
    assert_eq!(
        before["api"], after["api"],
        "hostile queries changed what the API shows"
    );
    let found: bool = sqlx::query_scalar("SELECT to_regclass('events') IS NOT NULL")
        .fetch_one(&app.pool)
        .await
        .expect("query");
    assert!(found, "the events table is gone");
    eprintln!("statuses of {} hostile values: {answered:?}", HOSTILE.len());
    app.stop().await;
}
