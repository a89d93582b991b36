//! The order as every order route shows it, from the orders read model or folded from the log,
//! and the shipping address both on the way in and out.

use chrono::{DateTime, Utc};
use commerce_domain::order::{ShippingAddress, ONE_LINE_ADDRESS_MAX};
use commerce_projections::orders::{OrderItemView, OrderView};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema as _, ToSchema};
use uuid::Uuid;

use crate::money::Amount;

/// Where an order ships: one line of text, or a postal address by field. Answered in the form
/// it was sent.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Address {
    /// One line, 1 to [`ONE_LINE_ADDRESS_MAX`] characters, e.g. `"123 Main Street, San Francisco, CA 94105"`.
    OneLine(String),
    /// By field.
    Postal(PostalAddress),
}

/// A postal address by field.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostalAddress {
    /// Street and number, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    line1: String,
    /// Optional second line, at most 200 characters.
    #[serde(default)]
    #[schema(max_length = 200)]
    line2: Option<String>,
    /// 1 to 100 characters.
    #[schema(min_length = 1, max_length = 100)]
    city: String,
    /// 1 to 20 characters.
    #[schema(min_length = 1, max_length = 20)]
    postal_code: String,
    /// Country name or ISO code, 2 to 60 characters.
    #[schema(min_length = 2, max_length = 60)]
    country: String,
}

/// A string is the one-line form, an object the postal form (its own errors name the field);
/// anything else is refused saying which two forms there are. (Serde's untagged enums would say
/// only "did not match any variant".)
impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(line) => Ok(Self::OneLine(line)),
            object @ serde_json::Value::Object(_) => serde_json::from_value(object)
                .map(Self::Postal)
                .map_err(D::Error::custom),
            _ => Err(D::Error::custom(
                "expected one line of text or an object with line1, city, postal_code and country",
            )),
        }
    }
}

/// `oneOf` a string with its length limits and a `PostalAddress` (written by hand: utoipa's
/// derive has no length limits on a variant's string).
impl utoipa::PartialSchema for Address {
    fn schema() -> RefOr<Schema> {
        let one_line = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(ONE_LINE_ADDRESS_MAX))
            .description(Some("One line of text"))
            .examples(["123 Main Street, San Francisco, CA 94105"]);
        OneOfBuilder::new()
            .item(one_line)
            .item(Ref::from_schema_name(PostalAddress::name()))
            .into()
    }
}

impl ToSchema for Address {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((PostalAddress::name().into_owned(), PostalAddress::schema()));
        <PostalAddress as ToSchema>::schemas(schemas);
    }
}

impl From<ShippingAddress> for Address {
    fn from(a: ShippingAddress) -> Self {
        match a {
            ShippingAddress::OneLine(line) => Self::OneLine(line),
            ShippingAddress::Postal(a) => Self::Postal(PostalAddress {
                line1: a.line1,
                line2: a.line2,
                city: a.city,
                postal_code: a.postal_code,
                country: a.country,
            }),
        }
    }
}

impl From<Address> for ShippingAddress {
    fn from(a: Address) -> Self {
        match a {
            Address::OneLine(line) => Self::OneLine(line),
            Address::Postal(a) => Self::Postal(commerce_domain::order::PostalAddress {
                line1: a.line1,
                line2: a.line2,
                city: a.city,
                postal_code: a.postal_code,
                country: a.country,
            }),
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
