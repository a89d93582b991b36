//! Security headers on every response. The interactive docs need inline scripts and styles, so
//! they get a content security policy of their own; the console loads scripts, styles and
//! requests from its own origin only (no inline script or style anywhere).

use axum::http::{header, HeaderMap, HeaderValue};

/// Which part of the application answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `/api/v1`, the operations endpoints: JSON only.
    Api,
    /// `/docs`: Swagger UI.
    Docs,
    /// `/console`: the server-rendered console.
    Console,
}

impl Surface {
    /// The surface serving `path`.
    pub fn of(path: &str) -> Self {
        if path.starts_with("/docs") {
            Self::Docs
        } else if path == "/console" || path.starts_with("/console/") {
            Self::Console
        } else {
            Self::Api
        }
    }
}

/// Adds the headers to a response of `surface`.
pub fn add(surface: Surface, h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000; includeSubDomains"),
    );
    h.insert(
        "cross-origin-resource-policy",
        HeaderValue::from_static("same-origin"),
    );
    let csp = match surface {
        Surface::Docs => "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        Surface::Console => "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        Surface::Api => "default-src 'none'; frame-ancestors 'none'",
    };
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
}
