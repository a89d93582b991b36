//! The console in a real browser (headless chromium through chromedriver): an admin signs in,
//! watches a projection's lag move while events are appended, rebuilds it from the button and
//! watches it finish, sees a rebuild's progress bar, filters the log by correlation id, opens an
//! event, opens an order's timeline and moves the time control; an auditor sees no button and is
//! refused a forged rebuild. With `CONSOLE_SCREENSHOTS=docs/console` it writes the screenshots
//! the README shows, at 1280 px and at phone width.

use std::time::Duration;

use commerce::app::Parts;
use commerce_event_store::db::MIGRATOR;
use fantoccini::key::Key;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::browser::Browser;
use crate::support::{Options, TestApp, PASSWORD};

async fn lag_of(browser: &Browser, name: &str) -> i64 {
    browser
        .attr(&format!("#consumer-{name}"), "data-lag")
        .await
        .and_then(|l| l.parse().ok())
        .unwrap_or(-1)
}

async fn status_of(browser: &Browser, name: &str) -> String {
    browser
        .attr(&format!("#consumer-{name}"), "data-status")
        .await
        .unwrap_or_default()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn operators_and_auditors_use_the_console_in_a_real_browser(
    _o: PgPoolOptions,
    c: PgConnectOptions,
) {
    // A shop with one shipped order, every consumer caught up.
    let app = TestApp::spawn(&c).await;
    let admin = app.admin().await;
    let auditor = app.auditor().await;
    let customer = app.customer().await;
    let product = app.product(&admin, "19.99", 10).await;
    let order = app
        .order_and_pay(&customer.token, product, json!("1 Main St, Springfield"))
        .await;
    let order_id = order["id"].as_str().expect("order id").to_owned();
    app.settle().await;
    app.post(
        &format!("/api/v1/orders/{order_id}/ship"),
        Some(&admin.token),
        json!({}),
    )
    .await
    .expect(200);
    app.settle().await;
    let history = app
        .get(
            &format!("/api/v1/orders/{order_id}/history"),
            Some(&admin.token),
        )
        .await
        .expect(200);
    let correlation = history.data()[0]["correlation_id"]
        .as_str()
        .expect("correlation")
        .to_owned();
    app.stop().await;

    // The same database with only the categories projection running: every other projection
    // falls behind as categories are created.
    let parts = Parts {
        only: Some("categories".to_owned()),
        ..Parts::ALL
    };
    let app = TestApp::spawn_parts(&c, Options::default(), parts).await;
    let base = app.base.clone();

    let browser = Browser::start(1280, 900).await;
    browser.goto(&format!("{base}/console/")).await;
    browser.find("#login").await;
    browser.screenshot("login-1280").await;
    browser.sign_in(&base, &admin.email, PASSWORD).await;
    assert_eq!(
        browser.attr("#viewer", "data-role").await.as_deref(),
        Some("admin")
    );
    browser.find("#consumer-reviews").await;
    browser.screenshot("projections-1280").await;

    // The lag moves without a reload.
    browser.run("window.consoleMarker = 42; return null;").await;
    let before = lag_of(&browser, "reviews").await;
    assert!(before >= 0, "reviews is listed with its lag");
    for i in 0..5 {
        app.post(
            "/api/v1/categories",
            Some(&admin.token),
            json!({"name": format!("Browser category {i}")}),
        )
        .await
        .expect(201);
    }
    browser
        .until("the reviews lag grows by the 5 new events", 10, || async {
            lag_of(&browser, "reviews").await >= before + 5
        })
        .await;
    assert_eq!(
        browser.run("return window.consoleMarker;").await,
        json!(42),
        "the page refreshed itself in place, it was not reloaded"
    );
    assert!(
        browser
            .attr("#not-live", "data-count")
            .await
            .is_some_and(|n| n != "0")
            || lag_of(&browser, "reviews").await > 0,
        "the health header or the table shows the backlog"
    );

    // A rebuild's progress bar, from a rebuild's heartbeat.
    sqlx::query(
        "UPDATE consumer_checkpoints SET rebuild_started_at = now() - interval '10 seconds', \
         rebuild_heartbeat_at = now(), rebuild_applied = 500, rebuild_total = 2000 \
         WHERE name = 'carts'",
    )
    .execute(&app.pool)
    .await
    .expect("heartbeat");
    let bar = browser.find("#rebuild-carts progress").await;
    assert_eq!(
        bar.attr("value").await.expect("value").as_deref(),
        Some("500")
    );
    assert_eq!(bar.attr("max").await.expect("max").as_deref(), Some("2000"));
    let progress = browser.text("#rebuild-carts").await;
    assert!(
        progress.contains("events/s") && progress.contains("left"),
        "{progress}"
    );
    browser.screenshot("projections-rebuilding-1280").await;
    sqlx::query(
        "UPDATE consumer_checkpoints SET rebuild_started_at = NULL, rebuild_heartbeat_at = NULL, \
         rebuild_applied = NULL, rebuild_total = NULL WHERE name = 'carts'",
    )
    .execute(&app.pool)
    .await
    .expect("heartbeat cleared");

    // Rebuild from the button: confirmed, then it runs and finishes, caught up.
    browser
        .find("button[data-action='rebuild'][data-name='reviews']")
        .await
        .click()
        .await
        .expect("click");
    let confirm = browser
        .client
        .get_alert_text()
        .await
        .expect("a confirmation");
    assert!(confirm.contains("Rebuild projection reviews"), "{confirm}");
    browser.client.accept_alert().await.expect("confirmed");
    browser
        .until("the outcome says the rebuild started", 10, || async {
            browser
                .text("#outcome")
                .await
                .contains("Rebuild of reviews started")
        })
        .await;
    browser
        .until("the rebuild finishes caught up", 30, || async {
            status_of(&browser, "reviews").await != "REBUILDING"
                && lag_of(&browser, "reviews").await == 0
        })
        .await;

    // The log, filtered by the order's request.
    browser.goto(&format!("{base}/console/events")).await;
    browser.find("#log").await;
    browser.screenshot("event-log-1280").await;
    browser
        .find("#correlation_id")
        .await
        .send_keys(&correlation)
        .await
        .expect("typed");
    browser
        .find("#apply-filter")
        .await
        .click()
        .await
        .expect("filter");
    browser
        .until("the filtered log shows", 10, || async {
            browser
                .client
                .current_url()
                .await
                .is_ok_and(|u| u.as_str().contains("correlation_id="))
        })
        .await;
    let rows = browser.all("#log tbody tr").await;
    assert!(rows.len() >= 3, "the order's request caused several events");
    for row in &rows {
        assert_eq!(
            row.attr("data-correlation").await.expect("attr").as_deref(),
            Some(correlation.as_str())
        );
    }
    browser.screenshot("event-log-filtered-1280").await;
    browser
        .find("#log tbody tr:last-child td a")
        .await
        .click()
        .await
        .expect("open the event");
    let shown = browser.find("#event").await;
    assert!(shown.attr("data-event-id").await.expect("id").is_some());
    assert!(browser
        .text("#correlation")
        .await
        .contains(&correlation[..13]));
    browser.screenshot("event-1280").await;
    let event_path = browser
        .client
        .current_url()
        .await
        .expect("url")
        .path()
        .to_owned();

    // The order's audit: the time control moves the as-of column; "now" stays.
    browser.goto(&format!("{base}/console/orders")).await;
    browser
        .find("#order-id")
        .await
        .send_keys(&order_id)
        .await
        .expect("typed");
    browser
        .find("#find-order button")
        .await
        .click()
        .await
        .expect("open");
    browser.find("#timeline").await;
    assert_eq!(
        browser.attr("#current dl", "data-status").await.as_deref(),
        Some("SHIPPED")
    );
    assert_eq!(
        browser.attr("#as-of dl", "data-status").await.as_deref(),
        Some("SHIPPED")
    );
    browser.screenshot("order-audit-1280").await;
    let slider = browser.find("#step").await;
    slider
        .send_keys(&char::from(Key::Home).to_string())
        .await
        .expect("home");
    browser
        .until("the as-of column shows the order as placed", 10, || async {
            browser.attr("#as-of dl", "data-status").await.as_deref() == Some("PENDING")
        })
        .await;
    assert_eq!(
        browser.attr("#as-of-step", "data-step").await.as_deref(),
        Some("0")
    );
    assert_eq!(
        browser.attr("#current dl", "data-status").await.as_deref(),
        Some("SHIPPED"),
        "the current state stays beside it"
    );
    assert!(
        !browser.all("#timeline tr.later").await.is_empty(),
        "later events are marked"
    );
    browser.screenshot("order-audit-as-of-1280").await;
    slider
        .send_keys(&char::from(Key::End).to_string())
        .await
        .expect("end");
    browser
        .until(
            "the as-of column is back to the latest state",
            10,
            || async {
                browser.attr("#as-of dl", "data-status").await.as_deref() == Some("SHIPPED")
            },
        )
        .await;

    // Phone width: every page reads without sideways scrolling.
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("phone size");
    for (path, name) in [
        ("/console/projections", "projections-phone"),
        ("/console/events", "event-log-phone"),
        (&event_path as &str, "event-phone"),
        (
            &format!("/console/orders/{order_id}") as &str,
            "order-audit-phone",
        ),
    ] {
        browser.goto(&format!("{base}{path}")).await;
        browser.find("#main").await;
        let overflow = browser
            .run("return document.documentElement.scrollWidth - window.innerWidth;")
            .await;
        let wide = browser
            .run("return [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1).slice(0, 8).map(e => e.tagName + '#' + e.id + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right));")
            .await;
        assert!(
            overflow.as_i64().is_some_and(|o| o <= 1),
            "{path} is wider than the phone by {overflow}px: {wide}"
        );
        browser.screenshot(name).await;
    }

    // Sign out; an auditor sees everything and no button, and a forged rebuild is refused.
    browser
        .client
        .set_window_size(1280, 900)
        .await
        .expect("desktop size");
    browser.goto(&format!("{base}/console/projections")).await;
    browser
        .find("form[action='/console/logout'] button")
        .await
        .click()
        .await
        .expect("sign out");
    browser.find("#login").await;
    browser.sign_in(&base, &auditor.email, PASSWORD).await;
    assert_eq!(
        browser.attr("#viewer", "data-role").await.as_deref(),
        Some("auditor")
    );
    browser.find("#consumer-reviews").await;
    assert!(
        browser.all("button[data-action]").await.is_empty(),
        "an auditor sees no button that changes anything"
    );
    let forged = browser
        .client
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const token = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRF-Token'];
             fetch('/console/projections/reviews/rebuild',
                   {method: 'POST', headers: {'X-CSRF-Token': token}})
               .then(r => done(r.status)).catch(e => done(String(e)));",
            Vec::new(),
        )
        .await
        .expect("forged request sent");
    assert_eq!(
        forged,
        json!(403),
        "the server refuses an auditor's rebuild"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
        "SELECT rebuild_started_at FROM consumer_checkpoints WHERE name = 'reviews'",
    )
    .fetch_one(&app.pool)
    .await
    .expect("row");
    assert!(started.is_none(), "no rebuild started");
    browser.screenshot("projections-auditor-1280").await;
    browser
        .client
        .delete_all_cookies()
        .await
        .expect("signed out");
    browser
        .client
        .set_window_size(390, 844)
        .await
        .expect("phone size");
    browser.goto(&format!("{base}/console/")).await;
    browser.find("#login").await;
    browser.screenshot("login-phone").await;

    browser.close().await;
    app.stop().await;
}
