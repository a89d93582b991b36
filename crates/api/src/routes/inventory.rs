//! `/inventory`: stock levels and availability (public), adjustments (admin) and the movement
//! history (admin, auditor).
//!
//! Reads never create anything: a product that exists but was never stocked shows zero levels,
//! an id that is no product is a 404. The model has one stock pool per product, reported in the
//! warehouse [`DEFAULT_WAREHOUSE_ID`]. Adjustments never take the total below what orders hold
//! (409); quantities are whole units, checked here before any command runs.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_domain::user::Role;
use commerce_projections::catalog;
use commerce_projections::inventory::{
    self, Availability, MovementView, StockLevelView, UnavailableItem, DEFAULT_WAREHOUSE_ID,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::consistency::{MinPosition, Written};
use crate::context::RequestId;
use crate::envelope::{Data, PageQuery, Paginated};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path, Query};
use crate::routes::products::{checked_text, load_product};
use crate::state::AppState;

const READ_MODEL: &[&str] = &["inventory", "catalog"];

/// The most items one availability check may name.
const MAX_ITEMS: usize = 100;

/// A product's stock.
#[derive(Debug, Serialize, ToSchema)]
pub struct StockLevelBody {
    product_id: Uuid,
    /// Units that can be ordered.
    available: i64,
    /// Units held for orders.
    reserved: i64,
    /// Units on hand: available + reserved.
    total: i64,
    /// Always `default`: one stock pool per product.
    warehouse_id: String,
}

impl From<StockLevelView> for StockLevelBody {
    fn from(v: StockLevelView) -> Self {
        Self {
            product_id: v.product_id,
            available: v.available,
            reserved: v.reserved,
            total: v.total,
            warehouse_id: v.warehouse_id,
        }
    }
}

impl StockLevelBody {
    /// The answer for `stock`, product `product_id`'s inventory as a command left it.
    fn of(product_id: Uuid, stock: &Inventory) -> Self {
        Self {
            product_id,
            available: stock.available(),
            reserved: stock.reserved(),
            total: stock.total(),
            warehouse_id: DEFAULT_WAREHOUSE_ID.to_owned(),
        }
    }
}

/// Products and quantities to check.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityInput {
    /// 1 to 100 items.
    #[schema(min_items = 1, max_items = 100)]
    items: Vec<AvailabilityItem>,
}

/// One product and the units wanted.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityItem {
    product_id: Uuid,
    /// Whole units, at least 1.
    #[schema(minimum = 1, maximum = 4_294_967_295_i64)]
    quantity: i64,
}

/// Whether everything can be ordered now, and what cannot.
#[derive(Debug, Serialize, ToSchema)]
pub struct AvailabilityBody {
    available: bool,
    unavailable_items: Vec<UnavailableBody>,
}

/// A product with fewer units available than requested.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnavailableBody {
    product_id: Uuid,
    /// Units requested (summed over items naming the product).
    requested: i64,
    /// Units available (0 for an unknown or unstocked product).
    available: i64,
}

impl From<Availability> for AvailabilityBody {
    fn from(a: Availability) -> Self {
        Self {
            available: a.available,
            unavailable_items: a
                .unavailable_items
                .into_iter()
                .map(|i: UnavailableItem| UnavailableBody {
                    product_id: i.product_id,
                    requested: i.requested,
                    available: i.available,
                })
                .collect(),
        }
    }
}

/// How a stock adjustment applies `quantity`.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Goods in.
    Add,
    /// Goods out; never below zero available.
    Subtract,
    /// Set the units on hand (available + reserved); never below reserved.
    Set,
}

/// A stock adjustment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentInput {
    /// Whole units: at least 1 for `add` and `subtract`, at least 0 for `set`, and a signed,
    /// non-zero change of available units without `operation`.
    quantity: i64,
    #[serde(default)]
    operation: Option<Operation>,
    /// At most 500 characters, kept in the movement history.
    #[serde(default)]
    reason: Option<String>,
}

/// The bounds of `quantity` depend on `operation`: the schema is one object per kind.
impl utoipa::PartialSchema for AdjustmentInput {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let reason = json!({"type": ["string", "null"], "maxLength": 500,
            "description": "At most 500 characters, kept in the movement history."});
        let units = |min: u32, operations: &[&str], description: &str| {
            json!({
                "type": "object",
                "description": description,
                "additionalProperties": false,
                "required": ["quantity", "operation"],
                "properties": {
                    "quantity": {"type": "integer", "format": "int64", "minimum": min,
                        "maximum": u32::MAX},
                    "operation": {"type": "string", "enum": operations},
                    "reason": reason,
                },
            })
        };
        let delta = |minimum: i64, maximum: i64| {
            json!({"type": "integer", "format": "int64",
            "minimum": minimum, "maximum": maximum})
        };
        let schema = json!({
            "description": "A stock adjustment: `add` or `subtract` 1 to 4294967295 units, `set` \
                the units on hand to 0 to 4294967295, or, without `operation`, change the available \
                units by a signed, non-zero `quantity`.",
            "oneOf": [
                units(1, &["add", "subtract"], "Goods in or out."),
                units(0, &["set"], "Set the units on hand (available + reserved); never below reserved."),
                {
                    "type": "object",
                    "description": "A signed change of available units.",
                    "additionalProperties": false,
                    "required": ["quantity"],
                    "properties": {
                        "quantity": {"oneOf": [delta(1, i64::MAX), delta(i64::MIN, -1)]},
                        "operation": {"type": "null"},
                        "reason": reason,
                    },
                },
            ],
        });
        serde_json::from_value(schema).unwrap_or_else(|e| panic!("the AdjustmentInput schema: {e}"))
    }
}

impl ToSchema for AdjustmentInput {
    fn name() -> std::borrow::Cow<'static, str> {
        "AdjustmentInput".into()
    }
}

impl AdjustmentInput {
    fn adjustment(&self) -> ApiResult<StockAdjustment> {
        let units = |min: i64| {
            u32::try_from(self.quantity)
                .ok()
                .filter(|n| i64::from(*n) >= min)
                .ok_or_else(|| {
                    ApiError::invalid_field(
                        "quantity",
                        format!("must be a whole number from {min} to {}", u32::MAX),
                    )
                })
        };
        Ok(match self.operation {
            Some(Operation::Add) => StockAdjustment::Add(units(1)?),
            Some(Operation::Subtract) => StockAdjustment::Subtract(units(1)?),
            Some(Operation::Set) => StockAdjustment::Set(units(0)?),
            None if self.quantity == 0 => {
                return Err(ApiError::invalid_field(
                    "quantity",
                    "a change without operation must not be zero",
                ))
            }
            None => StockAdjustment::Delta(self.quantity),
        })
    }
}

/// One stock movement.
#[derive(Debug, Serialize, ToSchema)]
pub struct MovementBody {
    /// The event's id.
    id: Uuid,
    /// `INBOUND`, `OUTBOUND`, `RESERVED`, `RELEASED`, `COMMITTED` or `ADJUSTMENT`.
    movement_type: String,
    /// Units moved; the type says which way.
    quantity: i64,
    /// Available units before.
    before: i64,
    /// Available units after.
    after: i64,
    /// `ORDER` or `ADJUSTMENT`.
    reference_type: String,
    /// The order, for `ORDER` movements.
    reference_id: Option<Uuid>,
    reason: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<MovementView> for MovementBody {
    fn from(v: MovementView) -> Self {
        Self {
            id: v.id,
            movement_type: v.movement_type,
            quantity: v.quantity,
            before: v.before,
            after: v.after,
            reference_type: v.reference_type,
            reference_id: v.reference_id,
            reason: v.reason,
            created_at: v.created_at,
        }
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_one, adjust))
        .routes(routes!(check_availability))
        .routes(routes!(history))
}

/// A product's stock.
#[utoipa::path(get, path = "/inventory/{product_id}", tag = "inventory",
    params(("product_id" = Uuid, Path)),
    responses((status = 200, body = Data<StockLevelBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    min: MinPosition,
    Path(product_id): Path<Uuid>,
) -> ApiResult<axum::Json<Data<StockLevelBody>>> {
    min.wait(&state, READ_MODEL).await?;
    let level = stock_level(&state, product_id)
        .await?
        .ok_or_else(|| ApiError::not_found("product"))?;
    Ok(axum::Json(Data::new(level)))
}

/// Whether the items can be ordered now.
#[utoipa::path(post, path = "/inventory/check-availability", tag = "inventory",
    request_body = AvailabilityInput,
    responses((status = 200, body = Data<AvailabilityBody>), (status = 400, body = crate::error::ErrorBody)))]
async fn check_availability(
    State(state): State<AppState>,
    min: MinPosition,
    Json(input): Json<AvailabilityInput>,
) -> ApiResult<axum::Json<Data<AvailabilityBody>>> {
    if input.items.is_empty() || input.items.len() > MAX_ITEMS {
        return Err(ApiError::invalid_field(
            "items",
            format!("must have 1 to {MAX_ITEMS} items"),
        ));
    }
    let mut items = Vec::with_capacity(input.items.len());
    for (i, item) in input.items.iter().enumerate() {
        // Capped at what one reservation can hold, so a sum over 100 items cannot overflow.
        if !(1..=i64::from(u32::MAX)).contains(&item.quantity) {
            return Err(ApiError::invalid_field(
                &format!("items[{i}].quantity"),
                "must be a whole number of at least 1",
            ));
        }
        items.push((item.product_id, item.quantity));
    }
    min.wait(&state, &["inventory"]).await?;
    let availability = inventory::check_availability(&state.pool, &items).await?;
    Ok(axum::Json(Data::new(availability.into())))
}

/// Adjust a product's stock (admin).
#[utoipa::path(put, path = "/inventory/{product_id}", tag = "inventory", security(("bearer" = [])),
    params(("product_id" = Uuid, Path)), request_body = AdjustmentInput,
    responses((status = 200, body = Data<StockLevelBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
async fn adjust(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(product_id): Path<Uuid>,
    Json(input): Json<AdjustmentInput>,
) -> ApiResult<Written<StockLevelBody>> {
    caller.require_admin()?;
    let adjustment = input.adjustment()?;
    if let Some(reason) = &input.reason {
        checked_text("reason", reason)?;
    }
    if load_product(&state, product_id).await?.is_none() {
        return Err(ApiError::not_found("product"));
    }
    let executed = state
        .dispatcher
        .execute::<Inventory>(
            &product_id.to_string(),
            InventoryCommand::AdjustStock {
                product_id,
                adjustment,
                reason: input.reason,
                at: Utc::now(),
            },
            &request_id.metadata(&caller),
        )
        .await?;
    let level = StockLevelBody::of(product_id, &executed.aggregate);
    Ok(Written::new(StatusCode::OK, executed.position, level))
}

/// A product's stock movements, oldest first (admin, auditor).
#[utoipa::path(get, path = "/inventory/{product_id}/history", tag = "inventory", security(("bearer" = [])),
    params(("product_id" = Uuid, Path), PageQuery),
    responses((status = 200, body = Paginated<MovementBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn history(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
    Path(product_id): Path<Uuid>,
    Query(q): Query<PageQuery>,
) -> ApiResult<axum::Json<Paginated<MovementBody>>> {
    caller.require_any(&[Role::Admin, Role::Auditor])?;
    let page = q.page()?;
    min.wait(&state, READ_MODEL).await?;
    let (rows, total) = inventory::history(&state.pool, product_id, page).await?;
    if total == 0
        && catalog::get_product(&state.pool, product_id)
            .await?
            .is_none()
    {
        return Err(ApiError::not_found("product"));
    }
    Ok(axum::Json(Paginated::new(
        rows.into_iter().map(Into::into).collect(),
        page,
        total,
    )))
}

/// The stock of a product: its levels, zero for a product never stocked, `None` for no product.
async fn stock_level(state: &AppState, product_id: Uuid) -> ApiResult<Option<StockLevelBody>> {
    if let Some(level) = inventory::get(&state.pool, product_id).await? {
        return Ok(Some(level.into()));
    }
    let known = catalog::get_product(&state.pool, product_id)
        .await?
        .is_some();
    Ok(known.then(|| StockLevelBody {
        product_id,
        available: 0,
        reserved: 0,
        total: 0,
        warehouse_id: DEFAULT_WAREHOUSE_ID.to_owned(),
    }))
}
