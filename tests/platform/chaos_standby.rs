//! Standby takeover with separate processes (issue 7, item 2): two `commerce relay` and two
//! `commerce project` processes on a fresh database and namespace. The active one is found (the
//! relay holding the advisory lock, through `pg_locks` and the sessions' `application_name`; the
//! projector holding the single active consumer of the queues, through `rabbitmqctl` and the
//! client port of its connection), SIGKILLed, an event is appended, and the time from the kill
//! until the standby has published it (relay cursor) or applied it (every projection's
//! checkpoint) is measured. Each handover must take under 10 s; the figures are printed.
#![allow(clippy::print_stdout)] // tests print the figures they measure

use std::time::{Duration, Instant};

use crate::cluster::{Cluster, Spec};
use commerce_commands::Dispatcher;
use commerce_domain::ids::user_id_for_email;
use commerce_domain::user::{Role, User, UserCommand};
use commerce_event_store::{EventMetadata, EventStore, Position};
use uuid::Uuid;

/// Most a handover may take.
const LIMIT: Duration = Duration::from_secs(10);
/// Kills of each kind.
const ROUNDS: usize = 3;

/// Appends one event (a user registers) through the command side; returns its position.
async fn append(cluster: &Cluster) -> Position {
    let email = format!("standby-{}@example.com", Uuid::new_v4().simple());
    let user_id = user_id_for_email(&email);
    let dispatcher = Dispatcher::new(EventStore::new(cluster.pool.clone()));
    let executed = dispatcher
        .execute::<User>(
            &user_id.to_string(),
            UserCommand::RegisterUser {
                user_id,
                email,
                name: "Standby Test".to_owned(),
                phone: None,
                roles: vec![Role::Customer],
                at: chrono::Utc::now(),
            },
            &EventMetadata::new("chaos-standby", Uuid::new_v4().to_string()),
        )
        .await
        .expect("the event is appended");
    executed.position
}

/// Polls `done` every 10 ms for at most 30 s; the time it took, or None.
async fn time_until<F, Fut>(start: Instant, mut done: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    while start.elapsed() < Duration::from_secs(30) {
        if done().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Waits until each projection queue has `count` consumers; returns the labels of the processes
/// holding the active ones, most queues first (one label unless the queues are split, which
/// happens when a consumer session of the standby restarted and so registered first somewhere).
async fn projector_consumers(cluster: &Cluster, count: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let consumers = cluster.queue_consumers().await;
        let mut active: Vec<(String, usize)> = Vec::new();
        let mut complete = true;
        for name in commerce_projections::registry::NAMES {
            let of_queue = consumers.get(*name).map_or(&[][..], Vec::as_slice);
            let owner = of_queue
                .iter()
                .find(|(_, a)| *a)
                .and_then(|(owner, _)| owner.clone());
            match owner {
                Some(owner) if of_queue.len() == count => {
                    match active.iter_mut().find(|(o, _)| *o == owner) {
                        Some((_, n)) => *n += 1,
                        None => active.push((owner, 1)),
                    }
                }
                _ => {
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            active.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
            return active.into_iter().map(|(owner, _)| owner).collect();
        }
        assert!(
            Instant::now() < deadline,
            "the projection queues never had {count} consumers each: {consumers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_active_relay_or_projector_hands_over_to_the_standby_within_ten_seconds() {
    let cluster = Cluster::create("standby", &[]).await;
    let projections = commerce_projections::registry::NAMES;

    // relay-a first, so it takes the lock; relay-b stands by.
    cluster.add(Spec::new("relay-a", &["relay"]));
    let first = Instant::now();
    let holder = time_until(first, || async {
        cluster.relay_holder().await.as_deref() == Some("relay-a")
    })
    .await;
    assert!(
        holder.is_some(),
        "relay-a never took the relay lock:\n{}",
        cluster.log_tail("relay-a", 20)
    );
    cluster.add(Spec::new("relay-b", &["relay"]));
    // project-a first, so its consumers are the active ones; project-b's wait.
    cluster.add(Spec::new("project-a", &["project"]));
    assert!(
        cluster
            .wait_live(projections, Duration::from_secs(60))
            .await,
        "project-a's projections never went LIVE:\n{}",
        cluster.log_tail("project-a", 20)
    );
    assert_eq!(projector_consumers(&cluster, 1).await, ["project-a"]);
    cluster.add(Spec::new("project-b", &["project"]));
    projector_consumers(&cluster, 2).await;
    let standing_by = time_until(Instant::now(), || async {
        cluster.log("relay-b").contains("standing by")
    })
    .await;
    assert!(
        standing_by.is_some(),
        "relay-b never stood by:\n{}",
        cluster.log_tail("relay-b", 20)
    );

    let mut report = Vec::new();
    for round in 1..=ROUNDS {
        let active = cluster
            .relay_holder()
            .await
            .expect("a relay holds the lock");
        let killed_at = Instant::now();
        cluster.kill(&active).await;
        let position = append(&cluster).await;
        let took = time_until(killed_at, || async {
            cluster.relay_cursor().await.is_some_and(|c| c >= position)
        })
        .await;
        let successor = cluster.relay_holder().await;
        report.push((
            format!("relay #{round}"),
            active.clone(),
            successor.clone(),
            took,
        ));
        let took = took.unwrap_or_else(|| {
            panic!(
                "no relay published the event appended after {active} was killed:\n{}",
                cluster.log_tail(
                    if active == "relay-a" {
                        "relay-b"
                    } else {
                        "relay-a"
                    },
                    20
                )
            )
        });
        assert!(
            successor.is_some() && successor.as_deref() != Some(active.as_str()),
            "the lock holder after killing {active} is {successor:?}"
        );
        assert!(took < LIMIT, "relay handover took {took:?}");
        // The killed one comes back as the standby.
        cluster.start(&active);
        let back = time_until(Instant::now(), || async {
            cluster.sessions().await.contains(&active)
        })
        .await;
        assert!(back.is_some(), "{active} did not come back");
    }

    for round in 1..=ROUNDS {
        let owners = projector_consumers(&cluster, 2).await;
        if owners.len() > 1 {
            println!("projector #{round}: active consumers split over {owners:?}");
        }
        // The process holding the most active consumers; every projection must pass the event
        // appended after the kill, whichever process applies it.
        let active = owners[0].clone();
        let killed_at = Instant::now();
        cluster.kill(&active).await;
        let position = append(&cluster).await;
        let took = time_until(killed_at, || async {
            commerce_projections::wait::wait_for(
                &cluster.pool,
                projections,
                position,
                Duration::ZERO,
            )
            .await
            .unwrap_or(false)
        })
        .await;
        // With one process left, it holds every active consumer.
        let successor = projector_consumers(&cluster, 1).await.into_iter().next();
        report.push((
            format!("projector #{round}"),
            active.clone(),
            successor.clone(),
            took,
        ));
        let took = took.unwrap_or_else(|| {
            panic!("the event appended after {active} was killed was never projected")
        });
        assert!(
            successor.is_some() && successor.as_deref() != Some(active.as_str()),
            "the active consumer after killing {active} belongs to {successor:?}"
        );
        assert!(took < LIMIT, "projector handover took {took:?}");
        cluster.start(&active);
    }

    println!("standby takeover (SIGKILL of the active process → the standby has published/applied an event appended after the kill):");
    println!(
        "{:<14} {:<10} {:<10} {:>10}",
        "kill", "killed", "took over", "handover"
    );
    for (what, killed, successor, took) in &report {
        println!(
            "{what:<14} {killed:<10} {:<10} {:>10}",
            successor.as_deref().unwrap_or("?"),
            took.map_or("-".to_owned(), |t| format!(
                "{:.0} ms",
                t.as_secs_f64() * 1000.0
            ))
        );
    }
    assert!(
        cluster.unexpected_exits().is_empty(),
        "a process died on its own: {:?}",
        cluster.unexpected_exits()
    );
    cluster.shutdown(false).await;
}
