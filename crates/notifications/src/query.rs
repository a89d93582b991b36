//! What the API reads: a user's notifications, newest first, with their stored names.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationType {
    /// A user registered.
    Welcome,
    /// An order was paid and confirmed.
    OrderConfirmed,
    /// A payment was refused.
    PaymentFailed,
    /// An order left the warehouse.
    OrderShipped,
    /// Money was given back.
    Refund,
}

/// How a notification reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Emailed by the [`NotificationSender`](super::NotificationSender) (SMTP configured).
    Email,
    /// Shown in the app only (no SMTP configured).
    InApp,
}

/// Where a notification's delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationStatus {
    /// Waiting for the sender.
    Pending,
    /// Delivered (in-app notifications are delivered when written).
    Sent,
    /// The sender gave up.
    Failed,
}

macro_rules! text_enum {
    ($ty:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $ty {
            /// The stored and serialised name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $ty {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(format!("unknown {} {other:?}", stringify!($ty))),
                }
            }
        }
    };
}

text_enum!(NotificationType {
    Welcome = "WELCOME",
    OrderConfirmed = "ORDER_CONFIRMED",
    PaymentFailed = "PAYMENT_FAILED",
    OrderShipped = "ORDER_SHIPPED",
    Refund = "REFUND",
});
text_enum!(Channel {
    Email = "email",
    InApp = "in_app",
});
text_enum!(NotificationStatus {
    Pending = "PENDING",
    Sent = "SENT",
    Failed = "FAILED",
});

/// One of a user's notifications, as `GET /notifications` shows it (timestamps RFC 3339 UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// UUID v5 of the triggering event id and the type.
    pub id: Uuid,
    /// What it is about.
    #[serde(rename = "type")]
    pub kind: NotificationType,
    /// How it reaches the user.
    pub channel: Channel,
    /// One line.
    pub subject: String,
    /// Plain text.
    pub body: String,
    /// Delivery status.
    pub status: NotificationStatus,
    /// When the triggering event was recorded.
    pub created_at: DateTime<Utc>,
    /// When it was delivered.
    pub sent_at: Option<DateTime<Utc>>,
}

/// A stored notification before its names are checked.
#[derive(sqlx::FromRow)]
struct NotificationRow {
    id: Uuid,
    #[sqlx(rename = "type")]
    kind: String,
    channel: String,
    subject: String,
    body: String,
    status: String,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

impl NotificationRow {
    fn decode(self) -> Result<Notification, String> {
        Ok(Notification {
            id: self.id,
            kind: self.kind.parse()?,
            channel: self.channel.parse()?,
            subject: self.subject,
            body: self.body,
            status: self.status.parse()?,
            created_at: self.created_at,
            sent_at: self.sent_at,
        })
    }
}

/// A page (1-based) of `user_id`'s notifications, newest first, and how many they have in all.
pub async fn list_for_user(
    pool: &PgPool,
    user_id: Uuid,
    page: u32,
    page_size: u32,
) -> Result<(Vec<Notification>, i64), sqlx::Error> {
    let offset = i64::from(page.max(1) - 1) * i64::from(page_size);
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM notifications.notifications WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(pool)
            .await?;
    let rows: Vec<NotificationRow> = sqlx::query_as(
        "SELECT id, type, channel, subject, body, status, created_at, sent_at \
         FROM notifications.notifications WHERE user_id = $1 \
         ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3",
    )
    .bind(user_id)
    .bind(i64::from(page_size))
    .bind(offset)
    .fetch_all(pool)
    .await?;
    let notifications = rows
        .into_iter()
        .map(NotificationRow::decode)
        .collect::<Result<_, _>>()
        .map_err(|e| sqlx::Error::Decode(e.into()))?;
    Ok((notifications, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_serialise_as_stored() {
        for kind in [
            NotificationType::Welcome,
            NotificationType::OrderConfirmed,
            NotificationType::PaymentFailed,
            NotificationType::OrderShipped,
            NotificationType::Refund,
        ] {
            assert_eq!(kind.as_str().parse::<NotificationType>(), Ok(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert_eq!(
            serde_json::to_value(Channel::InApp).unwrap(),
            serde_json::json!("in_app")
        );
        assert_eq!(
            serde_json::to_value(NotificationStatus::Pending).unwrap(),
            serde_json::json!("PENDING")
        );
    }

    #[test]
    fn a_notification_serialises_as_the_api_shows_it() {
        let at = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let n = Notification {
            id: Uuid::nil(),
            kind: NotificationType::OrderShipped,
            channel: Channel::Email,
            subject: "s".into(),
            body: "b".into(),
            status: NotificationStatus::Sent,
            created_at: at,
            sent_at: Some(at),
        };
        assert_eq!(
            serde_json::to_value(&n).unwrap(),
            serde_json::json!({
                "id": Uuid::nil(), "type": "ORDER_SHIPPED", "channel": "email", "subject": "s",
                "body": "b", "status": "SENT", "created_at": "2026-11-25T10:00:00Z",
                "sent_at": "2026-11-25T10:00:00Z"
            })
        );
    }
}
