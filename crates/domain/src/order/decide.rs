//! The rules of a placed order: which events each command produces, or why it is refused.
//! Saga commands return no events when their fact is already recorded (idempotent delivery).

use chrono::{DateTime, Utc};

use super::{
    CancellationReason, OrderCommand, OrderError, OrderEvent, OrderPaymentStatus, OrderStatus,
    Placed, StockStatus,
};

impl Placed {
    /// Confirmation commits the order's reservation in the same decision: a held reservation
    /// is never refused its commit, so the saga only tells the inventory, with no step of its own
    /// back to the order.
    fn confirmed(&self, at: DateTime<Utc>) -> [OrderEvent; 2] {
        [
            OrderEvent::OrderConfirmed {
                order_id: self.order_id,
                user_id: self.user_id,
                total: self.total,
                lines: self.lines.clone(),
                at,
            },
            OrderEvent::OrderStockCommitted {
                order_id: self.order_id,
                at,
            },
        ]
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

    pub(super) fn decide(&self, command: OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
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
                    let mut events = vec![OrderEvent::OrderStockReserved { order_id, at }];
                    events.extend(self.confirmed(at));
                    events
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
                // A cancelled confirmed order gets its committed stock back.
                Stock::Committed if self.status == S::Cancelled => {
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
                        events.extend(self.confirmed(at));
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
}
