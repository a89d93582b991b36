//! Notifications against real Postgres and RabbitMQ: one per triggering event, for the right user,
//! across redeliveries, restarts and replays; emailed exactly once when SMTP is configured.
//!
//! Events reach the process the real way: appended to the store, published by a running `Relay`,
//! routed to the `notifications` consumer's queue. Email goes to an in-test SMTP sink.

use commerce_testkit as support;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use commerce_domain::ids::user_id_for_email;
use commerce_domain::money::{Currency, Money};
use commerce_domain::order::{Order, OrderEvent, OrderLineItem};
use commerce_domain::payment::{Payment, PaymentEvent};
use commerce_domain::user::{Role, User, UserEvent};
use commerce_event_store::checkpoint;
use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{
    BrokerConfig, ConsumerConfig, ConsumerState, DurableConsumer, EventHandler, EventMetadata,
    EventStore, LogReader, Position, Relay, RelayConfig, StoredEvent,
};
use commerce_notifications::{
    list_for_user, notification_id, Channel, NotificationSender, NotificationStatus,
    NotificationType, NotificationsProcess, DEFAULT_FROM,
};
use futures::FutureExt;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use support::SmtpSink;

const WAIT: Duration = Duration::from_secs(30);
const NAME: &str = NotificationsProcess::NAME;

/// One test's world: its database, its broker namespace, and the tasks it runs.
struct Scenario {
    pool: PgPool,
    broker: BrokerConfig,
    shutdown: CancellationToken,
    /// Running tasks by id; `None` once stopped.
    tasks: Mutex<Vec<Option<Task>>>,
}

/// A running part and the token that stops it.
type Task = (CancellationToken, JoinHandle<()>);

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

    fn start_process(&self, smtp_enabled: bool) -> usize {
        let config = ConsumerConfig::new(NAME, NotificationsProcess::bindings());
        let consumer = DurableConsumer::new(
            self.pool.clone(),
            self.broker.clone(),
            config,
            NotificationsProcess::new(smtp_enabled),
        );
        self.spawn(|token| consumer.run(token))
    }

    fn start_sender(&self, sink: &SmtpSink) -> usize {
        let sender = sender(&self.pool, sink);
        self.spawn(|token| sender.run(token))
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

    async fn finish(&self) {
        self.shutdown.cancel();
        let tasks: Vec<_> = self.tasks.lock().expect("tasks").drain(..).collect();
        for (_, handle) in tasks.into_iter().flatten() {
            let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
        }
        support::cleanup(&self.broker, &[NAME]).await;
    }

    /// Waits until the process has applied the whole log (its `n` events) and returns the log.
    async fn wait_processed(&self, n: usize) -> Vec<StoredEvent> {
        let events = log(&self.pool, n).await;
        let head = events.last().map_or(Position::START, |e| e.position);
        support::eventually(WAIT, "the process to reach the head", || async move {
            checkpoint::has_reached(&self.pool, NAME, head)
                .await
                .expect("checkpoint")
                .then_some(())
        })
        .await;
        events
    }

    /// Deliveries the process acknowledged and ignored as already applied.
    async fn duplicates_ignored(&self) -> i64 {
        checkpoint::consumer_statuses(&self.pool)
            .await
            .expect("statuses")
            .into_iter()
            .find(|c| c.name == NAME)
            .map_or(0, |c| c.duplicates_ignored)
    }

    /// Waits until the process has caught up with the log and follows its queue.
    async fn wait_live(&self) {
        support::eventually(WAIT, "the process to be LIVE", || async move {
            checkpoint::consumer_statuses(&self.pool)
                .await
                .expect("statuses")
                .into_iter()
                .find(|c| c.name == NAME && c.status == ConsumerState::Live)
                .map(drop)
        })
        .await;
    }

    /// Waits until `n` notifications have status `status`.
    async fn wait_status(&self, n: i64, status: NotificationStatus) {
        support::eventually(
            WAIT,
            &format!("{n} notifications {status}"),
            || async move {
                let count: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM notifications.notifications WHERE status = $1",
                )
                .bind(status.as_str())
                .fetch_one(&self.pool)
                .await
                .expect("count");
                (count >= n).then_some(())
            },
        )
        .await;
    }
}

/// Runs `body` in a fresh scenario and always stops its tasks and deletes its queue.
async fn scenario<F, Fut>(pool: PgPool, body: F)
where
    F: FnOnce(Arc<Scenario>) -> Fut,
    Fut: Future<Output = ()>,
{
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

fn sender(pool: &PgPool, sink: &SmtpSink) -> NotificationSender {
    NotificationSender::new(pool.clone(), &sink.url(), DEFAULT_FROM)
        .expect("a valid SMTP URL")
        .with_poll_interval(Duration::from_millis(20))
        .with_retry_delay(Duration::ZERO)
}

/// The whole log, once its `n` events are visible to readers.
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

fn meta() -> EventMetadata {
    EventMetadata::new("test", Uuid::new_v4().to_string())
}

fn usd(minor: i64) -> Money {
    Money::new(minor, Currency::USD)
}

/// A customer's story, appended straight to the store. Returns the user and order ids.
struct Story {
    ada: Uuid,
    grace: Uuid,
    order: Uuid,
}

const ADA: &str = "ada@example.com";
const GRACE: &str = "grace@example.com";

/// 9 events: Ada registers, renames herself and changes her password; her order is confirmed and
/// shipped; a first payment fails, a second is captured and partly refunded; Grace registers.
/// Six trigger a notification.
async fn tell_story(store: &EventStore) -> Story {
    let now = Utc::now();
    let ada = register(store, ADA, "Ada").await;
    store
        .append::<User>(
            &ada.to_string(),
            1,
            &[
                UserEvent::ProfileUpdated {
                    user_id: ada,
                    name: "Ada Lovelace".into(),
                    phone: None,
                    at: now,
                },
                UserEvent::PasswordChanged {
                    user_id: ada,
                    at: now,
                },
            ],
            &meta(),
        )
        .await
        .expect("append user");
    let order = Uuid::new_v4();
    let line = OrderLineItem {
        product_id: Uuid::new_v4(),
        product_name: "Notebook".into(),
        quantity: 2,
        unit_price: usd(999),
        subtotal: usd(1998),
    };
    store
        .append::<Order>(
            &order.to_string(),
            0,
            &[
                OrderEvent::OrderConfirmed {
                    order_id: order,
                    user_id: ada,
                    total: usd(1998),
                    lines: vec![line],
                    at: now,
                },
                OrderEvent::OrderShipped {
                    order_id: order,
                    user_id: ada,
                    at: now,
                },
            ],
            &meta(),
        )
        .await
        .expect("append order");
    let failed = Uuid::new_v4();
    store
        .append::<Payment>(
            &failed.to_string(),
            0,
            &[PaymentEvent::PaymentFailed {
                payment_id: failed,
                order_id: order,
                user_id: ada,
                amount: usd(1998),
                method: "credit_card".into(),
                reason: "card declined".into(),
                at: now,
            }],
            &meta(),
        )
        .await
        .expect("append payment");
    let paid = Uuid::new_v4();
    store
        .append::<Payment>(
            &paid.to_string(),
            0,
            &[
                PaymentEvent::PaymentCaptured {
                    payment_id: paid,
                    order_id: order,
                    user_id: ada,
                    amount: usd(1998),
                    method: "credit_card".into(),
                    gateway_transaction_id: "gw-1".into(),
                    at: now,
                },
                PaymentEvent::PaymentRefunded {
                    payment_id: paid,
                    order_id: order,
                    user_id: ada,
                    refund_id: Uuid::new_v4(),
                    amount: usd(500),
                    total_refunded: usd(500),
                    fully_refunded: false,
                    reason: "one notebook arrived damaged".into(),
                    at: now,
                },
            ],
            &meta(),
        )
        .await
        .expect("append payment");
    let grace = register(store, GRACE, "Grace").await;
    Story { ada, grace, order }
}

async fn register(store: &EventStore, email: &str, name: &str) -> Uuid {
    let user_id = user_id_for_email(email);
    store
        .append::<User>(
            &user_id.to_string(),
            0,
            &[UserEvent::UserRegistered {
                user_id,
                email: email.into(),
                name: name.into(),
                phone: None,
                roles: vec![Role::Customer],
                at: Utc::now(),
            }],
            &meta(),
        )
        .await
        .expect("append registration");
    user_id
}

/// Which notification each event of the log must trigger, and for whom.
fn expected(events: &[StoredEvent], story: &Story) -> Vec<(Uuid, NotificationType, Uuid)> {
    events
        .iter()
        .filter_map(|e| {
            let kind = match e.event_type.as_str() {
                "UserRegistered" => NotificationType::Welcome,
                "OrderConfirmed" => NotificationType::OrderConfirmed,
                "OrderShipped" => NotificationType::OrderShipped,
                "PaymentFailed" => NotificationType::PaymentFailed,
                "PaymentRefunded" => NotificationType::Refund,
                _ => return None,
            };
            // Registrations notify the registered user; everything else in the story is Ada's.
            let user = match kind {
                NotificationType::Welcome => e.aggregate_id.parse().expect("a user id"),
                _ => story.ada,
            };
            Some((e.event_id, kind, user))
        })
        .collect()
}

/// Every stored notification: id, triggering event, type, user, channel, status, subject,
/// created_at, sent_at, attempts.
type Row = (
    Uuid,
    Uuid,
    String,
    Uuid,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    i32,
);

async fn rows(pool: &PgPool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT id, triggering_event_id, type, user_id, channel, status, subject, created_at, \
         sent_at, attempts FROM notifications.notifications ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .expect("notifications")
}

/// Asserts one notification per trigger of `events`, of its type, for its user, with the
/// deterministic id and the event's time, and nothing else.
async fn assert_one_per_trigger(pool: &PgPool, events: &[StoredEvent], story: &Story) {
    let rows = rows(pool).await;
    let expected = expected(events, story);
    assert_eq!(
        rows.len(),
        expected.len(),
        "one notification per trigger: {rows:#?}"
    );
    for (event_id, kind, user) in expected {
        let matching: Vec<_> = rows.iter().filter(|r| r.1 == event_id).collect();
        assert_eq!(matching.len(), 1, "{kind} of event {event_id}");
        let row = matching[0];
        let event = events.iter().find(|e| e.event_id == event_id).unwrap();
        assert_eq!(row.0, notification_id(event_id, kind));
        assert_eq!(row.2, kind.as_str());
        assert_eq!(row.3, user, "{kind} goes to its user");
        assert_eq!(row.7, event.recorded_at, "created_at is the event's time");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn each_trigger_notifies_its_user_once_with_the_right_type(pool: PgPool) {
    scenario(pool, |s| async move {
        s.start_relay();
        s.start_process(false);
        let story = tell_story(&EventStore::new(s.pool.clone())).await;
        let events = s.wait_processed(9).await;
        assert_one_per_trigger(&s.pool, &events, &story).await;

        // Without SMTP they are in-app notifications, delivered when written.
        for row in rows(&s.pool).await {
            assert_eq!((row.4.as_str(), row.5.as_str()), ("in_app", "SENT"));
            assert_eq!(row.8, Some(row.7), "sent_at = created_at");
        }

        let (ada, total) = list_for_user(&s.pool, story.ada, 1, 10).await.unwrap();
        assert_eq!(total, 5);
        let kinds: Vec<_> = ada.iter().map(|n| n.kind).collect();
        assert_eq!(
            kinds,
            [
                NotificationType::Refund,
                NotificationType::PaymentFailed,
                NotificationType::OrderShipped,
                NotificationType::OrderConfirmed,
                NotificationType::Welcome,
            ],
            "newest first"
        );
        assert!(ada.iter().all(|n| n.channel == Channel::InApp));
        let by_kind = |kind| ada.iter().find(|n| n.kind == kind).unwrap();
        let short = &story.order.simple().to_string()[..8];

        let welcome = by_kind(NotificationType::Welcome);
        assert!(welcome.body.starts_with("Hello Ada,"), "{}", welcome.body);
        let confirmed = by_kind(NotificationType::OrderConfirmed);
        assert_eq!(confirmed.subject, format!("Order {short} confirmed"));
        assert!(
            confirmed.body.starts_with("Hello Ada Lovelace,"),
            "the name as of then"
        );
        assert!(confirmed.body.contains(&story.order.to_string()));
        assert!(confirmed.body.contains("2 x Notebook: 19.98 USD"));
        assert!(confirmed.body.contains("Total: 19.98 USD"));
        let failed = by_kind(NotificationType::PaymentFailed);
        assert_eq!(failed.subject, format!("Payment for order {short} failed"));
        assert!(failed.body.contains("19.98 USD") && failed.body.contains("card declined"));
        let shipped = by_kind(NotificationType::OrderShipped);
        assert_eq!(shipped.subject, format!("Order {short} shipped"));
        let refund = by_kind(NotificationType::Refund);
        assert_eq!(
            refund.subject,
            format!("Refund of 5.00 USD for order {short}")
        );
        assert!(refund.body.contains("Refunded so far: 5.00 USD."));

        let (page, total) = list_for_user(&s.pool, story.ada, 2, 2).await.unwrap();
        assert_eq!(total, 5);
        assert_eq!(page, ada[2..4]);
        let (grace, total) = list_for_user(&s.pool, story.grace, 1, 10).await.unwrap();
        assert_eq!(total, 1);
        assert_eq!(grace[0].kind, NotificationType::Welcome);
        assert_eq!(
            list_for_user(&s.pool, Uuid::new_v4(), 1, 10)
                .await
                .unwrap()
                .1,
            0
        );
    })
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn delivering_every_event_twice_still_notifies_once_per_trigger(pool: PgPool) {
    scenario(pool, |s| async move {
        s.start_relay();
        let first = s.start_process(false);
        // Live before the story: each event reaches it once, by the queue alone, so every
        // duplicate it counts below is one republished here.
        s.wait_live().await;
        let store = EventStore::new(s.pool.clone());
        let story = tell_story(&store).await;
        let events = s.wait_processed(9).await;
        let before = rows(&s.pool).await;
        assert_eq!(before.len(), 6);
        let ignored_before = s.duplicates_ignored().await;

        // Every message a second time, then a restart that also re-reads the whole log: the
        // cursor is rewound, as a replay would, so the process itself sees every event again.
        support::republish(&s.broker, &events).await;
        let routed = support::routed_to(&events, &NotificationsProcess::bindings());
        assert!(routed > 0, "nothing republished reaches the process");
        s.stop(first).await;
        sqlx::query(
            "UPDATE consumer_checkpoints \
             SET transaction_id = 0, global_position = 0, status = 'CATCHING_UP' WHERE name = $1",
        )
        .bind(NAME)
        .execute(&s.pool)
        .await
        .expect("rewind");
        s.start_process(false);
        s.wait_live().await;

        // Appended once the process follows its queue, behind the duplicates: the queue is FIFO,
        // so once this one is notified, every duplicate before it was handled.
        let carol = register(&store, "carol@example.com", "Carol").await;
        let events = s.wait_processed(10).await;
        support::eventually(WAIT, "Carol's welcome", || async {
            let (list, _) = list_for_user(&s.pool, carol, 1, 10).await.unwrap();
            (!list.is_empty()).then_some(())
        })
        .await;
        assert_eq!(rows(&s.pool).await.len(), 7);
        assert_eq!(
            s.duplicates_ignored().await - ignored_before,
            routed,
            "the process did not receive and ignore exactly the duplicates sent"
        );

        let after = rows(&s.pool).await;
        for row in &before {
            assert!(after.contains(row), "unchanged by the replay: {row:?}");
        }
        assert_one_per_trigger(&s.pool, &events, &story).await;
    })
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn with_smtp_each_notification_is_emailed_once_and_marked_sent(pool: PgPool) {
    let sink = SmtpSink::start().await;
    let sink = &sink;
    scenario(pool, |s| async move {
        s.start_relay();
        s.start_process(true);
        let first_sender = s.start_sender(sink);
        let store = EventStore::new(s.pool.clone());
        let story = tell_story(&store).await;
        let events = s.wait_processed(9).await;
        assert_one_per_trigger(&s.pool, &events, &story).await;
        s.wait_status(6, NotificationStatus::Sent).await;

        let rows = rows(&s.pool).await;
        let mails = sink.received();
        assert_eq!(mails.len(), 6, "each emailed once: {mails:#?}");
        for row in &rows {
            assert_eq!((row.4.as_str(), row.5.as_str()), ("email", "SENT"));
            assert!(row.8.is_some_and(|sent| sent >= row.7), "sent_at is set");
            assert_eq!(row.9, 1, "one attempt");
            let message_id = format!("<{}@notifications.commerce>", row.0);
            let mail = mails
                .iter()
                .find(|m| m.header("Message-ID").as_deref() == Some(message_id.as_str()))
                .unwrap_or_else(|| panic!("no email for {row:?}"));
            let to = if row.3 == story.grace { GRACE } else { ADA };
            assert_eq!(mail.to, [format!("<{to}>")]);
            assert_eq!(mail.from, format!("<{DEFAULT_FROM}>"));
            assert_eq!(mail.header("Subject").as_deref(), Some(row.6.as_str()));
        }

        // A restarted sender resends nothing; it sends what is new.
        s.stop(first_sender).await;
        assert_eq!(sender(&s.pool, sink).send_pending().await.unwrap(), 0);
        s.start_sender(sink);
        let carol = register(&store, "carol@example.com", "Carol").await;
        s.wait_processed(10).await;
        s.wait_status(7, NotificationStatus::Sent).await;
        let mails = sink.received();
        assert_eq!(mails.len(), 7, "only Carol's welcome is new: {mails:#?}");
        assert_eq!(mails[6].to, ["<carol@example.com>"]);
        let (carol, _) = list_for_user(&s.pool, carol, 1, 10).await.unwrap();
        assert_eq!(carol[0].status, NotificationStatus::Sent);
        assert_eq!(carol[0].channel, Channel::Email);
    })
    .await;
}

/// Writes the notifications of every event of the log through the process, without a broker.
async fn process_log(pool: &PgPool, n: usize, smtp_enabled: bool) {
    let process = NotificationsProcess::new(smtp_enabled);
    let mut tx = pool.begin().await.unwrap();
    for event in log(pool, n).await {
        process.handle(&mut tx, &event).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn delivery(pool: &PgPool) -> (String, i32, Option<String>) {
    sqlx::query_as("SELECT status, attempts, last_error FROM notifications.notifications")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_unreachable_smtp_server_fails_a_notification_after_five_attempts(pool: PgPool) {
    register(&EventStore::new(pool.clone()), ADA, "Ada").await;
    process_log(&pool, 1, true).await;
    // A port nobody listens on: every attempt is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sender = NotificationSender::new(
        pool.clone(),
        &format!("smtp://127.0.0.1:{port}"),
        DEFAULT_FROM,
    )
    .unwrap()
    .with_retry_delay(Duration::ZERO);
    for attempt in 1..=5 {
        assert_eq!(sender.send_pending().await.unwrap(), 1);
        let (status, attempts, error) = delivery(&pool).await;
        assert_eq!(attempts, attempt);
        assert!(error.is_some());
        let expected = if attempt < 5 { "PENDING" } else { "FAILED" };
        assert_eq!(status, expected, "after attempt {attempt}");
    }
    assert_eq!(
        sender.send_pending().await.unwrap(),
        0,
        "a failed one is left alone"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_permanent_smtp_rejection_fails_a_notification_at_once(pool: PgPool) {
    let sink = SmtpSink::refusing("550 no such mailbox").await;
    register(&EventStore::new(pool.clone()), ADA, "Ada").await;
    process_log(&pool, 1, true).await;
    let sender = sender(&pool, &sink);
    assert_eq!(sender.send_pending().await.unwrap(), 1);
    let (status, attempts, error) = delivery(&pool).await;
    assert_eq!((status.as_str(), attempts), ("FAILED", 1));
    assert!(error.unwrap().contains("no such mailbox"));
    assert!(sink.received().is_empty());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_retried_attempt_waits_for_its_delay(pool: PgPool) {
    register(&EventStore::new(pool.clone()), ADA, "Ada").await;
    process_log(&pool, 1, true).await;
    let sink = SmtpSink::refusing("451 try again later").await;
    let sender = NotificationSender::new(pool.clone(), &sink.url(), DEFAULT_FROM)
        .unwrap()
        .with_retry_delay(Duration::from_secs(3600));
    assert_eq!(sender.send_pending().await.unwrap(), 1);
    assert_eq!(delivery(&pool).await.0, "PENDING");
    assert_eq!(sender.send_pending().await.unwrap(), 0, "not due yet");
}

#[test]
fn a_bad_smtp_configuration_is_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = PgPool::connect_lazy("postgres://127.0.0.1/unused").unwrap();
        for (url, from) in [
            ("smtps://mail.example.com", DEFAULT_FROM),
            ("not a url", DEFAULT_FROM),
            ("smtp://127.0.0.1:2525", "not an address"),
        ] {
            assert!(
                NotificationSender::new(pool.clone(), url, from).is_err(),
                "{url} {from}"
            );
        }
    });
}
