//! Commands accepted by the `Category` aggregate.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What can be asked of a `Category`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CategoryCommand {
    /// Create the category. Preconditions: it does not exist, a name of 1..=100 characters, a
    /// slug in [`super::slugify`] normal form (an empty slug means `slugify(name)`). Name
    /// uniqueness across categories is checked by the command layer. Emits `CategoryCreated`.
    CreateCategory {
        /// The new category's id.
        category_id: Uuid,
        /// Display name.
        name: String,
        /// URL slug, or empty to derive it from the name.
        slug: String,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Rename a live category (same rules as creation). Emits `CategoryRenamed`, or nothing when
    /// name and slug are unchanged.
    RenameCategory {
        /// New name.
        name: String,
        /// New slug, or empty to derive it from the name.
        slug: String,
        /// When it happened.
        at: DateTime<Utc>,
    },
    /// Delete the category (the command layer first checks that no product uses it). Emits
    /// `CategoryDeleted`; deleting again emits nothing.
    DeleteCategory {
        /// When it happened.
        at: DateTime<Utc>,
    },
}
