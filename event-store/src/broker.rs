//! Reaching RabbitMQ: connections, the namespace's topology, names.
//!
//! Every exchange and queue is prefixed by a namespace (`<ns>.events`, `<ns>.<consumer>`), so
//! several deployments, or parallel tests, share one broker without seeing each other.

use lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

use crate::relay::POSITION_MARKER_KEY;
use crate::BrokerError;

/// How to reach the broker and which namespace to use.
#[derive(Clone)]
pub struct BrokerConfig {
    /// `amqp://user:password@host:port/vhost`; never logged whole.
    pub url: String,
    /// Prefix of every exchange and queue.
    pub namespace: String,
    /// `quorum` (default; replicated, survives a node loss) or `classic`.
    pub queue_type: QueueType,
}

impl std::fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("url", &describe_amqp_url(&self.url))
            .field("namespace", &self.namespace)
            .field("queue_type", &self.queue_type)
            .finish()
    }
}

/// The RabbitMQ queue type of consumer queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueueType {
    /// Raft-replicated queues: what a cluster should run.
    #[default]
    Quorum,
    /// Single-node queues.
    Classic,
}

impl std::str::FromStr for QueueType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "quorum" => Ok(Self::Quorum),
            "classic" => Ok(Self::Classic),
            other => Err(format!(
                "unknown queue type {other:?}: use quorum or classic"
            )),
        }
    }
}

impl BrokerConfig {
    /// A config for `url` and `namespace` with quorum queues.
    pub fn new(url: impl Into<String>, namespace: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            namespace: namespace.into(),
            queue_type: QueueType::default(),
        }
    }

    /// The topic exchange every event is published to: `<ns>.events`.
    pub fn exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }

    /// The queue of one consumer: `<ns>.<name>`.
    pub fn queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}", self.namespace)
    }

    /// Opens a connection named `name` (shown by `rabbitmqctl list_connections client_properties`).
    pub async fn connect(&self, name: &str) -> Result<Connection, BrokerError> {
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("{}:{name}", self.namespace).into());
        Connection::connect(&self.url, properties)
            .await
            .map_err(|source| BrokerError::Unreachable {
                target: describe_amqp_url(&self.url),
                source,
            })
    }

    /// Declares the durable topic exchange (idempotent).
    pub async fn declare_exchange(&self, channel: &Channel) -> Result<(), BrokerError> {
        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// Declares a consumer's durable, single-active-consumer queue and binds it (idempotent).
    pub async fn declare_consumer_queue(
        &self,
        channel: &Channel,
        consumer: &str,
        bindings: &[String],
    ) -> Result<String, BrokerError> {
        self.declare_exchange(channel).await?;
        let queue = self.queue(consumer);
        let mut args = FieldTable::default();
        // Guarantee 4: one active consumer per queue keeps the order; standbys wait their turn.
        args.insert("x-single-active-consumer".into(), AMQPValue::Boolean(true));
        let queue_type = match self.queue_type {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        };
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString(queue_type.into()),
        );
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                args,
            )
            .await?;
        for key in bindings {
            channel
                .queue_bind(
                    queue.as_str().into(),
                    self.exchange().into(),
                    key.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(queue)
    }
}

impl BrokerConfig {
    /// The consistent-hash exchange that spreads a partitioned consumer's events over its
    /// partition queues by aggregate id: `<ns>.<name>.partitions`.
    pub fn partition_exchange(&self, consumer: &str) -> String {
        format!("{}.{consumer}.partitions", self.namespace)
    }

    /// Declares the topology of consumer `base` run as `count` partitions (idempotent, but run
    /// once per group: RabbitMQ numbers a consistent-hash exchange's buckets in the order its
    /// queues were bound). `<ns>.events` feeds the consistent-hash exchange through `bindings`;
    /// the exchange hashes each message's `aggregate_id` header (the relay sets it) onto one of
    /// the queues `<ns>.<base>.p<k>`, each bound with weight 1, so every event of an aggregate
    /// reaches the same partition, in the relay's order. The relay's position markers go to
    /// every partition queue directly.
    pub async fn declare_partitions(
        &self,
        channel: &Channel,
        base: &str,
        count: u32,
        bindings: &[String],
    ) -> Result<(), BrokerError> {
        self.declare_exchange(channel).await?;
        let exchange = self.partition_exchange(base);
        let mut args = FieldTable::default();
        args.insert(
            "hash-header".into(),
            AMQPValue::LongString(PARTITION_KEY_HEADER.into()),
        );
        channel
            .exchange_declare(
                exchange.as_str().into(),
                ExchangeKind::Custom("x-consistent-hash".into()),
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                args,
            )
            .await
            .map_err(|e| {
                if e.to_string().contains("exchange type") {
                    BrokerError::Unsupported(
                        "RabbitMQ has no x-consistent-hash exchange: enable the plugin with \
                         `rabbitmq-plugins enable rabbitmq_consistent_hash_exchange`"
                            .to_owned(),
                    )
                } else {
                    BrokerError::Amqp(e)
                }
            })?;
        for key in bindings {
            channel
                .exchange_bind(
                    exchange.as_str().into(),
                    self.exchange().into(),
                    key.as_str().into(),
                    ExchangeBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        for index in 0..count {
            let queue = self
                .declare_consumer_queue(
                    channel,
                    &partition_name(base, index),
                    &[POSITION_MARKER_KEY.to_owned()],
                )
                .await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    exchange.as_str().into(),
                    "1".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Messages waiting in a consumer's queue, or `None` when the queue does not exist. Uses a
    /// channel of its own: asking about a missing queue closes the channel it is asked on.
    pub async fn queue_backlog(
        &self,
        connection: &Connection,
        consumer: &str,
    ) -> Result<Option<u32>, BrokerError> {
        let channel = connection.create_channel().await?;
        let asked = channel
            .queue_declare(
                self.queue(consumer).as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        match asked {
            Ok(queue) => {
                let _ = channel.close(200, "asked".into()).await;
                Ok(Some(queue.message_count()))
            }
            Err(e) if e.to_string().contains("NOT_FOUND") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// The header the consistent-hash exchange of a partitioned consumer hashes.
pub const PARTITION_KEY_HEADER: &str = "aggregate_id";

/// The checkpoint and queue name of partition `index` of consumer `base`: `<base>.p<index>`.
pub fn partition_name(base: &str, index: u32) -> String {
    format!("{base}.p{index}")
}

/// `host:port/vhost` of an AMQP URL, without credentials, for messages and logs.
pub fn describe_amqp_url(url: &str) -> String {
    match url.parse::<lapin::uri::AMQPUri>() {
        Ok(uri) => format!(
            "{}:{} (vhost {})",
            uri.authority.host, uri.authority.port, uri.vhost
        ),
        Err(_) => "an unparsable AMQP_URL".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_never_carry_credentials() {
        let d = describe_amqp_url("amqp://guest:s3cret@127.0.0.1:5672/%2f");
        assert!(!d.contains("s3cret") && !d.contains("guest"), "{d}");
        assert!(d.starts_with("127.0.0.1:5672"), "{d}");
    }
}
