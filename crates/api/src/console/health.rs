//! The health header of every console page, from the platform's own state: the relay's lag, the
//! events appended per second, the consumers that are not LIVE, whether Postgres and RabbitMQ
//! answer (the `/ready` checks), and the log's verification with its latest seal.
//!
//! One reading serves every open console for a second; a verification (which reads the whole
//! log) serves for a minute, recomputed in the background when a page asks after that.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use commerce_event_store::checkpoint::{self, ConsumerState};
use commerce_event_store::sealer::hex;
use commerce_event_store::verify::{self, Verification};
use commerce_event_store::{relay, StoreError};
use maud::{html, Markup};

use super::page::{self, Nav};
use super::session::Viewer;
use crate::state::AppState;

/// How long one reading of the header serves.
const FRESH: Duration = Duration::from_secs(1);
/// How long one verification of the log serves.
const VERIFIED_FRESH: Duration = Duration::from_secs(60);
/// The window the append rate is measured over.
const RATE_WINDOW_SECONDS: i64 = 10;

/// One reading of the platform's health.
#[derive(Debug, Clone)]
struct Reading {
    taken: Instant,
    /// Events the relay has not published yet, when it has run.
    relay_lag: Option<i64>,
    appended_per_second: f64,
    consumers: usize,
    /// Consumers not LIVE, with their state.
    not_live: Vec<(String, &'static str)>,
    postgres: Result<(), String>,
    rabbitmq: Result<(), String>,
}

/// The last verification of the log.
#[derive(Debug, Clone)]
struct Verified {
    taken: Instant,
    at: DateTime<Utc>,
    outcome: Result<Verification, String>,
}

/// What the console caches, shared by every request of this process.
#[derive(Debug, Default, Clone)]
pub struct ConsoleCache {
    inner: Arc<Mutex<CacheState>>,
}

#[derive(Debug, Default)]
struct CacheState {
    reading: Option<Reading>,
    verified: Option<Verified>,
    verifying: bool,
}

impl ConsoleCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn read(state: &AppState) -> Reading {
    let checks = crate::routes::ops::run_checks(&state.ops.checks).await;
    let check = |name: &str| {
        checks.iter().find(|(n, _, _)| *n == name).map_or(
            Err("not checked by this process".to_owned()),
            |(_, _, r)| r.clone(),
        )
    };
    let postgres = check("postgres");
    let (consumers, not_live) = match checkpoint::consumer_statuses(&state.pool).await {
        Ok(statuses) => (
            statuses.len(),
            statuses
                .into_iter()
                // A partitioned projection's own row is never LIVE: its partitions are.
                .filter(|s| !matches!(s.status, ConsumerState::Live | ConsumerState::Partitioned))
                .map(|s| (s.name, s.status.as_str()))
                .collect(),
        ),
        Err(_) => (0, Vec::new()),
    };
    let relay_lag = relay_lag(state).await.ok().flatten();
    let appended = sqlx::query_scalar::<_, i64>(
        "SELECT count(*) FROM events WHERE recorded_at > now() - make_interval(secs => $1)",
    )
    .bind(RATE_WINDOW_SECONDS as f64)
    .fetch_one(&state.pool)
    .await
    .unwrap_or(0);
    Reading {
        taken: Instant::now(),
        relay_lag,
        appended_per_second: appended as f64 / RATE_WINDOW_SECONDS as f64,
        consumers,
        not_live,
        postgres,
        rabbitmq: check("rabbitmq"),
    }
}

async fn relay_lag(state: &AppState) -> Result<Option<i64>, StoreError> {
    let Some((position, _)) =
        relay::relay_cursor(&state.pool, &state.config.broker_namespace).await?
    else {
        return Ok(None);
    };
    Ok(Some(state.log.backlog(position).await?.0))
}

async fn reading(state: &AppState) -> Reading {
    let cached = state.console.lock().reading.clone();
    match cached {
        Some(r) if r.taken.elapsed() < FRESH => r,
        _ => {
            let fresh = read(state).await;
            state.console.lock().reading = Some(fresh.clone());
            fresh
        }
    }
}

/// The last verification, starting a new one in the background when it is stale.
fn verified(state: &AppState) -> Option<Verified> {
    let mut cache = state.console.lock();
    let stale = cache
        .verified
        .as_ref()
        .is_none_or(|v| v.taken.elapsed() >= VERIFIED_FRESH);
    if stale && !cache.verifying {
        cache.verifying = true;
        let state = state.clone();
        tokio::spawn(async move {
            let outcome = verify::verify(&state.pool, None)
                .await
                .map_err(|e| e.to_string());
            let mut cache = state.console.lock();
            cache.verified = Some(Verified {
                taken: Instant::now(),
                at: Utc::now(),
                outcome,
            });
            cache.verifying = false;
        });
    }
    cache.verified.clone()
}

fn reachability(name: &str, result: &Result<(), String>) -> Markup {
    match result {
        Ok(()) => html! { span.pill.ok data-check=(name) { (name) " up" } },
        Err(reason) => {
            html! { span.pill.bad data-check=(name) title=(reason) { (name) " down" } }
        }
    }
}

fn seal_text(v: &Verification) -> String {
    match &v.latest_seal {
        Some(seal) => {
            let hex = hex(&seal.seal);
            format!("seal #{} {}…", seal.seal_id, &hex[..hex.len().min(12)])
        }
        None => "no seal yet".to_owned(),
    }
}

fn relay_class(lag: Option<i64>) -> &'static str {
    match lag {
        Some(0) => "pill ok",
        Some(_) => "pill warn",
        None => "pill",
    }
}

fn render(reading: &Reading, verified: Option<&Verified>) -> Markup {
    html! {
        section #health.health hx-get="/console/health" hx-trigger="every 2s" hx-swap="outerHTML"
            aria-label="Platform health" {
            span #relay-lag class=(relay_class(reading.relay_lag)) data-lag=[reading.relay_lag] {
                @match reading.relay_lag {
                    Some(lag) => { "relay lag " (lag) },
                    None => "relay not started",
                }
            }
            span.pill #append-rate { (format!("{:.1}", reading.appended_per_second)) " events/s" }
            @if reading.not_live.is_empty() {
                span.pill.ok #not-live data-count="0" { "all " (reading.consumers) " consumers LIVE" }
            } @else {
                a.pill.bad #not-live href="/console/projections"
                    data-count=(reading.not_live.len())
                    title=(reading.not_live.iter().map(|(n, s)| format!("{n}: {s}")).collect::<Vec<_>>().join(", ")) {
                    (reading.not_live.len()) " not LIVE"
                }
            }
            (reachability("postgres", &reading.postgres))
            (reachability("rabbitmq", &reading.rabbitmq))
            @match verified {
                None => a.pill #verify href="/console/verify" { "log: verifying…" },
                Some(Verified { outcome: Ok(v), at, .. }) if v.ok() => {
                    a.pill.ok #verify href="/console/verify" data-ok="true"
                        title=(format!("verified {}", page::instant(*at))) {
                        "log verified · " (seal_text(v))
                    }
                }
                Some(Verified { outcome: Ok(v), .. }) => {
                    a.pill.bad #verify href="/console/verify" data-ok="false" {
                        "log does NOT verify"
                        @if let Some(m) = &v.first_mismatch { " at " (m.position.token()) }
                    }
                }
                Some(Verified { outcome: Err(e), .. }) => {
                    a.pill.bad #verify href="/console/verify" title=(e) { "log verification failed to run" }
                }
            }
        }
    }
}

/// The header, as a page embeds it.
pub(crate) async fn header(state: &AppState) -> Markup {
    let reading = reading(state).await;
    render(&reading, verified(state).as_ref())
}

/// `GET /console/health`: the header alone, for htmx to swap in.
pub(crate) async fn fragment(State(state): State<AppState>, _viewer: Viewer) -> Response {
    header(&state).await.into_response()
}

/// `GET /console/verify`: the log's hash chain recomputed now, in full.
pub(crate) async fn verify_page(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
) -> Response {
    let outcome = match verify::verify(&state.pool, None).await {
        Ok(v) => v,
        Err(e) => return page::error_page(&state, &viewer, &headers, e.into()).await,
    };
    {
        let mut cache = state.console.lock();
        cache.verified = Some(Verified {
            taken: Instant::now(),
            at: Utc::now(),
            outcome: Ok(outcome.clone()),
        });
    }
    let body = html! {
        p #verify-result class=(if outcome.ok() { "message ok" } else { "message error" }) role="status" {
            @if outcome.ok() { "Every seal and every event matched." }
            @else { "The log does not match what was sealed." }
        }
        dl.facts {
            dt { "Verified through" } dd { (outcome.verified_through.map_or("nothing yet".to_owned(), |p| p.token())) }
            dt { "Seals checked" } dd { (outcome.seals_checked) }
            dt { "Events checked against seals" } dd { (outcome.events_sealed) }
            dt { "Events after the latest seal" } dd { (outcome.events_unsealed) }
            dt { "Latest seal" } dd {
                @match &outcome.latest_seal {
                    Some(seal) => { "#" (seal.seal_id) " " code { (hex(&seal.seal)) } " through " (seal.through.token()) },
                    None => "none yet",
                }
            }
            @if let Some(m) = &outcome.first_mismatch {
                dt { "First mismatch" } dd {
                    a href=(format!("/console/events/{}", m.position.token())) { (m.position.token()) }
                    " " (m.kind.describe())
                }
            }
        }
        p.hint { "The same as " code { "GET /api/v1/admin/log/verify" } " and " code { "commerce events verify" } "." }
    };
    page::render(&state, &viewer, "Log verification", Nav::None, body)
        .await
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(postgres: Result<(), String>, rabbitmq: Result<(), String>) -> Reading {
        Reading {
            taken: Instant::now(),
            relay_lag: Some(12),
            appended_per_second: 3.5,
            consumers: 10,
            not_live: vec![("carts".to_owned(), "FAILED")],
            postgres,
            rabbitmq,
        }
    }

    #[test]
    fn the_header_says_what_is_down_and_behind() {
        let html =
            render(&reading(Ok(()), Err("connection refused".to_owned())), None).into_string();
        assert!(
            html.contains(r#"class="pill ok" data-check="postgres">postgres up"#),
            "{html}"
        );
        assert!(
            html.contains(
                r#"class="pill bad" data-check="rabbitmq" title="connection refused">rabbitmq down"#
            ),
            "{html}"
        );
        assert!(
            html.contains(r#"class="pill warn" data-lag="12">relay lag 12"#),
            "{html}"
        );
        assert!(html.contains("3.5 events/s"), "{html}");
        assert!(
            html.contains(r#"data-count="1" title="carts: FAILED">1 not LIVE"#),
            "{html}"
        );
        assert!(html.contains("log: verifying"), "{html}");
        assert!(
            html.contains(r#"hx-trigger="every 2s""#),
            "it refreshes itself"
        );
    }

    #[test]
    fn a_log_that_does_not_verify_is_flagged() {
        let broken = Verification {
            verified_through: None,
            seals_checked: 1,
            events_sealed: 3,
            events_unsealed: 0,
            latest_seal: None,
            first_mismatch: Some(verify::Mismatch {
                position: commerce_event_store::Position::new(812, 40),
                seal_id: Some(1),
                kind: verify::MismatchKind::ContentChanged,
            }),
        };
        let verified = Verified {
            taken: Instant::now(),
            at: Utc::now(),
            outcome: Ok(broken),
        };
        let html = render(&reading(Ok(()), Ok(())), Some(&verified)).into_string();
        assert!(
            html.contains(r#"class="pill bad" id="verify" href="/console/verify" data-ok="false">log does NOT verify at 812.40"#),
            "{html}"
        );
    }
}
