//! The payments read model: every payment (capture or decline, and its refunds) and every user's
//! saved payment methods.
//!
//! Built from `Payment` events (one aggregate per payment) and `PaymentMethod` events (one
//! aggregate per user, holding all of that user's methods). Each row records the aggregate
//! version it reflects and an update applies only to an older row, so a repeated event never
//! moves a row backwards. A removed method keeps its row, hidden, so that a repeated
//! `PaymentMethodAdded` cannot bring it back.
//!
//! `queries.rs` holds the views and the queries the API calls.

mod queries;

use commerce_domain::payment::{PaymentEvent, PaymentStatus};
use commerce_domain::payment_method::PaymentMethodEvent;
use commerce_event_store::{HandlerError, StoredEvent};
use sqlx::PgConnection;

pub use queries::{
    get_payment, list_methods, list_payments, payments_for_order, PaymentMethodView, PaymentView,
};

use crate::Projection;

/// The payments projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct PaymentsProjection;

impl Projection for PaymentsProjection {
    const NAME: &'static str = "payments";

    const PARTITIONABLE: bool = true;

    fn bindings() -> Vec<String> {
        vec!["Payment.*".to_owned(), "PaymentMethod.*".to_owned()]
    }

    async fn apply(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        match event.aggregate_type.as_str() {
            "Payment" => apply_payment(conn, event).await,
            "PaymentMethod" => apply_method(conn, event).await,
            other => Err(format!("the payments projection got a {other} event").into()),
        }
    }
}

async fn apply_payment(conn: &mut PgConnection, event: &StoredEvent) -> Result<(), HandlerError> {
    // Times are the event's own, which the command answered with (so the two agree).
    let version = event.sequence;
    let insert = "INSERT INTO payments (id, order_id, user_id, amount, currency, method, status, \
                    failure_reason, gateway_transaction_id, refunded_amount, version, created_at, \
                    updated_at) \
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $11) \
                  ON CONFLICT (id) DO NOTHING";
    match event.payload_as::<PaymentEvent>()? {
        PaymentEvent::PaymentCaptured {
            payment_id,
            order_id,
            user_id,
            amount,
            method,
            gateway_transaction_id,
            at,
        } => {
            sqlx::query(insert)
                .bind(payment_id)
                .bind(order_id)
                .bind(user_id)
                .bind(amount.amount_minor)
                .bind(amount.currency.as_str())
                .bind(method)
                .bind(PaymentStatus::Completed.as_str())
                .bind(None::<String>)
                .bind(gateway_transaction_id)
                .bind(version)
                .bind(at)
                .execute(conn)
                .await?;
        }
        PaymentEvent::PaymentFailed {
            payment_id,
            order_id,
            user_id,
            amount,
            method,
            reason,
            at,
        } => {
            sqlx::query(insert)
                .bind(payment_id)
                .bind(order_id)
                .bind(user_id)
                .bind(amount.amount_minor)
                .bind(amount.currency.as_str())
                .bind(method)
                .bind(PaymentStatus::Failed.as_str())
                .bind(reason)
                .bind(None::<String>)
                .bind(version)
                .bind(at)
                .execute(conn)
                .await?;
        }
        PaymentEvent::PaymentRefunded {
            payment_id,
            total_refunded,
            fully_refunded,
            at,
            ..
        } => {
            let status = PaymentStatus::after_refund(fully_refunded);
            sqlx::query(
                "UPDATE payments SET refunded_amount = $3, status = $4, version = $2, \
                 updated_at = $5 WHERE id = $1 AND version < $2",
            )
            .bind(payment_id)
            .bind(version)
            .bind(total_refunded.amount_minor)
            .bind(status.as_str())
            .bind(at)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

async fn apply_method(conn: &mut PgConnection, event: &StoredEvent) -> Result<(), HandlerError> {
    // Times are the event's own, which the command answered with (so the two agree).
    let version = event.sequence;
    match event.payload_as::<PaymentMethodEvent>()? {
        // Inserted as not the default: when it is, `DefaultPaymentMethodChanged` follows and
        // moves the flag, so one event alone decides which method is the default.
        PaymentMethodEvent::PaymentMethodAdded {
            user_id,
            method_id,
            method_type,
            gateway_method_id,
            at,
            ..
        } => {
            sqlx::query(
                "INSERT INTO payment_methods (id, user_id, method_type, gateway_method_id, \
                   is_default, version, created_at) VALUES ($1, $2, $3, $4, false, $5, $6) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(method_id)
            .bind(user_id)
            .bind(method_type)
            .bind(gateway_method_id)
            .bind(version)
            .bind(at)
            .execute(conn)
            .await?;
        }
        PaymentMethodEvent::PaymentMethodRemoved { method_id, at, .. } => {
            sqlx::query(
                "UPDATE payment_methods SET removed_at = $3, is_default = false, version = $2 \
                 WHERE id = $1 AND version < $2",
            )
            .bind(method_id)
            .bind(version)
            .bind(at)
            .execute(conn)
            .await?;
        }
        PaymentMethodEvent::DefaultPaymentMethodChanged {
            user_id, method_id, ..
        } => {
            sqlx::query(
                "UPDATE payment_methods SET is_default = (id = $2), version = $3 \
                 WHERE user_id = $1 AND removed_at IS NULL AND version < $3",
            )
            .bind(user_id)
            .bind(method_id)
            .bind(version)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}
