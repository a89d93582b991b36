//! The `Order` aggregate: an order's lifecycle (`Pending → Confirmed → Shipped → Delivered`, or
//! `Cancelled` before shipping) and the facts the fulfilment saga records on it (stock reserved,
//! paid, refunded). It confirms an order exactly when both stock and payment are in, allows one
//! payment in flight and one capture, and turns a capture landing on a cancelled order into an
//! event the saga refunds. Saga commands are idempotent.
//!
//! `decide.rs` holds the rules for commands on a placed order, `status.rs` the three statuses.

mod command;
mod decide;
mod error;
mod event;
mod status;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use command::{
    CancellationReason, OrderCommand, OrderLine, PostalAddress, ShippingAddress,
    ONE_LINE_ADDRESS_MAX,
};
pub use error::OrderError;
pub use event::{OrderEvent, OrderLineItem};
pub use status::{OrderPaymentStatus, OrderStatus, StockStatus};

use crate::money::Money;
use crate::validate::len_within;

/// State of a placed order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Placed {
    order_id: Uuid,
    user_id: Uuid,
    lines: Vec<OrderLineItem>,
    total: Money,
    status: OrderStatus,
    stock_status: StockStatus,
    payment_status: OrderPaymentStatus,
    cancellation_reason: Option<CancellationReason>,
    payment_in_flight: Option<Uuid>,
    paid_by: Option<Uuid>,
    /// Captures that landed after cancellation, to be refunded.
    late_payments: BTreeMap<Uuid, Money>,
    /// Refunded so far per payment, in minor units.
    refunded: BTreeMap<Uuid, i64>,
    /// Where it ships, as placed.
    shipping_address: ShippingAddress,
    /// How the customer said they would pay.
    payment_method: String,
    /// When it was placed (`OrderPlaced`'s time).
    placed_at: DateTime<Utc>,
    /// The time of its latest event.
    updated_at: DateTime<Utc>,
}

/// An order, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Order {
    placed: Option<Placed>,
}

impl Order {
    /// The status, once placed.
    pub fn status(&self) -> Option<OrderStatus> {
        self.placed.as_ref().map(|o| o.status)
    }

    /// The stock status, once placed.
    pub fn stock_status(&self) -> Option<StockStatus> {
        self.placed.as_ref().map(|o| o.stock_status)
    }

    /// The payment status, once placed.
    pub fn payment_status(&self) -> Option<OrderPaymentStatus> {
        self.placed.as_ref().map(|o| o.payment_status)
    }

    /// The customer, once placed.
    pub fn user_id(&self) -> Option<Uuid> {
        self.placed.as_ref().map(|o| o.user_id)
    }

    /// Where it ships, once placed.
    pub fn shipping_address(&self) -> Option<&ShippingAddress> {
        self.placed.as_ref().map(|o| &o.shipping_address)
    }

    /// How the customer said they would pay, once placed.
    pub fn payment_method(&self) -> Option<&str> {
        self.placed.as_ref().map(|o| o.payment_method.as_str())
    }

    /// When it was placed and when its latest event happened, once placed.
    pub fn times(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.placed.as_ref().map(|o| (o.placed_at, o.updated_at))
    }

    /// The total, once placed.
    pub fn total(&self) -> Option<Money> {
        self.placed.as_ref().map(|o| o.total)
    }

    /// The priced lines (empty before placement).
    pub fn lines(&self) -> &[OrderLineItem] {
        self.placed.as_ref().map_or(&[], |o| &o.lines)
    }

    /// Why the order was cancelled, once it is.
    pub fn cancellation_reason(&self) -> Option<CancellationReason> {
        self.placed.as_ref().and_then(|o| o.cancellation_reason)
    }

    /// The payment that paid the order, if any.
    pub fn paid_by(&self) -> Option<Uuid> {
        self.placed.as_ref().and_then(|o| o.paid_by)
    }

    fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        let OrderCommand::PlaceOrder {
            order_id,
            user_id,
            lines,
            shipping_address,
            payment_method,
            at,
        } = command
        else {
            return self
                .placed
                .as_ref()
                .ok_or(OrderError::NotFound)?
                .decide(command);
        };
        if self.placed.is_some() {
            return Err(OrderError::AlreadyPlaced);
        }
        let (lines, total) = command::priced_lines(&lines)?;
        let shipping_address = shipping_address.validated()?;
        let payment_method = payment_method.trim().to_owned();
        if !len_within(&payment_method, 1, 50) {
            return Err(OrderError::InvalidPaymentMethod);
        }
        Ok(vec![OrderEvent::OrderPlaced {
            order_id,
            user_id,
            lines,
            total,
            shipping_address,
            payment_method,
            at,
        }])
    }
}

impl Placed {
    fn apply(&mut self, event: OrderEvent) {
        match event {
            OrderEvent::OrderPlaced { .. } => {}
            OrderEvent::OrderStockReserved { .. }
            | OrderEvent::OrderStockReservedAfterCancellation { .. } => {
                self.stock_status = StockStatus::Reserved;
            }
            OrderEvent::OrderStockRejected { .. } => self.stock_status = StockStatus::Rejected,
            OrderEvent::OrderStockReleased { .. } => self.stock_status = StockStatus::Released,
            OrderEvent::OrderStockCommitted { .. } => self.stock_status = StockStatus::Committed,
            OrderEvent::OrderPaymentRequested { payment_id, .. } => {
                self.payment_in_flight = Some(payment_id)
            }
            OrderEvent::OrderPaid { payment_id, .. } => {
                self.payment_in_flight = None;
                self.paid_by = Some(payment_id);
                self.payment_status = OrderPaymentStatus::Paid;
            }
            OrderEvent::OrderPaidAfterCancellation {
                payment_id, amount, ..
            } => {
                if self.payment_in_flight == Some(payment_id) {
                    self.payment_in_flight = None;
                }
                self.late_payments.insert(payment_id, amount);
            }
            OrderEvent::OrderPaymentFailed { .. } => self.payment_in_flight = None,
            OrderEvent::OrderConfirmed { .. } => self.status = OrderStatus::Confirmed,
            OrderEvent::OrderCancelled { reason, .. } => {
                self.status = OrderStatus::Cancelled;
                self.cancellation_reason = Some(reason);
            }
            OrderEvent::OrderShipped { .. } => self.status = OrderStatus::Shipped,
            OrderEvent::OrderDelivered { .. } => self.status = OrderStatus::Delivered,
            OrderEvent::OrderRefunded {
                payment_id,
                total_refunded,
                fully_refunded,
                ..
            } => {
                self.refunded
                    .insert(payment_id, total_refunded.amount_minor);
                if self.paid_by == Some(payment_id) {
                    self.payment_status = OrderPaymentStatus::after_refund(fully_refunded);
                }
            }
        }
    }
}

impl Aggregate for Order {
    const TYPE: &'static str = "Order";
    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match (&mut self.placed, event) {
            (
                None,
                OrderEvent::OrderPlaced {
                    order_id,
                    user_id,
                    lines,
                    total,
                    shipping_address,
                    payment_method,
                    at,
                },
            ) => {
                self.placed = Some(Placed {
                    shipping_address,
                    payment_method,
                    placed_at: at,
                    updated_at: at,
                    order_id,
                    user_id,
                    lines,
                    total,
                    status: OrderStatus::Pending,
                    stock_status: StockStatus::Pending,
                    payment_status: OrderPaymentStatus::Unpaid,
                    cancellation_reason: None,
                    payment_in_flight: None,
                    paid_by: None,
                    late_payments: BTreeMap::new(),
                    refunded: BTreeMap::new(),
                });
            }
            (Some(placed), event) => {
                placed.updated_at = event.at();
                placed.apply(event);
            }
            // Every other event follows `OrderPlaced` in a stream.
            (None, _) => {}
        }
    }
}
