//! An event as read back from the log, with everything a consumer or an auditor needs.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;

use crate::Position;

/// Who caused an event and why (guarantee 8). Stored as the event row's `metadata`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EventMetadata {
    /// The user id (or `system:<process>`) on whose behalf the command ran.
    pub actor: String,
    /// The request id of the HTTP request (or the correlation id of the event a saga reacted to).
    pub correlation_id: String,
    /// The id of the event that led to this command, for process-manager commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<String>,
    /// The W3C `traceparent` of the span that appended the event, when tracing is on
    /// (`OTEL_EXPORTER_OTLP_ENDPOINT`): the relay's publish, each consumer's apply and the
    /// commands a process sends in reaction are its children, so one request is one trace.
    /// Absent when tracing is off. Written by the store ([`crate::trace`]), never by callers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The W3C `tracestate` travelling with [`Self::traceparent`], when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl EventMetadata {
    /// Metadata for a command an actor sent directly.
    pub fn new(actor: impl Into<String>, correlation_id: impl Into<String>) -> Self {
        Self {
            actor: actor.into(),
            correlation_id: correlation_id.into(),
            ..Self::default()
        }
    }

    /// Metadata for a command caused by `event`: same correlation, causation = that event.
    pub fn caused_by(actor: impl Into<String>, event: &StoredEvent) -> Self {
        Self {
            actor: actor.into(),
            correlation_id: event.metadata.correlation_id.clone(),
            causation_id: Some(event.event_id.to_string()),
            ..Self::default()
        }
    }
}

/// One committed event of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    /// Unique id of the event (the AMQP message id).
    pub event_id: Uuid,
    /// Where it sits in the global log.
    pub position: Position,
    /// When it was written.
    pub recorded_at: DateTime<Utc>,
    /// The aggregate's `TYPE`.
    pub aggregate_type: String,
    /// The aggregate instance.
    pub aggregate_id: String,
    /// The aggregate's version after this event (1-based).
    pub sequence: i64,
    /// The event variant's name.
    pub event_type: String,
    /// The event schema version.
    pub event_version: String,
    /// The event body.
    pub payload: Value,
    /// Actor, correlation and causation.
    pub metadata: EventMetadata,
}

impl StoredEvent {
    /// The AMQP routing key: `<AggregateType>.<EventType>`.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.aggregate_type, self.event_type)
    }

    /// Deserialises the payload into the aggregate's event type.
    pub fn payload_as<E: serde::de::DeserializeOwned>(&self) -> Result<E, serde_json::Error> {
        serde_json::from_value(self.payload.clone())
    }
}

/// The columns every log query selects, in the order [`from_row`] reads them.
pub(crate) const EVENT_COLUMNS: &str = "event_id, transaction_id::text::bigint AS tx, global_position, \
     recorded_at, aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata";

pub(crate) fn from_row(row: &PgRow) -> Result<StoredEvent, sqlx::Error> {
    let metadata: Value = row.try_get("metadata")?;
    // Metadata written by something else than our dispatch still reads; missing fields are empty.
    let metadata: EventMetadata =
        serde_json::from_value(metadata).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
    Ok(StoredEvent {
        event_id: row.try_get("event_id")?,
        position: Position::new(row.try_get("tx")?, row.try_get("global_position")?),
        recorded_at: row.try_get("recorded_at")?,
        aggregate_type: row.try_get("aggregate_type")?,
        aggregate_id: row.try_get("aggregate_id")?,
        sequence: row.try_get("sequence")?,
        event_type: row.try_get("event_type")?,
        event_version: row.try_get("event_version")?,
        payload: row.try_get("payload")?,
        metadata,
    })
}
