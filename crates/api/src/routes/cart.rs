//! `/cart`: the caller's own cart (the `Cart` aggregate whose id is the user id).
//!
//! Rules kept here: only active catalog products go in, at their current name and price (the
//! domain never reads the catalog, so the command carries them); quantities are whole numbers in
//! 1..=1000, checked before anything is written. Reads come from the carts read model; command
//! answers are folded from the aggregate itself, so they never wait for a projection.
//! `DELETE`s answer 204.

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use commerce_domain::cart::{Cart, CartClearReason, CartCommand, CartLine, MAX_LINE_QUANTITY};
use commerce_domain::{Currency, Money};
use commerce_projections::carts::{self, CartItemView, CartView};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Caller;
use crate::consistency::{MinPosition, Written};
use crate::context::RequestId;
use crate::envelope::Data;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{Json, Path};
use crate::money::Amount;
use crate::state::AppState;

const READ_MODEL: &[&str] = &["carts"];
/// Where `POST /cart` looks products up.
const CATALOG: &[&str] = &["catalog"];

/// A user's cart.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartBody {
    user_id: Uuid,
    items: Vec<CartItemBody>,
    /// Sum of the subtotals.
    total: Amount,
    /// Currency of every amount (USD for an empty cart).
    currency: String,
    /// Sum of the quantities.
    item_count: i64,
}

/// One line of a cart.
#[derive(Debug, Serialize, ToSchema)]
pub struct CartItemBody {
    product_id: Uuid,
    product_name: String,
    quantity: i64,
    /// Unit price when last added.
    price: Amount,
    /// `price × quantity`.
    subtotal: Amount,
}

impl From<CartItemView> for CartItemBody {
    fn from(v: CartItemView) -> Self {
        Self {
            product_id: v.product_id,
            product_name: v.product_name,
            quantity: v.quantity,
            price: Amount(v.price_minor),
            subtotal: Amount(v.subtotal_minor),
        }
    }
}

impl From<CartView> for CartBody {
    fn from(v: CartView) -> Self {
        Self {
            user_id: v.user_id,
            items: v.items.into_iter().map(Into::into).collect(),
            total: Amount(v.total_minor),
            currency: v.currency,
            item_count: v.item_count,
        }
    }
}

impl CartBody {
    /// The cart as the aggregate holds it right after a command.
    fn of(user_id: Uuid, cart: &Cart) -> Self {
        let items: Vec<CartItemBody> = cart.lines().iter().map(line_body).collect();
        Self {
            user_id,
            // At most 100 lines of at most 1000 units: a sum of absurd prices saturates.
            total: Amount(
                items
                    .iter()
                    .fold(0_i64, |sum, i| sum.saturating_add(i.subtotal.0)),
            ),
            currency: cart.currency().unwrap_or(Currency::USD).to_string(),
            item_count: items.iter().map(|i| i.quantity).sum(),
            items,
        }
    }
}

fn line_body(line: &CartLine) -> CartItemBody {
    CartItemBody {
        product_id: line.product_id,
        product_name: line.product_name.clone(),
        quantity: i64::from(line.quantity),
        price: Amount(line.unit_price.amount_minor),
        subtotal: Amount(
            line.unit_price
                .amount_minor
                .saturating_mul(i64::from(line.quantity)),
        ),
    }
}

/// Units of a product to add.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddToCartInput {
    product_id: Uuid,
    /// A whole number, 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    quantity: u32,
}

/// A line's new quantity.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetQuantityInput {
    /// A whole number, 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    quantity: u32,
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_cart, add, clear))
        .routes(routes!(set_quantity, remove))
}

/// 400 unless `quantity` is in 1..=1000 (serde already refused signs, fractions and strings).
pub(crate) fn checked_quantity(quantity: u32) -> Result<u32, ApiError> {
    if (1..=MAX_LINE_QUANTITY).contains(&quantity) {
        Ok(quantity)
    } else {
        Err(ApiError::invalid_field(
            "quantity",
            format!("must be between 1 and {MAX_LINE_QUANTITY}"),
        ))
    }
}

/// The current name and price of an orderable product: unknown → 404, inactive → 409. Read from
/// the product's own stream (not the catalog read model), so a product is orderable the moment
/// its creation was answered, whoever created it.
pub(crate) async fn orderable(state: &AppState, product_id: Uuid) -> ApiResult<(String, Money)> {
    let not_found = || ApiError::NotFound(format!("product {product_id} not found"));
    let product = crate::routes::products::load_product(state, product_id)
        .await?
        .ok_or_else(not_found)?;
    if !product.is_active() {
        return Err(ApiError::Conflict {
            code: "product_inactive",
            message: format!("product {product_id} is no longer sold"),
        });
    }
    let name = product.name().ok_or_else(not_found)?.to_owned();
    let price = product.price().ok_or_else(not_found)?;
    Ok((name, price))
}

/// Runs `command` on the caller's cart and answers with the cart as the command left it.
async fn write(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    command: CartCommand,
) -> ApiResult<Written<CartBody>> {
    let executed = state
        .dispatcher
        .execute::<Cart>(
            &caller.user_id.to_string(),
            command,
            &request_id.metadata(caller),
        )
        .await?;
    Ok(Written::new(
        StatusCode::OK,
        executed.position,
        CartBody::of(caller.user_id, &executed.aggregate),
    ))
}

/// The caller's cart.
#[utoipa::path(get, path = "/cart", tag = "cart", security(("bearer" = [])),
    responses((status = 200, body = Data<CartBody>), (status = 401, body = ErrorBody),
        (status = 503, body = ErrorBody)))]
async fn get_cart(
    State(state): State<AppState>,
    caller: Caller,
    min: MinPosition,
) -> ApiResult<axum::Json<Data<CartBody>>> {
    min.wait(&state, READ_MODEL).await?;
    let view = carts::get(&state.pool, caller.user_id).await?;
    Ok(axum::Json(Data::new(view.into())))
}

/// Add units of an active product (to its line, if there is one). `X-Min-Position` waits for
/// the catalog, e.g. right after a product was created.
#[utoipa::path(post, path = "/cart", tag = "cart", security(("bearer" = [])),
    request_body = AddToCartInput,
    responses((status = 200, body = Data<CartBody>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn add(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    min: MinPosition,
    Json(input): Json<AddToCartInput>,
) -> ApiResult<Written<CartBody>> {
    let quantity = checked_quantity(input.quantity)?;
    min.header_only().wait(&state, CATALOG).await?;
    let (product_name, unit_price) = orderable(&state, input.product_id).await?;
    let command = CartCommand::AddToCart {
        user_id: caller.user_id,
        product_id: input.product_id,
        product_name,
        unit_price,
        quantity,
        at: Utc::now(),
    };
    write(&state, &caller, &request_id, command).await
}

/// Set a line's quantity.
#[utoipa::path(put, path = "/cart/{product_id}", tag = "cart", security(("bearer" = [])),
    params(("product_id" = Uuid, Path)), request_body = SetQuantityInput,
    responses((status = 200, body = Data<CartBody>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn set_quantity(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(product_id): Path<Uuid>,
    Json(input): Json<SetQuantityInput>,
) -> ApiResult<Written<CartBody>> {
    let quantity = checked_quantity(input.quantity)?;
    let command = CartCommand::SetCartQuantity {
        product_id,
        quantity,
        at: Utc::now(),
    };
    write(&state, &caller, &request_id, command).await
}

/// Remove a line.
#[utoipa::path(delete, path = "/cart/{product_id}", tag = "cart", security(("bearer" = [])),
    params(("product_id" = Uuid, Path)),
    responses((status = 204), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(product_id): Path<Uuid>,
) -> ApiResult<Written<()>> {
    let command = CartCommand::RemoveFromCart {
        product_id,
        at: Utc::now(),
    };
    let written = write(&state, &caller, &request_id, command).await?;
    Ok(Written::no_content(written.position))
}

/// Empty the cart (an empty cart stays empty: still 204).
#[utoipa::path(delete, path = "/cart", tag = "cart", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorBody)))]
async fn clear(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
) -> ApiResult<Written<()>> {
    let command = CartCommand::ClearCart {
        reason: CartClearReason::UserRequest,
        at: Utc::now(),
    };
    let written = write(&state, &caller, &request_id, command).await?;
    Ok(Written::no_content(written.position))
}
