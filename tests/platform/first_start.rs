//! A safe first start (issue 16, item 4): `api`, `relay`, `project` and `process` started as
//! separate `commerce` processes at the same instant on a database that does not exist yet, as
//! pods of a cluster start. Each creates the database if missing and applies the migrations;
//! the losers of those races must carry on, not crash. Ten rounds, each on a fresh database and
//! broker virtual host.

use std::time::Duration;

use crate::cluster::{consumer_names, free_port, Cluster, Spec};

const ROUNDS: usize = 10;
const LIMIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_four_parts_started_at_once_on_a_fresh_database_all_come_up_ten_times_over() {
    for round in 1..=ROUNDS {
        let cluster = Cluster::create_unprepared("first_start", &[]).await;
        let port = free_port();
        for spec in [
            Spec::api("api", port),
            Spec::new("relay", &["relay"]),
            Spec::new("project", &["project"]),
            Spec::new("process", &["process"]),
        ] {
            cluster.add(spec);
        }
        let ready = cluster.wait_ready(port, LIMIT).await;
        let live = cluster.wait_live(&consumer_names(), LIMIT).await;
        let mut relay = None;
        for _ in 0..100 {
            relay = cluster.relay_holder().await;
            if relay.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let exits = cluster.unexpected_exits();
        let logs = || {
            ["api", "relay", "project", "process"]
                .map(|label| format!("--- {label}:\n{}", cluster.log_tail(label, 10)))
                .join("\n")
        };
        assert!(
            exits.is_empty(),
            "round {round}: processes exited on their own: {exits:#?}"
        );
        assert!(
            ready,
            "round {round}: the API never became ready\n{}",
            logs()
        );
        assert!(
            live,
            "round {round}: not every consumer went live\n{}",
            logs()
        );
        assert_eq!(
            relay.as_deref(),
            Some("relay"),
            "round {round}: no relay holds the lock\n{}",
            logs()
        );
        cluster.shutdown(false).await;
    }
}
