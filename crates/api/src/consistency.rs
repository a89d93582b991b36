//! Read-your-writes (guarantee 7) over HTTP. Command responses carry `X-Event-Position`, the
//! position of the command's last event; a query that sends it back as `X-Min-Position` waits,
//! bounded, until the read model behind it has applied that position. Without the header, a
//! signed-in caller's query waits for that caller's own latest event (found in the log by its
//! actor), so clients that know nothing of our headers still read their own writes.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use commerce_event_store::Position;
use serde::Serialize;

use crate::auth::Caller;
use crate::envelope::Data;
use crate::error::ApiError;
use crate::state::AppState;

/// Response header with the position of a command's last event.
pub const EVENT_POSITION: HeaderName = HeaderName::from_static("x-event-position");
/// Request header asking a query to reflect at least this position.
pub const MIN_POSITION: HeaderName = HeaderName::from_static("x-min-position");

/// What a query must reflect: the `X-Min-Position` it was sent with or, without one, every write
/// of the signed-in caller (guarantee 7: a caller's reads show its own writes without asking, on
/// any API instance, since the position comes from the log).
#[derive(Debug, Clone, Default)]
pub struct MinPosition {
    /// The position asked for in the header.
    pub position: Option<Position>,
    /// The signed-in caller's actor id, when no position was asked for.
    actor: Option<String>,
}

impl MinPosition {
    /// Only what the header asked for: for a command that reads a model before writing, where
    /// waiting for the caller's every earlier write would only add latency.
    pub fn header_only(self) -> Self {
        Self {
            actor: None,
            ..self
        }
    }

    /// At least `position` (what a handler waits for after its own write).
    pub fn at(position: Position) -> Self {
        Self {
            position: Some(position),
            actor: None,
        }
    }
}

impl FromRequestParts<AppState> for MinPosition {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match parts.headers.get(&MIN_POSITION) {
            None => {
                // A bad token is the caller extractor's 401 to give, not this one's.
                let caller = if parts.headers.contains_key(AUTHORIZATION) {
                    Caller::from_request_parts(parts, state).await.ok()
                } else {
                    None
                };
                Ok(Self {
                    position: None,
                    actor: caller.map(|c| c.actor()),
                })
            }
            Some(value) => value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<Position>().ok())
                .map(Self::at)
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "X-Min-Position",
                        "must be a position token from X-Event-Position",
                    )
                }),
        }
    }
}

impl MinPosition {
    /// Waits until every projection in `names` has applied the position asked for, or the
    /// caller's own latest write; 503 with `Retry-After` when they do not get there within the
    /// configured bound.
    pub async fn wait(&self, state: &AppState, names: &[&str]) -> Result<(), ApiError> {
        let position = match (self.position, &self.actor) {
            // Every read model has applied the start of the log: nothing to wait for.
            (Some(position), _) if position == Position::START => return Ok(()),
            (Some(position), _) => position,
            (None, Some(actor)) => match state.own_writes.pending(names, actor).await? {
                Some(position) => position,
                None => return Ok(()),
            },
            (None, None) => return Ok(()),
        };
        let reached = commerce_projections::wait::wait_for(
            &state.pool,
            names,
            position,
            state.config.read_wait,
        )
        .await?;
        if reached {
            Ok(())
        } else {
            Err(ApiError::Unavailable(format!(
                "the read model has not reached position {position} yet; retry shortly"
            )))
        }
    }
}

/// A command's answer: status, body and the `X-Event-Position` of what it wrote.
#[derive(Debug)]
pub struct Written<T> {
    /// 200, 201, 202 or 204.
    pub status: StatusCode,
    /// The position of the command's last event, or of the aggregate's latest event when the
    /// command was an idempotent repeat.
    pub position: Position,
    /// The body; `None` for 204.
    pub body: Option<Data<T>>,
}

impl<T> Written<T> {
    /// A 200/201 with `data`.
    pub fn new(status: StatusCode, position: Position, data: T) -> Self {
        Self {
            status,
            position,
            body: Some(Data::new(data)),
        }
    }
}

impl Written<()> {
    /// A 204.
    pub fn no_content(position: Position) -> Self {
        Self {
            status: StatusCode::NO_CONTENT,
            position,
            body: None,
        }
    }
}

impl<T: Serialize> IntoResponse for Written<T> {
    fn into_response(self) -> Response {
        let mut response = match self.body {
            Some(body) => (self.status, axum::Json(body)).into_response(),
            None => self.status.into_response(),
        };
        if let Ok(value) = HeaderValue::from_str(&self.position.token()) {
            response.headers_mut().insert(EVENT_POSITION, value);
        }
        response
    }
}
