//! Commands accepted by the `Order` aggregate, and the validation of a new order's input.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{OrderError, OrderLineItem};
use crate::money::Money;
use crate::validate::len_within;

/// A line of a new order: the command layer takes name and price from the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product.
    pub product_id: Uuid,
    /// Its name at ordering time (1..=200 characters).
    pub product_name: String,
    /// Units, at least 1.
    pub quantity: u32,
    /// Its price at ordering time, not negative.
    pub unit_price: Money,
}

/// Where an order ships, kept in the form the customer gave it: one line of text (the previous
/// platform's clients send `"123 Main Street, San Francisco, CA 94105"`) or a postal address by
/// field. Serialised untagged, as a JSON string or an object, so events written before the
/// one-line form (always objects) read as [`ShippingAddress::Postal`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ShippingAddress {
    /// One line, trimmed, 1..=500 characters.
    OneLine(String),
    /// By field.
    Postal(PostalAddress),
}

impl From<PostalAddress> for ShippingAddress {
    fn from(address: PostalAddress) -> Self {
        Self::Postal(address)
    }
}

/// A postal address by field. Every field is trimmed; `line1`, `city`, `postal_code` and
/// `country` are required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostalAddress {
    /// Street and number, 1..=200 characters.
    pub line1: String,
    /// Optional second line, at most 200 characters (empty means none).
    pub line2: Option<String>,
    /// City, 1..=100 characters.
    pub city: String,
    /// Postal code, 1..=20 characters.
    pub postal_code: String,
    /// Country name or ISO code, 2..=60 characters.
    pub country: String,
}

/// Why an order was cancelled. Serialised as `CUSTOMER_REQUEST`, `OUT_OF_STOCK`,
/// `PAYMENT_TIMEOUT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancellationReason {
    /// The customer (or an admin on their behalf) cancelled.
    CustomerRequest,
    /// Stock could not be reserved for every line.
    OutOfStock,
    /// The order stayed unpaid past its deadline.
    PaymentTimeout,
}

/// What can be asked of an `Order`. Commands marked *saga* are sent by the order-fulfilment
/// process manager and are idempotent: delivered twice, the second emits nothing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum OrderCommand {
    /// Place the order. Preconditions: not placed yet; at least one line; each quantity >= 1,
    /// name 1..=200, price not negative, one currency; lines of one product are merged (their
    /// prices must agree); a valid address; payment method 1..=50 characters. Emits `OrderPlaced`.
    PlaceOrder {
        /// The new order's id.
        order_id: Uuid,
        /// The customer.
        user_id: Uuid,
        /// What is bought.
        lines: Vec<OrderLine>,
        /// Where it ships.
        shipping_address: ShippingAddress,
        /// How the customer intends to pay (e.g. `card`).
        payment_method: String,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// *Saga*: every line's stock is reserved. Emits `OrderStockReserved` (plus `OrderConfirmed`
    /// if already paid), or `OrderStockReservedAfterCancellation` when the order was cancelled
    /// meanwhile, so the saga releases the stock.
    MarkStockReserved {
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// *Saga*: some line could not be reserved. Emits `OrderStockRejected`; the saga then cancels
    /// with `OutOfStock`.
    MarkStockRejected {
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// *Saga*: the order's reservations were released. Emits `OrderStockReleased`.
    MarkStockReleased {
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// The order's reservations were committed. Emits `OrderStockCommitted`, unless recorded
    /// already: since confirmation records it, the saga no longer sends this (kept for orders
    /// confirmed before that).
    MarkStockCommitted {
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Start a payment. Preconditions: the order is pending and unpaid, `amount` equals the
    /// total, and no other payment is in flight; this is what makes two concurrent captures
    /// for one order capture once. Emits `OrderPaymentRequested`; the same payment again emits
    /// nothing.
    RequestPayment {
        /// The payment about to be captured.
        payment_id: Uuid,
        /// Its amount.
        amount: Money,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// *Saga*: a payment was captured. Emits `OrderPaid` (plus `OrderConfirmed` if stock is
    /// reserved), or `OrderPaidAfterCancellation` on a cancelled order so the saga refunds it.
    MarkPaid {
        /// The captured payment.
        payment_id: Uuid,
        /// The captured amount.
        amount: Money,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// *Saga*: the in-flight payment failed. Emits `OrderPaymentFailed`; the order stays payable.
    MarkPaymentFailed {
        /// The failed payment.
        payment_id: Uuid,
        /// The gateway's reason.
        reason: String,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Cancel a pending or confirmed order. Emits `OrderCancelled`; cancelling again for the same
    /// reason emits nothing.
    CancelOrder {
        /// Why.
        reason: CancellationReason,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// *Saga deadline*: cancel with `PaymentTimeout` if still pending and unpaid, else nothing
    /// (the deadline may fire late).
    ExpirePayment {
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Ship a confirmed order. Emits `OrderShipped`.
    ShipOrder {
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Deliver a shipped order. Emits `OrderDelivered`.
    DeliverOrder {
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// *Saga*: a refund of one of the order's payments went through. Emits `OrderRefunded`; a
    /// `total_refunded` already recorded emits nothing.
    RecordRefund {
        /// The refunded payment.
        payment_id: Uuid,
        /// This refund.
        amount: Money,
        /// All refunds of that payment so far, this one included.
        total_refunded: Money,
        /// When it happened.
        at: DateTime<Utc>,
    },
}

fn required(
    value: &str,
    field: &'static str,
    min: usize,
    max: usize,
) -> Result<String, OrderError> {
    let value = value.trim();
    if len_within(value, min, max) {
        Ok(value.to_owned())
    } else {
        Err(OrderError::InvalidAddress { field })
    }
}

/// Most characters of a one-line address.
pub const ONE_LINE_ADDRESS_MAX: usize = 500;

impl ShippingAddress {
    /// The trimmed address, or the first field breaking its length rule (`shipping_address`
    /// for a one-line address).
    pub(super) fn validated(&self) -> Result<Self, OrderError> {
        match self {
            Self::OneLine(line) => Ok(Self::OneLine(required(
                line,
                "shipping_address",
                1,
                ONE_LINE_ADDRESS_MAX,
            )?)),
            Self::Postal(address) => address.validated().map(Self::Postal),
        }
    }
}

impl PostalAddress {
    /// The trimmed address, or the first field breaking its length rule.
    fn validated(&self) -> Result<Self, OrderError> {
        let line2 = match self.line2.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(line2) => Some(required(line2, "line2", 1, 200)?),
        };
        Ok(Self {
            line1: required(&self.line1, "line1", 1, 200)?,
            line2,
            city: required(&self.city, "city", 1, 100)?,
            postal_code: required(&self.postal_code, "postal_code", 1, 20)?,
            country: required(&self.country, "country", 2, 60)?,
        })
    }
}

/// Validates and prices a new order's lines: merges lines of one product, computes subtotals
/// and the total, all in one currency.
pub(super) fn priced_lines(lines: &[OrderLine]) -> Result<(Vec<OrderLineItem>, Money), OrderError> {
    let first = lines.first().ok_or(OrderError::EmptyOrder)?;
    let currency = first.unit_price.currency;
    let mut merged: Vec<OrderLine> = Vec::with_capacity(lines.len());
    for line in lines {
        let product_id = line.product_id;
        if line.quantity == 0 {
            return Err(OrderError::InvalidQuantity { product_id });
        }
        if line.unit_price.is_negative() {
            return Err(OrderError::NegativePrice {
                product_id,
                price: line.unit_price,
            });
        }
        if line.unit_price.currency != currency {
            return Err(OrderError::MixedCurrencies {
                expected: currency,
                found: line.unit_price.currency,
            });
        }
        let product_name = line.product_name.trim();
        if !len_within(product_name, 1, 200) {
            return Err(OrderError::InvalidProductName { product_id });
        }
        match merged.iter_mut().find(|m| m.product_id == product_id) {
            Some(m) if m.unit_price != line.unit_price => {
                return Err(OrderError::ConflictingLinePrices { product_id })
            }
            Some(m) => {
                m.quantity = m
                    .quantity
                    .checked_add(line.quantity)
                    .ok_or(OrderError::Overflow)?
            }
            None => merged.push(OrderLine {
                product_name: product_name.to_owned(),
                ..line.clone()
            }),
        }
    }
    let mut total = Money::zero(currency);
    let mut items = Vec::with_capacity(merged.len());
    for line in merged {
        let subtotal = line
            .unit_price
            .checked_mul(line.quantity)
            .map_err(|_| OrderError::Overflow)?;
        total = total
            .checked_add(subtotal)
            .map_err(|_| OrderError::Overflow)?;
        items.push(OrderLineItem {
            product_id: line.product_id,
            product_name: line.product_name,
            quantity: line.quantity,
            unit_price: line.unit_price,
            subtotal,
        });
    }
    Ok((items, total))
}

crate::words::status_words!(CancellationReason {
    CustomerRequest => "CUSTOMER_REQUEST",
    OutOfStock => "OUT_OF_STOCK",
    PaymentTimeout => "PAYMENT_TIMEOUT",
});
