//! A real pipeline for projection tests: commands → log → relay → RabbitMQ → projection.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use commerce_commands::Dispatcher;
use commerce_event_store::consumer::topic_matches;
use commerce_event_store::{
    checkpoint, BrokerConfig, ConsumerState, EventMetadata, EventStore, LogReader, Position, Relay,
    RelayConfig, StoredEvent,
};
use commerce_projections::rebuild::{self, Finish};
use commerce_projections::{projection, Projection};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct Harness {
    pub pool: PgPool,
    pub broker: BrokerConfig,
    pub dispatcher: Dispatcher,
    stop: CancellationToken,
    relay: Option<JoinHandle<()>>,
    projections: Vec<(String, CancellationToken, JoinHandle<()>)>,
}

impl Harness {
    pub fn start(pool: PgPool) -> Self {
        let broker = commerce_testkit::broker();
        let stop = CancellationToken::new();
        let relay = tokio::spawn(
            Relay::new(pool.clone(), broker.clone(), RelayConfig::default()).run(stop.clone()),
        );
        let dispatcher = Dispatcher::new(EventStore::new(pool.clone()));
        Self {
            pool,
            broker,
            dispatcher,
            stop,
            relay: Some(relay),
            projections: Vec::new(),
        }
    }

    /// Starts projection `p` as a live consumer.
    pub fn run<P: Projection>(&mut self, p: P) {
        let token = CancellationToken::new();
        let task = tokio::spawn(projection::run(
            self.pool.clone(),
            None,
            self.broker.clone(),
            p,
            token.clone(),
        ));
        self.projections.push((P::NAME.to_owned(), token, task));
    }

    /// Starts projection `p` and waits until it follows its queue: whatever is written from then
    /// on reaches it once, through the queue only (never also through its catch-up from the log),
    /// so every duplicate it sees afterwards is one a test delivered.
    pub async fn run_live<P: Projection>(&mut self, p: P) {
        self.run(p);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let statuses = checkpoint::consumer_statuses(&self.pool).await.unwrap();
            if statuses
                .iter()
                .any(|s| s.name == P::NAME && s.status == ConsumerState::Live)
            {
                return;
            }
            assert!(Instant::now() < deadline, "{} never went live", P::NAME);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Deliveries projection `name` acknowledged and ignored as already applied.
    pub async fn duplicates_ignored(&self, name: &str) -> i64 {
        checkpoint::consumer_statuses(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .find(|s| s.name == name)
            .map_or(0, |s| s.duplicates_ignored)
    }

    /// Stops projection `name` (its queue stays).
    pub async fn stop_projection(&mut self, name: &str) {
        if let Some(i) = self.projections.iter().position(|(n, ..)| n == name) {
            let (_, token, task) = self.projections.remove(i);
            token.cancel();
            task.await.unwrap();
        }
    }

    /// Runs `command` against aggregate `A` and returns the position written.
    pub async fn exec<A>(&self, id: impl ToString, command: A::Command) -> Option<Position>
    where
        A: commerce_commands::Dispatchable,
        A::Command: Clone,
        A::Error: std::fmt::Debug,
    {
        let meta = EventMetadata::new("test", Uuid::new_v4().to_string());
        let executed = self
            .dispatcher
            .execute::<A>(&id.to_string(), command, &meta)
            .await
            .unwrap();
        executed.wrote.then_some(executed.position)
    }

    /// Waits until projection `name` has applied everything in the log.
    pub async fn caught_up(&self, name: &str) {
        let log = LogReader::new(self.pool.clone());
        assert!(log.settle(Duration::from_secs(10)).await.unwrap());
        let head = log.head().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !checkpoint::has_reached(&self.pool, name, head)
            .await
            .unwrap()
        {
            if Instant::now() > deadline {
                let status = checkpoint::consumer_statuses(&self.pool).await.unwrap();
                panic!("{name} never reached {head}: {status:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Replays the log into a shadow schema and asserts it equals the live read model.
    pub async fn assert_replay_matches<P: Projection>(&self, p: &P) {
        self.caught_up(P::NAME).await;
        let report = rebuild::rebuild(&self.pool, None, p, Finish::Verify, |_| {}).await;
        assert!(report.is_ok(), "replay differs from live: {report:?}");
    }

    /// Delivers every event of the log a second time through the broker, as a relay fail-over
    /// would, then `later` (which writes one new event and returns text found only in its rows,
    /// so the test knows the duplicates before it were consumed), and asserts projection `P`
    /// received exactly the duplicates its bindings route to it, ignored them all, and its rows
    /// are what they were. `P` must have been started with [`Self::run_live`] before the
    /// workload. Returns the rows from before.
    pub async fn assert_redelivery_changes_nothing<P: Projection>(
        &self,
        later: impl std::future::Future<Output = String>,
    ) -> Vec<String> {
        let name = P::NAME;
        self.caught_up(name).await;
        let once = self.dump(name).await;
        assert!(!once.is_empty(), "the workload left {name} empty");
        let ignored_before = self.duplicates_ignored(name).await;
        let republished = self.republish_everything().await;
        let routed = republished
            .iter()
            .filter(|e| {
                P::bindings()
                    .iter()
                    .any(|b| topic_matches(b, &e.routing_key()))
            })
            .count() as i64;
        assert!(routed > 0, "nothing republished reaches {name}");
        let marker = later.await;
        self.caught_up(name).await;
        assert_eq!(
            self.duplicates_ignored(name).await - ignored_before,
            routed,
            "{name} did not receive and ignore exactly the duplicates sent"
        );
        let mut twice = self.dump(name).await;
        twice.retain(|row| !row.contains(&marker));
        assert_eq!(twice, once, "a second delivery changed {name}");
        once
    }

    /// Publishes every event of the log again, as a relay fail-over would; returns them.
    pub async fn republish_everything(&self) -> Vec<StoredEvent> {
        let events = LogReader::new(self.pool.clone())
            .read_after(Position::START, 100_000)
            .await
            .unwrap();
        // With publisher confirms: every duplicate surely reached the broker.
        commerce_testkit::republish(&self.broker, &events).await;
        events
    }

    /// Every row of every table of schema `name`, as JSON text, sorted: a comparable dump.
    pub async fn dump(&self, schema: &str) -> Vec<String> {
        dump(&self.pool, schema).await
    }

    pub async fn shutdown(mut self) {
        let names: Vec<String> = self.projections.iter().map(|(n, ..)| n.clone()).collect();
        for name in &names {
            self.stop_projection(name).await;
        }
        self.stop.cancel();
        if let Some(relay) = self.relay.take() {
            relay.await.unwrap();
        }
        if let Ok(conn) = self.broker.connect("test-cleanup").await {
            if let Ok(ch) = conn.create_channel().await {
                for name in &names {
                    let _ = ch
                        .queue_delete(self.broker.queue(name).into(), Default::default())
                        .await;
                }
                let _ = ch
                    .exchange_delete(self.broker.exchange().into(), Default::default())
                    .await;
            }
            let _ = conn.close(200, "bye".into()).await;
        }
    }
}

/// How [`apply_log_directly`] goes through the log.
#[derive(Debug, Clone, Copy)]
pub enum Reapply {
    /// In log order, each event `times` times in a row.
    Forwards { times: usize },
    /// Newest first, once each.
    Backwards,
}

/// Applies the log's events straight into projection `p`'s live schema, without the consumer
/// (whose de-duplication would hide an apply that is not idempotent on its own).
pub async fn apply_log_directly<P: Projection>(pool: &PgPool, p: &P, how: Reapply) {
    let log = LogReader::new(pool.clone());
    assert!(log.settle(Duration::from_secs(10)).await.unwrap());
    let events = log.read_after(Position::START, 100_000).await.unwrap();
    let config = commerce_event_store::ConsumerConfig::new(P::NAME, P::bindings());
    let wanted: Vec<_> = events.iter().filter(|e| config.wants(e)).collect();
    let (order, times): (Vec<_>, usize) = match how {
        Reapply::Forwards { times } => (wanted, times),
        Reapply::Backwards => (wanted.into_iter().rev().collect(), 1),
    };
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(format!("\"{}\", public", P::NAME))
        .execute(&mut *tx)
        .await
        .unwrap();
    for event in order {
        for _ in 0..times {
            p.apply(&mut tx, event).await.unwrap();
        }
    }
    tx.commit().await.unwrap();
}

/// Applying every event twice in a row, straight into the live schema, leaves exactly what
/// applying each once does: each apply is idempotent on its own.
pub async fn assert_each_apply_is_idempotent<P: Projection>(h: &Harness, p: &P) {
    apply_log_directly(&h.pool, p, Reapply::Forwards { times: 1 }).await;
    let once = h.dump(P::NAME).await;
    assert!(!once.is_empty(), "the workload left {} empty", P::NAME);
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', table_schema, table_name) FROM information_schema.tables \
         WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
    )
    .bind(P::NAME)
    .fetch_all(&h.pool)
    .await
    .unwrap();
    sqlx::query(&format!("TRUNCATE {}", tables.join(", ")))
        .execute(&h.pool)
        .await
        .unwrap();
    apply_log_directly(&h.pool, p, Reapply::Forwards { times: 2 }).await;
    assert_eq!(h.dump(P::NAME).await, once);
}

/// Every row of every table of schema `schema`, as JSON text prefixed by the table's name, sorted:
/// a comparable dump.
pub async fn dump(pool: &PgPool, schema: &str) -> Vec<String> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut rows = Vec::new();
    for t in tables {
        let mut r: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT '{t}:' || to_jsonb(x)::text FROM \"{schema}\".\"{t}\" x"
        ))
        .fetch_all(pool)
        .await
        .unwrap();
        rows.append(&mut r);
    }
    rows.sort();
    rows
}
