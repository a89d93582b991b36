//! Events of the `Product` aggregate.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::money::Money;

/// What happened to a `Product`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ProductEvent {
    /// A product was created (emitted by `CreateProduct`).
    ProductCreated {
        /// The product.
        product_id: Uuid,
        /// Name.
        name: String,
        /// Slug.
        slug: String,
        /// Description.
        description: String,
        /// Unit price.
        price: Money,
        /// Category.
        category_id: Uuid,
        /// Image URL.
        image_url: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A product changed (emitted by `UpdateProduct`); carries every new value and the previous
    /// category, so per-category counts can move without a lookup.
    ProductUpdated {
        /// The product.
        product_id: Uuid,
        /// Name after the update.
        name: String,
        /// Slug after the update.
        slug: String,
        /// Description after the update.
        description: String,
        /// Price after the update.
        price: Money,
        /// Category after the update.
        category_id: Uuid,
        /// Category before the update.
        previous_category_id: Uuid,
        /// Image URL after the update.
        image_url: Option<String>,
        /// When.
        at: DateTime<Utc>,
    },
    /// A product was deactivated (emitted by `DeactivateProduct`).
    ProductDeactivated {
        /// The product.
        product_id: Uuid,
        /// Its category, whose product count drops.
        category_id: Uuid,
        /// When.
        at: DateTime<Utc>,
    },
}

impl ProductEvent {
    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::ProductCreated { at, .. }
            | Self::ProductUpdated { at, .. }
            | Self::ProductDeactivated { at, .. } => *at,
        }
    }
}

impl DomainEvent for ProductEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ProductCreated { .. } => "ProductCreated",
            Self::ProductUpdated { .. } => "ProductUpdated",
            Self::ProductDeactivated { .. } => "ProductDeactivated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
