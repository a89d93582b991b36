//! The `Order` aggregate: an order's lifecycle (`Pending → Confirmed → Shipped → Delivered`, or
//! `Cancelled` before shipping) and the facts the fulfilment saga records on it (stock reserved,
//! paid, refunded). It confirms an order exactly when both stock and payment are in, allows one
//! payment in flight and one capture, and turns a capture landing on a cancelled order into an
//! event the saga refunds. Saga commands are idempotent.

mod command;
mod error;
mod event;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use command::{CancellationReason, OrderCommand, OrderLine, ShippingAddress};
pub use error::OrderError;
pub use event::{OrderEvent, OrderLineItem};

use crate::money::Money;
use crate::validate::len_within;

/// An order's lifecycle status (serialised `PENDING`, `CONFIRMED`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// Placed; waiting for stock and payment.
    Pending,
    /// Stock reserved and paid.
    Confirmed,
    /// Left the warehouse.
    Shipped,
    /// Arrived.
    Delivered,
    /// Cancelled before shipping.
    Cancelled,
}

/// Where the order's stock reservation stands (serialised `PENDING`, `RESERVED`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StockStatus {
    /// Reservation not settled yet.
    Pending,
    /// Every line reserved.
    Reserved,
    /// Some line could not be reserved.
    Rejected,
    /// Reservations given back.
    Released,
    /// Reserved stock left with the order.
    Committed,
}

/// Where the order's payment stands (serialised `UNPAID`, `PAID`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderPaymentStatus {
    /// Not paid.
    Unpaid,
    /// Paid in full.
    Paid,
    /// The payment was refunded in full.
    Refunded,
    /// Part of the payment was refunded.
    PartiallyRefunded,
}

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

    /// The total, once placed.
    pub fn total(&self) -> Option<Money> {
        self.placed.as_ref().map(|o| o.total)
    }

    /// The priced lines (empty before placement).
    pub fn lines(&self) -> &[OrderLineItem] {
        self.placed.as_ref().map_or(&[], |o| &o.lines)
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
    fn confirmed(&self, at: DateTime<Utc>) -> OrderEvent {
        OrderEvent::OrderConfirmed {
            order_id: self.order_id,
            user_id: self.user_id,
            total: self.total,
            lines: self.lines.clone(),
            at,
        }
    }

    fn cancelled(&self, reason: CancellationReason, at: DateTime<Utc>) -> OrderEvent {
        let refundable = matches!(
            self.payment_status,
            OrderPaymentStatus::Paid | OrderPaymentStatus::PartiallyRefunded
        );
        OrderEvent::OrderCancelled {
            order_id: self.order_id,
            user_id: self.user_id,
            reason,
            was_paid: self.paid_by.filter(|_| refundable),
            stock_reserved: self.stock_status == StockStatus::Reserved,
            total: self.total,
            lines: self.lines.clone(),
            at,
        }
    }

    fn stock_conflict(&self, to: StockStatus) -> OrderError {
        OrderError::InvalidStockTransition {
            from: self.stock_status,
            to,
        }
    }

    fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderStatus as S;
        use StockStatus as Stock;
        let order_id = self.order_id;
        let user_id = self.user_id;
        let events = match command {
            OrderCommand::PlaceOrder { .. } => return Err(OrderError::AlreadyPlaced),
            OrderCommand::MarkStockReserved { at } => match (self.stock_status, self.status) {
                (Stock::Reserved | Stock::Committed, _) => vec![],
                (Stock::Rejected, _) => return Err(self.stock_conflict(Stock::Reserved)),
                (_, S::Cancelled) => {
                    vec![OrderEvent::OrderStockReservedAfterCancellation {
                        order_id,
                        lines: self.lines.clone(),
                        at,
                    }]
                }
                _ if self.payment_status == OrderPaymentStatus::Paid
                    && self.status == S::Pending =>
                {
                    vec![
                        OrderEvent::OrderStockReserved { order_id, at },
                        self.confirmed(at),
                    ]
                }
                _ => vec![OrderEvent::OrderStockReserved { order_id, at }],
            },
            OrderCommand::MarkStockRejected { at } => match self.stock_status {
                Stock::Rejected => vec![],
                Stock::Pending => vec![OrderEvent::OrderStockRejected { order_id, at }],
                _ => return Err(self.stock_conflict(Stock::Rejected)),
            },
            OrderCommand::MarkStockReleased { at } => match self.stock_status {
                Stock::Released | Stock::Rejected => vec![],
                Stock::Pending | Stock::Reserved => {
                    vec![OrderEvent::OrderStockReleased { order_id, at }]
                }
                Stock::Committed => return Err(self.stock_conflict(Stock::Released)),
            },
            OrderCommand::MarkStockCommitted { at } => match self.stock_status {
                Stock::Committed => vec![],
                Stock::Reserved => vec![OrderEvent::OrderStockCommitted { order_id, at }],
                _ => return Err(self.stock_conflict(Stock::Committed)),
            },
            OrderCommand::RequestPayment {
                payment_id,
                amount,
                at,
            } => {
                if let Some(paid) = self.paid_by {
                    return Err(OrderError::AlreadyPaid { payment_id: paid });
                }
                if self.status != S::Pending {
                    return Err(OrderError::NotPayable {
                        status: self.status,
                    });
                }
                if amount != self.total {
                    return Err(OrderError::AmountMismatch {
                        expected: self.total,
                        given: amount,
                    });
                }
                match self.payment_in_flight {
                    Some(current) if current == payment_id => vec![],
                    Some(current) => {
                        return Err(OrderError::PaymentInProgress {
                            payment_id: current,
                        })
                    }
                    None => vec![OrderEvent::OrderPaymentRequested {
                        order_id,
                        payment_id,
                        amount,
                        at,
                    }],
                }
            }
            OrderCommand::MarkPaid {
                payment_id,
                amount,
                at,
            } => {
                match self.paid_by {
                    Some(paid) if paid == payment_id => return Ok(vec![]),
                    Some(paid) => return Err(OrderError::AlreadyPaid { payment_id: paid }),
                    None => {}
                }
                if self.late_payments.contains_key(&payment_id) {
                    vec![]
                } else if self.status == S::Cancelled {
                    vec![OrderEvent::OrderPaidAfterCancellation {
                        order_id,
                        user_id,
                        payment_id,
                        amount,
                        at,
                    }]
                } else if amount != self.total {
                    return Err(OrderError::AmountMismatch {
                        expected: self.total,
                        given: amount,
                    });
                } else if let Some(current) = self.payment_in_flight.filter(|p| *p != payment_id) {
                    return Err(OrderError::PaymentInProgress {
                        payment_id: current,
                    });
                } else {
                    let mut events = vec![OrderEvent::OrderPaid {
                        order_id,
                        user_id,
                        payment_id,
                        amount,
                        at,
                    }];
                    if self.stock_status == Stock::Reserved {
                        events.push(self.confirmed(at));
                    }
                    events
                }
            }
            OrderCommand::MarkPaymentFailed {
                payment_id,
                reason,
                at,
            } => {
                if self.payment_in_flight == Some(payment_id) {
                    vec![OrderEvent::OrderPaymentFailed {
                        order_id,
                        user_id,
                        payment_id,
                        reason,
                        at,
                    }]
                } else {
                    vec![]
                }
            }
            OrderCommand::CancelOrder { reason, at } => {
                match (self.status, self.cancellation_reason) {
                    (S::Cancelled, Some(recorded)) if recorded == reason => vec![],
                    (S::Cancelled, recorded) => {
                        return Err(OrderError::AlreadyCancelled {
                            reason: recorded.unwrap_or(reason),
                        })
                    }
                    (S::Shipped | S::Delivered, _) => {
                        return Err(OrderError::CannotCancel {
                            status: self.status,
                        })
                    }
                    (S::Pending | S::Confirmed, _) => vec![self.cancelled(reason, at)],
                }
            }
            OrderCommand::ExpirePayment { at } => {
                if self.status == S::Pending && self.payment_status == OrderPaymentStatus::Unpaid {
                    vec![self.cancelled(CancellationReason::PaymentTimeout, at)]
                } else {
                    vec![]
                }
            }
            OrderCommand::ShipOrder { at } => match self.status {
                S::Confirmed => vec![OrderEvent::OrderShipped {
                    order_id,
                    user_id,
                    at,
                }],
                from => {
                    return Err(OrderError::InvalidTransition {
                        from,
                        to: S::Shipped,
                    })
                }
            },
            OrderCommand::DeliverOrder { at } => match self.status {
                S::Shipped => vec![OrderEvent::OrderDelivered {
                    order_id,
                    user_id,
                    at,
                }],
                from => {
                    return Err(OrderError::InvalidTransition {
                        from,
                        to: S::Delivered,
                    })
                }
            },
            OrderCommand::RecordRefund {
                payment_id,
                amount,
                total_refunded,
                at,
            } => {
                let captured = if self.paid_by == Some(payment_id) {
                    self.total
                } else {
                    *self
                        .late_payments
                        .get(&payment_id)
                        .ok_or(OrderError::UnknownPayment { payment_id })?
                };
                let fits = amount.amount_minor > 0
                    && amount.currency == captured.currency
                    && total_refunded.currency == captured.currency
                    && (amount.amount_minor..=captured.amount_minor)
                        .contains(&total_refunded.amount_minor);
                if !fits {
                    return Err(OrderError::InvalidRefund {
                        amount,
                        total_refunded,
                        captured,
                    });
                }
                let recorded = self.refunded.get(&payment_id).copied().unwrap_or(0);
                if total_refunded.amount_minor <= recorded {
                    vec![]
                } else {
                    let fully_refunded = total_refunded.amount_minor == captured.amount_minor;
                    vec![OrderEvent::OrderRefunded {
                        order_id,
                        user_id,
                        payment_id,
                        amount,
                        total_refunded,
                        fully_refunded,
                        at,
                    }]
                }
            }
        };
        Ok(events)
    }

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
                    self.payment_status = if fully_refunded {
                        OrderPaymentStatus::Refunded
                    } else {
                        OrderPaymentStatus::PartiallyRefunded
                    };
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
                    ..
                },
            ) => {
                self.placed = Some(Placed {
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
            (Some(placed), event) => placed.apply(event),
            // Every other event follows `OrderPlaced` in a stream.
            (None, _) => {}
        }
    }
}
