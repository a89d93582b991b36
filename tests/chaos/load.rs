//! The load: customers placing orders, paying them (some with a declined card first) and
//! cancelling some, through both API instances in turn. A request that meets a dead instance is
//! sent again to the other one; a 503 is retried after a pause; `Idempotency-Key` makes the
//! retries of `POST /orders` and `POST /payments` safe. Every answer is recorded with its time.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// What one HTTP attempt got.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// An answer with this status.
    Status(u16),
    /// No answer: the connection failed or broke.
    Transport(String),
}

/// One HTTP attempt.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Index of the API instance.
    pub api: usize,
    /// `METHOD /route/template`.
    pub route: &'static str,
    /// Since the cluster was created.
    pub start: Duration,
    /// Since the cluster was created.
    pub end: Duration,
    /// What came back.
    pub outcome: Outcome,
    /// The error `code` of the body, if any.
    pub code: Option<String>,
    /// The `X-Request-Id` sent.
    pub request_id: String,
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body (or `Null`).
    pub body: Value,
}

/// A client of both API instances, recording every attempt.
pub struct Http {
    bases: Vec<String>,
    client: reqwest::Client,
    next: AtomicUsize,
    t0: Instant,
    /// Every attempt so far.
    pub samples: Mutex<Vec<Sample>>,
}

impl Http {
    /// A client of `ports` on 127.0.0.1; times are measured from `t0`.
    pub fn new(ports: &[u16], t0: Instant) -> Self {
        Self {
            bases: ports
                .iter()
                .map(|p| format!("http://127.0.0.1:{p}"))
                .collect(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(40))
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
            next: AtomicUsize::new(0),
            t0,
            samples: Mutex::new(Vec::new()),
        }
    }

    /// Sends a request to the next instance in turn; after a transport error it goes to the
    /// other instance, after a 503 it waits a little first, for at most a minute. `None` when
    /// no instance answered anything but 503 in that time.
    pub async fn call(
        &self,
        method: Method,
        route: &'static str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> Option<Reply> {
        let n = self.bases.len();
        let mut api = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let deadline = Instant::now() + Duration::from_secs(60);
        let tag = key.map_or_else(|| Uuid::new_v4().simple().to_string(), str::to_owned);
        for attempt in 0.. {
            let request_id = format!("{tag}.{attempt}");
            let start = self.t0.elapsed();
            let mut req = self
                .client
                .request(method.clone(), format!("{}{path}", self.bases[api]))
                .header("x-request-id", &request_id);
            if let Some(token) = token {
                req = req.bearer_auth(token);
            }
            if let Some(key) = key {
                req = req.header("idempotency-key", key);
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let result = match req.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    response.bytes().await.map(|b| (status, b))
                }
                Err(e) => Err(e),
            };
            let end = self.t0.elapsed();
            match result {
                Ok((status, bytes)) => {
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    self.record(Sample {
                        api,
                        route,
                        start,
                        end,
                        outcome: Outcome::Status(status),
                        code: body["code"].as_str().map(str::to_owned),
                        request_id,
                    });
                    if status == 503 && Instant::now() < deadline {
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        api = (api + 1) % n;
                        continue;
                    }
                    return Some(Reply { status, body });
                }
                Err(e) => {
                    self.record(Sample {
                        api,
                        route,
                        start,
                        end,
                        outcome: Outcome::Transport(error_text(&e)),
                        code: None,
                        request_id,
                    });
                    if Instant::now() >= deadline {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    api = (api + 1) % n;
                }
            }
        }
        None
    }

    fn record(&self, sample: Sample) {
        self.samples.lock().expect("samples").push(sample);
    }

    /// Every attempt so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().expect("samples").clone()
    }
}

fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// What the customers saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Orders that got a 201, by id, with the Idempotency-Key used.
    pub placed: Mutex<BTreeMap<Uuid, String>>,
    /// Named counters (`pay COMPLETED`, `cancel 409`, …).
    pub counts: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn bump(&self, what: impl Into<String>) {
        *self
            .counts
            .lock()
            .expect("counts")
            .entry(what.into())
            .or_default() += 1;
    }

    /// Ids of the orders that got a 201.
    pub fn placed_ids(&self) -> HashSet<Uuid> {
        self.placed
            .lock()
            .expect("placed")
            .keys()
            .copied()
            .collect()
    }

    /// The named counters.
    pub fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().expect("counts").clone()
    }
}

fn address() -> Value {
    json!({"line1": "1 Chaos Lane", "city": "Springfield", "postal_code": "12345", "country": "US"})
}

/// One customer until `stop`, about one order a second: place an order of one or two products; then cancel it unpaid
/// (10 %), or pay with a declined card first (15 %, then pay properly or cancel), or pay; a paid
/// order is sometimes cancelled (8 %, so it is refunded). The order in hand is always finished
/// after `stop`.
pub async fn customer(
    http: Arc<Http>,
    tally: Arc<Tally>,
    token: String,
    products: Arc<Vec<Uuid>>,
    seed: u64,
    stop: CancellationToken,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    while !stop.is_cancelled() {
        let lines = rng.random_range(1..=2usize);
        let mut picked: Vec<Uuid> = Vec::new();
        while picked.len() < lines {
            let p = products[rng.random_range(0..products.len())];
            if !picked.contains(&p) {
                picked.push(p);
            }
        }
        let items: Vec<Value> = picked
            .iter()
            .map(|p| json!({"product_id": p, "quantity": rng.random_range(1..=3u32)}))
            .collect();
        let body = json!({"shipping_address": address(), "payment_method": "card", "items": items});
        let key = format!("order-{}", Uuid::new_v4().simple());
        let reply = http
            .call(
                Method::POST,
                "POST /orders",
                "/api/v1/orders",
                Some(&token),
                Some(&body),
                Some(&key),
            )
            .await;
        let Some(reply) = reply else {
            tally.bump("place: gave up");
            continue;
        };
        tally.bump(format!("place {}", reply.status));
        if reply.status != 201 {
            continue;
        }
        let order = reply.body["data"].clone();
        let Some(id) = order["id"].as_str().and_then(|s| s.parse::<Uuid>().ok()) else {
            tally.bump("place: 201 without an id");
            continue;
        };
        tally.placed.lock().expect("placed").insert(id, key);

        let roll: f64 = rng.random();
        if roll < 0.10 {
            cancel(&http, &tally, &token, id).await;
        } else {
            if roll < 0.25
                && pay(&http, &tally, &token, &order, "pm_card_declined").await
                    == Some("FAILED".to_owned())
                && rng.random_bool(0.5)
            {
                cancel(&http, &tally, &token, id).await;
                continue;
            }
            let paid = pay(&http, &tally, &token, &order, "card").await;
            if paid.as_deref() == Some("COMPLETED") && rng.random_bool(0.08) {
                cancel(&http, &tally, &token, id).await;
            }
        }
        let pause = Duration::from_millis(rng.random_range(800..1600));
        tokio::select! {
            () = stop.cancelled() => {}
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Pays `order` with `method`; the payment's status when it was created.
async fn pay(
    http: &Http,
    tally: &Tally,
    token: &str,
    order: &Value,
    method: &str,
) -> Option<String> {
    let body = json!({"order_id": order["id"], "amount": order["total_amount"],
                      "currency": order["currency"], "method": method});
    let key = format!("pay-{}", Uuid::new_v4().simple());
    let Some(reply) = http
        .call(
            Method::POST,
            "POST /payments",
            "/api/v1/payments",
            Some(token),
            Some(&body),
            Some(&key),
        )
        .await
    else {
        tally.bump("pay: gave up");
        return None;
    };
    let status = reply.body["data"]["status"].as_str().map(str::to_owned);
    match (&status, reply.status) {
        (Some(s), 201) => tally.bump(format!("pay 201 {s}")),
        (_, code) => tally.bump(format!(
            "pay {code} {}",
            reply.body["code"].as_str().unwrap_or("")
        )),
    }
    status.filter(|_| reply.status == 201)
}

async fn cancel(http: &Http, tally: &Tally, token: &str, id: Uuid) {
    let reply = http
        .call(
            Method::DELETE,
            "DELETE /orders/{id}",
            &format!("/api/v1/orders/{id}"),
            Some(token),
            None,
            None,
        )
        .await;
    match reply {
        Some(r) => tally.bump(format!("cancel {}", r.status)),
        None => tally.bump("cancel: gave up"),
    }
}
