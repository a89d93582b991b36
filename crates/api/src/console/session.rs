//! Console sign-in and sessions.
//!
//! Sign-in takes the API's credentials (the same check as `POST /auth/login`: a deactivated or
//! erased account is refused) and admits admins and auditors only. A session is a random token in
//! an `HttpOnly`, `SameSite=Strict` cookie scoped to `/console`; the table keeps its SHA-256. It
//! ends after [`IDLE`] without a request or [`LIFETIME`] after sign-in, whichever comes first, and
//! at sign-out. Every request re-reads the user's stream, so a role taken away or a deactivation
//! takes effect at once.
//!
//! Every state-changing request carries the session's CSRF token (a form field, or the
//! `X-CSRF-Token` header htmx sends from the page) and must not come from another site
//! (`Sec-Fetch-Site`, `Origin`); the sign-in form carries a token tied to a short-lived cookie.

use std::time::Duration;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use commerce_domain::user::{Role, User};
use maud::{html, DOCTYPE};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::page;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// A session ends after this long without a request.
pub(crate) const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, however busy.
pub(crate) const LIFETIME: Duration = Duration::from_secs(12 * 3600);

const SESSION_COOKIE: &str = "console_session";
const LOGIN_COOKIE: &str = "console_login";

/// A signed-in admin or auditor.
#[derive(Debug, Clone)]
pub(crate) struct Viewer {
    /// Who, with their current roles.
    pub(crate) caller: Caller,
    /// The session's CSRF token.
    pub(crate) csrf: String,
    /// What the header shows: the email, or the id when the email is erased.
    pub(crate) label: String,
}

impl Viewer {
    pub(crate) fn is_admin(&self) -> bool {
        self.caller.is_admin()
    }

    pub(crate) fn role(&self) -> &'static str {
        if self.is_admin() {
            "admin"
        } else {
            "auditor"
        }
    }

    /// 403 unless the viewer is an admin: auditors see no button that changes anything, and
    /// this refuses the request should one be forged.
    pub(crate) fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "auditors read the console; only admins may change anything".to_owned(),
            ))
        }
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

/// Equal texts, compared in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

fn set_cookie(headers: &HeaderMap, name: &str, value: &str, max_age: Duration) -> HeaderValue {
    let secure = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"));
    let text = format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    // The value is base64url and the rest ASCII: always a valid header.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("console_login=x"))
}

/// Why a request has no viewer.
#[derive(Debug)]
pub(crate) enum NoViewer {
    /// No cookie, or a session that ended.
    SignedOut,
    /// The account lost its admin and auditor roles, or was deactivated.
    Refused,
    /// The database failed.
    Failed(ApiError),
}

async fn viewer(parts: &Parts, state: &AppState) -> Result<Viewer, NoViewer> {
    let token = cookie(&parts.headers, SESSION_COOKIE).ok_or(NoViewer::SignedOut)?;
    let row: Option<(Uuid, String)> = sqlx::query_as(
        "UPDATE api.console_sessions SET last_seen = now() \
         WHERE token_hash = $1 AND expires_at > now() \
           AND last_seen > now() - make_interval(secs => $2) \
         RETURNING user_id, csrf",
    )
    .bind(digest(token))
    .bind(IDLE.as_secs_f64())
    .fetch_optional(&state.pool)
    .await
    .map_err(|e| NoViewer::Failed(ApiError::internal(e)))?;
    let (user_id, csrf) = row.ok_or(NoViewer::SignedOut)?;
    let (user, _) = state
        .aggregates
        .load::<User>(&user_id.to_string())
        .await
        .map_err(|e| NoViewer::Failed(e.into()))?;
    if !(user.is_active() && may_use_console(&user)) {
        end(state, token).await;
        return Err(NoViewer::Refused);
    }
    let label = if user.is_erased() || user.email().is_empty() {
        user_id.to_string()
    } else {
        user.email().to_owned()
    };
    Ok(Viewer {
        caller: Caller {
            user_id,
            roles: user.roles().to_vec(),
        },
        csrf,
        label,
    })
}

async fn end(state: &AppState, token: &str) {
    let deleted = sqlx::query("DELETE FROM api.console_sessions WHERE token_hash = $1")
        .bind(digest(token))
        .execute(&state.pool)
        .await;
    if let Err(error) = deleted {
        tracing::warn!(error = %error, "could not delete a console session");
    }
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match viewer(parts, state).await {
            Ok(viewer) => Ok(viewer),
            Err(NoViewer::Failed(error)) => Err(page::message_page(
                &parts.headers,
                error.status(),
                "Console unavailable",
                &page::explain(&error),
            )),
            Err(why) => {
                let reason = match why {
                    NoViewer::Refused => "refused",
                    _ => "expired",
                };
                let path = parts.uri.path();
                let next =
                    if parts.method == axum::http::Method::GET && !page::is_htmx(&parts.headers) {
                        format!("&next={}", page::query_value(path))
                    } else {
                        String::new()
                    };
                let to = format!("/console/login?m={reason}{next}");
                if page::is_htmx(&parts.headers) {
                    // htmx follows this with a whole-page navigation.
                    let mut response = StatusCode::OK.into_response();
                    if let Ok(value) = HeaderValue::from_str(&to) {
                        response.headers_mut().insert("hx-redirect", value);
                    }
                    Err(response)
                } else {
                    Err(Redirect::to(&to).into_response())
                }
            }
        }
    }
}

/// A viewer if the request has a live session.
#[derive(Debug)]
pub(crate) struct MaybeViewer(pub(crate) Option<Viewer>);

impl FromRequestParts<AppState> for MaybeViewer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(Self(viewer(parts, state).await.ok()))
    }
}

/// Refuses a state-changing request that does not carry the session's CSRF token or that
/// another site sent.
pub(crate) fn check_csrf(
    viewer: &Viewer,
    headers: &HeaderMap,
    field: Option<&str>,
) -> Result<(), ApiError> {
    if from_elsewhere(headers) {
        return Err(ApiError::Forbidden(
            "this request came from another site; the console refuses it".to_owned(),
        ));
    }
    let sent = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .or(field);
    match sent {
        Some(token) if same(token, &viewer.csrf) => Ok(()),
        _ => Err(ApiError::Forbidden(
            "this form is not from your console session (missing or wrong CSRF token); \
             reload the page and try again"
                .to_owned(),
        )),
    }
}

/// The checks of every admin action: the session's CSRF token (header or `csrf` form field),
/// from the console's own origin, by an admin.
pub(crate) fn admin_action(
    viewer: &Viewer,
    headers: &HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<(), ApiError> {
    let field = form.ok().and_then(|f| f.0.csrf);
    check_csrf(viewer, headers, field.as_deref())?;
    viewer.require_admin()
}

/// Whether the browser says another site sent the request.
fn from_elsewhere(headers: &HeaderMap) -> bool {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("same-origin");
    if !matches!(site, "same-origin" | "none") {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        host,
    ) {
        (Some(origin), Some(host)) => {
            let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            origin != "null" && origin_host != host
        }
        (Some(origin), None) => origin == "null",
        _ => false,
    }
}

/// `?m=` and `?next=` of the sign-in page.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginQuery {
    m: Option<String>,
    next: Option<String>,
}

/// The sign-in form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    next: String,
}

/// Where to go after sign-in: a console page, never another site.
fn destination(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with("/console/")
                && !n.starts_with("/console/login")
                && !n.contains("//")
                && !n.contains('\\') =>
        {
            n.to_owned()
        }
        _ => "/console/projections".to_owned(),
    }
}

/// Admins and auditors use the console; customers do not.
fn may_use_console(user: &User) -> bool {
    user.roles().contains(&Role::Admin) || user.roles().contains(&Role::Auditor)
}

/// What a refused sign-in says, whatever the reason (as the API's 401).
const WRONG_CREDENTIALS: &str = "Wrong email or password, or the account is deactivated.";

fn login_form(
    request: &HeaderMap,
    status: StatusCode,
    message: Option<(&str, bool)>,
    next: &str,
) -> Response {
    let token = random_token();
    let form = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · Commerce console" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body.bare {
                main #main.login {
                    h1 { "Commerce console" }
                    p { "For admins and auditors. Sign in with your platform account." }
                    @if let Some((text, error)) = message {
                        p.message.error[error] role="alert" { (text) }
                    }
                    form #login method="post" action="/console/login" {
                        input type="hidden" name="csrf" value=(token);
                        input type="hidden" name="next" value=(next);
                        label { "Email" input #email type="email" name="email" autocomplete="username" required; }
                        label { "Password" input #password type="password" name="password" autocomplete="current-password" required; }
                        button #sign-in type="submit" { "Sign in" }
                    }
                }
            }
        }
    };
    let mut response = (status, form).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(request, LOGIN_COOKIE, &token, Duration::from_secs(600)),
    );
    response
}

/// `GET /console/login`.
pub(crate) async fn login_page(
    viewer: MaybeViewer,
    headers: HeaderMap,
    query: Result<Query<LoginQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|q| q.0).unwrap_or_default();
    if viewer.0.is_some() {
        return Redirect::to(&destination(query.next.as_deref())).into_response();
    }
    let message = match query.m.as_deref() {
        Some("expired") => Some(("Your session has ended. Sign in again.", false)),
        Some("refused") => Some((
            "Your account may no longer use the console (it is deactivated, or no longer admin or auditor).",
            true,
        )),
        Some("signed_out") => Some(("You are signed out.", false)),
        _ => None,
    };
    let next = destination(query.next.as_deref());
    login_form(&headers, StatusCode::OK, message, &next)
}

/// `POST /console/login`.
pub(crate) async fn login(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return login_form(
            &headers,
            StatusCode::BAD_REQUEST,
            Some(("The sign-in form arrived malformed; try again.", true)),
            "/console/projections",
        );
    };
    let next = destination(Some(&form.next));
    let expected = cookie(&headers, LOGIN_COOKIE).unwrap_or_default();
    if from_elsewhere(&headers) || expected.is_empty() || !same(expected, &form.csrf) {
        return login_form(
            &headers,
            StatusCode::FORBIDDEN,
            Some((
                "This sign-in form expired or was not sent by the console; sign in again.",
                true,
            )),
            &next,
        );
    }
    let user =
        match crate::routes::auth::authenticate(&state, form.email.trim(), form.password).await {
            Ok(user) => user,
            Err(ApiError::Unauthorized(_)) => {
                return login_form(
                    &headers,
                    StatusCode::UNAUTHORIZED,
                    Some((WRONG_CREDENTIALS, true)),
                    &next,
                )
            }
            Err(error) => {
                let text = page::explain(&error);
                return login_form(&headers, error.status(), Some((&text, true)), &next);
            }
        };
    let Some(user_id) = user.user_id() else {
        return login_form(
            &headers,
            StatusCode::UNAUTHORIZED,
            Some((WRONG_CREDENTIALS, true)),
            &next,
        );
    };
    if !may_use_console(&user) {
        return login_form(
            &headers,
            StatusCode::FORBIDDEN,
            Some((
                "The console is for admins and auditors; this account is neither.",
                true,
            )),
            &next,
        );
    }
    let token = random_token();
    let created = start(&state, user_id, &token).await;
    if let Err(error) = created {
        let text = page::explain(&error);
        return login_form(
            &headers,
            StatusCode::SERVICE_UNAVAILABLE,
            Some((&text, true)),
            &next,
        );
    }
    tracing::info!(user_id = %user_id, "console sign-in");
    let mut response = Redirect::to(&next).into_response();
    let cookies = response.headers_mut();
    cookies.append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, &token, LIFETIME),
    );
    cookies.append(
        header::SET_COOKIE,
        set_cookie(&headers, LOGIN_COOKIE, "", Duration::ZERO),
    );
    response
}

async fn start(state: &AppState, user_id: Uuid, token: &str) -> Result<(), ApiError> {
    let mut tx = state.pool.begin().await.map_err(ApiError::internal)?;
    // Sessions that ended are deleted on the way.
    sqlx::query(
        "DELETE FROM api.console_sessions \
         WHERE expires_at < now() OR last_seen < now() - make_interval(secs => $1)",
    )
    .bind(IDLE.as_secs_f64())
    .execute(&mut *tx)
    .await
    .map_err(ApiError::internal)?;
    sqlx::query(
        "INSERT INTO api.console_sessions (token_hash, user_id, csrf, expires_at) \
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(digest(token))
    .bind(user_id)
    .bind(random_token())
    .bind(LIFETIME.as_secs_f64())
    .execute(&mut *tx)
    .await
    .map_err(ApiError::internal)?;
    tx.commit().await.map_err(ApiError::internal)
}

/// The sign-out form.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub(crate) csrf: Option<String>,
}

/// `POST /console/logout`.
pub(crate) async fn logout(
    State(state): State<AppState>,
    viewer: Viewer,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let field = form.ok().and_then(|f| f.0.csrf);
    if let Err(error) = check_csrf(&viewer, &headers, field.as_deref()) {
        return page::error_page(&state, &viewer, &headers, error).await;
    }
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        end(&state, token).await;
    }
    let mut response = Redirect::to("/console/login?m=signed_out").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&headers, SESSION_COOKIE, "", Duration::ZERO),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_pages_are_destinations() {
        assert_eq!(
            destination(Some("/console/events?x=1")),
            "/console/events?x=1"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/console/",
            "/console//evil",
            "/api/v1/users",
            "/console/login?next=/x",
            "/console/\\evil",
        ] {
            assert_eq!(destination(Some(bad)), "/console/projections", "{bad}");
        }
        assert_eq!(destination(None), "/console/projections");
    }

    #[test]
    fn requests_from_other_sites_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("shop.example"));
        assert!(!from_elsewhere(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://shop.example"),
        );
        assert!(!from_elsewhere(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(from_elsewhere(&h));
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(from_elsewhere(&h));
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xconsole_session=a; console_session=b"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("b"));
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
    }
}
