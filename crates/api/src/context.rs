//! Per-request context: the request id (the correlation id of every event the request causes,
//! guarantee 8) and the metadata a command is written with.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use commerce_event_store::EventMetadata;

use crate::auth::Caller;

/// The request's id: the client's `X-Request-Id` when it is sane, else a fresh UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(parts
            .extensions
            .get::<Self>()
            .cloned()
            .unwrap_or_else(|| Self(uuid::Uuid::new_v4().to_string())))
    }
}

impl RequestId {
    /// Metadata of a command `caller` sends in this request.
    pub fn metadata(&self, caller: &Caller) -> EventMetadata {
        EventMetadata::new(caller.actor(), self.0.clone())
    }

    /// Metadata of a command sent by someone not signed in (registration): the actor is named.
    pub fn metadata_as(&self, actor: impl Into<String>) -> EventMetadata {
        EventMetadata::new(actor, self.0.clone())
    }
}
