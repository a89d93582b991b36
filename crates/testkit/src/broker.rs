//! The broker side of tests: a private namespace per test, a tap on the exchange, republishing
//! with confirms (duplicates that surely reached the broker), closing a connection from the
//! broker's side, and cleanup.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use commerce_event_store::consumer::topic_matches;
use commerce_event_store::{BrokerConfig, Position, QueueType, StoredEvent};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use tokio::sync::mpsc;

/// The broker tests use unless `AMQP_URL` says otherwise.
pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A broker config with a namespace no other test uses.
pub fn broker() -> BrokerConfig {
    let mut config = BrokerConfig::new(
        std::env::var("AMQP_URL").unwrap_or_else(|_| AMQP_URL.to_owned()),
        format!("test-{}", uuid::Uuid::new_v4().simple()),
    );
    config.queue_type = QueueType::Classic;
    config
}

/// A message as a test sees it.
#[derive(Debug, Clone)]
pub struct Received {
    pub routing_key: String,
    pub message_id: Option<String>,
    pub persistent: bool,
    pub headers: HashMap<String, String>,
    pub event: Option<StoredEvent>,
    /// The message body as it crossed the broker.
    pub body: Vec<u8>,
}

/// Binds a private queue to `<ns>.events` with `#` and forwards every message.
pub async fn tap(broker: &BrokerConfig) -> (Connection, mpsc::UnboundedReceiver<Received>) {
    let conn = broker.connect("test-tap").await.expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    broker.declare_exchange(&channel).await.expect("exchange");
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.name().clone(),
            broker.exchange().into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let mut consumer = channel
        .basic_consume(
            queue.name().clone(),
            "tap".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let _ = delivery.ack(BasicAckOptions::default()).await;
            let props = &delivery.properties;
            let headers = props
                .headers()
                .as_ref()
                .map(|h| {
                    h.inner()
                        .iter()
                        .map(|(k, v)| {
                            let v = match v {
                                lapin::types::AMQPValue::LongString(s) => s.to_string(),
                                lapin::types::AMQPValue::LongLongInt(i) => i.to_string(),
                                other => format!("{other:?}"),
                            };
                            (k.to_string(), v)
                        })
                        .collect()
                })
                .unwrap_or_default();
            let received = Received {
                routing_key: delivery.routing_key.to_string(),
                message_id: props.message_id().as_ref().map(|s| s.to_string()),
                persistent: *props.delivery_mode() == Some(2),
                headers,
                event: serde_json::from_slice(&delivery.data).ok(),
                body: delivery.data.clone(),
            };
            if tx.send(received).is_err() {
                break;
            }
        }
    });
    (conn, rx)
}

/// Collects event messages from `rx` until `expected` distinct positions were seen.
pub async fn collect_events(
    rx: &mut mpsc::UnboundedReceiver<Received>,
    expected: usize,
    timeout: Duration,
) -> Vec<Received> {
    let deadline = Instant::now() + timeout;
    let mut all = Vec::new();
    let mut distinct = std::collections::HashSet::<Position>::new();
    while distinct.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(r)) => {
                if let Some(e) = &r.event {
                    distinct.insert(e.position);
                    all.push(r);
                }
            }
            _ => panic!("only {} of {expected} events arrived", distinct.len()),
        }
    }
    all
}

/// Closes the broker connection named `<ns>:<name>` from the broker's side, as an outage would.
pub async fn close_broker_connection(broker: &BrokerConfig, name: &str) -> bool {
    let wanted = format!("{}:{name}", broker.namespace);
    let out = tokio::process::Command::new("rabbitmqctl")
        .args([
            "list_connections",
            "pid",
            "client_properties",
            "--no-table-headers",
            "-q",
        ])
        .output()
        .await
        .expect("rabbitmqctl runs");
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    let mut closed = false;
    for line in listing.lines() {
        let Some((pid, props)) = line.split_once('\t') else {
            continue;
        };
        if props.contains(&format!("\"{wanted}\"")) {
            let status = tokio::process::Command::new("rabbitmqctl")
                .args(["close_connection", pid.trim(), "test outage", "-q"])
                .status()
                .await
                .expect("rabbitmqctl runs");
            closed |= status.success();
        }
    }
    closed
}

/// Deletes the namespace's queues `queues` and its exchange.
pub async fn cleanup(broker: &BrokerConfig, queues: &[&str]) {
    if let Ok(conn) = broker.connect("test-cleanup").await {
        if let Ok(ch) = conn.create_channel().await {
            for q in queues {
                let _ = ch
                    .queue_delete(broker.queue(q).into(), Default::default())
                    .await;
            }
            let _ = ch
                .exchange_delete(broker.exchange().into(), Default::default())
                .await;
        }
        let _ = conn.close(200, "bye".into()).await;
    }
}
/// Publishes `events` to `<ns>.events` a second time, exactly as the relay does, with confirms.
/// How many of `events` a queue bound with `bindings` receives: the duplicates a consumer gets
/// when they are republished.
pub fn routed_to(events: &[StoredEvent], bindings: &[String]) -> i64 {
    let routed = events
        .iter()
        .filter(|e| {
            let key = e.routing_key();
            bindings.iter().any(|b| topic_matches(b, &key))
        })
        .count();
    i64::try_from(routed).unwrap_or(i64::MAX)
}

pub async fn republish(broker: &BrokerConfig, events: &[StoredEvent]) {
    let conn = broker.connect("test-republish").await.expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    for event in events {
        let body = serde_json::to_vec(event).expect("serialise");
        let confirm = channel
            .basic_publish(
                broker.exchange().into(),
                event.routing_key().into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(event.event_id.to_string().into())
                    .with_content_type("application/json".into()),
            )
            .await
            .expect("publish");
        assert!(confirm.await.expect("confirm").is_ack(), "broker nacked");
    }
    let _ = conn.close(200, "republished".into()).await;
}
