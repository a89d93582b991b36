//! `/admin`: operating the read side (consumer health, rebuild, retry, skip) and auditing the log
//! (the global log filtered and paged, one stream in order).
//!
//! Projection management is admin-only; the log views are for admins and auditors. Every event
//! these routes show passes through `entry`, which redacts any field named like a secret: the log
//! holds no credential (guarantee 9, `docs/audit.md`), and should one ever slip into a payload, an
//! audit view still never shows it.
//!
//! - `projections`: `GET /admin/projections`, `POST /admin/projections/{name}/{rebuild,retry,skip}`.
//! - `log`: `GET /admin/events`, `GET /admin/streams/{aggregate_type}/{aggregate_id}`.
//! - `verify`: `GET /admin/log/verify`, the hash chain recomputed (guarantee 10).

pub(crate) mod log;
pub(crate) mod projections;
pub(crate) mod verify;

use chrono::{DateTime, Utc};
use commerce_event_store::StoredEvent;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::state::AppState;

/// What replaces a secret in an event's data.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// Payload fields that never leave the server, at any depth.
const SECRET_FIELDS: &[&str] = &["password_hash", "password"];

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(projections::list))
        .routes(routes!(projections::rebuild))
        .routes(routes!(projections::retry))
        .routes(routes!(projections::skip))
        .routes(routes!(log::events))
        .routes(routes!(log::stream))
        .routes(routes!(verify::verify_log))
}

/// One event of the log as the audit views show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct EventEntry {
    /// Position token of the event (usable as `after` and `X-Min-Position`).
    pub(crate) position: String,
    /// The event's id; the `causation_id` of the events it caused.
    pub(crate) event_id: Uuid,
    /// When it was written.
    pub(crate) recorded_at: DateTime<Utc>,
    /// The aggregate's type, e.g. `Order`.
    pub(crate) aggregate_type: String,
    /// The aggregate instance.
    pub(crate) aggregate_id: String,
    /// The aggregate's version after this event, from 1.
    pub(crate) version: i64,
    /// The event's name, e.g. `OrderPlaced`.
    pub(crate) event_type: String,
    /// The user id (or `system:<process>`) on whose behalf it was written.
    pub(crate) actor: String,
    /// The request id of the HTTP request that caused it, carried along by the processes.
    pub(crate) correlation_id: String,
    /// The id of the event a process reacted to, for events a process wrote.
    pub(crate) causation_id: Option<String>,
    /// The W3C trace context (`00-<trace id>-<span id>-<flags>`) of the span that appended the
    /// event, when the platform was exporting traces (`OTEL_EXPORTER_OTLP_ENDPOINT`): the trace id
    /// finds the whole request, through every process, in the tracing backend. Left out
    /// otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) traceparent: Option<String>,
    /// The event's fields, secrets redacted.
    #[schema(value_type = Object)]
    pub(crate) data: Value,
}

/// `event` as an audit entry: the event's own fields as `data` (the payload without its variant
/// tag, which `event_type` already names), with every secret field replaced by `"[REDACTED]"`.
pub(crate) fn entry(event: &StoredEvent) -> EventEntry {
    let mut data = match &event.payload {
        Value::Object(tagged) if tagged.len() == 1 => match tagged.get(&event.event_type) {
            Some(fields) => fields.clone(),
            None => event.payload.clone(),
        },
        other => other.clone(),
    };
    redact(&mut data);
    EventEntry {
        position: event.position.token(),
        event_id: event.event_id,
        recorded_at: event.recorded_at,
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        version: event.sequence,
        event_type: event.event_type.clone(),
        actor: event.metadata.actor.clone(),
        correlation_id: event.metadata.correlation_id.clone(),
        causation_id: event.metadata.causation_id.clone(),
        traceparent: event.metadata.traceparent.clone(),
        data,
    }
}

/// Replaces the value of every secret field, in nested objects and arrays too (an event may
/// carry a user inside another structure).
fn redact(value: &mut Value) {
    match value {
        Value::Object(fields) => {
            for (key, field) in fields.iter_mut() {
                if SECRET_FIELDS.contains(&key.as_str()) {
                    *field = Value::String(REDACTED.to_owned());
                } else {
                    redact(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commerce_domain::user::User;
    use commerce_event_store::{EventMetadata, Position};
    use cqrs_es::Aggregate;
    use serde_json::json;

    fn stored(event_type: &str, payload: Value) -> StoredEvent {
        StoredEvent {
            event_id: Uuid::nil(),
            position: Position::new(7, 3),
            recorded_at: Utc::now(),
            aggregate_type: User::TYPE.to_owned(),
            aggregate_id: "u1".to_owned(),
            sequence: 1,
            event_type: event_type.to_owned(),
            event_version: "1.0".to_owned(),
            payload,
            metadata: EventMetadata::new("admin", "req-1"),
        }
    }

    #[test]
    fn password_hashes_are_redacted_at_any_depth() {
        let event = stored(
            "UserRegistered",
            json!({"UserRegistered": {
                "email": "a@example.com",
                "password_hash": "$argon2id$v=19$secret",
                "nested": [{"password_hash": "x", "keep": 1}]
            }}),
        );
        let e = entry(&event);
        assert_eq!(e.data["password_hash"], REDACTED);
        assert_eq!(e.data["nested"][0]["password_hash"], REDACTED);
        assert_eq!(e.data["nested"][0]["keep"], 1);
        assert_eq!(e.data["email"], "a@example.com");
        assert!(!serde_json::to_string(&e).unwrap().contains("argon2"));
    }

    #[test]
    fn the_variant_tag_is_unwrapped_only_when_it_names_the_event() {
        let tagged = entry(&stored("Renamed", json!({"Renamed": {"name": "b"}})));
        assert_eq!(tagged.data, json!({"name": "b"}));
        let other = entry(&stored("Renamed", json!({"name": "b"})));
        assert_eq!(other.data, json!({"name": "b"}));
        assert_eq!(other.position, "7.3");
        assert_eq!(other.actor, "admin");
        assert_eq!(other.correlation_id, "req-1");
    }
}
