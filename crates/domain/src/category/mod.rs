//! The `Category` aggregate: a catalog category's name and slug, and its deletion. Name
//! uniqueness and "no products use it" are checked by the command layer before it sends the
//! command; the aggregate keeps its own lifecycle (created once, no rename after deletion).

mod command;
mod error;
mod event;
#[cfg(test)]
mod tests;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use command::CategoryCommand;
pub use error::CategoryError;
pub use event::CategoryEvent;

use crate::validate::{char_len, len_within};

/// The URL slug of a name: ASCII letters and digits lower-cased, every other run of characters
/// turned into a single hyphen, no leading or trailing hyphen (`"Home & Garden"` → `"home-garden"`).
pub fn slugify(name: &str) -> String {
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.is_empty() && !slug.ends_with('-') {
            slug.push('-');
        }
    }
    while slug.ends_with('-') {
        slug.pop();
    }
    slug
}

/// Validates a slug (an empty one is derived from `name`); shared with `Product`.
pub(crate) fn checked_slug(slug: &str, name: &str) -> Result<String, String> {
    let slug = if slug.trim().is_empty() {
        slugify(name)
    } else {
        slug.trim().to_owned()
    };
    if !slug.is_empty() && char_len(&slug) <= 120 && slugify(&slug) == slug {
        Ok(slug)
    } else {
        Err(slug)
    }
}

fn checked_name(name: &str) -> Result<String, CategoryError> {
    let name = name.trim();
    if len_within(name, 1, 100) {
        Ok(name.to_owned())
    } else {
        Err(CategoryError::InvalidName {
            length: char_len(name),
        })
    }
}

fn checked_name_and_slug(name: &str, slug: &str) -> Result<(String, String), CategoryError> {
    let name = checked_name(name)?;
    let slug = checked_slug(slug, &name).map_err(|slug| CategoryError::InvalidSlug { slug })?;
    Ok((name, slug))
}

/// A catalog category, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Category {
    category_id: Option<Uuid>,
    name: String,
    slug: String,
    deleted: bool,
    /// The `at` of the first and of the latest event; required, so an older snapshot is replayed.
    times: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Category {
    /// The current name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL slug.
    pub fn slug(&self) -> &str {
        &self.slug
    }

    /// When it was created and last renamed or deleted (the `at` of its first and latest event).
    pub fn times(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.times
    }

    /// Whether the category exists and is not deleted.
    pub fn is_live(&self) -> bool {
        self.category_id.is_some() && !self.deleted
    }

    fn decide(&self, command: CategoryCommand) -> Result<Vec<CategoryEvent>, CategoryError> {
        match command {
            CategoryCommand::CreateCategory {
                category_id,
                name,
                slug,
                at,
            } => {
                if self.category_id.is_some() {
                    return Err(CategoryError::AlreadyExists);
                }
                let (name, slug) = checked_name_and_slug(&name, &slug)?;
                Ok(vec![CategoryEvent::CategoryCreated {
                    category_id,
                    name,
                    slug,
                    at,
                }])
            }
            CategoryCommand::RenameCategory { name, slug, at } => {
                let category_id = self.category_id.ok_or(CategoryError::NotFound)?;
                if self.deleted {
                    return Err(CategoryError::Deleted);
                }
                let (name, slug) = checked_name_and_slug(&name, &slug)?;
                if name == self.name && slug == self.slug {
                    return Ok(vec![]);
                }
                let previous_name = self.name.clone();
                Ok(vec![CategoryEvent::CategoryRenamed {
                    category_id,
                    name,
                    slug,
                    previous_name,
                    at,
                }])
            }
            CategoryCommand::DeleteCategory { at } => {
                let category_id = self.category_id.ok_or(CategoryError::NotFound)?;
                if self.deleted {
                    return Ok(vec![]);
                }
                Ok(vec![CategoryEvent::CategoryDeleted {
                    category_id,
                    name: self.name.clone(),
                    at,
                }])
            }
        }
    }
}

impl Aggregate for Category {
    const TYPE: &'static str = "Category";
    type Command = CategoryCommand;
    type Event = CategoryEvent;
    type Error = CategoryError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        let at = event.at();
        match event {
            CategoryEvent::CategoryCreated {
                category_id,
                name,
                slug,
                ..
            } => {
                *self = Self {
                    category_id: Some(category_id),
                    name,
                    slug,
                    deleted: false,
                    times: None,
                };
            }
            CategoryEvent::CategoryRenamed { name, slug, .. } => {
                self.name = name;
                self.slug = slug;
            }
            CategoryEvent::CategoryDeleted { .. } => self.deleted = true,
        }
        self.times = Some(self.times.map_or((at, at), |(created, _)| (created, at)));
    }
}
