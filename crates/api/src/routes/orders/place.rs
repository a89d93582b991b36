//! `POST /orders`: the caller's cart (emptied afterwards) or the given items become an order, at
//! the catalog's prices of this moment.
//!
//! Rules kept here: every product exists (404) and is sold (409), quantities are whole numbers in
//! 1..=1000, and an order has a line (400), all checked before anything is written. The cart is
//! read from its aggregate, not the carts read model, so a line added just before is ordered too.
//! `Idempotency-Key` makes a repeat return the first answer and write nothing. The 201 body is
//! folded from the order's own events, never waited for in the orders projection.
//!
//! With a key, the order id is derived from (user, body, key), so running the request again can
//! never place a second order: when the first run appended the order but its answer was never
//! stored (the process died, or it failed after the append), the idempotency layer lets the
//! request run again, and the run finds the order and answers it as placed, as a replay. It does
//! not touch the cart then: lines added since must not be lost (a cart the dead run had not
//! emptied yet stays as it is, as when emptying it fails).

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use commerce_domain::cart::{Cart, CartClearReason, CartCommand};
use commerce_domain::order::{Order, OrderCommand, OrderLine};
use cqrs_es::Aggregate;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use super::as_of::{order_body, order_from_log, Until};
use super::body::{Address, OrderBody};
use crate::auth::Caller;
use crate::consistency::{MinPosition, Written};
use crate::context::RequestId;
use crate::envelope::Data;
use crate::error::{error_chain, ApiError, ApiResult, ErrorBody};
use crate::extract::Json;
use crate::idempotency::{self, IdempotencyKey, REPLAYED};
use crate::routes::cart::{checked_quantity, orderable};
use crate::state::AppState;

/// Most lines an order may list (as many as a cart holds).
const MAX_ITEMS: usize = commerce_domain::cart::MAX_LINES;
/// Catalog lookups of one order run this many at a time.
const CATALOG_LOOKUPS: usize = 4;
/// Namespace of [`keyed_order_id`]. Never change it: a retry must find the order its first run
/// placed.
const KEYED_ORDER_NAMESPACE: Uuid = Uuid::from_u128(0x0d3c_9b6e_41f2_4a8b_b5e1_7c2a_1d0e_0001);

/// A new order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceOrderInput {
    shipping_address: Address,
    /// How the customer intends to pay, e.g. `card` (1 to 50 characters).
    #[schema(min_length = 1, max_length = 50)]
    payment_method: String,
    /// What to order; without it, the cart is ordered (and then emptied).
    #[serde(default)]
    #[schema(min_items = 1, max_items = 100)]
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
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$",
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
    let order_id = key.0.as_deref().map_or_else(Uuid::new_v4, |key| {
        keyed_order_id(caller.user_id, &fingerprint, key)
    });
    idempotency::once(
        &state,
        caller.user_id,
        "POST /orders",
        &key,
        &fingerprint,
        || async {
            if key.0.is_some() {
                if let Some(answer) = placed_before(&state, &caller, order_id).await? {
                    return Ok(answer);
                }
            }
            place(&state, &caller, &request_id, min, order_id, input)
                .await
                .map(IntoResponse::into_response)
        },
    )
    .await
}

/// The id of the order placed by `user_id`'s request with body `fingerprint` and
/// `Idempotency-Key` `key`: UUID v5 of the three under [`KEYED_ORDER_NAMESPACE`].
fn keyed_order_id(user_id: Uuid, fingerprint: &[u8], key: &str) -> Uuid {
    // Fixed-length parts first, so no two (body, key) pairs give the same name.
    let mut name = Vec::with_capacity(48 + key.len());
    name.extend_from_slice(user_id.as_bytes());
    name.extend_from_slice(&Sha256::digest(fingerprint));
    name.extend_from_slice(key.as_bytes());
    Uuid::new_v5(&KEYED_ORDER_NAMESPACE, &name)
}

/// The first answer again when an earlier run of this keyed request placed `order_id` already:
/// the order as `PlaceOrder` left it (version 1: it writes `OrderPlaced` alone) and the position
/// of the order's latest event, marked as a replay. `None` when no such order of the caller's
/// exists (placing one under an id that is taken is then refused as a conflict).
async fn placed_before(
    state: &AppState,
    caller: &Caller,
    order_id: Uuid,
) -> ApiResult<Option<Response>> {
    let Some(order) = order_from_log(state, order_id, Until::Version(1))
        .await?
        .filter(|order| order.user_id == caller.user_id)
    else {
        return Ok(None);
    };
    let position = state
        .log
        .last_of_stream(Order::TYPE, &order_id.to_string())
        .await?
        .unwrap_or_default();
    let replayed = [(REPLAYED, HeaderValue::from_static("true"))];
    let answer = Written::new(StatusCode::CREATED, position, order);
    Ok(Some((replayed, answer).into_response()))
}

async fn place(
    state: &AppState,
    caller: &Caller,
    request_id: &RequestId,
    min: MinPosition,
    order_id: Uuid,
    input: PlaceOrderInput,
) -> ApiResult<Written<OrderBody>> {
    // The cart as loaded here is the one emptied afterwards: loaded once.
    let (wanted, cart) = match input.items {
        Some(items) if items.is_empty() => {
            return Err(ApiError::invalid_field("items", "must have 1 to 100 items"))
        }
        Some(items) => (requested(items)?, None),
        None => {
            let (cart, version) = state
                .aggregates
                .load::<Cart>(&caller.user_id.to_string())
                .await?;
            (cart_lines(&cart), Some((cart, version)))
        }
    };
    if wanted.is_empty() {
        // API.md: nothing to order is a 400, whether `items` is empty or the cart is.
        return Err(ApiError::bad_request(
            "nothing to order: the cart is empty and no items were given",
        ));
    }
    // Lets a client order a product right after creating it, by sending its position.
    min.header_only().wait(state, &["catalog"]).await?;
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
    let mut position = placed.position;
    if let Some(cart) = cart {
        let clear = CartCommand::ClearCart {
            reason: CartClearReason::CheckedOut { order_id },
            at: Utc::now(),
        };
        // The order stands whatever happens here: failing the request now would make the client
        // (or the idempotency layer, which forgets a 5xx) place it a second time.
        match state
            .dispatcher
            .execute_from::<Cart>(&caller.user_id.to_string(), clear, &metadata, cart)
            .await
        {
            Ok(cleared) => position = position.max(cleared.position),
            Err(e) => {
                tracing::warn!(%order_id, error = %error_chain(&e), "cart not emptied after checkout");
            }
        }
    }
    let order = order_body(order_id, &placed.aggregate)
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
fn cart_lines(cart: &Cart) -> Vec<(Uuid, u32)> {
    cart.lines()
        .iter()
        .map(|l| (l.product_id, l.quantity))
        .collect()
}
