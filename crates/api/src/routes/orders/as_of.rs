//! An order folded from its own stream in the log: what `GET /orders/{id}?as_of=…` answers, and
//! what order commands answer with (so a write never waits for the orders projection).
//!
//! The fold runs the domain's own `Order::apply`, so the statuses are the ones the write side
//! decided on; the address and payment method, which the aggregate does not keep, come from the
//! `OrderPlaced` event. `created_at` and `updated_at` are the `recorded_at` of the first and of
//! the last event folded, as the read model records them.

use chrono::{DateTime, Utc};
use commerce_commands::log::StoredEvent;
use commerce_domain::order::{Order, OrderEvent};
use cqrs_es::Aggregate;
use uuid::Uuid;

use super::body::{wire_name, Address, OrderBody, OrderItemBody};
use crate::error::{ApiError, ApiResult};
use crate::money::Amount;
use crate::state::AppState;

/// How much of the stream to fold.
#[derive(Debug, Clone, Copy)]
pub(super) enum Until {
    /// Events recorded at or before this instant.
    Instant(DateTime<Utc>),
    /// Events up to this aggregate version (what a command just wrote).
    Version(i64),
}

impl Until {
    fn admits(self, event: &StoredEvent) -> bool {
        match self {
            Self::Instant(at) => event.recorded_at <= at,
            Self::Version(v) => event.sequence <= v,
        }
    }
}

/// `as_of` as RFC 3339; a `+` offset that arrived unescaped in a query string (read as a space)
/// is taken back.
pub(super) fn parse_as_of(text: &str) -> Result<DateTime<Utc>, ApiError> {
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
pub(super) async fn order_from_log(
    state: &AppState,
    id: Uuid,
    until: Until,
) -> ApiResult<Option<OrderBody>> {
    let events = state.log.stream("Order", &id.to_string()).await?;
    fold(id, &events, until)
}

/// What `OrderPlaced` says that the aggregate does not keep.
struct Placed {
    address: Address,
    payment_method: String,
    created_at: DateTime<Utc>,
}

fn fold(id: Uuid, events: &[StoredEvent], until: Until) -> ApiResult<Option<OrderBody>> {
    let mut order = Order::default();
    let mut placed: Option<Placed> = None;
    let mut updated_at = None;
    for stored in events.iter().take_while(|e| until.admits(e)) {
        let event: OrderEvent = stored.payload_as().map_err(ApiError::internal)?;
        if let OrderEvent::OrderPlaced {
            shipping_address,
            payment_method,
            ..
        } = &event
        {
            placed = Some(Placed {
                address: shipping_address.clone().into(),
                payment_method: payment_method.clone(),
                created_at: stored.recorded_at,
            });
        }
        order.apply(event);
        updated_at = Some(stored.recorded_at);
    }
    let (Some(placed), Some(updated_at)) = (placed, updated_at) else {
        return Ok(None);
    };
    let (Some(user_id), Some(status), Some(stock), Some(payment), Some(total)) = (
        order.user_id(),
        order.status(),
        order.stock_status(),
        order.payment_status(),
        order.total(),
    ) else {
        return Ok(None);
    };
    Ok(Some(OrderBody {
        id,
        user_id,
        status: wire_name(status),
        stock_status: wire_name(stock),
        payment_status: wire_name(payment),
        cancellation_reason: order.cancellation_reason().map(wire_name),
        total_amount: Amount(total.amount_minor),
        currency: total.currency.to_string(),
        shipping_address: placed.address,
        payment_method: placed.payment_method,
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
        created_at: placed.created_at,
        updated_at,
    }))
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
