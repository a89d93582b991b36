//! The platform as an operator runs it: separate `commerce` processes (`api`, `relay`, `project`,
//! `process`) on a fresh database and a fresh broker namespace, each one SIGKILL-able and
//! restartable, with a supervisor that restarts a process which died on its own (and records it).
//!
//! Each process connects to Postgres with `application_name=<label>` (a `DATABASE_URL` parameter),
//! so `pg_stat_activity` tells which process holds a session (e.g. the relay's advisory lock).
//! On RabbitMQ the cluster gets a virtual host of its own (named like the database and the
//! namespace): its connections can be closed in one go without touching other tests' ones, and
//! deleting it at the end removes every queue and exchange. Which process owns a broker
//! connection is found from its client port and `/proc`.
#![allow(dead_code, unreachable_pub, clippy::print_stdout)]

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use commerce_commands::process::order_fulfilment::OrderFulfilmentProcess;
use commerce_event_store::{BrokerConfig, Position};
use commerce_notifications::NotificationsProcess;
use serde_json::Value;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_commerce");

/// `postgres://user@host:port` of `DATABASE_URL` (the server every database is made on).
pub fn server_url() -> String {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/commerce".to_owned());
    let base = url.split('?').next().unwrap_or(&url).to_owned();
    match base.rfind('/') {
        Some(i) if i > "postgres://".len() => base[..i].to_owned(),
        _ => base,
    }
}

/// `amqp://user:password@host:port` of `AMQP_URL` (without the virtual host).
pub fn amqp_server() -> String {
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned());
    match url.rfind('/') {
        Some(i) if i > "amqp://".len() => url[..i].to_owned(),
        _ => url,
    }
}

/// The user of `AMQP_URL` (given every permission on the cluster's virtual host).
fn amqp_user() -> String {
    let server = amqp_server();
    let rest = server.split_once("://").map_or(server.as_str(), |(_, r)| r);
    match rest.split_once('@') {
        Some((credentials, _)) => credentials.split(':').next().unwrap_or("guest").to_owned(),
        None => "guest".to_owned(),
    }
}

/// A free TCP port on 127.0.0.1 (free when asked; the caller binds it soon after).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Every consumer (projections and process managers): queue `<ns>.<name>`, checkpoint `<name>`.
pub fn consumer_names() -> Vec<&'static str> {
    let mut names = commerce_projections::registry::NAMES.to_vec();
    names.push(OrderFulfilmentProcess::NAME);
    names.push(NotificationsProcess::NAME);
    names
}

/// What a process is started as.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Unique name: log file, `application_name`, reports.
    pub label: String,
    /// The subcommand and its own arguments.
    pub args: Vec<String>,
    /// `LISTEN_ADDR` port, for `api`.
    pub port: Option<u16>,
}

impl Spec {
    /// `commerce <args…>` named `label`.
    pub fn new(label: &str, args: &[&str]) -> Self {
        Self {
            label: label.to_owned(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            port: None,
        }
    }

    /// `commerce api` on `port`.
    pub fn api(label: &str, port: u16) -> Self {
        Self {
            port: Some(port),
            ..Self::new(label, &["api"])
        }
    }
}

/// A process that exited without being told to.
#[derive(Debug, Clone)]
pub struct Exit {
    /// Which one.
    pub label: String,
    /// Since the cluster was created.
    pub at: Duration,
    /// How it ended.
    pub status: String,
    /// The end of its log.
    pub tail: String,
}

struct Slot {
    spec: Spec,
    child: Option<Child>,
    pid: Option<u32>,
    /// Held down by the test (killed on purpose): the supervisor leaves it alone.
    held: bool,
    restart_at: Option<Instant>,
    spawns: u32,
}

/// A fresh database and namespace with `commerce` processes on them.
pub struct Cluster {
    /// Database name, also the broker namespace.
    pub name: String,
    /// `postgres://…/<name>` (no parameters).
    pub database_url: String,
    /// `amqp://…/<name>`: the cluster's own virtual host.
    pub amqp_url: String,
    /// A small pool of the test's own, for checks.
    pub pool: PgPool,
    /// Where each process's output goes (`<label>.log`).
    pub log_dir: PathBuf,
    /// When the cluster was created; every time in reports is measured from here.
    pub t0: Instant,
    jwt_secret: String,
    extra_env: Vec<(String, String)>,
    slots: Mutex<Vec<Slot>>,
    exits: Mutex<Vec<Exit>>,
    cleaned: AtomicBool,
    supervisor: CancellationToken,
}

impl Cluster {
    /// Creates the database `commerce_<prefix>_<uuid>` with `commerce migrate` and starts the
    /// supervisor. `extra_env` goes to every process (e.g. `PAYMENT_TIMEOUT`).
    pub async fn create(prefix: &str, extra_env: &[(&str, &str)]) -> Arc<Self> {
        let cluster = Self::create_unprepared(prefix, extra_env).await;
        let out = cluster.cli(&["migrate"], &[]).await;
        assert!(
            out.status.success(),
            "commerce migrate failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    /// As [`Cluster::create`], but the database does not exist yet: the processes started on
    /// it create it and apply the migrations themselves.
    pub async fn create_unprepared(prefix: &str, extra_env: &[(&str, &str)]) -> Arc<Self> {
        let name = format!("commerce_{prefix}_{}", Uuid::new_v4().simple());
        let database_url = format!("{}/{name}", server_url());
        let amqp_url = format!("{}/{name}", amqp_server());
        let user = amqp_user();
        for args in [
            vec!["add_vhost", name.as_str()],
            vec![
                "set_permissions",
                "-p",
                name.as_str(),
                &user,
                ".*",
                ".*",
                ".*",
            ],
        ] {
            let out = Command::new("rabbitmqctl")
                .args(&args)
                .output()
                .await
                .expect("rabbitmqctl runs");
            assert!(
                out.status.success(),
                "rabbitmqctl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let log_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(&name);
        std::fs::create_dir_all(&log_dir).expect("create the log directory");
        let jwt_secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
        let mut extra: Vec<(String, String)> = extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        extra.push(("PASSWORD_HASH_MEMORY_KIB".into(), "1024".into()));
        let cluster = Arc::new(Self {
            pool: PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy(&format!("{database_url}?application_name=chaos-test"))
                .expect("a pool"),
            name,
            database_url,
            amqp_url,
            log_dir,
            t0: Instant::now(),
            jwt_secret,
            extra_env: extra,
            slots: Mutex::new(Vec::new()),
            exits: Mutex::new(Vec::new()),
            cleaned: AtomicBool::new(false),
            supervisor: CancellationToken::new(),
        });
        tokio::spawn(supervise(
            Arc::downgrade(&cluster),
            cluster.supervisor.clone(),
        ));
        cluster
    }

    /// Seconds since the cluster was created, for reports.
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// The broker namespace (same as the database name).
    pub fn broker(&self) -> BrokerConfig {
        BrokerConfig::new(self.amqp_url.clone(), self.name.clone())
    }

    fn command(&self, label: &str, args: &[String]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env(
                "DATABASE_URL",
                format!("{}?application_name={label}", self.database_url),
            )
            .env("AMQP_URL", &self.amqp_url)
            .env("COMMERCE_NAMESPACE", &self.name)
            // dev: the processes hash passwords with 1 MiB to keep tests fast, which prod refuses.
            .env("COMMERCE_ENV", "dev")
            .env("JWT_SECRET", &self.jwt_secret)
            .env("RATE_LIMIT_PER_SECOND", "1000000")
            .env("RATE_LIMIT_BURST", "1000000")
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "info,sqlx=warn,lapin=warn")
            .stdin(Stdio::null());
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs a one-shot command (`migrate`, `replay …`, `admin …`) to completion.
    pub async fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let mut cmd = self.command("chaos-cli", &args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output()
            .await
            .expect("the commerce binary runs")
    }

    fn spawn_child(&self, spec: &Spec, nth: u32) -> std::io::Result<Child> {
        let path = self.log_dir.join(format!("{}.log", spec.label));
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        writeln!(
            log,
            "===== chaos: start #{nth} of {} at {:.3}s =====",
            spec.label,
            self.now().as_secs_f64()
        )?;
        let mut cmd = self.command(&spec.label, &spec.args);
        if let Some(port) = spec.port {
            cmd.env("LISTEN_ADDR", format!("127.0.0.1:{port}"));
        }
        cmd.stdout(log.try_clone()?).stderr(log).kill_on_drop(true);
        cmd.spawn()
    }

    /// Starts a new process.
    pub fn add(&self, spec: Spec) {
        let child = self
            .spawn_child(&spec, 1)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", spec.label));
        let pid = child.id();
        self.slots.lock().expect("slots").push(Slot {
            spec,
            child: Some(child),
            pid,
            held: false,
            restart_at: None,
            spawns: 1,
        });
    }

    /// SIGKILLs `label` and waits until it is gone; it stays down until [`Cluster::start`].
    pub async fn kill(&self, label: &str) {
        let child = {
            let mut slots = self.slots.lock().expect("slots");
            let slot = slots
                .iter_mut()
                .find(|s| s.spec.label == label)
                .unwrap_or_else(|| panic!("no process {label}"));
            slot.held = true;
            slot.restart_at = None;
            slot.pid = None;
            slot.child.take()
        };
        if let Some(mut child) = child {
            // tokio's start_kill is SIGKILL on Unix.
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts `label` again (after [`Cluster::kill`]).
    pub fn start(&self, label: &str) {
        let mut slots = self.slots.lock().expect("slots");
        let slot = slots
            .iter_mut()
            .find(|s| s.spec.label == label)
            .unwrap_or_else(|| panic!("no process {label}"));
        if slot.child.is_none() {
            slot.spawns += 1;
            let child = self
                .spawn_child(&slot.spec, slot.spawns)
                .unwrap_or_else(|e| panic!("cannot start {label}: {e}"));
            slot.pid = child.id();
            slot.child = Some(child);
        }
        slot.held = false;
        slot.restart_at = None;
    }

    /// The OS pid of `label`, while it runs.
    pub fn pid(&self, label: &str) -> Option<u32> {
        let slots = self.slots.lock().expect("slots");
        slots
            .iter()
            .find(|s| s.spec.label == label)
            .and_then(|s| s.pid)
    }

    /// How many times each process was started.
    pub fn starts(&self) -> Vec<(String, u32)> {
        let slots = self.slots.lock().expect("slots");
        slots
            .iter()
            .map(|s| (s.spec.label.clone(), s.spawns))
            .collect()
    }

    /// Processes that died without being killed by the test.
    pub fn unexpected_exits(&self) -> Vec<Exit> {
        self.exits.lock().expect("exits").clone()
    }

    /// The last `lines` lines of `label`'s log.
    pub fn log_tail(&self, label: &str, lines: usize) -> String {
        let text =
            std::fs::read_to_string(self.log_dir.join(format!("{label}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// `label`'s whole log.
    pub fn log(&self, label: &str) -> String {
        std::fs::read_to_string(self.log_dir.join(format!("{label}.log"))).unwrap_or_default()
    }

    /// Waits until `GET /health` on `port` answers 200.
    pub async fn wait_http(&self, port: u16, timeout: Duration) -> bool {
        wait_ok(port, "/health", timeout).await
    }

    /// Waits until `GET /ready` on `port` answers 200 (Postgres, RabbitMQ and migrations ok).
    pub async fn wait_ready(&self, port: u16, timeout: Duration) -> bool {
        wait_ok(port, "/ready", timeout).await
    }

    /// Waits until every consumer in `names` has a checkpoint row in state `LIVE`.
    pub async fn wait_live(&self, names: &[&str], timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let live: Result<Vec<String>, _> =
                sqlx::query_scalar("SELECT name FROM consumer_checkpoints WHERE status = 'LIVE'")
                    .fetch_all(&self.pool)
                    .await;
            if let Ok(live) = live {
                if names.iter().all(|n| live.iter().any(|l| l == n)) {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// The relay's stored cursor (what it has published, confirmed by the broker).
    pub async fn relay_cursor(&self) -> Option<Position> {
        commerce_event_store::relay::relay_cursor(&self.pool, &self.name)
            .await
            .ok()
            .flatten()
            .map(|(p, _)| p)
    }

    /// The label of the process holding the relay's advisory lock, found through the
    /// `application_name` of the session that holds it.
    pub async fn relay_holder(&self) -> Option<String> {
        sqlx::query_scalar(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND l.objid::bigint = (hashtext($1)::bigint & 4294967295)",
        )
        .bind(format!("commerce-relay:{}", self.name))
        .fetch_optional(&self.pool)
        .await
        .ok()
        .flatten()
    }

    /// Labels of the processes with a session on the database.
    pub async fn sessions(&self) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT DISTINCT application_name FROM pg_stat_activity WHERE datname = current_database()",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap_or_default()
    }

    /// Closes, from the broker's side, every connection of the cluster's processes (all those of
    /// its virtual host; other tests' connections are left alone). Returns how many there were.
    pub async fn close_broker_connections(&self, reason: &str) -> usize {
        let listing = rabbitmqctl(&["list_connections", "vhost"]).await;
        let ours = listing
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["vhost"].as_str() == Some(self.name.as_str()))
            .count();
        let status = Command::new("rabbitmqctl")
            .args([
                "close_all_connections",
                "--vhost",
                &self.name,
                "--limit",
                "100000",
                reason,
                "-q",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if status.is_ok_and(|s| s.success()) {
            ours
        } else {
            0
        }
    }

    /// The consumers of every queue of the namespace, by consumer name (queue `<ns>.<name>`):
    /// (label of the owning process, whether it is the active one).
    pub async fn queue_consumers(&self) -> HashMap<String, Vec<(Option<String>, bool)>> {
        let prefix = format!("{}.", self.name);
        let list_consumers = [
            "list_consumers",
            "-p",
            self.name.as_str(),
            "queue_name",
            "channel_pid",
            "active",
        ];
        let (consumers, channels) = tokio::join!(
            rabbitmqctl(&list_consumers),
            rabbitmqctl(&["list_channels", "pid", "name"])
        );
        let mut port_of_channel = HashMap::new();
        for ch in channels.as_array().into_iter().flatten() {
            if let (Some(pid), Some(name)) = (ch["pid"].as_str(), ch["name"].as_str()) {
                // "127.0.0.1:54321 -> 127.0.0.1:5672 (1)": the client's port comes first.
                let port = name
                    .split(" -> ")
                    .next()
                    .and_then(|client| client.rsplit(':').next())
                    .and_then(|p| p.parse::<u16>().ok());
                if let Some(port) = port {
                    port_of_channel.insert(pid.to_owned(), port);
                }
            }
        }
        let owners = self.port_owners();
        let mut by_queue: HashMap<String, Vec<(Option<String>, bool)>> = HashMap::new();
        for c in consumers.as_array().into_iter().flatten() {
            let Some(name) = c["queue_name"]
                .as_str()
                .and_then(|q| q.strip_prefix(&prefix))
            else {
                continue;
            };
            let owner = c["channel_pid"]
                .as_str()
                .and_then(|pid| port_of_channel.get(pid))
                .and_then(|port| owners.get(port).cloned());
            by_queue
                .entry(name.to_owned())
                .or_default()
                .push((owner, c["active"].as_bool().unwrap_or(false)));
        }
        by_queue
    }

    /// Local TCP port → label of the running process owning that socket (from `/proc`).
    fn port_owners(&self) -> HashMap<u16, String> {
        let pids: Vec<(String, u32)> = {
            let slots = self.slots.lock().expect("slots");
            slots
                .iter()
                .filter_map(|s| s.pid.map(|p| (s.spec.label.clone(), p)))
                .collect()
        };
        let mut inode_owner = HashMap::new();
        for (label, pid) in pids {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for fd in fds.flatten() {
                if let Ok(target) = std::fs::read_link(fd.path()) {
                    let target = target.to_string_lossy().into_owned();
                    if let Some(inode) = target
                        .strip_prefix("socket:[")
                        .and_then(|s| s.strip_suffix(']'))
                    {
                        inode_owner.insert(inode.to_owned(), label.clone());
                    }
                }
            }
        }
        let mut owners = HashMap::new();
        for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
            let text = std::fs::read_to_string(table).unwrap_or_default();
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let (Some(local), Some(inode)) = (fields.get(1), fields.get(9)) else {
                    continue;
                };
                let port = local
                    .rsplit(':')
                    .next()
                    .and_then(|h| u16::from_str_radix(h, 16).ok());
                if let (Some(port), Some(label)) = (port, inode_owner.get(*inode)) {
                    owners.insert(port, label.clone());
                }
            }
        }
        owners
    }

    /// Stops every process, deletes the virtual host and drops the database.
    /// The logs are removed unless `keep_logs`.
    pub async fn shutdown(&self, keep_logs: bool) {
        self.supervisor.cancel();
        let children: Vec<Child> = {
            let mut slots = self.slots.lock().expect("slots");
            slots
                .iter_mut()
                .filter_map(|s| {
                    s.held = true;
                    s.pid = None;
                    s.child.take()
                })
                .collect()
        };
        for mut child in children {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        self.pool.close().await;
        cleanup(&self.name).await;
        self.cleaned.store(true, Ordering::SeqCst);
        if !keep_logs {
            let _ = std::fs::remove_dir_all(&self.log_dir);
        }
    }
}

impl Drop for Cluster {
    /// A test that panicked still leaves nothing behind but its logs.
    fn drop(&mut self) {
        if self.cleaned.load(Ordering::SeqCst) {
            return;
        }
        self.supervisor.cancel();
        if let Ok(mut slots) = self.slots.lock() {
            for slot in slots.iter_mut() {
                if let Some(mut child) = slot.child.take() {
                    let _ = child.start_kill();
                }
            }
        }
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            // Let the killed processes' sessions go before the database is dropped.
            std::thread::sleep(Duration::from_millis(300));
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(cleanup(&name));
            }
        })
        .join();
        println!("logs of the processes are in {}", self.log_dir.display());
    }
}

/// Waits until `GET <path>` on `127.0.0.1:<port>` answers a 2xx.
async fn wait_ok(port: u16, path: &str, timeout: Duration) -> bool {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
        {
            if r.status().is_success() {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Deletes the virtual host `name` (its queues and exchanges go with it) and drops the
/// database `name`.
async fn cleanup(name: &str) {
    let _ = Command::new("rabbitmqctl")
        .args(["delete_vhost", name, "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Ok(pool) = PgPoolOptions::new()
        .max_connections(1)
        .connect(&format!("{}/postgres", server_url()))
        .await
    {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&pool)
            .await;
        pool.close().await;
    }
}

/// Restarts processes that died on their own (after a second, like a service manager would),
/// recording each death.
async fn supervise(cluster: Weak<Cluster>, stop: CancellationToken) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        let Some(cluster) = cluster.upgrade() else {
            return;
        };
        let mut died = Vec::new();
        {
            let mut slots = cluster.slots.lock().expect("slots");
            for slot in slots.iter_mut() {
                if slot.held {
                    continue;
                }
                if let Some(child) = slot.child.as_mut() {
                    if let Ok(Some(status)) = child.try_wait() {
                        slot.child = None;
                        slot.pid = None;
                        slot.restart_at = Some(Instant::now() + Duration::from_secs(1));
                        died.push((slot.spec.label.clone(), status.to_string()));
                    }
                } else if slot.restart_at.is_some_and(|t| Instant::now() >= t) {
                    slot.spawns += 1;
                    match cluster.spawn_child(&slot.spec, slot.spawns) {
                        Ok(child) => {
                            slot.pid = child.id();
                            slot.child = Some(child);
                            slot.restart_at = None;
                        }
                        Err(_) => slot.restart_at = Some(Instant::now() + Duration::from_secs(1)),
                    }
                }
            }
        }
        for (label, status) in died {
            let exit = Exit {
                tail: cluster.log_tail(&label, 15),
                label,
                at: cluster.now(),
                status,
            };
            println!(
                "!! {} exited on its own at {:.1}s ({}); restarting it",
                exit.label,
                exit.at.as_secs_f64(),
                exit.status
            );
            cluster.exits.lock().expect("exits").push(exit);
        }
    }
}

/// `rabbitmqctl <args> --formatter json`, parsed (an empty list when it fails).
pub async fn rabbitmqctl(args: &[&str]) -> Value {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .args(["--formatter", "json", "-q"])
        .output()
        .await
        .expect("rabbitmqctl runs");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Array(Vec::new()))
}
