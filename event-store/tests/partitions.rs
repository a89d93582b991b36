//! Partitioned consumers against real Postgres and RabbitMQ (with its consistent-hash exchange):
//! a consumer split into 4 partitions, run by two instances, applies every event exactly once,
//! each aggregate's events by one partition in log order; the split takes over from a running
//! unpartitioned instance; a partition halts, is retried and skipped on its own while the others
//! go on; bad partition settings are refused before anything changes.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use commerce_event_store::broker::partition_name;
use commerce_event_store::checkpoint;
use commerce_event_store::consumer::{check_partitions, partition_count};
use commerce_event_store::{
    BrokerConfig, ConsumerConfig, ConsumerState, ConsumerStatus, DurableConsumer, EventHandler,
    HandlerError, PartitionError, Position, Relay, RelayConfig, StoredEvent,
};
use futures::FutureExt;
use sqlx::{PgConnection, PgPool};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(30);
const CONSUMER: &str = "applier";
const PARTITIONS: u32 = 4;

/// Records every event with the consumer instance that applied it (`seq` gives the order of
/// application), then refuses events of poisoned aggregates.
#[derive(Debug, Clone)]
struct Recorder {
    by: String,
}

impl EventHandler for Recorder {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        sqlx::query(
            "INSERT INTO applied (event_id, aggregate_id, sequence, by, times) \
             VALUES ($1, $2, $3, $4, 1) \
             ON CONFLICT (event_id) DO UPDATE SET times = applied.times + 1",
        )
        .bind(event.event_id)
        .bind(&event.aggregate_id)
        .bind(event.sequence)
        .bind(&self.by)
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

type Task = (CancellationToken, JoinHandle<()>);

struct Scenario {
    pool: PgPool,
    broker: BrokerConfig,
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

    fn consumer(&self, by: &str) -> DurableConsumer<Recorder> {
        let mut config = ConsumerConfig::new(CONSUMER, ["Thing.*"]);
        config.max_attempts = 3;
        config.retry_initial = Duration::from_millis(10);
        config.retry_max = Duration::from_millis(50);
        config.operator_poll = Duration::from_millis(50);
        DurableConsumer::new(
            self.pool.clone(),
            self.broker.clone(),
            config,
            Recorder { by: by.to_owned() },
        )
    }

    /// One unpartitioned instance.
    fn start_whole(&self) -> usize {
        let consumer = self.consumer("whole");
        self.spawn(|token| consumer.run(token))
    }

    /// An instance running partitions `indexes` of 4: one task per partition, stopped together.
    fn start_partitions(&self, instance: &str, indexes: &[u32]) -> Vec<usize> {
        indexes
            .iter()
            .map(|index| {
                let consumer = self
                    .consumer(&format!("{instance}/p{index}"))
                    .partitioned(PARTITIONS, *index)
                    .expect("a valid partition");
                self.spawn(|token| consumer.run(token))
            })
            .collect()
    }

    async fn stop(&self, ids: &[usize]) {
        for id in ids {
            let task = self.tasks.lock().expect("tasks")[*id].take();
            if let Some((token, handle)) = task {
                token.cancel();
                tokio::time::timeout(Duration::from_secs(10), handle)
                    .await
                    .expect("the task stops when cancelled")
                    .expect("the task did not panic");
            }
        }
    }

    /// Whether task `id` has ended by itself.
    fn ended(&self, id: usize) -> bool {
        self.tasks.lock().expect("tasks")[id]
            .as_ref()
            .is_none_or(|(_, handle)| handle.is_finished())
    }

    async fn finish(&self) {
        self.shutdown.cancel();
        let tasks: Vec<_> = self.tasks.lock().expect("tasks").drain(..).collect();
        for (_, handle) in tasks.into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
        let mut queues: Vec<String> = (0..PARTITIONS)
            .map(|k| partition_name(CONSUMER, k))
            .collect();
        queues.push(CONSUMER.to_owned());
        let queues: Vec<&str> = queues.iter().map(String::as_str).collect();
        support::cleanup(&self.broker, &queues).await;
        if let Ok(conn) = self.broker.connect("test-cleanup").await {
            if let Ok(ch) = conn.create_channel().await {
                let _ = ch
                    .exchange_delete(
                        self.broker.partition_exchange(CONSUMER).into(),
                        Default::default(),
                    )
                    .await;
            }
        }
    }

    async fn statuses(&self) -> Vec<ConsumerStatus> {
        checkpoint::consumer_statuses(&self.pool)
            .await
            .expect("statuses")
    }

    /// Waits until the consumer, as a whole, has applied the log's head: every partition LIVE
    /// at it, and the group's own row showing it.
    async fn wait_all_live_at_head(&self) -> Vec<ConsumerStatus> {
        support::eventually(WAIT, "every partition LIVE at the head", || async move {
            let statuses = self.statuses().await;
            let partitions: Vec<&ConsumerStatus> = statuses
                .iter()
                .filter(|s| s.partition_of.as_deref() == Some(CONSUMER))
                .collect();
            let group = statuses.iter().find(|s| s.name == CONSUMER)?;
            let done = partitions.len() == PARTITIONS as usize
                && partitions
                    .iter()
                    .all(|s| s.status == ConsumerState::Live && s.position == s.head)
                && group.position == group.head
                && group.lag_events == 0;
            done.then_some(statuses)
        })
        .await
    }

    async fn wait_applied(&self, n: i64) {
        support::eventually(WAIT, &format!("{n} events applied"), || async move {
            (count(&self.pool, "SELECT count(*) FROM applied").await >= n).then_some(())
        })
        .await;
    }

    async fn wait_status(&self, name: &str, what: &str, check: impl Fn(&ConsumerStatus) -> bool) {
        let check = &check;
        support::eventually(WAIT, what, || async move {
            self.statuses()
                .await
                .into_iter()
                .find(|s| s.name == name && check(s))
        })
        .await;
    }
}

async fn scenario<F, Fut>(pool: PgPool, body: F)
where
    F: FnOnce(Arc<Scenario>) -> Fut,
    Fut: Future<Output = ()>,
{
    sqlx::query(
        "CREATE TABLE applied (seq bigserial, event_id uuid PRIMARY KEY, aggregate_id text NOT NULL, \
         sequence bigint NOT NULL, by text NOT NULL, times int NOT NULL)",
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

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .expect("count")
}

/// Appends `per` events to each of `aggregates` aggregates `t<first>`.. (interleaved), after
/// the `done` events each already has.
async fn append(pool: &PgPool, first: usize, aggregates: usize, done: i64, per: i64) {
    for v in 1..=per {
        for a in first..first + aggregates {
            support::append_raw(pool, "Thing", &format!("t{a}"), done + v, "Happened").await;
        }
    }
}

/// Every event of the log is applied exactly once (waiting until all have been: a status at the
/// head can come early, since the log's head is held back while any transaction of the cluster
/// that might still append is open).
async fn assert_each_once(pool: &PgPool) {
    let total = count(pool, "SELECT count(*) FROM events").await;
    support::eventually(WAIT, &format!("all {total} events applied"), || async move {
        (count(pool, "SELECT count(*) FROM applied").await >= total).then_some(())
    })
    .await;
    let twice = count(pool, "SELECT count(*) FROM applied WHERE times <> 1").await;
    assert_eq!(twice, 0, "events applied more than once");
    let missing = count(
        pool,
        "SELECT count(*) FROM events e WHERE NOT EXISTS \
         (SELECT 1 FROM applied a WHERE a.event_id = e.event_id)",
    )
    .await;
    assert_eq!(missing, 0, "not every event was applied");
    let applied = count(pool, "SELECT count(*) FROM applied").await;
    assert_eq!(applied, total, "applied events that are not in the log");
}

#[sqlx::test(migrator = "commerce_event_store::db::MIGRATOR")]
async fn four_partitions_in_two_instances_take_over_and_apply_each_event_once(pool: PgPool) {
    scenario(pool, |s| async move {
        // An unpartitioned consumer has applied the first stretch of the log.
        append(&s.pool, 0, 10, 0, 3).await;
        s.start_relay();
        let whole = s.start_whole();
        s.wait_applied(30).await;

        // Two instances split it into 4: `a` runs partitions 0 and 1, `b` all four (active for 2
        // and 3, standby for 0 and 1). Events keep coming meanwhile.
        let a = s.start_partitions("a", &[0, 1]);
        let b = s.start_partitions("b", &[0, 1, 2, 3]);
        append(&s.pool, 0, 10, 3, 2).await;
        support::eventually(
            WAIT,
            "the unpartitioned instance to stop by itself",
            || async { s.ended(whole).then_some(()) },
        )
        .await;
        assert_eq!(
            partition_count(&s.pool, CONSUMER).await.expect("count"),
            Some(PARTITIONS)
        );
        let split_at: Position = {
            let statuses = s.wait_all_live_at_head().await;
            statuses
                .iter()
                .find(|st| st.name == CONSUMER)
                .map(|st| st.position)
                .expect("the group row")
        };

        // `a` goes away; `b`'s standbys take over its partitions.
        s.stop(&a).await;
        append(&s.pool, 0, 40, 5, 3).await;
        s.wait_applied(50 + 120).await;
        let statuses = s.wait_all_live_at_head().await;
        assert_each_once(&s.pool).await;

        // The group's row says what it is, each partition has its own row and queue.
        let group = statuses
            .iter()
            .find(|st| st.name == CONSUMER)
            .expect("group");
        assert_eq!(group.status, ConsumerState::Partitioned);
        assert_eq!(group.partitions, Some(PARTITIONS));
        let names: BTreeSet<&str> = statuses
            .iter()
            .filter(|st| st.partition_of.as_deref() == Some(CONSUMER))
            .map(|st| st.name.as_str())
            .collect();
        assert_eq!(
            names,
            BTreeSet::from(["applier.p0", "applier.p1", "applier.p2", "applier.p3"])
        );
        // The unpartitioned queue is gone; read-your-writes waits on the partitions.
        let conn = s.broker.connect("test").await.expect("connect");
        assert_eq!(
            s.broker.queue_backlog(&conn, CONSUMER).await.expect("ask"),
            None
        );
        for k in 0..PARTITIONS {
            assert_eq!(
                s.broker
                    .queue_backlog(&conn, &partition_name(CONSUMER, k))
                    .await
                    .expect("ask"),
                Some(0)
            );
        }
        let head = group.head;
        assert!(checkpoint::has_reached(&s.pool, CONSUMER, head)
            .await
            .expect("reached"));

        // After the split, each aggregate's events were applied by one partition, in order,
        // and every partition got some.
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT a.aggregate_id, a.sequence, a.by FROM applied a \
             JOIN events e ON e.event_id = a.event_id \
             WHERE (e.transaction_id::text::bigint, e.global_position) > ($1, $2) ORDER BY a.seq",
        )
        .bind(split_at.transaction_id)
        .bind(split_at.global_position)
        .fetch_all(&s.pool)
        .await
        .expect("rows");
        assert!(!rows.is_empty(), "nothing applied after the split");
        let mut owner: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
        let mut last: BTreeMap<&str, i64> = BTreeMap::new();
        for (aggregate, sequence, by) in &rows {
            let partition = by.rsplit('/').next().unwrap_or(by).to_owned();
            owner.entry(aggregate).or_default().insert(partition);
            let previous = last.insert(aggregate, *sequence).unwrap_or(0);
            assert!(
                *sequence > previous,
                "{aggregate}: event {sequence} applied after {previous}"
            );
        }
        for (aggregate, partitions) in &owner {
            assert_eq!(partitions.len(), 1, "{aggregate} applied by {partitions:?}");
        }
        let used: BTreeSet<String> = owner.values().flatten().cloned().collect();
        assert_eq!(used.len(), PARTITIONS as usize, "partitions used: {used:?}");
        let _ = conn.close(200, "bye".into()).await;
        s.stop(&b).await;
    })
    .await;
}

#[sqlx::test(migrator = "commerce_event_store::db::MIGRATOR")]
async fn a_halted_partition_is_retried_and_skipped_on_its_own(pool: PgPool) {
    scenario(pool, |s| async move {
        s.start_relay();
        let _all = s.start_partitions("x", &[0, 1, 2, 3]);
        append(&s.pool, 0, 20, 0, 1).await;
        s.wait_all_live_at_head().await;

        // One aggregate fails: its partition halts, naming it; the others go on.
        sqlx::query("INSERT INTO poison (aggregate_id) VALUES ('t0')")
            .execute(&s.pool)
            .await
            .expect("poison");
        append(&s.pool, 0, 20, 1, 1).await;
        let halted = support::eventually(WAIT, "a partition to halt", || async {
            s.statuses()
                .await
                .into_iter()
                .find(|st| st.status == ConsumerState::Failed)
        })
        .await;
        assert_eq!(halted.partition_of.as_deref(), Some(CONSUMER));
        assert!(
            halted
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("poisoned aggregate t0")),
            "{halted:?}"
        );
        // The other partitions go on to the head.
        let halted_name = halted.name.clone();
        support::eventually(WAIT, "the other partitions at the head", || async {
            let statuses = s.statuses().await;
            let others: Vec<&ConsumerStatus> = statuses
                .iter()
                .filter(|st| st.partition_of.is_some() && st.name != halted_name)
                .collect();
            (others.len() == 3
                && others
                    .iter()
                    .all(|st| st.status == ConsumerState::Live && st.position == st.head))
            .then_some(())
        })
        .await;
        assert!(count(&s.pool, "SELECT count(*) FROM applied").await > 20);

        // Retry once the cause is gone: the partition applies it and goes on.
        sqlx::query("DELETE FROM poison")
            .execute(&s.pool)
            .await
            .expect("cure");
        checkpoint::request_retry(&s.pool, &halted.name)
            .await
            .expect("retry a halted partition");
        s.wait_all_live_at_head().await;
        assert_each_once(&s.pool).await;

        // A skip passes over the event and records it under the partition's name.
        sqlx::query("INSERT INTO poison (aggregate_id) VALUES ('t1')")
            .execute(&s.pool)
            .await
            .expect("poison");
        support::append_raw(&s.pool, "Thing", "t1", 3, "Happened").await;
        let name = support::eventually(WAIT, "t1's partition to halt", || async {
            s.statuses()
                .await
                .into_iter()
                .find(|st| st.status == ConsumerState::Failed)
                .map(|st| st.name)
        })
        .await;
        checkpoint::request_skip(&s.pool, &name)
            .await
            .expect("skip on a halted partition");
        s.wait_status(&name, "the partition to pass the skipped event", |st| {
            st.status == ConsumerState::Live && st.position == st.head
        })
        .await;
        let skipped: Vec<String> = sqlx::query_scalar("SELECT consumer FROM consumer_skips")
            .fetch_all(&s.pool)
            .await
            .expect("skips");
        assert_eq!(skipped, vec![name]);
    })
    .await;
}

#[sqlx::test(migrator = "commerce_event_store::db::MIGRATOR")]
async fn bad_partition_settings_are_refused_and_change_nothing(pool: PgPool) {
    scenario(pool, |s| async move {
        for (count, index) in [(1, 0), (65, 0), (4, 4), (2, 7)] {
            let refused = check_partitions(&s.pool, CONSUMER, count, &[index]).await;
            assert!(refused.is_err(), "{count} partitions, #{index} accepted");
            assert!(s.consumer("bad").partitioned(count, index).is_err());
        }
        match check_partitions(&s.pool, CONSUMER, 4, &[4]).await {
            Err(e @ PartitionError::Index { .. }) => {
                assert!(e.to_string().contains("0 to 3"), "{e}");
            }
            other => panic!("expected an index error, got {other:?}"),
        }

        // Split into 4, then an instance asks for 2: refused before it starts, and an instance
        // started anyway stops by itself without touching anything.
        s.start_relay();
        append(&s.pool, 0, 5, 0, 1).await;
        let _four = s.start_partitions("four", &[0, 1, 2, 3]);
        s.wait_all_live_at_head().await;
        // Published before any partition queue existed: applied by the split's catch-up.
        assert_each_once(&s.pool).await;
        let rows_before = count(&s.pool, "SELECT count(*) FROM consumer_checkpoints").await;
        match check_partitions(&s.pool, CONSUMER, 2, &[0]).await {
            Err(e @ PartitionError::Disagree { .. }) => {
                let text = e.to_string();
                assert!(
                    text.contains("already runs as 4 partitions, not 2"),
                    "{text}"
                );
            }
            other => panic!("expected a disagreement, got {other:?}"),
        }
        let two = s.consumer("two").partitioned(2, 0).expect("in range");
        let id = s.spawn(|token| two.run(token));
        support::eventually(WAIT, "the 2-partition instance to stop", || async {
            s.ended(id).then_some(())
        })
        .await;
        assert_eq!(
            count(&s.pool, "SELECT count(*) FROM consumer_checkpoints").await,
            rows_before
        );
        assert_eq!(
            partition_count(&s.pool, CONSUMER).await.expect("count"),
            Some(4)
        );
        // An unpartitioned instance started now stops at once and applies nothing.
        let before = count(&s.pool, "SELECT count(*) FROM applied").await;
        let whole = s.start_whole();
        support::eventually(WAIT, "the unpartitioned instance to stop", || async {
            s.ended(whole).then_some(())
        })
        .await;
        append(&s.pool, 0, 5, 1, 1).await;
        s.wait_applied(before + 5).await;
        s.wait_all_live_at_head().await;
        assert_each_once(&s.pool).await;
        assert_eq!(
            count(&s.pool, "SELECT count(*) FROM applied WHERE by = 'whole'").await,
            0
        );
    })
    .await;
}
