//! The `Cart` aggregate, one per user (id = user id): the lines a customer intends to buy. It
//! keeps each line within 1..=1000 units, at most 100 lines, and a single currency.

mod command;
mod error;
mod event;
#[cfg(test)]
mod tests;

use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use command::{CartClearReason, CartCommand};
pub use error::CartError;
pub use event::CartEvent;

use crate::money::{Currency, Money};
use crate::validate::len_within;

/// Most units on one line.
pub const MAX_LINE_QUANTITY: u32 = 1000;
/// Most lines in one cart.
pub const MAX_LINES: usize = 100;

/// One line of a cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CartLine {
    /// The product.
    pub product_id: Uuid,
    /// Its name when last added.
    pub product_name: String,
    /// Its price when last added.
    pub unit_price: Money,
    /// Units.
    pub quantity: u32,
}

/// A user's cart, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cart {
    user_id: Option<Uuid>,
    lines: Vec<CartLine>,
}

fn checked_quantity(quantity: u64) -> Result<u32, CartError> {
    match u32::try_from(quantity) {
        Ok(q) if (1..=MAX_LINE_QUANTITY).contains(&q) => Ok(q),
        _ => Err(CartError::QuantityOutOfRange { quantity }),
    }
}

impl Cart {
    /// The lines, in the order they were first added.
    pub fn lines(&self) -> &[CartLine] {
        &self.lines
    }

    /// The currency of the lines, if any.
    pub fn currency(&self) -> Option<Currency> {
        self.lines.first().map(|line| line.unit_price.currency)
    }

    fn line(&self, product_id: Uuid) -> Result<&CartLine, CartError> {
        self.lines
            .iter()
            .find(|l| l.product_id == product_id)
            .ok_or(CartError::LineNotFound { product_id })
    }

    fn owner(&self, product_id: Uuid) -> Result<Uuid, CartError> {
        self.user_id.ok_or(CartError::LineNotFound { product_id })
    }

    fn decide(&self, command: CartCommand) -> Result<Vec<CartEvent>, CartError> {
        match command {
            CartCommand::AddToCart {
                user_id,
                product_id,
                product_name,
                unit_price,
                quantity,
                at,
            } => {
                if let Some(expected) = self.user_id.filter(|owner| *owner != user_id) {
                    return Err(CartError::UserMismatch {
                        expected,
                        given: user_id,
                    });
                }
                checked_quantity(quantity.into())?;
                if unit_price.is_negative() {
                    return Err(CartError::NegativePrice { price: unit_price });
                }
                let product_name = product_name.trim().to_owned();
                if !len_within(&product_name, 1, 200) {
                    return Err(CartError::InvalidProductName);
                }
                if let Some(cart) = self.currency().filter(|c| *c != unit_price.currency) {
                    return Err(CartError::CurrencyMismatch {
                        cart,
                        given: unit_price.currency,
                    });
                }
                let existing = self.lines.iter().find(|l| l.product_id == product_id);
                if existing.is_none() && self.lines.len() >= MAX_LINES {
                    return Err(CartError::TooManyLines);
                }
                let before = existing.map_or(0, |l| l.quantity);
                let quantity_after = checked_quantity(u64::from(before) + u64::from(quantity))?;
                let subtotal = unit_price
                    .checked_mul(quantity_after)
                    .map_err(|_| CartError::Overflow)?;
                Ok(vec![CartEvent::CartItemAdded {
                    user_id,
                    product_id,
                    product_name,
                    unit_price,
                    quantity,
                    quantity_after,
                    subtotal,
                    at,
                }])
            }
            CartCommand::SetCartQuantity {
                product_id,
                quantity,
                at,
            } => {
                let user_id = self.owner(product_id)?;
                let line = self.line(product_id)?;
                let quantity = checked_quantity(quantity.into())?;
                if quantity == line.quantity {
                    return Ok(vec![]);
                }
                let subtotal = line
                    .unit_price
                    .checked_mul(quantity)
                    .map_err(|_| CartError::Overflow)?;
                Ok(vec![CartEvent::CartItemQuantityChanged {
                    user_id,
                    product_id,
                    quantity_before: line.quantity,
                    quantity,
                    subtotal,
                    at,
                }])
            }
            CartCommand::RemoveFromCart { product_id, at } => {
                let user_id = self.owner(product_id)?;
                self.line(product_id)?;
                Ok(vec![CartEvent::CartItemRemoved {
                    user_id,
                    product_id,
                    at,
                }])
            }
            CartCommand::ClearCart { reason, at } => match self.user_id {
                Some(user_id) if !self.lines.is_empty() => Ok(vec![CartEvent::CartCleared {
                    user_id,
                    reason,
                    at,
                }]),
                _ => Ok(vec![]),
            },
        }
    }
}

impl Aggregate for Cart {
    const TYPE: &'static str = "Cart";
    type Command = CartCommand;
    type Event = CartEvent;
    type Error = CartError;
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
            CartEvent::CartItemAdded {
                user_id,
                product_id,
                product_name,
                unit_price,
                quantity_after,
                ..
            } => {
                self.user_id = Some(user_id);
                let line = CartLine {
                    product_id,
                    product_name,
                    unit_price,
                    quantity: quantity_after,
                };
                match self.lines.iter_mut().find(|l| l.product_id == product_id) {
                    Some(existing) => *existing = line,
                    None => self.lines.push(line),
                }
            }
            CartEvent::CartItemQuantityChanged {
                product_id,
                quantity,
                ..
            } => {
                if let Some(line) = self.lines.iter_mut().find(|l| l.product_id == product_id) {
                    line.quantity = quantity;
                }
            }
            CartEvent::CartItemRemoved { product_id, .. } => {
                self.lines.retain(|l| l.product_id != product_id)
            }
            CartEvent::CartCleared { .. } => self.lines.clear(),
        }
    }
}
