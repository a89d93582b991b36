//! Queries over the catalog read model: a product by id, the filtered and sorted product list,
//! and the few facts the API needs to build cart and order commands.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use uuid::Uuid;

use crate::Page;

/// Stock levels of a product, as its last inventory event stated them (0 and 0 before any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct StockView {
    /// Units that can be ordered.
    pub available: i64,
    /// Units held for orders.
    pub reserved: i64,
}

/// A product's rating. No floating point: the average is in hundredths of a star, rounded half
/// away from zero (`433` for 4.33 stars; the API shows `average_hundredths / 100` with two
/// decimals), and 0 while there are no reviews.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct RatingView {
    /// Average stars times 100, rounded; 0 without reviews.
    pub average_hundredths: i64,
    /// Live reviews.
    #[sqlx(rename = "rating_count")]
    pub count: i64,
}

/// A product as `GET /products` and `GET /products/{id}` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct ProductView {
    /// Product id.
    pub id: Uuid,
    /// Display name.
    pub name: String,
    /// URL slug.
    pub slug: String,
    /// Description, possibly empty.
    pub description: String,
    /// Unit price in minor units of `currency`.
    pub price_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Its category.
    pub category_id: Uuid,
    /// The category's current (or, once deleted, last) name; `None` if its creation was never seen.
    pub category_name: Option<String>,
    /// Image URL.
    pub image_url: Option<String>,
    /// False once deactivated (soft-deleted).
    pub is_active: bool,
    /// Stock levels.
    #[sqlx(flatten)]
    pub stock: StockView,
    /// Rating.
    #[sqlx(flatten)]
    pub rating: RatingView,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// Last change of the product itself (stock and rating changes excluded).
    pub updated_at: DateTime<Utc>,
}

/// What the API needs of a product to build a cart or order command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct CartProduct {
    /// Product id.
    pub id: Uuid,
    /// Current name.
    pub name: String,
    /// Current unit price in minor units of `currency`.
    pub price_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Whether it can be ordered.
    pub is_active: bool,
}

/// Order of [`list_products`]; ties are always broken by id, so pages never overlap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductSort {
    /// Most recently created first.
    #[default]
    Newest,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
    /// Best average rating first, then most reviewed; unrated products last.
    Rating,
}

impl ProductSort {
    /// A fixed `ORDER BY` clause: never built from user input.
    fn order_by(self) -> &'static str {
        match self {
            Self::Newest => "p.created_at DESC, p.id",
            Self::PriceAsc => "p.price_minor ASC, p.id",
            Self::PriceDesc => "p.price_minor DESC, p.id",
            Self::Rating => {
                "r.rating_sum::numeric / nullif(r.rating_count, 0) DESC NULLS LAST, \
                 coalesce(r.rating_count, 0) DESC, p.id"
            }
        }
    }
}

/// Filters of [`list_products`]; `None` leaves a filter out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProductFilter {
    /// Only this category.
    pub category_id: Option<Uuid>,
    /// Full-text search over name and description. Any text is safe: plain words match as
    /// prefixes (`lap` finds "Laptop"); anything else is read as a web search query (`"exact
    /// phrase"`, `-excluded`, `or`). Blank means no filter.
    pub search: Option<String>,
    /// Lowest price, in minor units (inclusive; compared regardless of currency).
    pub min_price_minor: Option<i64>,
    /// Highest price, in minor units (inclusive; compared regardless of currency).
    pub max_price_minor: Option<i64>,
    /// Order.
    pub sort: ProductSort,
}

const PRODUCT_COLUMNS: &str = "p.id, p.name, p.slug, p.description, p.price_minor, p.currency, \
     p.category_id, c.name AS category_name, p.image_url, p.is_active, \
     coalesce(s.available, 0) AS available, coalesce(s.reserved, 0) AS reserved, \
     coalesce(round(r.rating_sum * 100::numeric / nullif(r.rating_count, 0))::bigint, 0) \
       AS average_hundredths, \
     coalesce(r.rating_count, 0) AS rating_count, p.created_at, p.updated_at";

const PRODUCT_JOINS: &str = "FROM catalog.products p \
     LEFT JOIN catalog.categories c ON c.id = p.category_id \
     LEFT JOIN catalog.stock s ON s.product_id = p.id \
     LEFT JOIN catalog.ratings r ON r.product_id = p.id";

/// `$1` category, `$2` web search text, `$3` prefix `tsquery` (preferred when given), `$4` and
/// `$5` the price bounds.
const LIST_FILTER: &str = "WHERE p.is_active \
     AND ($1::uuid IS NULL OR p.category_id = $1) \
     AND ($2::text IS NULL OR p.search @@ coalesce(to_tsquery('simple', $3::text), \
                                                   websearch_to_tsquery('simple', $2::text))) \
     AND ($4::bigint IS NULL OR p.price_minor >= $4) \
     AND ($5::bigint IS NULL OR p.price_minor <= $5)";

/// One product by id, active or not.
pub async fn get_product(pool: &PgPool, id: Uuid) -> Result<Option<ProductView>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} {PRODUCT_JOINS} WHERE p.id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// The rating of product `id` from its reviews (zero without any): what a product write answers
/// with, since the reviews are not the product's to know.
pub async fn rating(pool: &PgPool, id: Uuid) -> Result<RatingView, sqlx::Error> {
    let rating = sqlx::query_as(
        "SELECT coalesce(round(rating_sum * 100::numeric / nullif(rating_count, 0))::bigint, 0) \
           AS average_hundredths, rating_count \
         FROM catalog.ratings WHERE product_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(rating.unwrap_or(RatingView {
        average_hundredths: 0,
        count: 0,
    }))
}

/// A page of active products matching `filter`, in its order, with the total count.
pub async fn list_products(
    pool: &PgPool,
    filter: &ProductFilter,
    page: Page,
) -> Result<(Vec<ProductView>, i64), sqlx::Error> {
    let search = filter
        .search
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty());
    let prefix = search.and_then(prefix_query);
    let rows = sqlx::query_as(&format!(
        "SELECT {PRODUCT_COLUMNS} {PRODUCT_JOINS} {LIST_FILTER} ORDER BY {} LIMIT $6 OFFSET $7",
        filter.sort.order_by()
    ))
    .bind(filter.category_id)
    .bind(search)
    .bind(prefix.as_deref())
    .bind(filter.min_price_minor)
    .bind(filter.max_price_minor)
    .bind(page.limit())
    .bind(page.offset())
    .fetch_all(pool)
    .await?;
    let total = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM catalog.products p {LIST_FILTER}"
    ))
    .bind(filter.category_id)
    .bind(search)
    .bind(prefix.as_deref())
    .bind(filter.min_price_minor)
    .bind(filter.max_price_minor)
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

/// Name, price and active flag of a product, for cart and order commands.
pub async fn product_for_cart(pool: &PgPool, id: Uuid) -> Result<Option<CartProduct>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, name, price_minor, currency, is_active FROM catalog.products WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// A `tsquery` matching every word of `search` as a prefix (`lap:* & pro:*`), when `search` is
/// only plain words; `None` (use the web search syntax) otherwise. Words of letters and digits
/// only can never form `tsquery` operators, so the result is always valid syntax.
fn prefix_query(search: &str) -> Option<String> {
    let words: Vec<&str> = search.split_whitespace().collect();
    let plain = !words.is_empty()
        && words
            .iter()
            .all(|w| w.chars().all(char::is_alphanumeric) && !w.eq_ignore_ascii_case("or"));
    plain.then(|| {
        words
            .iter()
            .map(|w| format!("{w}:*"))
            .collect::<Vec<_>>()
            .join(" & ")
    })
}

#[cfg(test)]
mod tests {
    use super::prefix_query;

    #[test]
    fn plain_words_become_prefixes_and_anything_else_is_left_to_web_search() {
        assert_eq!(prefix_query("lap PRO"), Some("lap:* & PRO:*".to_owned()));
        assert_eq!(prefix_query("café 4k"), Some("café:* & 4k:*".to_owned()));
        assert_eq!(prefix_query("red or blue"), None);
        assert_eq!(prefix_query("\"a phrase\""), None);
        assert_eq!(prefix_query("shoes -red"), None);
        assert_eq!(prefix_query("x' OR 1=1; --"), None);
        assert_eq!(prefix_query("a:*|b"), None);
    }
}
