//! `POST /orders`: the caller's cart (emptied afterwards) or the given items become an order, at
//! the catalog's prices of this moment.
//!
//! Rules kept here: every product exists (404) and is sold (409), quantities are whole numbers in
//! 1..=1000, and an order has a line (400), all checked before anything is written. The cart is
//! read from its aggregate, not the carts read model, so a line added just before is ordered too.
//! `Idempotency-Key` makes a repeat return the first answer and write nothing. The 201 body is
//! folded from the order's own events, never waited for in the orders projection.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use commerce_domain::cart::{Cart, CartClearReason, CartCommand};
use commerce_domain::order::{Order, OrderCommand, OrderLine};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::as_of::{order_from_log, Until};
use super::body::{Address, OrderBody};
use crate::auth::Caller;
use crate::consistency::{latest, position_of, MinPosition, Written};
use crate::context::RequestId;
use crate::envelope::Data;
use crate::error::{error_chain, ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::idempotency::{self, IdempotencyKey};
use crate::routes::cart::{checked_quantity, orderable};
use crate::state::AppState;

/// Most lines an order may list (as many as a cart holds).
const MAX_ITEMS: usize = commerce_domain::cart::MAX_LINES;
/// Catalog lookups of one order run this many at a time.
const CATALOG_LOOKUPS: usize = 4;

/// A new order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderInput {
    shipping_address: Address,
    /// How the customer intends to pay, e.g. `card` (1 to 50 characters).
    payment_method: String,
    /// What to order; without it, the cart is ordered (and then emptied).
    #[serde(default)]
    items: Option<Vec<OrderItemInput>>,
}

/// A product and how many of it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderItemInput {
    product_id: Uuid,
    /// A whole number, 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    quantity: u32,
}

/// Place an order from the cart or from `items`. Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/orders", tag = "orders", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "a repeat with the same key and body returns the first answer")),
    request_body = PlaceOrderInput,
    responses((status = 201, body = Data<OrderBody>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(super) async fn place_order(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    min: MinPosition,
    key: IdempotencyKey,
    Json(input): Json<PlaceOrderInput>,
) -> Response {
    let fingerprint = match serde_json::to_vec(&input) {
        Ok(bytes) => bytes,
        Err(e) => return ApiError::internal(e).into_response(),
    };
    idempotency::once(
        &state,
        caller.user_id,
        "POST /orders",
        &key,
        &fingerprint,
        || async {
            place(&state, &caller, &request_id, min, input)
                .await
                .map(IntoResponse::into_response)
        },
    )
    .await
}

async fn place(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    min: MinPosition,
    input: PlaceOrderInput,
) -> ApiResult<Written<OrderBody>> {
    let from_cart = input.items.is_none();
    let wanted = match input.items {
        Some(items) => requested(items)?,
        None => cart_lines(state, caller.user_id).await?,
    };
    if wanted.is_empty() {
        return Err(ApiError::bad_request(
            "nothing to order: the cart is empty and no items were given",
        ));
    }
    // Lets a client order a product right after creating it, by sending its position.
    min.wait(state, &["catalog"]).await?;
    // A few lookups at a time: a 100-line order must not take the whole pool.
    let lines: Vec<OrderLine> = futures::stream::iter(wanted)
        .map(|(product_id, quantity)| async move {
            let (product_name, unit_price) = orderable(state, product_id).await?;
            Ok::<_, ApiError>(OrderLine {
                product_id,
                product_name,
                quantity,
                unit_price,
            })
        })
        .buffered(CATALOG_LOOKUPS)
        .try_collect()
        .await?;

    let order_id = Uuid::new_v4();
    let metadata = request_id.metadata(caller);
    let command = OrderCommand::PlaceOrder {
        order_id,
        user_id: caller.user_id,
        lines,
        shipping_address: input.shipping_address.into(),
        payment_method: input.payment_method,
        at: Utc::now(),
    };
    let placed = state
        .dispatcher
        .create::<Order>(&order_id.to_string(), command, &metadata)
        .await?;
    let mut position = position_of(state, "Order", &placed).await?;
    if from_cart {
        let clear = CartCommand::ClearCart {
            reason: CartClearReason::CheckedOut { order_id },
            at: Utc::now(),
        };
        // The order stands whatever happens here: failing the request now would make the client
        // (or the idempotency layer, which forgets a 5xx) place it a second time.
        match state
            .dispatcher
            .execute::<Cart>(&caller.user_id.to_string(), clear, &metadata)
            .await
        {
            Ok(cleared) => position = latest(position, cleared.position),
            Err(e) => {
                tracing::warn!(%order_id, error = %error_chain(&e), "cart not emptied after checkout");
            }
        }
    }
    let order = order_from_log(state, order_id, Until::Version(placed.version))
        .await?
        .ok_or_else(|| ApiError::Unavailable("the order is not readable yet".to_owned()))?;
    Ok(Written::new(StatusCode::CREATED, position, order))
}

/// The requested lines, checked: 1..=100 of them, each quantity 1..=1000.
fn requested(items: Vec<OrderItemInput>) -> ApiResult<Vec<(Uuid, u32)>> {
    if items.is_empty() {
        return Err(ApiError::invalid_field(
            "items",
            "must list at least one product (leave it out to order the cart)",
        ));
    }
    if items.len() > MAX_ITEMS {
        return Err(ApiError::invalid_field(
            "items",
            format!("must list at most {MAX_ITEMS} products"),
        ));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            checked_quantity(item.quantity)
                .map(|q| (item.product_id, q))
                .map_err(|_| {
                    ApiError::invalid_field(
                        &format!("items[{i}].quantity"),
                        "must be between 1 and 1000",
                    )
                })
        })
        .collect()
}

/// The lines of the caller's cart, from its aggregate.
async fn cart_lines(state: &AppState, user_id: Uuid) -> ApiResult<Vec<(Uuid, u32)>> {
    let (cart, _) = state
        .dispatcher
        .store()
        .load::<Cart>(&user_id.to_string())
        .await?;
    Ok(cart
        .lines()
        .iter()
        .map(|l| (l.product_id, l.quantity))
        .collect())
}
