//! The `Inventory` aggregate, one per product (id = product id): stock levels and reservations
//! keyed by order. Invariants after every event: `available >= 0`, `reserved >= 0`,
//! `reserved` = the sum of active reservations, and `total = available + reserved`. Because all
//! reservations of a product go through this one stream, optimistic concurrency means stock is
//! never oversold. Every saga command is idempotent per order.

mod command;
mod error;
mod event;
mod settled;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use command::{InventoryCommand, StockAdjustment};
pub use error::InventoryError;
pub use event::InventoryEvent;

use crate::validate::char_len;
use settled::Settled;

/// One product's stock, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    product_id: Option<Uuid>,
    available: i64,
    reserved: i64,
    reservations: BTreeMap<Uuid, u32>,
    /// Every order ever settled here; nearly all of a long stream's snapshot, hence compact.
    #[serde(with = "settled")]
    settled: BTreeMap<Uuid, Settled>,
}

impl Inventory {
    /// Whether a first `AdjustStock` created this inventory.
    pub fn exists(&self) -> bool {
        self.product_id.is_some()
    }

    /// Units that can be reserved.
    pub fn available(&self) -> i64 {
        self.available
    }

    /// Units held for orders.
    pub fn reserved(&self) -> i64 {
        self.reserved
    }

    /// Units on hand: available + reserved.
    pub fn total(&self) -> i64 {
        self.available + self.reserved
    }

    /// The units an order currently holds, if any.
    pub fn reservation(&self, order_id: Uuid) -> Option<u32> {
        self.reservations.get(&order_id).copied()
    }

    fn check_product(&self, product_id: Uuid) -> Result<(), InventoryError> {
        match self.product_id {
            Some(expected) if expected != product_id => Err(InventoryError::ProductMismatch {
                expected,
                given: product_id,
            }),
            _ => Ok(()),
        }
    }

    fn adjust(
        &self,
        product_id: Uuid,
        adjustment: StockAdjustment,
        reason: Option<String>,
        at: DateTime<Utc>,
    ) -> Result<InventoryEvent, InventoryError> {
        if let Some(length) = reason.as_deref().map(char_len).filter(|&len| len > 500) {
            return Err(InventoryError::ReasonTooLong { length });
        }
        let available = self.available;
        let shortfall = |requested: i64| InventoryError::InsufficientStock {
            requested,
            available,
        };
        let available_after = match adjustment {
            StockAdjustment::Add(n) => available
                .checked_add(n.into())
                .ok_or(InventoryError::Overflow)?,
            StockAdjustment::Subtract(n) => {
                let after = available - i64::from(n);
                if after < 0 {
                    return Err(shortfall(n.into()));
                }
                after
            }
            StockAdjustment::Set(n) => {
                let requested_total = i64::from(n);
                if requested_total < self.reserved {
                    return Err(InventoryError::BelowReserved {
                        requested_total,
                        reserved: self.reserved,
                    });
                }
                requested_total - self.reserved
            }
            StockAdjustment::Delta(d) => {
                let after = available.checked_add(d).ok_or(InventoryError::Overflow)?;
                if after < 0 {
                    return Err(shortfall(d.saturating_neg()));
                }
                after
            }
        };
        // The total must stay representable, or a later reservation could overflow.
        available_after
            .checked_add(self.reserved)
            .ok_or(InventoryError::Overflow)?;
        Ok(InventoryEvent::StockAdjusted {
            product_id,
            delta: available_after - available,
            available_before: available,
            available_after,
            reserved: self.reserved,
            reason,
            at,
        })
    }

    fn decide(&self, command: InventoryCommand) -> Result<Vec<InventoryEvent>, InventoryError> {
        match command {
            InventoryCommand::AdjustStock {
                product_id,
                adjustment,
                reason,
                at,
            } => {
                self.check_product(product_id)?;
                Ok(vec![self.adjust(product_id, adjustment, reason, at)?])
            }
            InventoryCommand::ReserveStock {
                product_id,
                order_id,
                quantity,
                at,
            } => {
                self.check_product(product_id)?;
                if quantity == 0 {
                    return Err(InventoryError::ZeroQuantity);
                }
                if self.reservations.contains_key(&order_id) || self.settled.contains_key(&order_id)
                {
                    return Ok(vec![]);
                }
                let requested = i64::from(quantity);
                if !self.exists() || self.available < requested {
                    let available = self.available;
                    return Ok(vec![InventoryEvent::StockReservationRejected {
                        product_id,
                        order_id,
                        requested: quantity,
                        available,
                        at,
                    }]);
                }
                Ok(vec![InventoryEvent::StockReserved {
                    product_id,
                    order_id,
                    quantity,
                    available_after: self.available - requested,
                    reserved_after: self.reserved + requested,
                    at,
                }])
            }
            InventoryCommand::ReleaseStock {
                product_id,
                order_id,
                at,
            } => {
                self.check_product(product_id)?;
                let Some(quantity) = self.reservation(order_id) else {
                    return Ok(vec![]);
                };
                Ok(vec![InventoryEvent::StockReleased {
                    product_id,
                    order_id,
                    quantity,
                    available_after: self.available + i64::from(quantity),
                    reserved_after: self.reserved - i64::from(quantity),
                    at,
                }])
            }
            InventoryCommand::CommitStock {
                product_id,
                order_id,
                at,
            } => {
                if !self.exists() {
                    return Err(InventoryError::NotFound);
                }
                self.check_product(product_id)?;
                if self.settled.get(&order_id) == Some(&Settled::Committed) {
                    return Ok(vec![]);
                }
                let quantity = self
                    .reservation(order_id)
                    .ok_or(InventoryError::NoReservation { order_id })?;
                Ok(vec![InventoryEvent::StockCommitted {
                    product_id,
                    order_id,
                    quantity,
                    reserved_after: self.reserved - i64::from(quantity),
                    at,
                }])
            }
            InventoryCommand::ReturnStock {
                product_id,
                order_id,
                quantity,
                at,
            } => {
                if !self.exists() {
                    return Err(InventoryError::NotFound);
                }
                self.check_product(product_id)?;
                if quantity == 0 {
                    return Err(InventoryError::ZeroQuantity);
                }
                if self.settled.get(&order_id) != Some(&Settled::Committed) {
                    return Ok(vec![]);
                }
                let available_after = self
                    .available
                    .checked_add(i64::from(quantity))
                    .ok_or(InventoryError::Overflow)?;
                Ok(vec![InventoryEvent::StockReturned {
                    product_id,
                    order_id,
                    quantity,
                    available_after,
                    reserved: self.reserved,
                    at,
                }])
            }
        }
    }
}

impl Aggregate for Inventory {
    const TYPE: &'static str = "Inventory";
    type Command = InventoryCommand;
    type Event = InventoryEvent;
    type Error = InventoryError;
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
        match event {
            InventoryEvent::StockAdjusted {
                product_id,
                available_after,
                ..
            } => {
                self.product_id = Some(product_id);
                self.available = available_after;
            }
            InventoryEvent::StockReserved {
                order_id,
                quantity,
                available_after,
                reserved_after,
                ..
            } => {
                self.reservations.insert(order_id, quantity);
                self.available = available_after;
                self.reserved = reserved_after;
            }
            InventoryEvent::StockReservationRejected { order_id, .. } => {
                self.settled.insert(order_id, Settled::Rejected);
            }
            InventoryEvent::StockReleased {
                order_id,
                available_after,
                reserved_after,
                ..
            } => {
                self.reservations.remove(&order_id);
                self.settled.insert(order_id, Settled::Released);
                self.available = available_after;
                self.reserved = reserved_after;
            }
            InventoryEvent::StockCommitted {
                order_id,
                reserved_after,
                ..
            } => {
                self.reservations.remove(&order_id);
                self.settled.insert(order_id, Settled::Committed);
                self.reserved = reserved_after;
            }
            InventoryEvent::StockReturned {
                order_id,
                available_after,
                ..
            } => {
                self.settled.insert(order_id, Settled::Returned);
                self.available = available_after;
            }
        }
    }
}
