//! The console over plain HTTP: who may sign in, sessions and their expiry, CSRF, the content
//! security policy, offline assets, bad input answered on the page and changing nothing, the
//! rebuild progress rendering, and the API calls the console's views stand on (`order`, `before`,
//! `event_id`, `causation_id` of `/admin/events`; `email` of `/orders`).

use commerce_domain::user::Role;
use commerce_event_store::db::MIGRATOR;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

use crate::support::{TestApp, PASSWORD};

/// A browser-like client: keeps the console's cookies, follows no redirect.
struct Console {
    base: String,
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: u16,
    location: Option<String>,
    body: String,
}

impl Console {
    fn new(app: &TestApp) -> Self {
        Self {
            base: app.base.clone(),
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .expect("client"),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = if self.cookies.is_empty() {
            req
        } else {
            req.header(COOKIE, self.cookie_header())
        };
        let response = req.send().await.expect("answers");
        for value in response.headers().get_all(SET_COOKIE) {
            let text = value.to_str().expect("ascii");
            let pair = text.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies.retain(|(name, _)| name != k);
                if !v.is_empty() {
                    self.cookies.push((k.to_owned(), v.to_owned()));
                }
            }
        }
        Page {
            status: response.status().as_u16(),
            location: response
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().expect("ascii").to_owned()),
            body: response.text().await.expect("body"),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(req).await
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        let login = self.get("/console/login").await;
        let csrf = hidden(&login.body, "csrf");
        self.post(
            "/console/login",
            &[
                ("email", email),
                ("password", password),
                ("csrf", &csrf),
                ("next", "/console/projections"),
            ],
        )
        .await
    }

    /// The session's CSRF token, from a page's sign-out form.
    async fn csrf(&mut self) -> String {
        let page = self.get("/console/projections").await;
        hidden(&page.body, "csrf")
    }
}

fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html.find(&marker).expect("the field is on the page") + marker.len();
    html[start..].split('"').next().expect("a value").to_owned()
}

async fn rebuild_started(app: &TestApp, name: &str) -> bool {
    sqlx::query_scalar::<_, Option<chrono::DateTime<chrono::Utc>>>(
        "SELECT rebuild_started_at FROM consumer_checkpoints WHERE name = $1",
    )
    .bind(name)
    .fetch_one(&app.pool)
    .await
    .expect("row")
    .is_some()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn only_active_admins_and_auditors_sign_in(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let auditor = app.auditor().await;
    let customer = app.customer().await;

    let mut anonymous = Console::new(&app);
    let page = anonymous.get("/console/projections").await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.location.as_deref(),
        Some("/console/login?m=expired&next=%2Fconsole%2Fprojections")
    );

    let mut c1 = Console::new(&app);
    let refused = c1.sign_in(&customer.email, PASSWORD).await;
    assert_eq!(refused.status, 403);
    assert!(
        refused.body.contains("for admins and auditors"),
        "{}",
        refused.body
    );

    let mut c2 = Console::new(&app);
    let wrong = c2.sign_in(&admin.email, "not-the-password-1").await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong email or password"));

    let mut c3 = Console::new(&app);
    let ok = c3.sign_in(&auditor.email, PASSWORD).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.location.as_deref(), Some("/console/projections"));
    let page = c3.get("/console/projections").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-role=\"auditor\""));
    assert!(
        !page.body.contains("data-action="),
        "no buttons for an auditor"
    );

    // A session ends when the account is deactivated.
    let mut c4 = Console::new(&app);
    assert_eq!(c4.sign_in(&admin.email, PASSWORD).await.status, 303);
    assert_eq!(c4.get("/console/events").await.status, 200);
    let other = app.user_with_role(Role::Admin).await;
    app.delete(
        &format!("/api/v1/users/{}", admin.user_id),
        Some(&other.token),
    )
    .await
    .expect(204);
    let after = c4.get("/console/events").await;
    assert_eq!(after.status, 303);
    assert!(after
        .location
        .is_some_and(|l| l.starts_with("/console/login?m=refused")));
    // And a deactivated account cannot sign in again.
    let mut c5 = Console::new(&app);
    assert_eq!(c5.sign_in(&admin.email, PASSWORD).await.status, 401);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sessions_expire_and_sign_out_ends_them(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;

    let mut idle = Console::new(&app);
    assert_eq!(idle.sign_in(&admin.email, PASSWORD).await.status, 303);
    assert_eq!(idle.get("/console/projections").await.status, 200);
    sqlx::query("UPDATE api.console_sessions SET last_seen = now() - interval '31 minutes'")
        .execute(&app.pool)
        .await
        .expect("aged");
    let page = idle.get("/console/projections").await;
    assert_eq!(page.status, 303, "30 minutes idle ends a session");

    let mut old = Console::new(&app);
    assert_eq!(old.sign_in(&admin.email, PASSWORD).await.status, 303);
    sqlx::query("UPDATE api.console_sessions SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .expect("expired");
    assert_eq!(old.get("/console/projections").await.status, 303);

    let mut busy = Console::new(&app);
    assert_eq!(busy.sign_in(&admin.email, PASSWORD).await.status, 303);
    let session = busy.cookies.clone();
    let csrf = busy.csrf().await;
    let out = busy.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    // The old cookie no longer opens anything.
    let mut replay = Console::new(&app);
    replay.cookies = session;
    assert_eq!(replay.get("/console/projections").await.status, 303);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM api.console_sessions")
        .fetch_one(&app.pool)
        .await
        .expect("count");
    assert_eq!(left, 0, "ended sessions are gone from the table");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn forged_forms_change_nothing(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let auditor = app.auditor().await;
    app.settle().await;

    let mut console = Console::new(&app);
    assert_eq!(console.sign_in(&admin.email, PASSWORD).await.status, 303);
    // No token, a wrong token, another site's request: refused, nothing started.
    let none = console
        .post("/console/projections/catalog/rebuild", &[])
        .await;
    assert_eq!(none.status, 403);
    assert!(none.body.contains("CSRF"), "{}", none.body);
    let wrong = console
        .post(
            "/console/projections/catalog/rebuild",
            &[("csrf", "forged")],
        )
        .await;
    assert_eq!(wrong.status, 403);
    let csrf = console.csrf().await;
    let req = console
        .http
        .post(format!(
            "{}/console/projections/catalog/rebuild",
            console.base
        ))
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())]);
    assert_eq!(console.send(req).await.status, 403);
    assert!(!rebuild_started(&app, "catalog").await);

    // An auditor with a valid token is refused too.
    let mut reader = Console::new(&app);
    assert_eq!(reader.sign_in(&auditor.email, PASSWORD).await.status, 303);
    let token = reader.csrf().await;
    let refused = reader
        .post("/console/projections/catalog/rebuild", &[("csrf", &token)])
        .await;
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("only admins"), "{}", refused.body);
    let erase = reader
        .post(
            &format!("/console/users/{}/erase", admin.user_id),
            &[("csrf", &token)],
        )
        .await;
    assert_eq!(erase.status, 403);

    // The sign-in form without its cookie (another site posting it) is refused.
    let mut stranger = Console::new(&app);
    let forged = stranger
        .post(
            "/console/login",
            &[
                ("email", &admin.email),
                ("password", PASSWORD),
                ("csrf", "x"),
            ],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(stranger.cookies.iter().all(|(k, _)| k != "console_session"));

    // A real admin action with the token works and says so.
    let started = console
        .post("/console/projections/catalog/rebuild", &[("csrf", &csrf)])
        .await;
    assert_eq!(started.status, 200);
    assert!(started.body.contains("Rebuild of catalog started"));
    let unknown = console
        .post("/console/projections/nope/rebuild", &[("csrf", &csrf)])
        .await;
    assert_eq!(unknown.status, 404);
    let healthy = console
        .post("/console/projections/catalog/skip", &[("csrf", &csrf)])
        .await;
    assert_eq!(
        healthy.status, 409,
        "skip applies to a FAILED consumer only"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn pages_are_self_contained_and_bad_input_gets_a_message(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let auditor = app.auditor().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "5.00", 3).await;
    let order = app
        .order_and_pay(&customer.token, product, json!("2 Side St, Shelbyville"))
        .await;
    let order_id = order["id"].as_str().expect("id").to_owned();
    app.settle().await;
    let events_before = app.event_count().await;

    let mut console = Console::new(&app);
    assert_eq!(console.sign_in(&admin.email, PASSWORD).await.status, 303);
    let raw = console
        .http
        .get(format!("{}/console/events", console.base))
        .header(COOKIE, console.cookie_header())
        .send()
        .await
        .expect("answers");
    let csp = raw
        .headers()
        .get("content-security-policy")
        .expect("a policy")
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let html = raw.text().await.expect("body");
    // No inline script, style or handler, nothing loaded from elsewhere.
    for forbidden in [
        "<script>",
        "style=",
        "http://",
        "https://",
        " onclick=",
        " onload=",
    ] {
        assert!(!html.contains(forbidden), "the page carries {forbidden:?}");
    }
    for asset in [
        "/console/assets/htmx-2.0.8.min.js",
        "/console/assets/console.css",
    ] {
        let page = console.get(asset).await;
        assert_eq!(page.status, 200, "{asset} is embedded");
        assert!(page.body.len() > 1000);
    }

    for (path, status, says) in [
        ("/console/events?after=garbage", 400, "after"),
        ("/console/events?from=yesterday", 400, "from"),
        ("/console/events?order=sideways", 400, "order"),
        ("/console/events/not-a-position", 400, "position token"),
        ("/console/events/999999.999999", 404, "no event"),
        ("/console/orders/not-a-uuid", 400, "UUID"),
        (
            &format!("/console/orders/{}", Uuid::new_v4()) as &str,
            404,
            "no order",
        ),
        (
            &format!("/console/orders/{order_id}?as_of=yesterday") as &str,
            400,
            "RFC 3339",
        ),
        (
            &format!("/console/orders/{order_id}?step=99") as &str,
            400,
            "step",
        ),
        ("/console/orders?id=12", 400, "UUID"),
        (
            "/console/orders?email=nobody%40example.com",
            404,
            "no account",
        ),
        ("/console/streams/Order/nope", 404, "no stream"),
        ("/console/nowhere", 404, "no console page"),
    ] {
        let page = console.get(path).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
        assert!(
            page.body.to_lowercase().contains(&says.to_lowercase()),
            "{path} explains itself: {}",
            page.body
        );
        assert!(page.body.contains("role=\"alert\"") || page.body.contains("message"));
    }
    assert_eq!(
        app.event_count().await,
        events_before,
        "bad input appended nothing"
    );

    // The good paths render.
    for path in [
        "/console/projections",
        "/console/events",
        "/console/events?order=oldest&aggregate_type=Order",
        &format!("/console/orders/{order_id}"),
        &format!("/console/orders/{order_id}?step=0"),
        &format!(
            "/console/orders?email={}",
            customer.email.replace('@', "%40")
        ),
        &format!("/console/streams/Order/{order_id}"),
        "/console/verify",
    ] {
        let page = console.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.body);
    }
    let found = console
        .get(&format!(
            "/console/orders?email={}",
            customer.email.replace('@', "%40")
        ))
        .await;
    assert!(
        found.body.contains(&order_id),
        "the customer's order is listed"
    );
    let step0 = console
        .get(&format!("/console/orders/{order_id}?step=0"))
        .await;
    assert!(
        step0.body.contains("data-status=\"PENDING\""),
        "step 0 is the order as placed"
    );

    // An auditor may not look customers up by email.
    let mut reader = Console::new(&app);
    assert_eq!(reader.sign_in(&auditor.email, PASSWORD).await.status, 303);
    let page = reader
        .get(&format!(
            "/console/orders?email={}",
            customer.email.replace('@', "%40")
        ))
        .await;
    assert_eq!(page.status, 403);
    assert!(!page.body.contains(&order_id));
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rebuild_shows_progress_rate_and_time_left(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    app.settle().await;
    sqlx::query(
        "UPDATE consumer_checkpoints SET rebuild_started_at = now() - interval '10 seconds', \
         rebuild_heartbeat_at = now(), rebuild_applied = 500, rebuild_total = 2000 \
         WHERE name = 'carts'",
    )
    .execute(&app.pool)
    .await
    .expect("heartbeat");
    let mut console = Console::new(&app);
    assert_eq!(console.sign_in(&admin.email, PASSWORD).await.status, 303);
    let table = console.get("/console/projections/table").await;
    assert!(
        table.body.contains("<progress value=\"500\" max=\"2000\">"),
        "{}",
        table.body
    );
    assert!(table.body.contains("data-status=\"REBUILDING\""));
    // 500 events in 10 s: 50 events/s, 1500 left: 30 s (a little less and more, a moment on).
    assert!(
        table.body.contains(" events/s · ") && table.body.contains(" s left"),
        "{}",
        table.body
    );
    // The same through the API.
    let api = app
        .get("/api/v1/admin/projections", Some(&admin.token))
        .await
        .expect(200);
    let carts = api
        .data()
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["name"] == "carts")
        .cloned()
        .expect("carts");
    assert_eq!(carts["rebuild"]["done"], 500);
    let rate = carts["rebuild"]["events_per_second"]
        .as_f64()
        .expect("a rate");
    let left = carts["rebuild"]["seconds_left"]
        .as_f64()
        .expect("time left");
    assert!((45.0..=50.0).contains(&rate), "{rate}");
    assert!((30.0..=34.0).contains(&left), "{left}");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_log_api_pages_newest_first_and_finds_events_by_id_and_cause(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let auditor = app.auditor().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "7.00", 5).await;
    let order = app
        .order_and_pay(&customer.token, product, json!("3 Elm St, Ogdenville"))
        .await;
    app.settle().await;

    // Newest first, paged with `before`: the whole log once, in exactly reverse order.
    let oldest = app
        .get("/api/v1/admin/events?limit=1000", Some(&auditor.token))
        .await
        .expect(200);
    let forward: Vec<String> = oldest.body["data"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["position"].as_str().expect("position").to_owned())
        .collect();
    let mut backward = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(token) => format!("/api/v1/admin/events?order=newest&limit=3&before={token}"),
            None => "/api/v1/admin/events?order=newest&limit=3".to_owned(),
        };
        let page = app.get(&path, Some(&auditor.token)).await.expect(200);
        let rows = page.body["data"].as_array().expect("events").clone();
        if rows.is_empty() {
            break;
        }
        backward.extend(
            rows.iter()
                .map(|e| e["position"].as_str().expect("p").to_owned()),
        );
        before = page.body["next"].as_str().map(str::to_owned);
    }
    backward.reverse();
    assert_eq!(backward, forward);

    // One event by id; the events the saga wrote in reaction to the order being placed.
    let history = app
        .get(
            &format!(
                "/api/v1/orders/{}/history",
                order["id"].as_str().expect("id")
            ),
            Some(&admin.token),
        )
        .await
        .expect(200);
    let placed = history.data()[0].clone();
    assert_eq!(placed["event_type"], "OrderPlaced");
    let found = app
        .get(
            &format!(
                "/api/v1/admin/events?event_id={}",
                all_events_id(&app, &placed).await
            ),
            Some(&auditor.token),
        )
        .await
        .expect(200);
    assert_eq!(found.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(found.body["data"][0]["position"], placed["position"]);
    let caused = app
        .get(
            &format!(
                "/api/v1/admin/events?causation_id={}",
                found.body["data"][0]["event_id"].as_str().expect("id")
            ),
            Some(&auditor.token),
        )
        .await
        .expect(200);
    let caused = caused.body["data"].as_array().expect("events").clone();
    assert!(!caused.is_empty(), "the saga reacted to OrderPlaced");
    for e in &caused {
        assert_eq!(e["causation_id"], found.body["data"][0]["event_id"]);
    }
    app.get("/api/v1/admin/events?event_id=nope", Some(&auditor.token))
        .await
        .expect(400);

    // A customer's orders by email: admins only.
    let mine = app
        .get(
            &format!(
                "/api/v1/orders?email={}",
                customer.email.replace('@', "%40")
            ),
            Some(&admin.token),
        )
        .await
        .expect(200);
    assert_eq!(mine.body["data"][0]["id"], order["id"]);
    app.get("/api/v1/orders?email=", Some(&admin.token))
        .await
        .expect(400);
    let nobody = app
        .get(
            "/api/v1/orders?email=nobody%40example.com",
            Some(&admin.token),
        )
        .await
        .expect(200);
    assert_eq!(nobody.body["data"].as_array().map(Vec::len), Some(0));
    app.get(
        &format!(
            "/api/v1/orders?email={}",
            customer.email.replace('@', "%40")
        ),
        Some(&auditor.token),
    )
    .await
    .expect(403);
    app.stop().await;
}

/// The event id of a history entry (history shows positions; the log shows ids).
async fn all_events_id(app: &TestApp, entry: &serde_json::Value) -> String {
    let position = entry["position"].as_str().expect("position");
    let id: Uuid = sqlx::query_scalar(
        "SELECT event_id FROM events WHERE transaction_id::text || '.' || global_position = $1",
    )
    .bind(position)
    .fetch_one(&app.pool)
    .await
    .expect("the event");
    id.to_string()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_halted_consumer_shows_its_error_and_the_console_skips_it(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let auditor = app.auditor().await;
    app.settle().await;
    // An event no carts handler can read: the carts consumer halts on it.
    let (tx, pos): (i64, i64) = sqlx::query_as(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, \
         payload, metadata) VALUES ('Cart', $1, 1, 'CartMangled', '1.0', '{\"CartMangled\": {}}', \
         '{\"actor\": \"test\", \"correlation_id\": \"poison\"}') \
         RETURNING transaction_id::text::bigint, global_position",
    )
    .bind(Uuid::new_v4().to_string())
    .fetch_one(&app.pool)
    .await
    .expect("insert");
    let poison = format!("{tx}.{pos}");

    let mut console = Console::new(&app);
    assert_eq!(console.sign_in(&admin.email, PASSWORD).await.status, 303);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let table = loop {
        let table = console.get("/console/projections/table").await;
        if table
            .body
            .contains("id=\"consumer-carts\" data-name=\"carts\" data-status=\"FAILED\"")
        {
            break table;
        }
        assert!(tokio::time::Instant::now() < deadline, "carts never halted");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(
        table
            .body
            .contains(&format!("href=\"/console/events/{poison}\"")),
        "the failed event is linked"
    );
    assert!(table
        .body
        .contains("data-action=\"retry\" data-name=\"carts\""));
    assert!(table
        .body
        .contains("data-action=\"skip\" data-name=\"carts\""));
    assert!(table
        .body
        .contains("hx-confirm=\"Skip the event carts halted on?"));
    let header = console.get("/console/health").await;
    assert!(header.body.contains("1 not LIVE"), "{}", header.body);
    // An auditor sees the failure, not the buttons.
    let mut reader = Console::new(&app);
    assert_eq!(reader.sign_in(&auditor.email, PASSWORD).await.status, 303);
    let seen = reader.get("/console/projections/table").await;
    assert!(seen.body.contains("data-status=\"FAILED\""));
    assert!(!seen.body.contains("data-action="));

    // Retrying cannot help (the event stays unreadable); skipping passes over it, recorded.
    let csrf = console.csrf().await;
    let skipped = console
        .post("/console/projections/carts/skip", &[("csrf", &csrf)])
        .await;
    assert_eq!(skipped.status, 200);
    assert!(
        skipped.body.contains("Skip requested for carts"),
        "{}",
        skipped.body
    );
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let table = console.get("/console/projections/table").await;
        if table
            .body
            .contains("data-name=\"carts\" data-status=\"LIVE\" data-lag=\"0\"")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "carts never resumed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let skips: i64 =
        sqlx::query_scalar("SELECT count(*) FROM consumer_skips WHERE consumer = 'carts'")
            .fetch_one(&app.pool)
            .await
            .expect("count");
    assert_eq!(skips, 1, "the skip is recorded");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_console_pages_the_log_and_erases_a_customer(_o: PgPoolOptions, c: PgConnectOptions) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let customer = app.customer().await;
    for i in 0..60 {
        app.post(
            "/api/v1/categories",
            Some(&admin.token),
            json!({"name": format!("Paged {i}")}),
        )
        .await
        .expect(201);
    }
    app.settle().await;
    let total = app.event_count().await;

    let mut console = Console::new(&app);
    assert_eq!(console.sign_in(&admin.email, PASSWORD).await.status, 303);
    // Newest first, 50 a page, "older" links until the start: every event once.
    let mut seen: Vec<String> = Vec::new();
    let mut path = "/console/events".to_owned();
    loop {
        let page = console.get(&path).await;
        assert_eq!(page.status, 200);
        let mut rest = page.body.as_str();
        while let Some(at) = rest.find("<tr data-position=\"") {
            rest = &rest[at + 19..];
            seen.push(rest.split('"').next().expect("position").to_owned());
        }
        match page.body.split("id=\"next-page\" href=\"").nth(1) {
            Some(link) => path = link.split('"').next().expect("link").replace("&amp;", "&"),
            None => break,
        }
    }
    assert_eq!(seen.len() as i64, total, "every event once");
    let mut sorted = seen.clone();
    sorted.sort_by_key(|p| {
        let (tx, pos) = p.split_once('.').expect("token");
        (
            tx.parse::<i64>().expect("tx"),
            pos.parse::<i64>().expect("pos"),
        )
    });
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first");
    // Filtered by type and oldest first.
    let categories = console
        .get("/console/events?order=oldest&aggregate_type=Category&event_type=CategoryCreated")
        .await;
    assert_eq!(
        categories
            .body
            .matches("data-event-type=\"CategoryCreated\"")
            .count(),
        50
    );
    assert!(!categories
        .body
        .contains("data-event-type=\"UserRegistered\""));
    // A time range as a datetime-local field sends it (no offset: UTC).
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M");
    let none = console.get(&format!("/console/events?from={later}")).await;
    assert_eq!(none.status, 200);
    assert!(none.body.contains("No event matches."), "{}", none.body);
    let until_now = console
        .get(&format!(
            "/console/events?order=oldest&aggregate_type=Category&from=2000-01-01T00:00&to={later}"
        ))
        .await;
    assert_eq!(
        until_now
            .body
            .matches("data-event-type=\"CategoryCreated\"")
            .count(),
        50
    );

    // Erasure from the console: confirmed in the page, refused without the token, then done.
    let page = console
        .get(&format!("/console/orders?user_id={}", customer.user_id))
        .await;
    assert!(page
        .body
        .contains("hx-confirm=\"Erase the personal data of customer"));
    let refused = console
        .post(&format!("/console/users/{}/erase", customer.user_id), &[])
        .await;
    assert_eq!(refused.status, 403);
    let profile = app
        .get("/api/v1/users/me", Some(&customer.token))
        .await
        .expect(200);
    assert_ne!(profile.data()["email"], "[erased]");
    let csrf = console.csrf().await;
    let erased = console
        .post(
            &format!("/console/users/{}/erase", customer.user_id),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(erased.status, 200);
    assert!(erased.body.contains("erased"), "{}", erased.body);
    let shown = app
        .get(
            &format!("/api/v1/users/{}", customer.user_id),
            Some(&admin.token),
        )
        .await
        .expect(200);
    assert_eq!(shown.data()["email"], "[erased]");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn commerce_api_serves_the_console_and_a_session_works_on_every_instance(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let other = crate::api_own_writes::OtherApi::start(&app).await;
    let mut console = Console::new(&app);
    assert_eq!(console.sign_in(&admin.email, PASSWORD).await.status, 303);
    // The same cookie, sent to the `commerce api` process behind the same address.
    console.base = other.base.clone();
    let page = console.get("/console/projections").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("data-role=\"admin\""));
    let css = console.get("/console/assets/console.css").await;
    assert_eq!(css.status, 200);
    // Signing out on one instance ends the session on both.
    let csrf = console.csrf().await;
    let kept = console.cookies.clone();
    assert_eq!(
        console
            .post("/console/logout", &[("csrf", &csrf)])
            .await
            .status,
        303
    );
    // The old cookie, replayed on the other instance, opens nothing.
    console.cookies = kept;
    console.base = app.base.clone();
    assert_eq!(console.get("/console/projections").await.status, 303);
    app.stop().await;
}
