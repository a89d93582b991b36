//! Events of the `Category` aggregate.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What happened to a `Category`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CategoryEvent {
    /// A category was created (emitted by `CreateCategory`).
    CategoryCreated {
        /// The category.
        category_id: Uuid,
        /// Name.
        name: String,
        /// Slug.
        slug: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A category got a new name and slug (emitted by `RenameCategory`).
    CategoryRenamed {
        /// The category.
        category_id: Uuid,
        /// New name.
        name: String,
        /// New slug.
        slug: String,
        /// Name before the rename.
        previous_name: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// A category was deleted (emitted by `DeleteCategory`).
    CategoryDeleted {
        /// The category.
        category_id: Uuid,
        /// Its last name.
        name: String,
        /// When.
        at: DateTime<Utc>,
    },
}

impl CategoryEvent {
    /// When it happened.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Self::CategoryCreated { at, .. }
            | Self::CategoryRenamed { at, .. }
            | Self::CategoryDeleted { at, .. } => *at,
        }
    }
}

impl DomainEvent for CategoryEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CategoryCreated { .. } => "CategoryCreated",
            Self::CategoryRenamed { .. } => "CategoryRenamed",
            Self::CategoryDeleted { .. } => "CategoryDeleted",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        "1.0".to_owned()
    }
}
