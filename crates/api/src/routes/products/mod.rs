//! `/products`: the public catalog (listing with filters and sorting, one product) and the admin
//! writes in [`write`]. Every read is one query on the `catalog` projection.
//!
//! Listings show active products only. `GET /products/{id}` also answers for a deactivated
//! product, with `is_active: false`, so links from past orders and reviews keep working; only
//! an id that was never created is a 404.
//!
//! Ratings and prices never pass through floating point: both are integers in hundredths in the
//! read model and are written to JSON as decimal literals (see [`Stars`] and [`Amount`]).

mod write;

use axum::extract::State;
use chrono::{DateTime, Utc};
use commerce_domain::inventory::Inventory;
use commerce_domain::product::Product;
use commerce_projections::catalog::{
    self, ProductFilter, ProductSort, ProductView, RatingView, StockView,
};
use serde::{Deserialize, Serialize, Serializer};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::consistency::MinPosition;
use crate::envelope::{Data, PageQuery, Paginated};
use crate::error::{ApiError, ApiResult};
use crate::extract::{Path, Query};
use crate::money::Amount;
use crate::routes::{as_stored, left_no};
use crate::state::AppState;

const READ_MODEL: &[&str] = &["catalog"];

/// The longest `search` text accepted.
const MAX_SEARCH_CHARS: usize = 200;

/// A product.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProductBody {
    id: Uuid,
    name: String,
    slug: String,
    description: String,
    price: Amount,
    /// ISO 4217 code.
    currency: String,
    category_id: Uuid,
    image_url: Option<String>,
    /// False once deleted (deactivated).
    is_active: bool,
    stock: StockBody,
    rating: RatingBody,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Stock levels of a product.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct StockBody {
    /// Units that can be ordered.
    available: i64,
    /// Units held for orders.
    reserved: i64,
}

/// Average rating (0 without reviews) and the number of reviews.
#[derive(Debug, Serialize, ToSchema)]
pub struct RatingBody {
    average: Stars,
    count: i64,
}

/// Average stars as a JSON number with two decimals (`4.33`), written from hundredths of a
/// star as a decimal literal: the read model's integer reaches the client without rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stars(i64);

impl Serialize for Stars {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Same representation as money: an integer of hundredths printed with two decimals.
        Amount(self.0).serialize(serializer)
    }
}

impl utoipa::PartialSchema for Stars {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .multiple_of(Some(0.01))
            .minimum(Some(0))
            .maximum(Some(5))
            .description(Some("Average stars with 2 decimals; 0 without reviews"))
            .examples([serde_json::json!(4.33)])
            .into()
    }
}

impl ToSchema for Stars {}

impl From<ProductView> for ProductBody {
    fn from(v: ProductView) -> Self {
        let StockView {
            available,
            reserved,
        } = v.stock;
        let RatingView {
            average_hundredths,
            count,
        } = v.rating;
        Self {
            id: v.id,
            name: v.name,
            slug: v.slug,
            description: v.description,
            price: Amount(v.price_minor),
            currency: v.currency,
            category_id: v.category_id,
            image_url: v.image_url,
            is_active: v.is_active,
            stock: StockBody {
                available,
                reserved,
            },
            rating: RatingBody {
                average: Stars(average_hundredths),
                count,
            },
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }
}

impl StockBody {
    /// The levels of `stock`, a product's inventory as its stream has it.
    fn of(stock: &Inventory) -> Self {
        Self {
            available: stock.available(),
            reserved: stock.reserved(),
        }
    }
}

impl ProductBody {
    /// The answer for product `id` as a command left it, with its `stock` and `rating` (facts
    /// of other aggregates).
    fn of(id: Uuid, product: &Product, stock: StockBody, rating: RatingView) -> ApiResult<Self> {
        let (Some(name), Some(slug), Some(description), Some(price), Some(category_id)) = (
            product.name(),
            product.slug(),
            product.description(),
            product.price(),
            product.category_id(),
        ) else {
            return Err(left_no("product"));
        };
        let Some((created_at, updated_at)) = product.times() else {
            return Err(left_no("product"));
        };
        Ok(Self {
            id,
            name: name.to_owned(),
            slug: slug.to_owned(),
            description: description.to_owned(),
            price: Amount(price.amount_minor),
            currency: price.currency.to_string(),
            category_id,
            image_url: product.image_url().map(str::to_owned),
            is_active: product.is_active(),
            stock,
            rating: RatingBody {
                average: Stars(rating.average_hundredths),
                count: rating.count,
            },
            created_at: as_stored(created_at),
            updated_at: as_stored(updated_at),
        })
    }
}

/// Filters, sorting and page of the product list.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProductQuery {
    /// Page number, from 1.
    #[param(minimum = 1)]
    page: Option<i64>,
    /// Items per page, 1 to 100.
    #[param(minimum = 1, maximum = 100)]
    page_size: Option<i64>,
    /// Only this category.
    category_id: Option<Uuid>,
    /// Full-text search over name and description (plain words match as prefixes).
    #[param(max_length = 200)]
    search: Option<String>,
    /// Lowest price, inclusive (a decimal with at most 2 decimals).
    #[param(value_type = Option<f64>, minimum = 0, maximum = 100_000_000_000_i64, multiple_of = 0.01, example = 10.00)]
    min_price: Option<String>,
    /// Highest price, inclusive (a decimal with at most 2 decimals).
    #[param(value_type = Option<f64>, minimum = 0, maximum = 100_000_000_000_i64, multiple_of = 0.01, example = 99.99)]
    max_price: Option<String>,
    /// `newest` (default), `price_asc`, `price_desc` or `rating`.
    #[param(schema_with = sort_schema)]
    sort: Option<String>,
}

fn sort_schema() -> utoipa::openapi::schema::Object {
    crate::openapi::string_enum(&["newest", "price_asc", "price_desc", "rating"])
}

impl ProductQuery {
    fn filter(&self) -> ApiResult<ProductFilter> {
        let price = |field: &str, value: &Option<String>| -> ApiResult<Option<i64>> {
            value
                .as_deref()
                .map(|text| {
                    Amount::parse(text)
                        .map(|a| a.0)
                        .map_err(|message| ApiError::invalid_field(field, message))
                })
                .transpose()
        };
        let min_price_minor = price("min_price", &self.min_price)?;
        let max_price_minor = price("max_price", &self.max_price)?;
        // `min_price` above `max_price` is an empty range: it matches nothing.
        let sort = match self.sort.as_deref() {
            None | Some("newest") => ProductSort::Newest,
            Some("price_asc") => ProductSort::PriceAsc,
            Some("price_desc") => ProductSort::PriceDesc,
            Some("rating") => ProductSort::Rating,
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "sort",
                    "must be one of newest, price_asc, price_desc, rating",
                ))
            }
        };
        if let Some(search) = &self.search {
            checked_text("search", search)?;
            if search.chars().count() > MAX_SEARCH_CHARS {
                return Err(ApiError::invalid_field(
                    "search",
                    format!("must have at most {MAX_SEARCH_CHARS} characters"),
                ));
            }
        }
        Ok(ProductFilter {
            category_id: self.category_id,
            search: self.search.clone(),
            min_price_minor,
            max_price_minor,
            sort,
        })
    }
}

/// The routes.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, write::create))
        .routes(routes!(get_one, write::update, write::delete))
}

/// List active products.
#[utoipa::path(get, path = "/products", tag = "products",
    params(ProductQuery),
    responses((status = 200, body = Paginated<ProductBody>), (status = 400, body = crate::error::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    min: MinPosition,
    Query(q): Query<ProductQuery>,
) -> ApiResult<axum::Json<Paginated<ProductBody>>> {
    let page = PageQuery {
        page: q.page,
        page_size: q.page_size,
    }
    .page()?;
    let filter = q.filter()?;
    min.wait(&state, READ_MODEL).await?;
    let (rows, total) = catalog::list_products(&state.pool, &filter, page).await?;
    Ok(axum::Json(Paginated::new(
        rows.into_iter().map(Into::into).collect(),
        page,
        total,
    )))
}

/// One product, active or not.
#[utoipa::path(get, path = "/products/{id}", tag = "products",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = Data<ProductBody>), (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    min: MinPosition,
    Path(id): Path<Uuid>,
) -> ApiResult<axum::Json<Data<ProductBody>>> {
    min.wait(&state, READ_MODEL).await?;
    let view = catalog::get_product(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::not_found("product"))?;
    Ok(axum::Json(Data::new(view.into())))
}

/// The product's current state from its own stream (not a read model), so a product created a
/// moment ago is found; `None` when it was never created.
pub(crate) async fn load_product(state: &AppState, id: Uuid) -> ApiResult<Option<Product>> {
    let (product, _) = state.aggregates.load::<Product>(&id.to_string()).await?;
    Ok(product.name().is_some().then_some(product))
}

/// 400 for text Postgres cannot store: a NUL character is refused by both `text` and `jsonb`,
/// so letting it through would turn bad input into a 500.
pub(crate) fn checked_text(field: &str, value: &str) -> ApiResult<()> {
    if value.contains('\0') {
        Err(ApiError::invalid_field(
            field,
            "must not contain NUL characters",
        ))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Stars;

    #[test]
    fn an_average_rating_is_written_with_two_decimals_from_hundredths() {
        assert_eq!(
            serde_json::to_string(&Stars(433)).ok().as_deref(),
            Some("4.33")
        );
        assert_eq!(
            serde_json::to_string(&Stars(500)).ok().as_deref(),
            Some("5.00")
        );
        assert_eq!(
            serde_json::to_string(&Stars(7)).ok().as_deref(),
            Some("0.07")
        );
        assert_eq!(
            serde_json::to_string(&Stars(0)).ok().as_deref(),
            Some("0.00")
        );
    }
}
