//! Errors of the `Order` aggregate.

use thiserror::Error;
use uuid::Uuid;

use super::{CancellationReason, OrderStatus, StockStatus};
use crate::error::{DomainError, ErrorKind};
use crate::money::{Currency, Money};

/// Why an `Order` command was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OrderError {
    /// Commands other than `PlaceOrder` need a placed order.
    #[error("order not found")]
    NotFound,
    /// An order is placed once.
    #[error("order already placed")]
    AlreadyPlaced,
    /// An order has at least one line.
    #[error("an order needs at least one line")]
    EmptyOrder,
    /// Every line has at least one unit.
    #[error("quantity of product {product_id} must be at least 1")]
    InvalidQuantity {
        /// The line's product.
        product_id: Uuid,
    },
    /// A product name has 1..=200 characters.
    #[error("name of product {product_id} must have 1 to 200 characters")]
    InvalidProductName {
        /// The line's product.
        product_id: Uuid,
    },
    /// A price is never negative.
    #[error("price of product {product_id} must not be negative")]
    NegativePrice {
        /// The line's product.
        product_id: Uuid,
        /// The price given.
        price: Money,
    },
    /// An order is in one currency.
    #[error("order mixes currencies {expected} and {found}")]
    MixedCurrencies {
        /// The first line's currency.
        expected: Currency,
        /// Another line's currency.
        found: Currency,
    },
    /// Lines of one product are merged, so they must agree on the price.
    #[error("lines of product {product_id} disagree on the price")]
    ConflictingLinePrices {
        /// The product.
        product_id: Uuid,
    },
    /// Every address field is within its length (see `PostalAddress`), and so is a one-line
    /// address (see `ShippingAddress`).
    #[error("invalid shipping address: {field} is blank or too long")]
    InvalidAddress {
        /// The first offending field (`shipping_address` for a one-line address).
        field: &'static str,
    },
    /// A payment method has 1..=50 characters.
    #[error("payment method must have 1 to 50 characters")]
    InvalidPaymentMethod,
    /// Amounts and quantities fit in 64 bits.
    #[error("amount overflow")]
    Overflow,
    /// A payment is for exactly the order's total.
    #[error("amount {} {} does not match the order total {} {}", given.amount_minor, given.currency, expected.amount_minor, expected.currency)]
    AmountMismatch {
        /// The order's total.
        expected: Money,
        /// The amount given.
        given: Money,
    },
    /// One payment at a time, so two concurrent captures never both happen.
    #[error("payment {payment_id} is already in progress for this order")]
    PaymentInProgress {
        /// The payment in flight.
        payment_id: Uuid,
    },
    /// An order is paid once.
    #[error("order already paid by payment {payment_id}")]
    AlreadyPaid {
        /// The payment that paid it.
        payment_id: Uuid,
    },
    /// Only a pending order can be paid.
    #[error("an order in status {status:?} cannot be paid")]
    NotPayable {
        /// The order's status.
        status: OrderStatus,
    },
    /// Only pending or confirmed orders can be cancelled.
    #[error("an order in status {status:?} cannot be cancelled")]
    CannotCancel {
        /// The order's status.
        status: OrderStatus,
    },
    /// The order was already cancelled for another reason.
    #[error("order already cancelled ({reason:?})")]
    AlreadyCancelled {
        /// The recorded reason.
        reason: CancellationReason,
    },
    /// Status moves only `Pending → Confirmed → Shipped → Delivered`.
    #[error("order cannot go from {from:?} to {to:?}")]
    InvalidTransition {
        /// The current status.
        from: OrderStatus,
        /// The status asked for.
        to: OrderStatus,
    },
    /// Stock status moves only `Pending → Reserved | Rejected`, `Reserved → Committed | Released`.
    #[error("order stock cannot go from {from:?} to {to:?}")]
    InvalidStockTransition {
        /// The current stock status.
        from: StockStatus,
        /// The stock status asked for.
        to: StockStatus,
    },
    /// Refunds are recorded only for a payment captured for this order.
    #[error("payment {payment_id} was not captured for this order")]
    UnknownPayment {
        /// The payment in the command.
        payment_id: Uuid,
    },
    /// Refunds are positive, in the payment's currency, and never exceed what was captured.
    #[error("refund of {} (total {}) does not fit the captured {} {}", amount.amount_minor, total_refunded.amount_minor, captured.amount_minor, captured.currency)]
    InvalidRefund {
        /// This refund.
        amount: Money,
        /// The total refunded claimed.
        total_refunded: Money,
        /// What the payment captured.
        captured: Money,
    },
}

impl DomainError for OrderError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::NotFound | Self::UnknownPayment { .. } => ErrorKind::NotFound,
            Self::AlreadyPlaced
            | Self::PaymentInProgress { .. }
            | Self::AlreadyPaid { .. }
            | Self::NotPayable { .. }
            | Self::CannotCancel { .. }
            | Self::AlreadyCancelled { .. }
            | Self::InvalidTransition { .. }
            | Self::InvalidStockTransition { .. } => ErrorKind::Conflict,
            Self::EmptyOrder
            | Self::InvalidQuantity { .. }
            | Self::InvalidProductName { .. }
            | Self::NegativePrice { .. }
            | Self::MixedCurrencies { .. }
            | Self::ConflictingLinePrices { .. }
            | Self::InvalidAddress { .. }
            | Self::InvalidPaymentMethod
            | Self::Overflow
            | Self::AmountMismatch { .. }
            | Self::InvalidRefund { .. } => ErrorKind::Invalid,
        }
    }
}
