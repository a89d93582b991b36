//! The order as every order route shows it, from the orders read model or folded from the log,
//! and the shipping address both on the way in and out.

use chrono::{DateTime, Utc};
use commerce_domain::order::ShippingAddress;
use commerce_projections::orders::{OrderItemView, OrderView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::money::Amount;

/// Where an order ships.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street and number, 1 to 200 characters.
    line1: String,
    /// Optional second line, at most 200 characters.
    #[serde(default)]
    line2: Option<String>,
    /// 1 to 100 characters.
    city: String,
    /// 1 to 20 characters.
    postal_code: String,
    /// Country name or ISO code, 2 to 60 characters.
    country: String,
}

impl From<ShippingAddress> for Address {
    fn from(a: ShippingAddress) -> Self {
        Self {
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

impl From<Address> for ShippingAddress {
    fn from(a: Address) -> Self {
        Self {
            line1: a.line1,
            line2: a.line2,
            city: a.city,
            postal_code: a.postal_code,
            country: a.country,
        }
    }
}

/// An order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderBody {
    pub(super) id: Uuid,
    pub(super) user_id: Uuid,
    /// `PENDING`, `CONFIRMED`, `SHIPPED`, `DELIVERED` or `CANCELLED`.
    pub(super) status: String,
    /// `PENDING`, `RESERVED`, `REJECTED`, `RELEASED` or `COMMITTED`.
    pub(super) stock_status: String,
    /// `UNPAID`, `PAID`, `REFUNDED` or `PARTIALLY_REFUNDED`.
    pub(super) payment_status: String,
    /// `CUSTOMER_REQUEST`, `OUT_OF_STOCK` or `PAYMENT_TIMEOUT` once cancelled, else null.
    pub(super) cancellation_reason: Option<String>,
    /// Sum of the subtotals.
    pub(super) total_amount: Amount,
    /// ISO 4217 code of every amount.
    pub(super) currency: String,
    pub(super) shipping_address: Address,
    pub(super) payment_method: String,
    pub(super) items: Vec<OrderItemBody>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) updated_at: DateTime<Utc>,
}

/// A priced line of an order.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderItemBody {
    pub(super) product_id: Uuid,
    /// Its name when ordered.
    pub(super) product_name: String,
    pub(super) quantity: i64,
    /// Unit price when ordered.
    pub(super) price: Amount,
    /// `price × quantity`.
    pub(super) subtotal: Amount,
}

impl From<OrderItemView> for OrderItemBody {
    fn from(v: OrderItemView) -> Self {
        Self {
            product_id: v.product_id,
            product_name: v.product_name,
            quantity: v.quantity,
            price: Amount(v.price),
            subtotal: Amount(v.subtotal),
        }
    }
}

impl From<OrderView> for OrderBody {
    fn from(v: OrderView) -> Self {
        Self {
            id: v.id,
            user_id: v.user_id,
            status: v.status,
            stock_status: v.stock_status,
            payment_status: v.payment_status,
            cancellation_reason: v.cancellation_reason,
            total_amount: Amount(v.total_amount),
            currency: v.currency,
            shipping_address: v.shipping_address.into(),
            payment_method: v.payment_method,
            items: v.items.into_iter().map(Into::into).collect(),
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}
