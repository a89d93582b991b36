//! The order fulfilment saga (`OrderFulfilmentProcess`).
//!
//! `OrderPlaced` → reserve stock for every line → all reserved: the order is told
//! (`MarkStockReserved`); `PaymentCaptured` → the order is told (`MarkPaid`); the order confirms
//! itself once both hold, recording its stock committed → `OrderConfirmed` → stock committed in
//! the inventory. Four commands per confirmed one-line order. A line out of stock → partial
//! reservations released, order cancelled `OUT_OF_STOCK`. `OrderCancelled` (any reason) → stock
//! released, a captured payment refunded. Unpaid past the payment timeout → `ExpirePayment`.
//!
//! Idempotency: the saga's own state (which lines are reserved) commits with its cursor; every
//! command it sends is idempotent in the domain (a repeat emits nothing), and refunds carry a
//! deterministic refund id. Delivering every event twice changes nothing.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use commerce_domain::inventory::{Inventory, InventoryCommand, InventoryEvent};
use commerce_domain::money::Money;
use commerce_domain::order::{CancellationReason, Order, OrderCommand, OrderEvent, OrderLineItem};
use commerce_domain::payment::{Payment, PaymentCommand, PaymentEvent};
use commerce_event_store::{trace, EventHandler, EventMetadata, HandlerError, StoredEvent};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use sqlx::PgConnection;
use tracing::Instrument;
use uuid::Uuid;

use super::deadlines::{self, PAYMENT_TIMEOUT};
use crate::{DispatchError, Dispatchable, Dispatcher};

/// Target aggregates the saga sends commands to at once.
const SEND_CONCURRENCY: usize = 16;

/// The actor recorded on the saga's commands.
const ACTOR: &str = "system:order-fulfilment";

/// Namespace of deterministic refund ids (one refund per payment per saga reason).
const REFUND_NAMESPACE: Uuid = Uuid::from_u128(0x6f0c_93d4_51b2_4c1e_9a57_0d2e_8b41_c7a3);

/// The saga, as a durable consumer's handler.
#[derive(Debug, Clone)]
pub struct OrderFulfilmentProcess {
    dispatcher: Dispatcher,
    payment_timeout: Duration,
}

impl OrderFulfilmentProcess {
    /// Consumer, queue and checkpoint name.
    pub const NAME: &'static str = "order-fulfilment";

    /// A saga sending its commands through `dispatcher`; unpaid orders expire after
    /// `payment_timeout`.
    pub fn new(dispatcher: Dispatcher, payment_timeout: Duration) -> Self {
        Self {
            dispatcher,
            payment_timeout,
        }
    }

    /// The routing keys the saga reacts to.
    pub fn bindings() -> Vec<String> {
        [
            "Order.OrderPlaced",
            "Order.OrderConfirmed",
            "Order.OrderCancelled",
            "Order.OrderPaidAfterCancellation",
            "Order.OrderStockReservedAfterCancellation",
            "Inventory.StockReserved",
            "Inventory.StockReservationRejected",
            "Payment.PaymentCaptured",
            "Payment.PaymentFailed",
            "Payment.PaymentRefunded",
        ]
        .map(String::from)
        .to_vec()
    }

    /// Queues one command caused by `event`, sent with the rest of the run's (see
    /// [`Outbox::send`]). A domain rejection is an answer, not a failure (e.g. the order moved on
    /// meanwhile): it is logged and the saga goes on.
    fn send<A>(&self, out: &mut Outbox, id: Uuid, command: A::Command, event: &StoredEvent)
    where
        A: Dispatchable,
        A::Command: Clone + Send + 'static,
        A::Error: Send + Sync + 'static,
    {
        let metadata = EventMetadata::caused_by(ACTOR, event);
        let dispatcher = self.dispatcher.clone();
        let cause = event.event_type.clone();
        let target = id.to_string();
        // The command continues the trace of the request that led to `event` (guarantee 8's
        // causation, as a trace).
        let span = trace::reaction_span(Self::NAME, event, A::TYPE, &target);
        out.push(
            format!("{}:{id}", A::TYPE),
            Box::pin(
                async move {
                    match dispatcher.execute::<A>(&target, command, &metadata).await {
                        Ok(_) => Ok(()),
                        Err(DispatchError::Rejected(e)) => {
                            tracing::info!(aggregate = A::TYPE, %id, reason = %e, %cause, "saga command declined");
                            Ok(())
                        }
                        Err(e) => Err(Box::new(e) as HandlerError),
                    }
                }
                .instrument(span),
            ),
        );
    }

    fn release_lines(
        &self,
        out: &mut Outbox,
        order_id: Uuid,
        products: impl IntoIterator<Item = Uuid>,
        event: &StoredEvent,
    ) {
        for product_id in products {
            let command = InventoryCommand::ReleaseStock {
                product_id,
                order_id,
                at: Utc::now(),
            };
            self.send::<Inventory>(out, product_id, command, event);
        }
    }

    /// Refunds whatever of `payment_id` is still captured (deterministic refund id per reason).
    async fn refund_rest(
        &self,
        out: &mut Outbox,
        payment_id: Uuid,
        reason: &str,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        let (payment, _) = self
            .dispatcher
            .reader()
            .load::<Payment>(&payment_id.to_string())
            .await?;
        let (Some(amount), Some(refunded)) = (payment.amount(), payment.refunded()) else {
            return Ok(());
        };
        let rest = amount.amount_minor - refunded.amount_minor;
        if rest <= 0 {
            return Ok(());
        }
        let refund_id = Uuid::new_v5(
            &REFUND_NAMESPACE,
            format!("{payment_id}:{reason}").as_bytes(),
        );
        let command = PaymentCommand::RefundPayment {
            refund_id,
            amount: Money::new(rest, amount.currency),
            reason: reason.to_owned(),
            at: Utc::now(),
        };
        self.send::<Payment>(out, payment_id, command, event);
        Ok(())
    }

    async fn on_order(
        &self,
        out: &mut Outbox,
        conn: &mut PgConnection,
        event: &StoredEvent,
        order_event: OrderEvent,
    ) -> Result<(), HandlerError> {
        match order_event {
            OrderEvent::OrderPlaced {
                order_id,
                user_id,
                lines,
                ..
            } => {
                let line_json = serde_json::to_value(
                    lines.iter().map(|l| serde_json::json!({"product_id": l.product_id, "quantity": l.quantity})).collect::<Vec<_>>(),
                )?;
                sqlx::query(
                    "INSERT INTO process.order_fulfilment (order_id, user_id, lines) VALUES ($1, $2, $3) \
                     ON CONFLICT (order_id) DO NOTHING",
                )
                .bind(order_id)
                .bind(user_id)
                .bind(line_json)
                .execute(&mut *conn)
                .await?;
                let due = event.recorded_at + chrono::Duration::from_std(self.payment_timeout)?;
                deadlines::schedule(
                    conn,
                    PAYMENT_TIMEOUT,
                    order_id,
                    due,
                    &EventMetadata::caused_by(ACTOR, event),
                )
                .await?;
                for line in &lines {
                    let command = InventoryCommand::ReserveStock {
                        product_id: line.product_id,
                        order_id,
                        quantity: line.quantity,
                        at: Utc::now(),
                    };
                    self.send::<Inventory>(out, line.product_id, command, event);
                }
            }
            OrderEvent::OrderConfirmed {
                order_id, lines, ..
            } => {
                sqlx::query("UPDATE process.order_fulfilment SET confirmed = true, updated_at = now() WHERE order_id = $1")
                    .bind(order_id)
                    .execute(&mut *conn)
                    .await?;
                deadlines::cancel(conn, PAYMENT_TIMEOUT, order_id).await?;
                for line in &lines {
                    let command = InventoryCommand::CommitStock {
                        product_id: line.product_id,
                        order_id,
                        at: Utc::now(),
                    };
                    self.send::<Inventory>(out, line.product_id, command, event);
                }
                // The order recorded the commitment with its confirmation (`OrderStockCommitted`):
                // nothing goes back to it.
            }
            OrderEvent::OrderCancelled {
                order_id,
                was_paid,
                lines,
                ..
            } => {
                sqlx::query("UPDATE process.order_fulfilment SET cancelled = true, updated_at = now() WHERE order_id = $1")
                    .bind(order_id)
                    .execute(&mut *conn)
                    .await?;
                deadlines::cancel(conn, PAYMENT_TIMEOUT, order_id).await?;
                // Releasing a line that holds nothing, or returning one that was never committed,
                // is a no-op: so do both for every line, whatever the order got to.
                self.release_lines(out, order_id, products(&lines), event);
                for line in &lines {
                    let command = InventoryCommand::ReturnStock {
                        product_id: line.product_id,
                        order_id,
                        quantity: line.quantity,
                        at: Utc::now(),
                    };
                    self.send::<Inventory>(out, line.product_id, command, event);
                }
                self.send::<Order>(
                    out,
                    order_id,
                    OrderCommand::MarkStockReleased { at: Utc::now() },
                    event,
                );
                if let Some(payment_id) = was_paid {
                    self.refund_rest(out, payment_id, "order cancelled", event)
                        .await?;
                }
            }
            OrderEvent::OrderPaidAfterCancellation { payment_id, .. } => {
                self.refund_rest(out, payment_id, "order cancelled", event)
                    .await?;
            }
            OrderEvent::OrderStockReservedAfterCancellation {
                order_id, lines, ..
            } => {
                self.release_lines(out, order_id, products(&lines), event);
            }
            _ => {}
        }
        Ok(())
    }

    async fn on_inventory(
        &self,
        out: &mut Outbox,
        conn: &mut PgConnection,
        event: &StoredEvent,
        inventory_event: InventoryEvent,
    ) -> Result<(), HandlerError> {
        match inventory_event {
            InventoryEvent::StockReserved {
                product_id,
                order_id,
                ..
            } => {
                // One statement: records the line unless the order is past reserving, and says
                // where the order stands (the row stays locked until the run commits).
                let Some(state) = saga_state(
                    conn,
                    "UPDATE process.order_fulfilment \
                     SET reserved = CASE WHEN rejected OR cancelled OR $2 = ANY(reserved) \
                                         THEN reserved ELSE array_append(reserved, $2) END, \
                         updated_at = now() \
                     WHERE order_id = $1 RETURNING lines, reserved, rejected, cancelled",
                    order_id,
                    Some(product_id),
                )
                .await?
                else {
                    return Ok(()); // Not an order this saga placed (e.g. a manual reservation).
                };
                if state.rejected || state.cancelled {
                    // Too late: another line was short, or the order was cancelled meanwhile.
                    self.release_lines(out, order_id, [product_id], event);
                    return Ok(());
                }
                if state.products.iter().all(|p| state.reserved.contains(p)) {
                    self.send::<Order>(
                        out,
                        order_id,
                        OrderCommand::MarkStockReserved { at: Utc::now() },
                        event,
                    );
                }
            }
            InventoryEvent::StockReservationRejected { order_id, .. } => {
                let Some(state) = saga_state(
                    conn,
                    "UPDATE process.order_fulfilment SET rejected = true, updated_at = now() \
                     WHERE order_id = $1 RETURNING lines, reserved, rejected, cancelled",
                    order_id,
                    None,
                )
                .await?
                else {
                    return Ok(());
                };
                // All or nothing: give back what the other lines hold.
                self.release_lines(out, order_id, state.reserved, event);
                self.send::<Order>(
                    out,
                    order_id,
                    OrderCommand::MarkStockRejected { at: Utc::now() },
                    event,
                );
                let cancel = OrderCommand::CancelOrder {
                    reason: CancellationReason::OutOfStock,
                    at: Utc::now(),
                };
                self.send::<Order>(out, order_id, cancel, event);
            }
            _ => {}
        }
        Ok(())
    }

    fn on_payment(&self, out: &mut Outbox, event: &StoredEvent, payment_event: PaymentEvent) {
        match payment_event {
            PaymentEvent::PaymentCaptured {
                payment_id,
                order_id,
                amount,
                ..
            } => {
                let command = OrderCommand::MarkPaid {
                    payment_id,
                    amount,
                    at: Utc::now(),
                };
                self.send::<Order>(out, order_id, command, event);
            }
            PaymentEvent::PaymentFailed {
                payment_id,
                order_id,
                reason,
                ..
            } => {
                let command = OrderCommand::MarkPaymentFailed {
                    payment_id,
                    reason,
                    at: Utc::now(),
                };
                self.send::<Order>(out, order_id, command, event);
            }
            PaymentEvent::PaymentRefunded {
                payment_id,
                order_id,
                amount,
                total_refunded,
                ..
            } => {
                let command = OrderCommand::RecordRefund {
                    payment_id,
                    amount,
                    total_refunded,
                    at: Utc::now(),
                };
                self.send::<Order>(out, order_id, command, event);
            }
        }
    }
}

impl OrderFulfilmentProcess {
    /// Updates the saga's state for `event` on `conn` and queues the commands it calls for.
    async fn decide(
        &self,
        out: &mut Outbox,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        match event.aggregate_type.as_str() {
            "Order" => self.on_order(out, conn, event, event.payload_as()?).await,
            "Inventory" => {
                self.on_inventory(out, conn, event, event.payload_as()?)
                    .await
            }
            "Payment" => {
                self.on_payment(out, event, event.payload_as()?);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

impl EventHandler for OrderFulfilmentProcess {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        let mut out = Outbox::default();
        self.decide(&mut out, conn, event).await?;
        out.send().await
    }

    /// Decides every event of the run first (the saga's state, in the consumer's transaction),
    /// then sends the commands: in decision order per target aggregate, different aggregates
    /// concurrently, so a run of many orders' events costs a few round trips of latency rather
    /// than a chain of commits per event. Should any command fail, the transaction rolls back
    /// and the consumer applies the run again one event at a time; commands already sent repeat
    /// as no-ops (each is idempotent).
    async fn handle_batch(
        &self,
        conn: &mut PgConnection,
        events: &[&StoredEvent],
    ) -> Result<(), HandlerError> {
        let mut out = Outbox::default();
        for event in events {
            self.decide(&mut out, conn, event).await?;
        }
        out.send().await
    }
}

/// A command the saga decided on, sent when awaited.
type Command = BoxFuture<'static, Result<(), HandlerError>>;

/// Commands the saga decided on, not sent yet, queued per target aggregate.
#[derive(Default)]
struct Outbox {
    queues: Vec<Vec<Command>>,
    by_target: HashMap<String, usize>,
}

/// Sends `queue`'s commands one after the other.
async fn send_in_order(queue: Vec<Command>) -> Result<(), HandlerError> {
    for command in queue {
        command.await?;
    }
    Ok(())
}

impl Outbox {
    fn push(&mut self, target: String, command: Command) {
        let queues = &mut self.queues;
        let at = *self.by_target.entry(target).or_insert_with(|| {
            queues.push(Vec::new());
            queues.len() - 1
        });
        if let Some(queue) = self.queues.get_mut(at) {
            queue.push(command);
        }
    }

    /// Sends every queue, each in order, up to [`SEND_CONCURRENCY`] queues at once.
    async fn send(self) -> Result<(), HandlerError> {
        let mut queues = self.queues.into_iter();
        let mut running: FuturesUnordered<Command> = queues
            .by_ref()
            .take(SEND_CONCURRENCY)
            .map(|queue| -> Command { Box::pin(send_in_order(queue)) })
            .collect();
        while let Some(sent) = running.next().await {
            sent?;
            if let Some(queue) = queues.next() {
                running.push(Box::pin(send_in_order(queue)));
            }
        }
        Ok(())
    }
}

fn products(lines: &[OrderLineItem]) -> Vec<Uuid> {
    lines.iter().map(|l| l.product_id).collect()
}

/// What the saga remembers of one order.
struct SagaState {
    products: Vec<Uuid>,
    reserved: Vec<Uuid>,
    rejected: bool,
    cancelled: bool,
}

/// Runs `update` (an `UPDATE … RETURNING lines, reserved, rejected, cancelled` of the saga row
/// of `order_id` = `$1`, with `product` as `$2` when given) and returns what the saga remembers of
/// the order afterwards; `None` when this saga did not place it. The row stays locked for the
/// rest of the transaction.
async fn saga_state(
    conn: &mut PgConnection,
    update: &'static str,
    order_id: Uuid,
    product: Option<Uuid>,
) -> Result<Option<SagaState>, HandlerError> {
    let query = sqlx::query_as(update).bind(order_id);
    let query = match product {
        Some(product) => query.bind(product),
        None => query,
    };
    let row: Option<(serde_json::Value, Vec<Uuid>, bool, bool)> =
        query.fetch_optional(&mut *conn).await?;
    let Some((lines, reserved, rejected, cancelled)) = row else {
        return Ok(None);
    };
    let products = lines
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["product_id"].as_str().and_then(|s| s.parse().ok()))
        .collect();
    Ok(Some(SagaState {
        products,
        reserved,
        rejected,
        cancelled,
    }))
}
