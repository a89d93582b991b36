//! Admin writes of `/products`: create (with its initial stock), partial update, soft delete.
//!
//! Everything the domain cannot check is checked here before any command runs, so bad input
//! appends nothing: money is parsed from its literal text, the currency is validated, and the
//! category must be a live one. An unknown `category_id` in the body is a 400 on that field (it is
//! invalid input, not an unknown resource in the path). Each write answers from the aggregates it
//! ran (the product, and its inventory for the stock), never waiting for a read model; the rating
//! is the reviews' to know, so it is read from the catalog's ratings (zero for a new product).

use axum::extract::State;
use axum::http::StatusCode;
use chrono::Utc;
use commerce_domain::category::Category;
use commerce_domain::inventory::{Inventory, InventoryCommand, StockAdjustment};
use commerce_domain::product::{Product, ProductCommand};
use commerce_domain::{Currency, Money};
use commerce_projections::catalog::{self, RatingView};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{checked_text, ProductBody, StockBody};
use crate::auth::Caller;
use crate::consistency::Written;
use crate::context::RequestId;
use crate::envelope::Data;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Json, Path};
use crate::money::Amount;
use crate::routes::slug_for;
use crate::state::AppState;

/// A new product.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewProduct {
    /// 1 to 200 characters (trimmed).
    // 1 to 200 characters once trimmed (the length is checked after trimming, so it is
    // in the pattern, not a `maxLength` of the untrimmed text); no NUL.
    #[schema(pattern = r"^\s*[^\s\u0000]([^\u0000]{0,198}[^\s\u0000])?\s*$")]
    name: String,
    /// At most 5000 characters; may be empty.
    #[schema(max_length = 5000)]
    description: String,
    /// Unit price, at most 2 decimals.
    price: Amount,
    /// ISO 4217 code; `USD` when absent.
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: Option<String>,
    /// A live category.
    category_id: Uuid,
    /// URL slug: lowercase ASCII letters and digits joined by single hyphens; derived from the
    /// name when absent or blank.
    #[serde(default)]
    #[schema(
        max_length = 120,
        pattern = r"^[ \t\n\r]*([a-z0-9]+(-[a-z0-9]+)*)?[ \t\n\r]*$"
    )]
    slug: Option<String>,
    /// Image URL, 1 to 2048 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 2048)]
    image_url: Option<String>,
    /// Units in stock from the start.
    #[serde(default)]
    initial_stock: Option<u32>,
}

/// A partial update: absent (or null) fields keep their value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProductUpdate {
    #[serde(default)]
    // 1 to 200 characters once trimmed (the length is checked after trimming, so it is
    // in the pattern, not a `maxLength` of the untrimmed text); no NUL.
    #[schema(pattern = r"^\s*[^\s\u0000]([^\u0000]{0,198}[^\s\u0000])?\s*$")]
    name: Option<String>,
    /// New slug (lowercase ASCII letters and digits joined by single hyphens); a new name
    /// without one re-derives it.
    #[serde(default)]
    #[schema(
        max_length = 120,
        pattern = r"^[ \t\n\r]*([a-z0-9]+(-[a-z0-9]+)*)?[ \t\n\r]*$"
    )]
    slug: Option<String>,
    #[serde(default)]
    #[schema(max_length = 5000)]
    description: Option<String>,
    #[serde(default)]
    price: Option<Amount>,
    /// ISO 4217 code; changing it alone keeps the amount.
    #[serde(default)]
    #[schema(pattern = "^[A-Z]{3}$")]
    currency: Option<String>,
    #[serde(default)]
    category_id: Option<Uuid>,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 2048)]
    image_url: Option<String>,
}

/// Create a product, and its stock when `initial_stock` > 0 (admin).
#[utoipa::path(post, path = "/products", tag = "products", security(("bearer" = [])),
    request_body = NewProduct,
    responses((status = 201, body = Data<ProductBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, description = "No such category", body = crate::error::ErrorBody)))]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Json(input): Json<NewProduct>,
) -> ApiResult<Written<ProductBody>> {
    caller.require_admin()?;
    let currency = currency(input.currency.as_deref())?.unwrap_or(Currency::USD);
    check_texts(
        Some(&input.name),
        input.slug.as_deref(),
        Some(&input.description),
        input.image_url.as_deref(),
    )?;
    check_name(&input.name)?;
    require_category(&state, input.category_id).await?;
    let id = Uuid::new_v4();
    let at = Utc::now();
    let metadata = request_id.metadata(&caller);
    let created = state
        .dispatcher
        .execute::<Product>(
            &id.to_string(),
            ProductCommand::CreateProduct {
                product_id: id,
                slug: slug_for(input.slug, &input.name, "product", id).unwrap_or_default(),
                name: input.name,
                description: input.description,
                price: Money::new(input.price.0, currency),
                category_id: input.category_id,
                image_url: input.image_url,
                at,
            },
            &metadata,
        )
        .await?;
    let mut position = created.position;
    let mut stock = StockBody::default();
    if let Some(units) = input.initial_stock.filter(|n| *n > 0) {
        let stocked = state
            .dispatcher
            .execute::<Inventory>(
                &id.to_string(),
                InventoryCommand::AdjustStock {
                    product_id: id,
                    adjustment: StockAdjustment::Add(units),
                    reason: Some("initial stock".to_owned()),
                    at,
                },
                &metadata,
            )
            .await?;
        position = position.max(stocked.position);
        stock = StockBody::of(&stocked.aggregate);
    }
    // A product nobody could have reviewed yet.
    let rating = RatingView {
        average_hundredths: 0,
        count: 0,
    };
    let body = ProductBody::of(id, &created.aggregate, stock, rating)?;
    Ok(Written::new(StatusCode::CREATED, position, body))
}

/// Change some fields of an active product (admin).
#[utoipa::path(put, path = "/products/{id}", tag = "products", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = ProductUpdate,
    responses((status = 200, body = Data<ProductBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub(super) async fn update(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
    Json(input): Json<ProductUpdate>,
) -> ApiResult<Written<ProductBody>> {
    caller.require_admin()?;
    let new_currency = currency(input.currency.as_deref())?;
    check_texts(
        input.name.as_deref(),
        input.slug.as_deref(),
        input.description.as_deref(),
        input.image_url.as_deref(),
    )?;
    if let Some(name) = &input.name {
        check_name(name)?;
    }
    let (product, version) = state.aggregates.load::<Product>(&id.to_string()).await?;
    let Some(current_name) = product.name().map(str::to_owned) else {
        return Err(ApiError::not_found("product"));
    };
    if let Some(category_id) = input.category_id {
        require_category(&state, category_id).await?;
    }
    // The command takes a whole price; a missing half is the product's current one.
    let price = match (input.price, new_currency) {
        (None, None) => None,
        (amount, currency) => {
            // `load_product` found the product, so it has a price; the fallback is unreachable.
            let current = product.price().unwrap_or(Money::zero(Currency::USD));
            Some(Money::new(
                amount.map_or(current.amount_minor, |a| a.0),
                currency.unwrap_or(current.currency),
            ))
        }
    };
    let executed = state
        .dispatcher
        .execute_from::<Product>(
            &id.to_string(),
            ProductCommand::UpdateProduct {
                // A new name or slug gets a slug it can be written with; neither keeps the slug.
                slug: if input.name.is_some() || input.slug.is_some() {
                    let name = input.name.as_deref().unwrap_or(&current_name);
                    slug_for(input.slug, name, "product", id)
                } else {
                    None
                },
                name: input.name,
                description: input.description,
                price,
                category_id: input.category_id,
                image_url: input.image_url,
                at: Utc::now(),
            },
            &request_id.metadata(&caller),
            (product, version),
        )
        .await?;
    // Stock and rating are other aggregates' facts: the inventory from its own stream, the
    // rating from the reviews as the catalog counts them.
    let (inventory, _) = state.aggregates.load::<Inventory>(&id.to_string()).await?;
    let rating = catalog::rating(&state.pool, id).await?;
    let body = ProductBody::of(id, &executed.aggregate, StockBody::of(&inventory), rating)?;
    Ok(Written::new(StatusCode::OK, executed.position, body))
}

/// Deactivate a product: it leaves listings, its history stays (admin).
#[utoipa::path(delete, path = "/products/{id}", tag = "products", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
pub(super) async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    request_id: RequestId,
    Path(id): Path<Uuid>,
) -> ApiResult<Written<()>> {
    caller.require_admin()?;
    let executed = state
        .dispatcher
        .execute::<Product>(
            &id.to_string(),
            ProductCommand::DeactivateProduct { at: Utc::now() },
            &request_id.metadata(&caller),
        )
        .await?;
    Ok(Written::no_content(executed.position))
}

fn currency(code: Option<&str>) -> ApiResult<Option<Currency>> {
    code.map(|c| {
        Currency::new(c)
            .map_err(|_| ApiError::invalid_field("currency", "must be an ISO 4217 code like USD"))
    })
    .transpose()
}

/// 400 unless the name has 1 to 200 characters once trimmed (as the aggregate checks it), before
/// any lookup can answer 404 for a request that is malformed anyway.
fn check_name(name: &str) -> ApiResult<()> {
    if (1..=200).contains(&name.trim().chars().count()) {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            "name",
            "must have 1 to 200 characters",
        ))
    }
}

fn check_texts(
    name: Option<&str>,
    slug: Option<&str>,
    description: Option<&str>,
    image_url: Option<&str>,
) -> ApiResult<()> {
    let fields = [
        ("name", name),
        ("slug", slug),
        ("description", description),
        ("image_url", image_url),
    ];
    for (field, value) in fields {
        if let Some(value) = value {
            checked_text(field, value)?;
        }
    }
    Ok(())
}

/// 404 unless `category_id` names a live category, as its own stream says (a category
/// created a moment ago counts, whether or not the read models show it yet).
async fn require_category(state: &AppState, category_id: Uuid) -> ApiResult<()> {
    let (category, _) = state
        .aggregates
        .load::<Category>(&category_id.to_string())
        .await?;
    if category.is_live() {
        Ok(())
    } else {
        Err(ApiError::not_found("category"))
    }
}
