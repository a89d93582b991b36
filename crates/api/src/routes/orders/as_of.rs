//! An order folded from its own stream in the log: what `GET /orders/{id}?as_of=…` answers, and
//! what order commands answer with (so a write never waits for the orders projection).
//!
//! The fold runs the domain's own `Order::apply`, so the statuses are the ones the write side
//! decided on. `created_at` and `updated_at` are the times of the first and of the last event
//! folded, as the read model records them.

use chrono::{DateTime, SubsecRound, Utc};
use commerce_domain::order::{Order, OrderEvent};
use commerce_event_store::StoredEvent;
use cqrs_es::Aggregate;
use uuid::Uuid;

use super::body::{OrderBody, OrderItemBody};
use crate::error::{ApiError, ApiResult};
use crate::money::Amount;
use crate::state::AppState;

/// How much of the stream to fold.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Until {
    /// Events that happened (their `at`) at or before this instant.
    Instant(DateTime<Utc>),
    /// Events up to this aggregate version (what a command just wrote).
    Version(i64),
}

impl Until {
    fn admits(self, sequence: i64, event: &OrderEvent) -> bool {
        match self {
            Self::Instant(at) => micros(event.at()) <= at,
            Self::Version(v) => sequence <= v,
        }
    }
}

/// A time as the read models store it (Postgres keeps microseconds), so an answer's times and
/// a later read's are equal.
fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// `as_of` as RFC 3339; a `+` offset that arrived unescaped in a query string (read as a space)
/// is taken back.
pub(crate) fn parse_as_of(text: &str) -> Result<DateTime<Utc>, ApiError> {
    let text = text.trim();
    DateTime::parse_from_rfc3339(text)
        .or_else(|e| DateTime::parse_from_rfc3339(&text.replace(' ', "+")).map_err(|_| e))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::invalid_field(
                "as_of",
                "must be an RFC 3339 timestamp like 2026-01-31T12:00:00Z",
            )
        })
}

/// Order `id` as its stream says it was `until`; `None` when it had not been placed by then.
pub(crate) async fn order_from_log(
    state: &AppState,
    id: Uuid,
    until: Until,
) -> ApiResult<Option<OrderBody>> {
    let events = state.log.stream(Order::TYPE, &id.to_string()).await?;
    fold(id, &events, until)
}

fn fold(id: Uuid, events: &[StoredEvent], until: Until) -> ApiResult<Option<OrderBody>> {
    let mut order = Order::default();
    for stored in events {
        let event: OrderEvent = stored.payload_as().map_err(ApiError::internal)?;
        if !until.admits(stored.sequence, &event) {
            break;
        }
        order.apply(event);
    }
    Ok(order_body(id, &order))
}

/// The answer for `order` (state of order `id`); `None` before it was placed. What every order
/// command answers with, from the state dispatch hands back.
pub(crate) fn order_body(id: Uuid, order: &Order) -> Option<OrderBody> {
    let (Some(user_id), Some(status), Some(stock), Some(payment), Some(total)) = (
        order.user_id(),
        order.status(),
        order.stock_status(),
        order.payment_status(),
        order.total(),
    ) else {
        return None;
    };
    let (Some(address), Some(payment_method), Some((created_at, updated_at))) = (
        order.shipping_address(),
        order.payment_method(),
        order.times(),
    ) else {
        return None;
    };
    Some(OrderBody {
        id,
        user_id,
        status: status.as_str().to_owned(),
        stock_status: stock.as_str().to_owned(),
        payment_status: payment.as_str().to_owned(),
        cancellation_reason: order.cancellation_reason().map(|r| r.as_str().to_owned()),
        total_amount: Amount(total.amount_minor),
        currency: total.currency.to_string(),
        shipping_address: address.clone().into(),
        payment_method: payment_method.to_owned(),
        items: order
            .lines()
            .iter()
            .map(|l| OrderItemBody {
                product_id: l.product_id,
                product_name: l.product_name.clone(),
                quantity: i64::from(l.quantity),
                price: Amount(l.unit_price.amount_minor),
                subtotal: Amount(l.subtotal.amount_minor),
            })
            .collect(),
        created_at: micros(created_at),
        updated_at: micros(updated_at),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_as_of;

    #[test]
    fn as_of_reads_rfc_3339_and_refuses_anything_else() {
        assert!(parse_as_of("2026-01-31T12:00:00Z").is_ok());
        assert!(parse_as_of("2026-01-31T12:00:00.123456+02:00").is_ok());
        assert_eq!(
            parse_as_of("2026-01-31T12:00:00 02:00").ok(),
            parse_as_of("2026-01-31T12:00:00+02:00").ok()
        );
        for bad in [
            "",
            "yesterday",
            "2026-01-31",
            "2026-13-01T00:00:00Z",
            "1700000000",
        ] {
            assert!(parse_as_of(bad).is_err(), "{bad}");
        }
    }
}
