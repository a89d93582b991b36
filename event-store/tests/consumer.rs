//! Guarantees 4 and 5: durable consumers, against real Postgres and RabbitMQ.
//!
//! Events reach the consumer the real way: appended to `events`, published by a running `Relay`,
//! routed to the consumer's queue. The test handler writes into the consumer's own transaction
//! (`applied`, one row per event, `times` counting applications), so a double application shows
//! as `times = 2` and a rolled-back one leaves no row. It fails on purpose for any aggregate listed
//! in `poison`, after having written its row, so that a rollback is provable.

mod support;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commerce_event_store::checkpoint::{self, RepairError};
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::relay::relay_cursor;
use commerce_event_store::{
    BrokerConfig, ConsumerConfig, ConsumerState, ConsumerStatus, DurableConsumer, EventHandler,
    HandlerError, LogReader, Position, Relay, RelayConfig, StoredEvent,
};
use futures::FutureExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const CONSUMER: &str = "applier";
/// The aggregate whose events take the handler a while.
const SLOW: &str = "slow";

/// Records every event it is given in `applied`, then refuses events of poisoned aggregates.
#[derive(Debug, Clone, Copy)]
struct Recorder;

impl EventHandler for Recorder {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        if event.aggregate_id == SLOW {
            // Later deliveries pile up in the consumer's buffer meanwhile.
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        // Written first: if the consumer did not roll back a failed attempt, this row would stay.
        sqlx::query(
            "INSERT INTO applied (event_id, aggregate_type, aggregate_id, times, txid) \
             VALUES ($1, $2, $3, 1, pg_current_xact_id()::text::bigint) \
             ON CONFLICT (event_id) DO UPDATE SET times = applied.times + 1",
        )
        .bind(event.event_id)
        .bind(&event.aggregate_type)
        .bind(&event.aggregate_id)
        .execute(&mut *conn)
        .await?;
        let poisoned: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM poison WHERE aggregate_id = $1)")
                .bind(&event.aggregate_id)
                .fetch_one(&mut *conn)
                .await?;
        if poisoned {
            return Err(format!("poisoned aggregate {}", event.aggregate_id).into());
        }
        Ok(())
    }
}

/// A running relay or consumer instance: how to stop it, and how to wait for it.
type Task = (CancellationToken, JoinHandle<()>);

/// A row of `consumer_skips`: consumer, transaction id, global position, event id, error.
type SkipRow = (String, i64, i64, Option<Uuid>, Option<String>);

/// One test's world: its database, its broker namespace, and the relay and consumers it runs.
struct Scenario {
    pool: PgPool,
    broker: BrokerConfig,
    /// Parent of every task's token: cancelling it stops everything at the end of the test.
    shutdown: CancellationToken,
    tasks: Mutex<Vec<Option<Task>>>,
}

impl Scenario {
    fn spawn<F: Future<Output = ()> + Send + 'static>(
        &self,
        run: impl FnOnce(CancellationToken) -> F,
    ) -> usize {
        let token = self.shutdown.child_token();
        let handle = tokio::spawn(run(token.clone()));
        let mut tasks = self.tasks.lock().expect("tasks");
        tasks.push(Some((token, handle)));
        tasks.len() - 1
    }

    fn start_relay(&self) {
        let relay = Relay::new(
            self.pool.clone(),
            self.broker.clone(),
            RelayConfig::default(),
        );
        self.spawn(|token| relay.run(token));
    }

    /// Starts one instance of a consumer; returns its id for [`Self::stop`].
    fn start_consumer(&self, config: ConsumerConfig) -> usize {
        let consumer =
            DurableConsumer::new(self.pool.clone(), self.broker.clone(), config, Recorder);
        self.spawn(|token| consumer.run(token))
    }

    /// Stops one task and waits until it has ended.
    async fn stop(&self, id: usize) {
        let task = self.tasks.lock().expect("tasks")[id].take();
        if let Some((token, handle)) = task {
            token.cancel();
            tokio::time::timeout(Duration::from_secs(10), handle)
                .await
                .expect("the task stops when cancelled")
                .expect("the task did not panic");
        }
    }

    /// Stops every task, then deletes the namespace's queue and exchange.
    async fn finish(&self) {
        self.shutdown.cancel();
        let tasks: Vec<_> = self.tasks.lock().expect("tasks").drain(..).collect();
        for (_, handle) in tasks.into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
        support::cleanup(&self.broker, &[CONSUMER]).await;
    }

    async fn status(&self) -> ConsumerStatus {
        checkpoint::consumer_statuses(&self.pool)
            .await
            .expect("statuses")
            .into_iter()
            .find(|s| s.name == CONSUMER)
            .expect("the consumer has a checkpoint")
    }

    /// Waits until the consumer's status satisfies `check`, and returns it.
    async fn wait_status(
        &self,
        what: &str,
        check: impl Fn(&ConsumerStatus) -> bool,
    ) -> ConsumerStatus {
        let check = &check;
        support::eventually(WAIT, what, || async move {
            let statuses = checkpoint::consumer_statuses(&self.pool)
                .await
                .expect("statuses");
            statuses
                .into_iter()
                .find(|s| s.name == CONSUMER && check(s))
        })
        .await
    }

    async fn wait_failed(&self) -> ConsumerStatus {
        self.wait_status("the consumer to halt as FAILED", |s| {
            s.status == ConsumerState::Failed
        })
        .await
    }

    /// Waits until the consumer is live with nothing left to apply.
    async fn wait_live_at_head(&self) -> ConsumerStatus {
        let status = self
            .wait_status("the consumer to be LIVE at the head", |s| {
                s.status == ConsumerState::Live && s.lag_events == 0 && s.position == s.head
            })
            .await;
        assert_eq!(status.last_error, None);
        assert_eq!(status.failed_position, None);
        status
    }

    /// Waits until `n` distinct events were applied.
    async fn wait_applied(&self, n: i64) {
        support::eventually(WAIT, &format!("{n} events applied"), || async move {
            (applied_count(&self.pool).await >= n).then_some(())
        })
        .await;
    }

    /// Waits until the relay has published the `n` events of the log.
    async fn wait_relayed(&self, n: usize) {
        let head = log(&self.pool, n)
            .await
            .last()
            .map_or(Position::START, |e| e.position);
        support::eventually(WAIT, "the relay to publish the log", || async move {
            let cursor = relay_cursor(&self.pool, &self.broker.namespace)
                .await
                .expect("relay cursor");
            cursor
                .is_some_and(|(position, _)| position >= head)
                .then_some(())
        })
        .await;
    }
}

/// Runs `body` in a fresh scenario and always stops its tasks and deletes its queue, even when
/// an assertion fails.
async fn scenario<F, Fut>(pool: PgPool, body: F)
where
    F: FnOnce(Arc<Scenario>) -> Fut,
    Fut: Future<Output = ()>,
{
    sqlx::query(
        "CREATE TABLE applied (event_id uuid PRIMARY KEY, aggregate_type text NOT NULL, \
         aggregate_id text NOT NULL, times int NOT NULL, txid bigint NOT NULL)",
    )
    .execute(&pool)
    .await
    .expect("applied table");
    sqlx::query("CREATE TABLE poison (aggregate_id text PRIMARY KEY)")
        .execute(&pool)
        .await
        .expect("poison table");
    let scenario = Arc::new(Scenario {
        pool,
        broker: support::broker(),
        shutdown: CancellationToken::new(),
        tasks: Mutex::new(Vec::new()),
    });
    let outcome = AssertUnwindSafe(body(scenario.clone()))
        .catch_unwind()
        .await;
    scenario.finish().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Small retries and a fast operator poll, so halting and repair take milliseconds.
fn fast_config(bindings: &[&str]) -> ConsumerConfig {
    let mut config = ConsumerConfig::new(CONSUMER, bindings.iter().copied());
    config.max_attempts = 3;
    config.retry_initial = Duration::from_millis(10);
    config.retry_max = Duration::from_millis(50);
    config.operator_poll = Duration::from_millis(50);
    config
}

async fn applied_count(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM applied")
        .fetch_one(pool)
        .await
        .expect("count applied")
}

/// `(event_id, times)` of every applied event.
async fn applied(pool: &PgPool) -> Vec<(Uuid, i32)> {
    sqlx::query_as("SELECT event_id, times FROM applied ORDER BY event_id")
        .fetch_all(pool)
        .await
        .expect("applied rows")
}

/// Asserts that exactly the events `expected` were applied, each exactly once.
async fn assert_applied_once(pool: &PgPool, expected: &[&StoredEvent]) {
    let rows = applied(pool).await;
    let twice: Vec<_> = rows.iter().filter(|(_, times)| *times != 1).collect();
    assert!(twice.is_empty(), "applied more than once: {twice:?}");
    let mut got: Vec<Uuid> = rows.iter().map(|(id, _)| *id).collect();
    let mut want: Vec<Uuid> = expected.iter().map(|e| e.event_id).collect();
    got.sort();
    want.sort();
    assert_eq!(got, want, "the applied events are not the expected ones");
}

/// The whole log, in log order, once its `n` events are visible to readers. The horizon is
/// cluster-wide: a transaction of another test's database can hold it back for a moment, so an
/// event committed a moment ago may not be readable yet.
async fn log(pool: &PgPool, n: usize) -> Vec<StoredEvent> {
    let reader = LogReader::new(pool.clone());
    let events = support::eventually(WAIT, &format!("{n} events visible"), || {
        let reader = reader.clone();
        async move {
            let events = reader
                .read_after(Position::START, 10_000)
                .await
                .expect("read the log");
            (events.len() >= n).then_some(events)
        }
    })
    .await;
    assert_eq!(events.len(), n, "more events than appended");
    events
}

async fn poison(pool: &PgPool, aggregate_id: &str) {
    sqlx::query("INSERT INTO poison (aggregate_id) VALUES ($1)")
        .bind(aggregate_id)
        .execute(pool)
        .await
        .expect("poison");
}

async fn cure(pool: &PgPool, aggregate_id: &str) {
    sqlx::query("DELETE FROM poison WHERE aggregate_id = $1")
        .bind(aggregate_id)
        .execute(pool)
        .await
        .expect("cure");
}

/// Appends 10 healthy events, one event of aggregate `poisoned` (listed in `poison`), and 10
/// more healthy ones; returns the log and the index of the poisoned event in it.
async fn append_around_poison(pool: &PgPool) -> (Vec<StoredEvent>, usize) {
    poison(pool, "poisoned").await;
    support::append_many(pool, "Before", 10).await;
    support::append_raw(pool, "Thing", "poisoned", 1, "Happened").await;
    support::append_many(pool, "After", 10).await;
    let events = log(pool, 21).await;
    let at = events
        .iter()
        .position(|e| e.aggregate_id == "poisoned")
        .expect("the poisoned event is in the log");
    (events, at)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_new_consumer_catches_up_from_the_log_then_follows_its_queue(pool: PgPool) {
    scenario(pool, |s| async move {
        support::append_many(&s.pool, "Early", 40).await;
        // The relay publishes these before the consumer's queue exists: the broker drops them, so
        // the consumer can only get them from the log.
        s.start_relay();
        s.wait_relayed(40).await;

        s.start_consumer(fast_config(&["#"]));
        s.wait_applied(40).await;
        let early = log(&s.pool, 40).await;
        assert_applied_once(&s.pool, &early.iter().collect::<Vec<_>>()).await;
        s.wait_status("the consumer to go LIVE", |st| {
            st.status == ConsumerState::Live
        })
        .await;

        // Live now: these can only arrive through its queue.
        support::append_many(&s.pool, "Late", 30).await;
        s.wait_applied(70).await;
        let all = log(&s.pool, 70).await;
        assert_applied_once(&s.pool, &all.iter().collect::<Vec<_>>()).await;

        let status = s.wait_live_at_head().await;
        assert_eq!(status.position, all.last().expect("events").position);
        assert_eq!(status.applied, 70, "the handler ran once per event");
    })
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn redelivered_events_are_acknowledged_and_ignored(pool: PgPool) {
    scenario(pool, |s| async move {
        s.start_relay();
        let first = s.start_consumer(fast_config(&["#"]));
        // Live before anything is written: each event reaches it once, by the queue alone, so
        // every duplicate it counts is one republished below.
        s.wait_status("the consumer to go LIVE", |st| {
            st.status == ConsumerState::Live
        })
        .await;
        support::append_many(&s.pool, "Thing", 20).await;
        s.wait_applied(20).await;
        let events = log(&s.pool, 20).await;
        let ignored_before = s.wait_live_at_head().await.duplicates_ignored;

        // Every event's message a second time, exactly as the relay sends it, while the consumer
        // runs; then a restart, which catches up from the log again and then reads the queue.
        let conn = s.broker.connect("test-republish").await.expect("connect");
        let channel = conn.create_channel().await.expect("channel");
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirms");
        for event in &events {
            let body = serde_json::to_vec(event).expect("serialise");
            let confirm = channel
                .basic_publish(
                    s.broker.exchange().into(),
                    event.routing_key().into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default()
                        .with_delivery_mode(2)
                        .with_content_type("application/json".into()),
                )
                .await
                .expect("publish");
            assert!(confirm.await.expect("confirm").is_ack(), "broker nacked");
        }
        let _ = conn.close(200, "republished".into()).await;
        s.stop(first).await;
        // The row still says LIVE from the first session: mark it, so LIVE below is the new one's
        // (which caught up from the log, so the next event reaches it by the queue alone).
        sqlx::query("UPDATE consumer_checkpoints SET status = 'CATCHING_UP'")
            .execute(&s.pool)
            .await
            .expect("mark");
        s.start_consumer(fast_config(&["#"]));
        s.wait_status("the new session to go LIVE", |st| {
            st.status == ConsumerState::Live
        })
        .await;

        // The queue is FIFO: once this one is applied, every duplicate before it was handled.
        support::append_raw(&s.pool, "Thing", "last", 1, "Happened").await;
        let all = log(&s.pool, 21).await;
        let last = all.last().expect("events").event_id;
        support::eventually(WAIT, "the last event applied", || {
            let pool = s.pool.clone();
            async move {
                let found: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM applied WHERE event_id = $1)")
                        .bind(last)
                        .fetch_one(&pool)
                        .await
                        .expect("applied?");
                found.then_some(())
            }
        })
        .await;
        assert_applied_once(&s.pool, &all.iter().collect::<Vec<_>>()).await;
        let status = s.wait_live_at_head().await;
        assert_eq!(status.applied, 21, "duplicates never reached the handler");
        assert_eq!(
            status.duplicates_ignored - ignored_before,
            20,
            "every republished event was delivered once more and ignored"
        );
    })
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn handler_writes_and_cursor_commit_together(pool: PgPool) {
    scenario(pool, |s| async move {
        // Appended before the consumer starts: it meets the poison while catching up, first in a
        // batch (rolled back whole), then one event at a time.
        let (events, at) = append_around_poison(&s.pool).await;
        s.start_relay();
        s.start_consumer(fast_config(&["#"]));
        let status = s.wait_failed().await;

        // The failed attempts wrote their row before failing: it was rolled back with them.
        let poisoned = &events[at];
        let row: Option<i32> = sqlx::query_scalar("SELECT times FROM applied WHERE event_id = $1")
            .bind(poisoned.event_id)
            .fetch_optional(&s.pool)
            .await
            .expect("applied row");
        assert_eq!(row, None, "the failed event's writes were committed");
        // Everything before it was committed with the cursor, once (the rolled-back batch left
        // nothing behind either); the cursor sits exactly on the event before the poisoned one.
        assert_applied_once(&s.pool, &events[..at].iter().collect::<Vec<_>>()).await;
        assert_eq!(status.position, events[at - 1].position);
        assert_eq!(status.applied, at as i64);
        assert_eq!(status.failed_position, Some(poisoned.position));
    })
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_failing_event_halts_the_consumer_as_failed_with_error_and_position(pool: PgPool) {
    scenario(pool, |s| async move {
        s.start_relay();
        s.start_consumer(fast_config(&["#"]));
        s.wait_live_at_head().await;

        // Live: the poisoned event arrives through the queue.
        let (events, at) = append_around_poison(&s.pool).await;
        let status = s.wait_failed().await;
        let poisoned = &events[at];
        let error = status.last_error.as_deref().expect("the error is shown");
        assert!(
            error.contains("poisoned aggregate poisoned"),
            "unexpected error: {error}"
        );
        assert_eq!(status.failed_position, Some(poisoned.position));
        assert_eq!(status.position, events[at - 1].position);
        assert!(status.lag_events > 0, "a halted consumer shows its lag");

        // It never skips silently: later events, already in its queue or still coming, wait.
        support::append_many(&s.pool, "Later", 5).await;
        s.wait_relayed(26).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_applied_once(&s.pool, &events[..at].iter().collect::<Vec<_>>()).await;
        let still = s.status().await;
        assert_eq!(still.status, ConsumerState::Failed);
        assert_eq!(still.position, events[at - 1].position);
        assert_eq!(still.failed_position, Some(poisoned.position));
        assert_eq!(still.lag_events, 26 - at as i64);
    })
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn retry_resumes_a_failed_consumer_once_the_cause_is_fixed(pool: PgPool) {
    scenario(pool, |s| async move {
        s.start_relay();
        s.start_consumer(fast_config(&["#"]));
        s.wait_live_at_head().await;
        let (_, at) = append_around_poison(&s.pool).await;
        s.wait_failed().await;
        assert_eq!(applied_count(&s.pool).await, at as i64);

        cure(&s.pool, "poisoned").await;
        checkpoint::request_retry(&s.pool, CONSUMER)
            .await
            .expect("retry a FAILED consumer");
        s.wait_applied(21).await;
        let status = s.wait_live_at_head().await;
        let all = log(&s.pool, 21).await;
        assert_applied_once(&s.pool, &all.iter().collect::<Vec<_>>()).await;
        assert_eq!(status.applied, 21);
        let skips: i64 = sqlx::query_scalar("SELECT count(*) FROM consumer_skips")
            .fetch_one(&s.pool)
            .await
            .expect("skips");
        assert_eq!(skips, 0, "a retry skips nothing");

        // And it follows its queue again.
        support::append_raw(&s.pool, "Thing", "after-retry", 1, "Happened").await;
        s.wait_applied(22).await;
        let all = log(&s.pool, 22).await;
        assert_applied_once(&s.pool, &all.iter().collect::<Vec<_>>()).await;
    })
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn skip_passes_over_the_failed_event_and_records_it(pool: PgPool) {
    scenario(pool, |s| async move {
        assert!(matches!(
            checkpoint::request_retry(&s.pool, CONSUMER).await,
            Err(RepairError::Unknown(name)) if name == CONSUMER
        ));
        assert!(matches!(
            checkpoint::request_skip(&s.pool, "nobody").await,
            Err(RepairError::Unknown(_))
        ));

        s.start_relay();
        s.start_consumer(fast_config(&["#"]));
        s.wait_live_at_head().await;
        assert!(matches!(
            checkpoint::request_retry(&s.pool, CONSUMER).await,
            Err(RepairError::NotFailed(name)) if name == CONSUMER
        ));
        assert!(matches!(
            checkpoint::request_skip(&s.pool, CONSUMER).await,
            Err(RepairError::NotFailed(_))
        ));

        let (events, at) = append_around_poison(&s.pool).await;
        let failed = s.wait_failed().await;
        let error = failed.last_error.clone().expect("error");
        // The poison stays: only a skip gets the consumer past it.
        checkpoint::request_skip(&s.pool, CONSUMER)
            .await
            .expect("skip on a FAILED consumer");
        s.wait_applied(20).await;
        let status = s.wait_live_at_head().await;
        let poisoned = &events[at];
        let others: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| e.event_id != poisoned.event_id)
            .collect();
        assert_applied_once(&s.pool, &others).await;
        assert_eq!(status.applied, 20);

        let skips: Vec<SkipRow> = sqlx::query_as(
            "SELECT consumer, transaction_id, global_position, event_id, error FROM consumer_skips",
        )
        .fetch_all(&s.pool)
        .await
        .expect("skips");
        assert_eq!(
            skips,
            vec![(
                CONSUMER.to_owned(),
                poisoned.position.transaction_id,
                poisoned.position.global_position,
                Some(poisoned.event_id),
                Some(error),
            )]
        );

        // The request was used up: the consumer is no longer FAILED.
        assert!(matches!(
            checkpoint::request_skip(&s.pool, CONSUMER).await,
            Err(RepairError::NotFailed(_))
        ));
    })
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_consumer_bound_to_some_events_still_reaches_the_head(pool: PgPool) {
    scenario(pool, |s| async move {
        s.start_relay();
        s.start_consumer(fast_config(&["Alpha.*"]));
        s.wait_live_at_head().await;

        // Live before anything is appended: its cursor can only pass the Beta events (the last
        // one above all) through the relay's position markers.
        for i in 1..=10 {
            support::append_raw(&s.pool, "Alpha", "a", i, "Happened").await;
            support::append_raw(&s.pool, "Beta", "b", i, "Happened").await;
        }
        let events = log(&s.pool, 20).await;
        let head = events.last().expect("events").position;
        assert_eq!(
            events.last().map(|e| e.aggregate_type.as_str()),
            Some("Beta")
        );

        s.wait_applied(10).await;
        let status = s
            .wait_status("the cursor to reach the head", |st| st.position == head)
            .await;
        assert_eq!(status.lag_events, 0);
        assert_eq!(status.status, ConsumerState::Live);
        assert_eq!(
            status.applied, 10,
            "only the Alpha events reached the handler"
        );
        let log_head = LogReader::new(s.pool.clone()).head().await.expect("head");
        assert_eq!(status.position, log_head);
        let alphas: Vec<&StoredEvent> = events
            .iter()
            .filter(|e| e.aggregate_type == "Alpha")
            .collect();
        assert_eq!(alphas.len(), 10);
        assert_applied_once(&s.pool, &alphas).await;
    })
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_instances_of_one_consumer_apply_each_event_once(pool: PgPool) {
    scenario(pool, |s| async move {
        s.start_relay();
        // Both catch up from the log at the same time, then one follows the queue, one stands by.
        support::append_many(&s.pool, "Early", 50).await;
        let first = s.start_consumer(fast_config(&["#"]));
        s.start_consumer(fast_config(&["#"]));

        support::append_many(&s.pool, "Thing", 100).await;
        s.wait_applied(150).await;
        s.wait_live_at_head().await;
        let all = log(&s.pool, 150).await;
        assert_applied_once(&s.pool, &all.iter().collect::<Vec<_>>()).await;

        // One instance stops while events flow: if it was the active one, the other takes over
        // its queue, unacknowledged deliveries included.
        let writer = {
            let pool = s.pool.clone();
            tokio::spawn(async move { support::append_many(&pool, "Late", 40).await })
        };
        s.wait_applied(160).await;
        s.stop(first).await;
        writer.await.expect("writer");
        s.wait_applied(190).await;
        let status = s.wait_live_at_head().await;
        let all = log(&s.pool, 190).await;
        assert_applied_once(&s.pool, &all.iter().collect::<Vec<_>>()).await;
        assert_eq!(status.applied, 190);
    })
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn deliveries_waiting_together_are_applied_in_one_transaction_in_order(pool: PgPool) {
    scenario(pool, |s| async move {
        s.start_relay();
        s.start_consumer(fast_config(&["Thing.*"]));
        s.wait_live_at_head().await;

        // One transaction: the slow event, 60 more, then 5 the consumer is not bound to. They
        // become visible together, the relay publishes them together (with position markers),
        // and the slow one keeps the handler busy while the rest wait in the consumer's buffer.
        sqlx::query(
            "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
             event_version, payload, metadata) \
             SELECT CASE WHEN i <= 60 THEN 'Thing' ELSE 'Other' END, \
             CASE WHEN i = 0 THEN $1 ELSE 'burst-' || i END, 1, 'Happened', '1.0', \
             jsonb_build_object('n', i), '{\"actor\": \"test\"}'::jsonb \
             FROM generate_series(0, 65) AS i ORDER BY i",
        )
        .bind(SLOW)
        .execute(&s.pool)
        .await
        .expect("append the burst");
        s.wait_relayed(66).await;

        let all = log(&s.pool, 66).await;
        let things: Vec<&StoredEvent> =
            all.iter().filter(|e| e.aggregate_type == "Thing").collect();
        s.wait_applied(61).await;
        let status = s.wait_live_at_head().await;
        assert_applied_once(&s.pool, &things).await;
        assert_eq!(status.applied, 61);
        assert_eq!(status.position, all.last().expect("events").position);

        // Applied in log order, and the 60 that waited share a handful of transactions.
        let txids: Vec<(Uuid, i64)> = sqlx::query_as("SELECT event_id, txid FROM applied")
            .fetch_all(&s.pool)
            .await
            .expect("txids");
        let txid_of = |id: Uuid| txids.iter().find(|(e, _)| *e == id).map(|(_, t)| *t);
        let order: Vec<i64> = things.iter().filter_map(|e| txid_of(e.event_id)).collect();
        assert!(
            order.windows(2).all(|w| w[0] <= w[1]),
            "applied out of log order: {order:?}"
        );
        let mut distinct = order[1..].to_vec();
        distinct.dedup();
        assert!(
            distinct.len() <= 3,
            "60 waiting deliveries took {} transactions",
            distinct.len()
        );
    })
    .await;
}
