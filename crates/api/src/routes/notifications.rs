//! `GET /notifications`: the signed-in user's notifications, newest first, from the notifications
//! process's own table (one notification per triggering event; only the recipient sees it).

use axum::extract::State;
use chrono::{DateTime, Utc};
use commerce_notifications::{self as notifications, Notification, NotificationsProcess};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::consistency::MinPosition;
use crate::envelope::{PageQuery, Paginated};
use crate::error::ApiResult;
use crate::extract::Query;
use crate::state::AppState;

/// A notification.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationBody {
    id: Uuid,
    /// `WELCOME`, `ORDER_CONFIRMED`, `PAYMENT_FAILED`, `ORDER_SHIPPED` or `REFUND`.
    #[serde(rename = "type")]
    #[schema(example = "ORDER_CONFIRMED")]
    kind: String,
    /// `email` or `in_app`.
    channel: String,
    subject: String,
    body: String,
    /// `PENDING`, `SENT` or `FAILED`.
    status: String,
    created_at: DateTime<Utc>,
    sent_at: Option<DateTime<Utc>>,
}

impl From<Notification> for NotificationBody {
    fn from(n: Notification) -> Self {
        Self {
            id: n.id,
            kind: n.kind.as_str().to_owned(),
            channel: n.channel.as_str().to_owned(),
            subject: n.subject,
            body: n.body,
            status: n.status.as_str().to_owned(),
            created_at: n.created_at,
            sent_at: n.sent_at,
        }
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/notifications", tag = "notifications", security(("bearer" = [])),
    params(PageQuery),
    responses((status = 200, body = Paginated<NotificationBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Paginated<NotificationBody>>> {
    let page = q.page()?;
    // A page past `u32::MAX` is as empty as the last one the store can count to.
    let number = u32::try_from(page.page).unwrap_or(u32::MAX);
    let size = u32::try_from(page.page_size).unwrap_or(u32::MAX);
    min.wait(&state, &[NotificationsProcess::NAME]).await?;
    let (rows, total) =
        notifications::list_for_user(&state.pool, caller.user_id, number, size).await?;
    Ok(axum::Json(Paginated::new(
        rows.into_iter().map(Into::into).collect(),
        page,
        total,
    )))
}
