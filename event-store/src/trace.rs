//! One trace per request across the log: the W3C trace context travels in each event's metadata
//! ([`EventMetadata::traceparent`]), so the relay's publish, each consumer's apply and the
//! commands a process sends in reaction continue the trace of the request that appended the event.
//!
//! The spans of that path carry the target [`TARGET`]. Only the OpenTelemetry layer listens to it
//! (`src/telemetry.rs`), and only when tracing is on: otherwise no subscriber enables these
//! spans, every `span!` here is a disabled no-op, nothing is parsed and no context is stored.
//! Logs are unchanged either way (the log layer never shows these spans).
//!
//! A stored context that does not parse is ignored: the span starts a trace of its own, never an
//! error (metadata is input like any other).

use std::time::Duration;

use chrono::Utc;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Level, Span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{EventMetadata, StoredEvent};

/// The target of every span that belongs to a trace (the HTTP request, the command, the append,
/// the publish, the apply). The log layer filters it out; the tracing layer keeps only it.
pub const TARGET: &str = "commerce::trace";

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// A W3C trace context as two optional texts: read from stored metadata or request headers,
/// written into metadata.
#[derive(Debug, Default)]
struct Carrier<'a> {
    traceparent: Option<&'a str>,
    tracestate: Option<&'a str>,
}

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.traceparent,
            TRACESTATE => self.tracestate,
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

/// Where an injected context lands: `(traceparent, tracestate)`, an empty state left out.
#[derive(Debug, Default)]
struct Written(Option<String>, Option<String>);

impl Injector for Written {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.0 = Some(value),
            TRACESTATE if !value.is_empty() => self.1 = Some(value),
            _ => {}
        }
    }
}

/// The remote context a `traceparent` (and `tracestate`) names; `None` when absent or malformed.
pub fn remote_context(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<Context> {
    let traceparent = traceparent?;
    let carrier = Carrier {
        traceparent: Some(traceparent),
        tracestate,
    };
    let context = TraceContextPropagator::new().extract(&carrier);
    context.span().span_context().is_valid().then_some(context)
}

/// Makes `span` a child of the context `event` was appended in. Without one (tracing was off, or
/// the text is malformed) or without a tracing layer, `span` stays as it is.
pub fn follow(span: &Span, event: &StoredEvent) {
    let stored = &event.metadata;
    follow_remote(
        span,
        stored.traceparent.as_deref(),
        stored.tracestate.as_deref(),
    );
}

/// Makes `span` a child of the remote context `traceparent` (and `tracestate`) name, e.g. from
/// an incoming request's headers. Absent or malformed, or without a tracing layer: unchanged.
pub fn follow_remote(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    if span.is_disabled() {
        return;
    }
    if let Some(parent) = remote_context(traceparent, tracestate) {
        // Fails only when the span is not traced after all: it then has no parent to set.
        let _ = span.set_parent(parent);
    }
}

/// `metadata` carrying `span`'s trace context, when `span` is traced and the metadata names none
/// yet; `None` otherwise (the metadata is stored as it is). An unsampled context is stored too:
/// the sampling decision of the request then holds for everything the log carries on.
pub(crate) fn stamped(span: &Span, metadata: &EventMetadata) -> Option<EventMetadata> {
    if span.is_disabled() || metadata.traceparent.is_some() {
        return None;
    }
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut written = Written::default();
    TraceContextPropagator::new().inject_context(&context, &mut written);
    let Written(traceparent, tracestate) = written;
    traceparent.as_ref()?;
    Some(EventMetadata {
        traceparent,
        tracestate,
        ..metadata.clone()
    })
}

/// How old an event may be and still get spans when it is published, applied or reacted to:
/// its request's trace is long over by then. A new consumer catching up from the start of the
/// log, or a relay after a long outage, would otherwise add spans to every trace ever recorded.
const TRACED_FOR: Duration = Duration::from_secs(60 * 60);

/// The span `make` builds for work on `event`, a child of the context `event` was appended in;
/// disabled (and `make` not called) when tracing is off or `event` is older than [`TRACED_FOR`].
fn event_span(event: &StoredEvent, make: impl FnOnce() -> Span) -> Span {
    if !tracing::enabled!(target: TARGET, Level::INFO) {
        return Span::none();
    }
    // A clock behind the event's (negative age) counts as recent.
    let age = (Utc::now() - event.recorded_at)
        .to_std()
        .unwrap_or_default();
    if age > TRACED_FOR {
        return Span::none();
    }
    let span = make();
    follow(&span, event);
    span
}

/// The span of the relay publishing `event` to `exchange`.
pub fn publish_span(exchange: &str, event: &StoredEvent) -> Span {
    event_span(event, || {
        tracing::info_span!(
            target: TARGET,
            "publish",
            otel.name = %format_args!("publish {}", event.routing_key()),
            otel.kind = "producer",
            messaging.system = "rabbitmq",
            messaging.destination.name = exchange,
            messaging.rabbitmq.destination.routing_key = %event.routing_key(),
            messaging.message.id = %event.event_id,
            event.position = %event.position,
        )
    })
}

/// The span of a command `process` sends in reaction to `event`, to the aggregate
/// `aggregate_type` `aggregate_id`: the command, and the events it appends, continue the trace
/// of the request that led to `event`.
pub fn reaction_span(
    process: &str,
    event: &StoredEvent,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Span {
    event_span(event, || {
        tracing::info_span!(
            target: TARGET,
            "reaction",
            otel.name = %format_args!("{process} on {} → {aggregate_type}", event.routing_key()),
            process,
            cause.id = %event.event_id,
            "aggregate.type" = aggregate_type,
            "aggregate.id" = aggregate_id,
        )
    })
}

/// The spans of a consumer applying a run of events: one per event, each in its event's trace
/// (a run holds events of many requests, so no single span could be the parent of them all).
/// Each lasts as long as the handler's work on the run, and ends when this is dropped.
#[derive(Debug)]
pub struct ApplySpans {
    spans: Vec<Span>,
    /// The span of the run's only event, to run the handler in.
    only: Option<Span>,
}

impl ApplySpans {
    /// The spans of `consumer` applying `events`; none when tracing is off.
    pub fn new(consumer: &str, events: &[&StoredEvent]) -> Self {
        let spans: Vec<Span> = events
            .iter()
            .map(|event| {
                event_span(event, || {
                    tracing::info_span!(
                        target: TARGET,
                        "apply",
                        otel.name = %format_args!("{consumer} apply {}", event.routing_key()),
                        otel.kind = "consumer",
                        otel.status_code = tracing::field::Empty,
                        messaging.consumer.group.name = consumer,
                        messaging.message.id = %event.event_id,
                        event.position = %event.position,
                        batch.events = events.len(),
                    )
                })
            })
            .filter(|span| !span.is_disabled())
            .collect();
        let only = match (events, spans.as_slice()) {
            ([_], [span]) => Some(span.clone()),
            _ => None,
        };
        Self { spans, only }
    }

    /// The span to run the handler in: the event's own when the run is one event (what the
    /// handler logs or traces then belongs to that request), none for a longer run.
    pub fn current(&self) -> Span {
        self.only.clone().unwrap_or_else(Span::none)
    }

    /// Marks every span of the run failed (the handler refused the run).
    pub fn failed(&self) {
        for span in &self.spans {
            span.record("otel.status_code", "error");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{remote_context, stamped};
    use crate::EventMetadata;
    use tracing::Span;

    #[test]
    fn without_tracing_metadata_is_stored_as_before() {
        let metadata = EventMetadata::new("user-1", "req-1");
        assert!(stamped(&Span::none(), &metadata).is_none());
        assert_eq!(
            serde_json::to_string(&metadata).expect("json"),
            r#"{"actor":"user-1","correlation_id":"req-1"}"#
        );
    }

    #[test]
    fn a_well_formed_traceparent_names_a_remote_parent() {
        let context = remote_context(
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            Some("vendor=x"),
        );
        assert!(context.is_some());
    }

    #[test]
    fn a_malformed_or_missing_traceparent_is_ignored() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(remote_context(Some(bad), None).is_none(), "{bad}");
        }
        assert!(remote_context(None, Some("vendor=x")).is_none());
    }
}
