//! Notifications (`NotificationsProcess`): the user's messages, one per triggering event.
//!
//! `UserRegistered` → WELCOME, `OrderConfirmed` → ORDER_CONFIRMED, `PaymentFailed` →
//! PAYMENT_FAILED, `OrderShipped` → ORDER_SHIPPED, `PaymentRefunded` → REFUND. The process writes
//! the notification in its consumer's transaction (guarantee 4); with SMTP configured it is an
//! `email`, `PENDING` until the [`NotificationSender`] delivers it, otherwise `in_app` and `SENT`
//! at once.
//!
//! Once per trigger: a notification's id is UUID v5 of (triggering event id, type) and inserts
//! do nothing on conflict, so a redelivered event, a restart or a full replay of the log never
//! adds a second one; its `created_at` is the event's `recorded_at`, so a rebuild reproduces it.
//! The sender claims pending emails with `FOR UPDATE SKIP LOCKED` and marks each `SENT` in the
//! same transaction, so several senders never send one twice.
//!
//! # Layout
//! - `query`: [`Notification`] and [`list_for_user`], what the API reads.
//! - `message`: subjects and bodies.
//! - `sender`: [`NotificationSender`], SMTP delivery of pending emails with retries.

mod message;
mod query;
mod sender;

use chrono::{DateTime, Utc};
use commerce_domain::order::{Order, OrderEvent};
use commerce_domain::payment::{Payment, PaymentEvent};
use commerce_domain::user::{User, UserEvent};
use commerce_event_store::{EventHandler, HandlerError, StoredEvent};
use cqrs_es::Aggregate;
use sqlx::PgConnection;
use uuid::Uuid;

use self::message::Message;
pub use self::query::{list_for_user, Channel, Notification, NotificationStatus, NotificationType};
pub use self::sender::{NotificationSender, SmtpConfigError, DEFAULT_FROM};

/// The id of the notification of type `kind` triggered by event `event_id`.
pub fn notification_id(event_id: Uuid, kind: NotificationType) -> Uuid {
    Uuid::new_v5(&event_id, kind.as_str().as_bytes())
}

/// The process, as a durable consumer's handler.
#[derive(Debug, Clone, Copy)]
pub struct NotificationsProcess {
    channel: Channel,
}

impl NotificationsProcess {
    /// Consumer, queue and checkpoint name.
    pub const NAME: &'static str = "notifications";

    /// Emails notifications when `smtp_enabled` (a [`NotificationSender`] must run), otherwise
    /// keeps them in the app.
    pub fn new(smtp_enabled: bool) -> Self {
        Self {
            channel: if smtp_enabled {
                Channel::Email
            } else {
                Channel::InApp
            },
        }
    }

    /// The routing keys the process reacts to.
    pub fn bindings() -> Vec<String> {
        [
            (User::TYPE, "UserRegistered"),
            (User::TYPE, "ProfileUpdated"),
            (User::TYPE, "PersonalDataErased"),
            (Order::TYPE, "OrderConfirmed"),
            (Order::TYPE, "OrderShipped"),
            (Payment::TYPE, "PaymentFailed"),
            (Payment::TYPE, "PaymentRefunded"),
        ]
        .map(|(aggregate, event)| format!("{aggregate}.{event}"))
        .to_vec()
    }

    /// The notification `event` triggers, if any, after keeping the recipient up to date.
    async fn draft(
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<Option<(Uuid, NotificationType, Message)>, HandlerError> {
        let draft = match event.aggregate_type.as_str() {
            User::TYPE => match event.payload_as::<UserEvent>()? {
                UserEvent::PersonalDataErased { user_id, .. } => {
                    forget_recipient(conn, user_id).await?;
                    None
                }
                UserEvent::UserRegistered {
                    user_id,
                    email,
                    name,
                    ..
                } => {
                    save_recipient(conn, user_id, &email, &name, event.recorded_at).await?;
                    Some((user_id, NotificationType::Welcome, message::welcome(&name)))
                }
                UserEvent::ProfileUpdated { user_id, name, .. } => {
                    rename_recipient(conn, user_id, &name, event.recorded_at).await?;
                    None
                }
                _ => None,
            },
            Order::TYPE => match event.payload_as::<OrderEvent>()? {
                OrderEvent::OrderConfirmed {
                    order_id,
                    user_id,
                    total,
                    lines,
                    ..
                } => {
                    let name = recipient_name(conn, user_id).await?;
                    let text = message::order_confirmed(name.as_deref(), order_id, total, &lines);
                    Some((user_id, NotificationType::OrderConfirmed, text))
                }
                OrderEvent::OrderShipped {
                    order_id, user_id, ..
                } => {
                    let name = recipient_name(conn, user_id).await?;
                    let text = message::order_shipped(name.as_deref(), order_id);
                    Some((user_id, NotificationType::OrderShipped, text))
                }
                _ => None,
            },
            Payment::TYPE => match event.payload_as::<PaymentEvent>()? {
                PaymentEvent::PaymentFailed {
                    order_id,
                    user_id,
                    amount,
                    reason,
                    ..
                } => {
                    let name = recipient_name(conn, user_id).await?;
                    let text = message::payment_failed(name.as_deref(), order_id, amount, &reason);
                    Some((user_id, NotificationType::PaymentFailed, text))
                }
                PaymentEvent::PaymentRefunded {
                    order_id,
                    user_id,
                    amount,
                    total_refunded,
                    fully_refunded,
                    reason,
                    ..
                } => {
                    let name = recipient_name(conn, user_id).await?;
                    let text = message::refund(
                        name.as_deref(),
                        order_id,
                        amount,
                        total_refunded,
                        fully_refunded,
                        &reason,
                    );
                    Some((user_id, NotificationType::Refund, text))
                }
                PaymentEvent::PaymentCaptured { .. } => None,
            },
            _ => None,
        };
        Ok(draft)
    }
}

impl EventHandler for NotificationsProcess {
    async fn handle(
        &self,
        conn: &mut PgConnection,
        event: &StoredEvent,
    ) -> Result<(), HandlerError> {
        let Some((user_id, kind, text)) = Self::draft(&mut *conn, event).await? else {
            return Ok(());
        };
        let (status, sent_at) = match self.channel {
            Channel::Email => (NotificationStatus::Pending, None),
            Channel::InApp => (NotificationStatus::Sent, Some(event.recorded_at)),
        };
        // Once per trigger: the same event (redelivered, replayed) yields the same id and key.
        sqlx::query(
            "INSERT INTO notifications.notifications \
             (id, user_id, type, channel, subject, body, status, triggering_event_id, created_at, \
              sent_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        )
        .bind(notification_id(event.event_id, kind))
        .bind(user_id)
        .bind(kind.as_str())
        .bind(self.channel.as_str())
        .bind(&text.subject)
        .bind(&text.body)
        .bind(status.as_str())
        .bind(event.event_id)
        .bind(event.recorded_at)
        .bind(sent_at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }
}

/// Erasure (guarantee 9): the recipient's address and name go, their notifications' texts
/// (which greet them by name) read as erased, and what was still to be emailed never is.
async fn forget_recipient(conn: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM notifications.recipients WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE notifications.notifications SET body = $2, \
         last_error = CASE WHEN status = 'PENDING' THEN 'the recipient was erased' \
                      ELSE last_error END, \
         status = CASE WHEN status = 'PENDING' THEN 'FAILED' ELSE status END \
         WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(commerce_domain::ERASED)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn save_recipient(
    conn: &mut PgConnection,
    user_id: Uuid,
    email: &str,
    name: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO notifications.recipients (user_id, email, name, updated_at) \
         VALUES ($1, $2, $3, $4) \
         ON CONFLICT (user_id) DO UPDATE \
         SET email = EXCLUDED.email, name = EXCLUDED.name, updated_at = EXCLUDED.updated_at",
    )
    .bind(user_id)
    .bind(email)
    .bind(name)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn rename_recipient(
    conn: &mut PgConnection,
    user_id: Uuid,
    name: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notifications.recipients SET name = $2, updated_at = $3 WHERE user_id = $1",
    )
    .bind(user_id)
    .bind(name)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// The recipient's name as the log had it at this event (a replay renders the same text).
async fn recipient_name(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM notifications.recipients WHERE user_id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_per_event_and_type() {
        let event = Uuid::new_v4();
        assert_eq!(
            notification_id(event, NotificationType::Welcome),
            notification_id(event, NotificationType::Welcome)
        );
        assert_ne!(
            notification_id(event, NotificationType::Welcome),
            notification_id(event, NotificationType::Refund)
        );
    }

    #[test]
    fn bindings_name_only_the_triggers() {
        assert_eq!(
            NotificationsProcess::bindings(),
            [
                "User.UserRegistered",
                "User.ProfileUpdated",
                "User.PersonalDataErased",
                "Order.OrderConfirmed",
                "Order.OrderShipped",
                "Payment.PaymentFailed",
                "Payment.PaymentRefunded"
            ]
        );
    }
}
