//! Guarantee 3: the relay publishes every event, confirmed, with one active relay at a time, and
//! survives losing its broker connection or its own death (a standby takes over).

#![allow(clippy::print_stdout)] // tests print the figures they measure

mod support;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use commerce_event_store::db::MIGRATOR;
use commerce_event_store::{relay, LogReader, Position, Relay, RelayConfig};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

fn config() -> RelayConfig {
    RelayConfig {
        standby_interval: Duration::from_millis(100),
        ..RelayConfig::default()
    }
}

/// Appends `n` events, a few milliseconds apart, so a failure lands mid-stream.
fn steady_writer(pool: PgPool, n: i64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for i in 1..=n {
            support::append_raw(
                &pool,
                "Order",
                &format!("o{}", i % 7),
                (i + 6) / 7,
                "OrderPlaced",
            )
            .await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

async fn committed_positions(pool: &PgPool) -> HashSet<Position> {
    let log = LogReader::new(pool.clone());
    assert!(
        log.settle(Duration::from_secs(10)).await.unwrap(),
        "the horizon never settled"
    );
    let mut cursor = Position::START;
    let mut all = HashSet::new();
    loop {
        let batch = log.read_after(cursor, 1000).await.unwrap();
        let Some(last) = batch.last() else { return all };
        cursor = last.position;
        all.extend(batch.iter().map(|e| e.position));
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn every_event_is_published_with_routing_key_headers_and_message_id(pool: PgPool) {
    let broker = support::broker();
    let (_tap_conn, mut rx) = support::tap(&broker).await;
    support::append_many(&pool, "Order", 12).await;
    support::append_many(&pool, "Inventory", 8).await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(Relay::new(pool.clone(), broker.clone(), config()).run(stop.clone()));

    let received = support::collect_events(&mut rx, 20, Duration::from_secs(30)).await;
    let stored = LogReader::new(pool.clone())
        .read_after(Position::START, 100)
        .await
        .unwrap();
    assert_eq!(received.len(), 20, "one message per event");
    for (msg, event) in received.iter().zip(&stored) {
        let got = msg.event.as_ref().unwrap();
        assert_eq!(
            got, event,
            "published in log order, body is the stored event"
        );
        assert_eq!(
            msg.routing_key,
            format!("{}.{}", event.aggregate_type, event.event_type)
        );
        assert_eq!(
            msg.message_id.as_deref(),
            Some(event.event_id.to_string().as_str())
        );
        assert!(msg.persistent, "delivery mode 2");
        assert_eq!(msg.headers["position"], event.position.token());
        assert_eq!(msg.headers["aggregate_id"], event.aggregate_id);
        assert_eq!(msg.headers["aggregate_type"], event.aggregate_type);
        assert_eq!(msg.headers["version"], event.sequence.to_string());
        assert_eq!(msg.headers["event_type"], event.event_type);
        assert_eq!(msg.headers["correlation_id"], event.metadata.correlation_id);
        assert!(msg.headers["recorded_at"]
            .starts_with(&event.recorded_at.format("%Y-%m-%dT%H:%M:%S").to_string()));
    }
    // The cursor is stored once the broker confirmed.
    let head = LogReader::new(pool.clone()).head().await.unwrap();
    support::eventually(
        Duration::from_secs(10),
        "the relay cursor at the head",
        || async {
            let cursor = relay::relay_cursor(&pool, &broker.namespace).await.unwrap();
            (cursor.map(|(p, _)| p) == Some(head)).then_some(())
        },
    )
    .await;
    stop.cancel();
    task.await.unwrap();
    support::cleanup(&broker, &[]).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_standby_relay_takes_over_when_the_active_one_dies(pool: PgPool) {
    let broker = support::broker();
    let (_tap_conn, mut rx) = support::tap(&broker).await;
    let stop = CancellationToken::new();
    let writer = steady_writer(pool.clone(), 300);

    let first = tokio::spawn(Relay::new(pool.clone(), broker.clone(), config()).run(stop.clone()));
    support::collect_events(&mut rx, 20, Duration::from_secs(30)).await;
    let active = lock_holders(&pool, &broker.namespace).await;
    assert_eq!(active.len(), 1, "one session holds the relay lock");
    let standby =
        tokio::spawn(Relay::new(pool.clone(), broker.clone(), config()).run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The relay about to be killed is verified to be the active one: the lock has not moved.
    assert_eq!(lock_holders(&pool, &broker.namespace).await, active);

    // Kill the active relay mid-stream: its task and connections vanish without any cleanup.
    first.abort();
    let killed_at = Instant::now();
    let _ = first.await;
    let cursor_at_kill = relay::relay_cursor(&pool, &broker.namespace)
        .await
        .unwrap()
        .map(|(p, _)| p)
        .unwrap_or(Position::START);
    // Taken over when another session holds the lock and the cursor it stores has moved past
    // where the killed relay left it: the standby resumed from that cursor.
    support::eventually(
        Duration::from_secs(15),
        "the standby to take over",
        || async {
            let holders = lock_holders(&pool, &broker.namespace).await;
            let cursor = relay::relay_cursor(&pool, &broker.namespace)
                .await
                .unwrap()
                .map(|(p, _)| p);
            (holders.len() == 1 && holders != active && cursor > Some(cursor_at_kill)).then_some(())
        },
    )
    .await;
    let takeover = killed_at.elapsed();

    writer.await.unwrap();
    let committed = committed_positions(&pool).await;
    support::eventually(
        Duration::from_secs(30),
        "every event published after the takeover",
        || async {
            let cursor = relay::relay_cursor(&pool, &broker.namespace).await.unwrap();
            (cursor.map(|(p, _)| p) == committed.iter().max().copied()).then_some(())
        },
    )
    .await;
    println!("standby relay took over {takeover:?} after the active one was killed");
    assert!(
        takeover < Duration::from_secs(10),
        "takeover took {takeover:?}"
    );
    stop.cancel();
    standby.await.unwrap();
    support::cleanup(&broker, &[]).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn no_event_is_lost_when_the_relay_dies_or_loses_the_broker(pool: PgPool) {
    let broker = support::broker();
    let (_tap_conn, mut rx) = support::tap(&broker).await;
    let stop = CancellationToken::new();
    let writer = steady_writer(pool.clone(), 400);
    let mut seen = HashSet::new();
    let mut collect = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<support::Received>| {
        while let Ok(r) = rx.try_recv() {
            if let Some(e) = r.event {
                seen.insert(e.position);
            }
        }
    };

    let relay_a =
        tokio::spawn(Relay::new(pool.clone(), broker.clone(), config()).run(stop.clone()));
    let relay_b =
        tokio::spawn(Relay::new(pool.clone(), broker.clone(), config()).run(stop.clone()));
    tokio::time::sleep(Duration::from_millis(400)).await;
    // The broker drops the active relay's connection, twice, mid-stream.
    for _ in 0..2 {
        // The relay that took over may still be connecting on a busy machine: wait for it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !support::close_broker_connection(&broker, "relay").await {
            assert!(Instant::now() < deadline, "no relay connection to close");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        collect(&mut rx);
    }
    // Then one relay dies outright.
    relay_a.abort();
    let _ = relay_a.await;

    writer.await.unwrap();
    let committed = committed_positions(&pool).await;
    assert_eq!(committed.len(), 400);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !committed.is_subset(&seen) {
        assert!(
            Instant::now() < deadline,
            "{} of 400 events arrived",
            seen.intersection(&committed).count()
        );
        if let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            if let Some(e) = r.event {
                seen.insert(e.position);
            }
        }
    }
    stop.cancel();
    relay_b.await.unwrap();
    support::cleanup(&broker, &[]).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_relay_reconnects_when_postgres_drops_its_connections(pool: PgPool) {
    let broker = support::broker();
    let (_tap_conn, mut rx) = support::tap(&broker).await;
    let stop = CancellationToken::new();
    let writer = steady_writer(pool.clone(), 300);
    let relay = tokio::spawn(Relay::new(pool.clone(), broker.clone(), config()).run(stop.clone()));
    let first = support::collect_events(&mut rx, 20, Duration::from_secs(30)).await;
    let mut seen: HashSet<Position> = first
        .iter()
        .filter_map(|r| r.event.as_ref().map(|e| e.position))
        .collect();

    // As a Postgres restart would: the server ends the relay's sessions (its lock connection
    // included) mid-stream, twice.
    for _ in 0..2 {
        // The relay holds its lock again once it has reconnected.
        support::eventually(
            Duration::from_secs(15),
            "the relay's lock connection",
            || async {
                let killed: Vec<bool> = sqlx::query_scalar(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                   AND pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                (killed == vec![true]).then_some(())
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    writer.await.unwrap();
    let committed = committed_positions(&pool).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !committed.is_subset(&seen) {
        assert!(
            Instant::now() < deadline,
            "{} of {} events arrived",
            seen.intersection(&committed).count(),
            committed.len()
        );
        if let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            if let Some(e) = r.event {
                seen.insert(e.position);
            }
        }
    }
    stop.cancel();
    relay.await.unwrap();
    support::cleanup(&broker, &[]).await;
}

/// The backends holding the relay's advisory lock for `namespace` (the relay takes
/// `pg_try_advisory_lock(hashtext('commerce-relay:<namespace>'))`; `pg_locks` shows a one-key
/// lock's low 32 bits as `objid`).
async fn lock_holders(pool: &PgPool, namespace: &str) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT l.pid FROM pg_locks l \
         WHERE l.locktype = 'advisory' AND l.granted \
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND l.objsubid = 1 \
           AND l.objid::bigint = (hashtext('commerce-relay:' || $1)::bigint & 4294967295) \
         ORDER BY l.pid",
    )
    .bind(namespace)
    .fetch_all(pool)
    .await
    .unwrap()
}
