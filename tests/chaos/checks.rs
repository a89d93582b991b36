//! What must hold after the chaos, computed from the event log (the source of truth), the read
//! models and the answers the clients got.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use commerce_domain::inventory::InventoryEvent;
use commerce_domain::order::{CancellationReason, OrderEvent};
use commerce_domain::payment::PaymentEvent;
use commerce_domain::user::UserEvent;
use commerce_event_store::{LogReader, Position, StoredEvent};
use sqlx::PgPool;
use uuid::Uuid;

use super::load::{Outcome, Sample};

/// One verdict.
#[derive(Debug, Clone)]
pub struct Check {
    /// What is checked.
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// Figures, or what went wrong.
    pub detail: String,
}

impl Check {
    fn new(name: &str, problems: &[String], figures: String) -> Self {
        let ok = problems.is_empty();
        let detail = if ok {
            figures
        } else {
            let shown: Vec<&String> = problems.iter().take(8).collect();
            format!(
                "{} problem(s): {}{}",
                problems.len(),
                shown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
                if problems.len() > shown.len() {
                    "; …"
                } else {
                    ""
                }
            )
        };
        Self {
            name: name.to_owned(),
            ok,
            detail,
        }
    }
}

/// Every event of the log, in log order.
pub async fn whole_log(pool: &PgPool) -> Vec<StoredEvent> {
    let log = LogReader::new(pool.clone());
    let mut all = Vec::new();
    let mut after = Position::START;
    loop {
        let batch = log.read_after(after, 5_000).await.expect("read the log");
        let Some(last) = batch.last() else {
            return all;
        };
        after = last.position;
        all.extend(batch);
    }
}

/// An order as the log tells it.
#[derive(Debug, Default, Clone)]
pub struct OrderFacts {
    /// `OrderPlaced` events of this id.
    pub placed: u32,
    /// Product and quantity of each line.
    pub lines: Vec<(Uuid, u32)>,
    /// Correlation id of the `OrderPlaced` (the request id).
    pub correlation: String,
    /// `OrderConfirmed` events.
    pub confirmed: u32,
    /// `OrderCancelled` events.
    pub cancelled: u32,
    /// The last of confirmed / cancelled.
    pub last: Option<&'static str>,
    /// Why it was cancelled.
    pub reason: Option<CancellationReason>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Movement {
    reserved: i64,
    released: i64,
    committed: i64,
    returned: i64,
}

#[derive(Debug, Default, Clone)]
struct PaymentFacts {
    order: Option<Uuid>,
    captured: u32,
    captured_minor: i64,
    failed: u32,
    refunds: u32,
    refund_ids: HashSet<Uuid>,
    refunded_minor: i64,
}

#[derive(Debug, Default, Clone, Copy)]
struct Stock {
    initial: i64,
    available: i64,
    reserved: i64,
    lowest_available: i64,
    lowest_reserved: i64,
}

/// The facts of the log that the checks need.
#[derive(Debug, Default)]
pub struct Facts {
    /// Events in the log.
    pub events: usize,
    /// Orders by id.
    pub orders: BTreeMap<Uuid, OrderFacts>,
    movements: HashMap<(Uuid, Uuid), Movement>,
    payments: HashMap<Uuid, PaymentFacts>,
    stock: BTreeMap<Uuid, Stock>,
    /// Events that must cause exactly one notification: event id → (type, order or payment).
    triggers: HashMap<Uuid, (&'static str, String)>,
}

impl Facts {
    /// Folds the log.
    pub fn from_log(log: &[StoredEvent]) -> Self {
        let mut f = Self {
            events: log.len(),
            ..Self::default()
        };
        for e in log {
            match e.aggregate_type.as_str() {
                "Order" => f.order(e),
                "Inventory" => f.inventory(e),
                "Payment" => f.payment(e),
                "User" => {
                    if let Ok(UserEvent::UserRegistered { .. }) = e.payload_as::<UserEvent>() {
                        f.triggers
                            .insert(e.event_id, ("WELCOME", e.aggregate_id.clone()));
                    }
                }
                _ => {}
            }
        }
        f
    }

    fn order(&mut self, e: &StoredEvent) {
        let Ok(event) = e.payload_as::<OrderEvent>() else {
            return;
        };
        match event {
            OrderEvent::OrderPlaced {
                order_id, lines, ..
            } => {
                let o = self.orders.entry(order_id).or_default();
                o.placed += 1;
                o.lines = lines.iter().map(|l| (l.product_id, l.quantity)).collect();
                o.correlation = e.metadata.correlation_id.clone();
            }
            OrderEvent::OrderConfirmed { order_id, .. } => {
                let o = self.orders.entry(order_id).or_default();
                o.confirmed += 1;
                o.last = Some("CONFIRMED");
                self.triggers
                    .insert(e.event_id, ("ORDER_CONFIRMED", order_id.to_string()));
            }
            OrderEvent::OrderCancelled {
                order_id, reason, ..
            } => {
                let o = self.orders.entry(order_id).or_default();
                o.cancelled += 1;
                o.last = Some("CANCELLED");
                o.reason = Some(reason);
            }
            OrderEvent::OrderShipped { order_id, .. } => {
                self.triggers
                    .insert(e.event_id, ("ORDER_SHIPPED", order_id.to_string()));
            }
            _ => {}
        }
    }

    fn inventory(&mut self, e: &StoredEvent) {
        let Ok(event) = e.payload_as::<InventoryEvent>() else {
            return;
        };
        let (product, order, change) = match event {
            InventoryEvent::StockAdjusted {
                product_id,
                delta,
                available_after,
                reserved,
                ..
            } => {
                let s = self.stock.entry(product_id).or_default();
                s.initial += delta;
                s.available = available_after;
                s.reserved = reserved;
                (product_id, None, Movement::default())
            }
            InventoryEvent::StockReserved {
                product_id,
                order_id,
                quantity,
                available_after,
                reserved_after,
                ..
            } => {
                let s = self.stock.entry(product_id).or_default();
                s.available = available_after;
                s.reserved = reserved_after;
                let m = Movement {
                    reserved: i64::from(quantity),
                    ..Movement::default()
                };
                (product_id, Some(order_id), m)
            }
            InventoryEvent::StockReleased {
                product_id,
                order_id,
                quantity,
                available_after,
                reserved_after,
                ..
            } => {
                let s = self.stock.entry(product_id).or_default();
                s.available = available_after;
                s.reserved = reserved_after;
                let m = Movement {
                    released: i64::from(quantity),
                    ..Movement::default()
                };
                (product_id, Some(order_id), m)
            }
            InventoryEvent::StockCommitted {
                product_id,
                order_id,
                quantity,
                reserved_after,
                ..
            } => {
                let s = self.stock.entry(product_id).or_default();
                s.reserved = reserved_after;
                let m = Movement {
                    committed: i64::from(quantity),
                    ..Movement::default()
                };
                (product_id, Some(order_id), m)
            }
            InventoryEvent::StockReturned {
                product_id,
                order_id,
                quantity,
                available_after,
                reserved,
                ..
            } => {
                let s = self.stock.entry(product_id).or_default();
                s.available = available_after;
                s.reserved = reserved;
                let m = Movement {
                    returned: i64::from(quantity),
                    ..Movement::default()
                };
                (product_id, Some(order_id), m)
            }
            InventoryEvent::StockReservationRejected { .. } => return,
        };
        let s = self.stock.entry(product).or_default();
        s.lowest_available = s.lowest_available.min(s.available);
        s.lowest_reserved = s.lowest_reserved.min(s.reserved);
        if let Some(order) = order {
            let m = self.movements.entry((order, product)).or_default();
            m.reserved += change.reserved;
            m.released += change.released;
            m.committed += change.committed;
            m.returned += change.returned;
        }
    }

    fn payment(&mut self, e: &StoredEvent) {
        let Ok(event) = e.payload_as::<PaymentEvent>() else {
            return;
        };
        match event {
            PaymentEvent::PaymentCaptured {
                payment_id,
                order_id,
                amount,
                ..
            } => {
                let p = self.payments.entry(payment_id).or_default();
                p.order = Some(order_id);
                p.captured += 1;
                p.captured_minor += amount.amount_minor;
            }
            PaymentEvent::PaymentFailed {
                payment_id,
                order_id,
                ..
            } => {
                let p = self.payments.entry(payment_id).or_default();
                p.order = Some(order_id);
                p.failed += 1;
                self.triggers
                    .insert(e.event_id, ("PAYMENT_FAILED", payment_id.to_string()));
            }
            PaymentEvent::PaymentRefunded {
                payment_id,
                order_id,
                refund_id,
                amount,
                ..
            } => {
                let p = self.payments.entry(payment_id).or_default();
                p.order = Some(order_id);
                p.refunds += 1;
                p.refund_ids.insert(refund_id);
                p.refunded_minor += amount.amount_minor;
                self.triggers
                    .insert(e.event_id, ("REFUND", payment_id.to_string()));
            }
        }
    }

    /// Orders by final state: (confirmed, cancelled by reason, still pending).
    pub fn outcome_counts(&self) -> (usize, BTreeMap<String, usize>, usize) {
        let mut confirmed = 0;
        let mut cancelled = BTreeMap::new();
        let mut pending = 0;
        for o in self.orders.values().filter(|o| o.placed > 0) {
            match o.last {
                Some("CONFIRMED") => confirmed += 1,
                Some(_) => {
                    *cancelled
                        .entry(o.reason.map_or("?".to_owned(), |r| format!("{r:?}")))
                        .or_insert(0) += 1;
                }
                None => pending += 1,
            }
        }
        (confirmed, cancelled, pending)
    }

    /// Payments: (captured, failed, refunded).
    pub fn payment_counts(&self) -> (usize, usize, usize) {
        let captured = self.payments.values().filter(|p| p.captured > 0).count();
        let failed = self.payments.values().filter(|p| p.failed > 0).count();
        let refunded = self.payments.values().filter(|p| p.refunds > 0).count();
        (captured, failed, refunded)
    }
}

/// Every order that got a 201 is in the log exactly once; a retried request (same
/// Idempotency-Key) never made a second order. Orders in the log whose 201 was lost are counted.
pub fn orders_once(facts: &Facts, placed: &BTreeMap<Uuid, String>) -> Check {
    let mut problems = Vec::new();
    for id in placed.keys() {
        let n = facts.orders.get(id).map_or(0, |o| o.placed);
        if n != 1 {
            problems.push(format!("order {id} (201) is in the log {n} times"));
        }
    }
    let mut by_key: HashMap<String, Vec<Uuid>> = HashMap::new();
    for (id, o) in facts.orders.iter().filter(|(_, o)| o.placed > 0) {
        // The request id is `<idempotency key>.<attempt>`.
        let key = o
            .correlation
            .rsplit_once('.')
            .map_or(o.correlation.clone(), |(k, _)| k.to_owned());
        by_key.entry(key).or_default().push(*id);
    }
    for (key, ids) in &by_key {
        if ids.len() > 1 {
            problems.push(format!(
                "Idempotency-Key {key} made {} orders: {ids:?}",
                ids.len()
            ));
        }
    }
    let in_log = facts.orders.values().filter(|o| o.placed > 0).count();
    let unanswered = facts
        .orders
        .iter()
        .filter(|(id, o)| o.placed > 0 && !placed.contains_key(id))
        .count();
    Check::new(
        "every 201 order is in the log exactly once",
        &problems,
        format!(
            "{} orders answered 201, {in_log} in the log ({unanswered} whose answer was lost to a kill), one per key",
            placed.len()
        ),
    )
}

/// After settling, no order is left between placed and confirmed/cancelled.
pub fn orders_settled(facts: &Facts) -> Check {
    let problems: Vec<String> = facts
        .orders
        .iter()
        .filter(|(_, o)| o.placed > 0 && o.last.is_none())
        .map(|(id, _)| format!("order {id} is still pending"))
        .collect();
    let (confirmed, cancelled, _) = facts.outcome_counts();
    Check::new(
        "every order ended confirmed or cancelled",
        &problems,
        format!("{confirmed} confirmed, {cancelled:?} cancelled"),
    )
}

/// No product was oversold: stock never went below zero, and what confirmed orders hold never
/// exceeds what was stocked. The inventory read model agrees.
pub fn not_oversold(facts: &Facts, read_model: &HashMap<Uuid, (i64, i64)>) -> Check {
    let mut problems = Vec::new();
    let mut figures = Vec::new();
    for (product, s) in &facts.stock {
        let sold: i64 = facts
            .orders
            .iter()
            .filter(|(_, o)| o.last == Some("CONFIRMED"))
            .flat_map(|(_, o)| o.lines.iter())
            .filter(|(p, _)| p == product)
            .map(|(_, q)| i64::from(*q))
            .sum();
        if s.lowest_available < 0 || s.lowest_reserved < 0 {
            problems.push(format!(
                "product {product}: stock went to available {} / reserved {}",
                s.lowest_available, s.lowest_reserved
            ));
        }
        if sold > s.initial {
            problems.push(format!(
                "product {product}: {sold} sold of {} stocked",
                s.initial
            ));
        }
        if s.available != s.initial - sold || s.reserved != 0 {
            problems.push(format!(
                "product {product}: available {} reserved {} after settling, expected {} and 0",
                s.available,
                s.reserved,
                s.initial - sold
            ));
        }
        match read_model.get(product) {
            Some(&(available, reserved)) if (available, reserved) == (s.available, s.reserved) => {}
            other => problems.push(format!(
                "product {product}: inventory read model {other:?}, log says ({}, {})",
                s.available, s.reserved
            )),
        }
        figures.push(format!("{sold}/{}", s.initial));
    }
    Check::new(
        "no product oversold (sold/stocked per product)",
        &problems,
        figures.join(" "),
    )
}

/// One capture per order; a confirmed order keeps its capture; a cancelled one that was paid is
/// refunded exactly once and in full; nothing else is refunded.
pub fn payments_once(facts: &Facts) -> Check {
    let mut problems = Vec::new();
    let mut captures_per_order: HashMap<Uuid, Vec<&PaymentFacts>> = HashMap::new();
    for p in facts.payments.values() {
        if p.captured > 1 {
            problems.push(format!(
                "a payment of order {:?} was captured {} times",
                p.order, p.captured
            ));
        }
        if p.refunds > 1 || p.refund_ids.len() as u32 != p.refunds {
            problems.push(format!(
                "a payment of order {:?} was refunded {} times",
                p.order, p.refunds
            ));
        }
        if p.refunded_minor > p.captured_minor {
            problems.push(format!(
                "a payment of order {:?} refunded {} of {} captured",
                p.order, p.refunded_minor, p.captured_minor
            ));
        }
        if let (Some(order), true) = (p.order, p.captured > 0) {
            captures_per_order.entry(order).or_default().push(p);
        }
    }
    for (id, o) in facts.orders.iter().filter(|(_, o)| o.placed > 0) {
        let captures = captures_per_order.get(id).map_or(&[][..], Vec::as_slice);
        if captures.len() > 1 {
            problems.push(format!(
                "order {id} was paid by {} captures",
                captures.len()
            ));
        }
        let refunded: i64 = captures.iter().map(|p| p.refunded_minor).sum();
        let captured: i64 = captures.iter().map(|p| p.captured_minor).sum();
        match o.last {
            Some("CONFIRMED") if captures.len() != 1 || refunded != 0 => problems.push(format!(
                "confirmed order {id}: {} captures, {refunded} refunded",
                captures.len()
            )),
            Some("CANCELLED") if refunded != captured => problems.push(format!(
                "cancelled order {id}: {captured} captured but {refunded} refunded"
            )),
            _ => {}
        }
    }
    let (captured, failed, refunded) = facts.payment_counts();
    Check::new(
        "no payment captured twice, no refund twice",
        &problems,
        format!("{captured} captured, {failed} declined, {refunded} refunded (each once, in full)"),
    )
}

/// Every confirmed order's stock is committed (reserved, then committed, nothing released);
/// every cancelled order's stock is back (nothing left reserved or committed).
pub fn stock_settled(facts: &Facts) -> Check {
    let mut problems = Vec::new();
    for (id, o) in facts.orders.iter().filter(|(_, o)| o.placed > 0) {
        for (product, quantity) in &o.lines {
            let m = facts
                .movements
                .get(&(*id, *product))
                .copied()
                .unwrap_or_default();
            let q = i64::from(*quantity);
            let held = m.reserved - m.released - m.committed;
            let kept = m.committed - m.returned;
            match o.last {
                Some("CONFIRMED") if (held, kept, m.committed) != (0, q, q) => problems.push(
                    format!("confirmed order {id}, product {product} ×{q}: {m:?}"),
                ),
                Some("CANCELLED") if (held, kept) != (0, 0) => problems.push(format!(
                    "cancelled order {id}, product {product} ×{q}: {m:?}"
                )),
                _ => {}
            }
        }
    }
    Check::new(
        "confirmed orders' stock committed, cancelled orders' stock released",
        &problems,
        format!("{} order lines", facts.movements.len()),
    )
}

/// Every notification-triggering event caused exactly one notification, and no notification
/// exists without one. `rows` are (type, triggering event id) of the notifications table.
pub fn notifications_once(facts: &Facts, rows: &[(String, Uuid)]) -> Check {
    let mut problems = Vec::new();
    let mut per_trigger: HashMap<Uuid, Vec<&str>> = HashMap::new();
    for (kind, trigger) in rows {
        per_trigger.entry(*trigger).or_default().push(kind);
    }
    let mut per_subject: HashMap<(&str, &str), usize> = HashMap::new();
    for (event, (kind, subject)) in &facts.triggers {
        let found = per_trigger.get(event).map_or(&[][..], Vec::as_slice);
        if found != [*kind] {
            problems.push(format!("{kind} for {subject}: notifications {found:?}"));
        }
        *per_subject.entry((kind, subject.as_str())).or_default() += found.len();
    }
    for ((kind, subject), n) in &per_subject {
        if *n > 1 {
            problems.push(format!("{n} {kind} notifications for {subject}"));
        }
    }
    for trigger in per_trigger.keys() {
        if !facts.triggers.contains_key(trigger) {
            problems.push(format!("notification for unknown event {trigger}"));
        }
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (kind, _) in rows {
        *kinds.entry(kind.as_str()).or_default() += 1;
    }
    Check::new(
        "one notification per triggering event, none twice",
        &problems,
        format!("{kinds:?}"),
    )
}

/// The window during which 503s and broken connections are excused.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// From.
    pub from: Duration,
    /// To.
    pub to: Duration,
}

impl Window {
    fn overlaps(&self, s: &Sample, grace: Duration) -> bool {
        s.start <= self.to + grace && s.end >= self.from
    }
}

/// HTTP answers were 2xx or 4xx, or 503 while Postgres was down; requests failed without an
/// answer only when they went to an API instance that was down.
pub fn http_answers(
    samples: &[Sample],
    pg_down: &[Window],
    api_down: &HashMap<usize, Vec<Window>>,
    grace: Duration,
) -> Check {
    let mut problems = Vec::new();
    for s in samples {
        match &s.outcome {
            Outcome::Status(code) if *code < 500 => {}
            Outcome::Status(503) if pg_down.iter().any(|w| w.overlaps(s, grace)) => {}
            Outcome::Status(code) => problems.push(format!(
                "{} {} on api-{} at {:.1}s-{:.1}s ({:?}, request {})",
                s.route,
                code,
                s.api + 1,
                s.start.as_secs_f64(),
                s.end.as_secs_f64(),
                s.code,
                s.request_id
            )),
            Outcome::Transport(error) => {
                let excused = api_down
                    .get(&s.api)
                    .is_some_and(|ws| ws.iter().any(|w| w.overlaps(s, grace)));
                if !excused {
                    problems.push(format!(
                        "{} to api-{} at {:.1}s-{:.1}s failed: {error}",
                        s.route,
                        s.api + 1,
                        s.start.as_secs_f64(),
                        s.end.as_secs_f64()
                    ));
                }
            }
        }
    }
    Check::new(
        "HTTP: only 2xx/4xx, 503 only while Postgres was down",
        &problems,
        format!("{} attempts", samples.len()),
    )
}

/// Formats a duration as seconds.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
