//! Commands accepted by the `Product` aggregate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Money;

/// What can be asked of a `Product`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProductCommand {
    /// Create the product. Preconditions: it does not exist; name 1..=200 characters; description
    /// at most 5000; price not negative; slug in `slugify` form (empty means `slugify(name)`);
    /// image URL 1..=2048 characters when given. The command layer checks the category exists.
    /// Emits `ProductCreated`.
    CreateProduct {
        /// The new product's id.
        product_id: Uuid,
        /// Display name.
        name: String,
        /// URL slug, or empty to derive it from the name.
        slug: String,
        /// Description, possibly empty.
        description: String,
        /// Unit price.
        price: Money,
        /// Its category.
        category_id: Uuid,
        /// Image URL.
        image_url: Option<String>,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Partial update of an active product: `None` keeps a field. A new name without a slug
    /// re-derives the slug. Same rules as creation. Emits `ProductUpdated` with the full new
    /// values, or nothing when nothing changes.
    UpdateProduct {
        /// New name.
        name: Option<String>,
        /// New slug.
        slug: Option<String>,
        /// New description.
        description: Option<String>,
        /// New price.
        price: Option<Money>,
        /// New category.
        category_id: Option<Uuid>,
        /// New image URL.
        image_url: Option<String>,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Soft-delete: the product leaves listings, its history stays. Emits `ProductDeactivated`;
    /// a second deactivation emits nothing.
    DeactivateProduct {
        /// When it happened.
        at: DateTime<Utc>,
    },
}
