//! `/payment-methods`: the signed-in user's saved payment methods.
//!
//! All of a user's methods live in one `PaymentMethod` aggregate keyed by the user id, which keeps
//! exactly one default while any method is saved (the first is the default; a new default moves
//! the flag; removing the default passes it to the oldest remaining method). Another user's method
//! id is simply unknown in the caller's aggregate: a 404.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use commerce_commands::Executed;
use commerce_domain::payment_method::{PaymentMethod, PaymentMethodCommand};
use commerce_projections::payments::{self, PaymentMethodView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::consistency::{MinPosition, Written};
use crate::context::RequestId;
use crate::envelope::Data;
use crate::error::ApiResult;
use crate::extract::{Json, Path};
use crate::routes::{as_stored, left_no};
use crate::state::AppState;

const READ_MODEL: &[&str] = &["payments"];

/// A saved payment method.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentMethodBody {
    id: Uuid,
    user_id: Uuid,
    /// Kind, e.g. `card`.
    method_type: String,
    /// The gateway's token for it.
    gateway_method_id: String,
    /// Whether it is the user's default (exactly one is, while any is saved).
    is_default: bool,
    created_at: DateTime<Utc>,
}

impl From<PaymentMethodView> for PaymentMethodBody {
    fn from(v: PaymentMethodView) -> Self {
        Self {
            id: v.id,
            user_id: v.user_id,
            method_type: v.method_type,
            gateway_method_id: v.gateway_method_id,
            is_default: v.is_default,
            created_at: v.created_at,
        }
    }
}

/// A method to save.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentMethodInput {
    /// Kind, 1 to 30 characters once trimmed, e.g. `card`.
    #[schema(pattern = r"^\s*[^\s\u0000]([^\u0000]{0,28}[^\s\u0000])?\s*$")]
    method_type: String,
    /// The gateway's token, 1 to 255 characters once trimmed.
    #[schema(pattern = r"^\s*[^\s\u0000]([^\u0000]{0,253}[^\s\u0000])?\s*$")]
    gateway_method_id: String,
    /// Make it the default (the first saved method always is).
    #[serde(default)]
    is_default: bool,
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, add))
        .routes(routes!(remove))
}

/// The caller's saved methods: the default first, then newest first.
#[utoipa::path(get, path = "/payment-methods", tag = "payment-methods", security(("bearer" = [])),
    responses((status = 200, body = Data<Vec<PaymentMethodBody>>), (status = 401, body = crate::error::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
) -> ApiResult<axum::Json<Data<Vec<PaymentMethodBody>>>> {
    min.wait(&state, READ_MODEL).await?;
    let rows = payments::list_methods(&state.pool, caller.user_id).await?;
    Ok(axum::Json(Data::new(
        rows.into_iter().map(Into::into).collect(),
    )))
}

/// Save a payment method.
#[utoipa::path(post, path = "/payment-methods", tag = "payment-methods", security(("bearer" = [])),
    request_body = PaymentMethodInput,
    responses((status = 201, body = Data<PaymentMethodBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn add(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Json(input): Json<PaymentMethodInput>,
) -> ApiResult<Written<PaymentMethodBody>> {
    let method_id = Uuid::new_v4();
    let command = PaymentMethodCommand::AddPaymentMethod {
        method_id,
        user_id: caller.user_id,
        method_type: input.method_type,
        gateway_method_id: input.gateway_method_id,
        is_default: input.is_default,
        at: Utc::now(),
    };
    let executed = write(&state, &caller, &request_id, command).await?;
    let methods = &executed.aggregate;
    let body = methods
        .methods()
        .iter()
        .find(|m| m.method_id == method_id)
        .map(|m| PaymentMethodBody {
            id: m.method_id,
            user_id: caller.user_id,
            method_type: m.method_type.clone(),
            gateway_method_id: m.gateway_method_id.clone(),
            is_default: methods.default_method() == Some(m.method_id),
            created_at: as_stored(m.added_at),
        })
        .ok_or_else(|| left_no("payment method"))?;
    Ok(Written::new(StatusCode::CREATED, executed.position, body))
}

/// Forget a saved payment method; if it was the default, the oldest remaining one becomes it.
#[utoipa::path(delete, path = "/payment-methods/{id}", tag = "payment-methods", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
) -> ApiResult<Written<()>> {
    let command = PaymentMethodCommand::RemovePaymentMethod {
        method_id: id,
        at: Utc::now(),
    };
    let executed = write(&state, &caller, &request_id, command).await?;
    Ok(Written::no_content(executed.position))
}

/// Runs `command` on the caller's methods. The answer comes from the aggregate it leaves; the
/// caller's next list waits for it by read-your-writes, on any API instance.
async fn write(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    command: PaymentMethodCommand,
) -> ApiResult<Executed<PaymentMethod>> {
    Ok(state
        .dispatcher
        .execute::<PaymentMethod>(
            &caller.user_id.to_string(),
            command,
            &request_id.metadata(caller),
        )
        .await?)
}
