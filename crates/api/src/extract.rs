//! Our own extractors for JSON bodies, paths and queries, so every rejection has the API's error
//! body (400 with the failing field, 413, 415) instead of axum's plain-text defaults.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body (1 MiB).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// A JSON body: 415 unless `Content-Type` is JSON, 413 over [`BODY_LIMIT`], 400 naming the field
/// for malformed JSON or a wrong type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| match e {
            BytesRejection::FailedToBufferBody(_) => {
                ApiError::PayloadTooLarge { limit: BODY_LIMIT }
            }
            other => ApiError::bad_request(other.body_text()),
        })?;
        parse_json(&bytes).map(Self)
    }
}

/// Parses a JSON body, naming the failing field. Every request body of the API is an object:
/// anything else is refused here, once for every route (serde's derived structs would otherwise
/// take an array as the fields in order, so `[null, null]` passed as an empty update).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(&b'{') {
        return Err(ApiError::BadRequest {
            code: "validation_failed",
            message: "invalid JSON body: expected a JSON object".to_owned(),
            details: None,
        });
    }
    if has_nul_escape(bytes) {
        // Postgres text and jsonb cannot hold NUL; refusing it here keeps it from becoming a 500.
        return Err(ApiError::BadRequest {
            code: "validation_failed",
            message: "strings must not contain NUL characters (\\u0000)".to_owned(),
            details: None,
        });
    }
    let bytes = integral_numbers(bytes);
    let de = &mut serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.to_string();
        // serde's own text ends with " at line 1 column 12"; the field path says more.
        let message = message
            .split(" at line ")
            .next()
            .unwrap_or(&message)
            .to_owned();
        if inner.is_syntax() || inner.is_eof() || path == "." {
            ApiError::BadRequest {
                code: if inner.is_data() {
                    "validation_failed"
                } else {
                    "malformed_json"
                },
                message: format!("invalid JSON body: {message}"),
                details: None,
            }
        } else {
            ApiError::invalid_field(&path, message)
        }
    })
}

/// The JSON text with every number whose fraction is all zeros written without it (`2.0` → `2`,
/// `19.00` → `19`): JSON Schema's `integer` includes `2.0`, serde's integers do not, and an amount
/// keeps its value. Strings are left as they are; text with no such number is not copied.
fn integral_numbers(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    let mut in_string = false;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            match b {
                b'\\' => i += 1,
                b'"' => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        if !(b.is_ascii_digit() || b == b'-') {
            i += 1;
            continue;
        }
        // A number: digits, then maybe a fraction, then maybe an exponent.
        let mut end = i + 1;
        while end < bytes.len() && bytes[end].is_ascii_digit() {
            end += 1;
        }
        if end < bytes.len() && bytes[end] == b'.' {
            let dot = end;
            end += 1;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            let exponent = end < bytes.len() && matches!(bytes[end], b'e' | b'E');
            let zeros = end > dot + 1 && bytes[dot + 1..end].iter().all(|d| *d == b'0');
            if zeros && !exponent {
                let buffer = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                buffer.extend_from_slice(&bytes[copied..dot]);
                copied = end;
            }
        }
        i = end;
    }
    match out {
        None => std::borrow::Cow::Borrowed(bytes),
        Some(mut buffer) => {
            buffer.extend_from_slice(&bytes[copied..]);
            std::borrow::Cow::Owned(buffer)
        }
    }
}

/// Whether the JSON text holds a `\u0000` escape (one not itself preceded by an escaping
/// backslash).
fn has_nul_escape(bytes: &[u8]) -> bool {
    bytes.windows(6).enumerate().any(|(i, w)| {
        w.eq_ignore_ascii_case(b"\\u0000")
            && bytes[..i].iter().rev().take_while(|b| **b == b'\\').count() % 2 == 0
    })
}

fn has_encoded_nul(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| w.eq_ignore_ascii_case(b"%00"))
}

fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// Path parameters; a malformed id is a 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if has_encoded_nul(parts.uri.path()) {
            return Err(ApiError::BadRequest {
                code: "invalid_path",
                message: "paths must not contain NUL characters".to_owned(),
                details: None,
            });
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e: PathRejection| ApiError::BadRequest {
                code: "invalid_path",
                message: e.body_text(),
                details: None,
            })
    }
}

/// Query parameters; a wrong type or unknown value is a 400.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if parts.uri.query().is_some_and(has_encoded_nul) {
            return Err(ApiError::BadRequest {
                code: "invalid_query",
                message: "query parameters must not contain NUL characters".to_owned(),
                details: None,
            });
        }
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e: QueryRejection| ApiError::BadRequest {
                code: "invalid_query",
                message: e.body_text(),
                details: None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_are_found_but_escaped_backslashes_are_not_mistaken_for_them() {
        assert!(has_nul_escape(br#"{"a": "x\u0000y"}"#));
        assert!(!has_nul_escape(br#"{"a": "x\\u0000y"}"#));
        assert!(has_nul_escape(br#"{"a": "x\\\u0000y"}"#));
        assert!(!has_nul_escape(br#"{"a": "plain"}"#));
    }

    #[test]
    fn integral_numbers_lose_their_zero_fraction_and_nothing_else_changes() {
        let text = |b: &[u8]| String::from_utf8(integral_numbers(b).into_owned()).unwrap();
        assert_eq!(
            text(br#"{"q": 2.0, "p": 19.00, "r": -3.000, "a": 1.50, "e": 1.0e3}"#),
            r#"{"q": 2, "p": 19, "r": -3, "a": 1.50, "e": 1.0e3}"#
        );
        assert_eq!(
            text(br#"{"s": "2.0 \" 3.0", "n": [1.0,2.00]}"#),
            r#"{"s": "2.0 \" 3.0", "n": [1,2]}"#
        );
        assert!(matches!(
            integral_numbers(br#"{"q": 2}"#),
            std::borrow::Cow::Borrowed(_)
        ));
        #[derive(Debug, serde::Deserialize)]
        struct Quantity {
            quantity: u32,
        }
        let q: Quantity = parse_json(br#"{"quantity": 421.0}"#).unwrap();
        assert_eq!(q.quantity, 421);
        assert!(parse_json::<Quantity>(br#"{"quantity": 1.5}"#).is_err());
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Update {
        name: Option<String>,
        phone: Option<String>,
    }

    #[test]
    fn a_body_that_is_not_an_object_is_refused_even_where_serde_would_take_it() {
        for body in ["[null, null]", "[]", "null", "42", "\"x\"", "", "  "] {
            let refused = parse_json::<Update>(body.as_bytes()).unwrap_err();
            assert!(
                matches!(refused, ApiError::BadRequest { .. }),
                "{body}: {refused:?}"
            );
        }
        assert!(parse_json::<Update>(b" \n{\"name\": \"A\"}").is_ok());
    }
}
