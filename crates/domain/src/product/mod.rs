//! The `Product` aggregate: a catalog entry, its price and its active flag. Stock lives in the
//! separate `Inventory` aggregate (one per product) so that reservations never contend with
//! catalog edits.

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

pub use command::ProductCommand;
pub use error::ProductError;
pub use event::ProductEvent;

use crate::category::checked_slug;
use crate::money::Money;
use crate::validate::{char_len, len_within};

/// The validated fields of a product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Details {
    name: String,
    slug: String,
    description: String,
    price: Money,
    category_id: Uuid,
    image_url: Option<String>,
}

impl Details {
    fn validated(self) -> Result<Self, ProductError> {
        let name = self.name.trim().to_owned();
        if !len_within(&name, 1, 200) {
            return Err(ProductError::InvalidName {
                length: char_len(&name),
            });
        }
        let slug =
            checked_slug(&self.slug, &name).map_err(|slug| ProductError::InvalidSlug { slug })?;
        if char_len(&self.description) > 5000 {
            return Err(ProductError::DescriptionTooLong {
                length: char_len(&self.description),
            });
        }
        if self.price.is_negative() {
            return Err(ProductError::NegativePrice { price: self.price });
        }
        if let Some(url) = &self.image_url {
            if !len_within(url.trim(), 1, 2048) {
                return Err(ProductError::InvalidImageUrl {
                    length: char_len(url.trim()),
                });
            }
        }
        let image_url = self.image_url.map(|url| url.trim().to_owned());
        Ok(Self {
            name,
            slug,
            image_url,
            ..self
        })
    }
}

/// A catalog product, folded from its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Product {
    product_id: Option<Uuid>,
    details: Option<Details>,
    active: bool,
    /// The `at` of the first and of the latest event; required, so an older snapshot is replayed.
    times: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

impl Product {
    /// Whether the product exists and is active (orderable).
    pub fn is_active(&self) -> bool {
        self.product_id.is_some() && self.active
    }

    /// The current name.
    pub fn name(&self) -> Option<&str> {
        self.details.as_ref().map(|d| d.name.as_str())
    }

    /// The current price.
    pub fn price(&self) -> Option<Money> {
        self.details.as_ref().map(|d| d.price)
    }

    /// The current category.
    pub fn category_id(&self) -> Option<Uuid> {
        self.details.as_ref().map(|d| d.category_id)
    }

    /// The URL slug, once created.
    pub fn slug(&self) -> Option<&str> {
        self.details.as_ref().map(|d| d.slug.as_str())
    }

    /// The description, once created.
    pub fn description(&self) -> Option<&str> {
        self.details.as_ref().map(|d| d.description.as_str())
    }

    /// The image URL, if it has one.
    pub fn image_url(&self) -> Option<&str> {
        self.details.as_ref().and_then(|d| d.image_url.as_deref())
    }

    /// When it was created and last changed, deactivation included (the `at` of its first and
    /// latest event); `None` before creation.
    pub fn times(&self) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        self.times
    }

    fn decide(&self, command: ProductCommand) -> Result<Vec<ProductEvent>, ProductError> {
        match command {
            ProductCommand::CreateProduct {
                product_id,
                name,
                slug,
                description,
                price,
                category_id,
                image_url,
                at,
            } => {
                if self.product_id.is_some() {
                    return Err(ProductError::AlreadyExists);
                }
                let d = Details {
                    name,
                    slug,
                    description,
                    price,
                    category_id,
                    image_url,
                }
                .validated()?;
                Ok(vec![ProductEvent::ProductCreated {
                    product_id,
                    name: d.name,
                    slug: d.slug,
                    description: d.description,
                    price: d.price,
                    category_id: d.category_id,
                    image_url: d.image_url,
                    at,
                }])
            }
            ProductCommand::UpdateProduct {
                name,
                slug,
                description,
                price,
                category_id,
                image_url,
                at,
            } => {
                let (product_id, current) = match (self.product_id, &self.details) {
                    (Some(id), Some(details)) => (id, details),
                    _ => return Err(ProductError::NotFound),
                };
                if !self.active {
                    return Err(ProductError::Inactive);
                }
                let slug = match (slug, &name) {
                    (Some(slug), _) => slug,
                    (None, Some(_)) => String::new(),
                    (None, None) => current.slug.clone(),
                };
                let d = Details {
                    name: name.unwrap_or_else(|| current.name.clone()),
                    slug,
                    description: description.unwrap_or_else(|| current.description.clone()),
                    price: price.unwrap_or(current.price),
                    category_id: category_id.unwrap_or(current.category_id),
                    image_url: image_url.or_else(|| current.image_url.clone()),
                }
                .validated()?;
                if &d == current {
                    return Ok(vec![]);
                }
                Ok(vec![ProductEvent::ProductUpdated {
                    product_id,
                    name: d.name,
                    slug: d.slug,
                    description: d.description,
                    price: d.price,
                    category_id: d.category_id,
                    previous_category_id: current.category_id,
                    image_url: d.image_url,
                    at,
                }])
            }
            ProductCommand::DeactivateProduct { at } => {
                let (product_id, category_id) = match (self.product_id, &self.details) {
                    (Some(id), Some(details)) => (id, details.category_id),
                    _ => return Err(ProductError::NotFound),
                };
                if !self.active {
                    return Ok(vec![]);
                }
                Ok(vec![ProductEvent::ProductDeactivated {
                    product_id,
                    category_id,
                    at,
                }])
            }
        }
    }
}

impl Aggregate for Product {
    const TYPE: &'static str = "Product";
    type Command = ProductCommand;
    type Event = ProductEvent;
    type Error = ProductError;
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
            ProductEvent::ProductCreated {
                product_id,
                name,
                slug,
                description,
                price,
                category_id,
                image_url,
                ..
            }
            | ProductEvent::ProductUpdated {
                product_id,
                name,
                slug,
                description,
                price,
                category_id,
                image_url,
                ..
            } => {
                self.product_id = Some(product_id);
                self.details = Some(Details {
                    name,
                    slug,
                    description,
                    price,
                    category_id,
                    image_url,
                });
                self.active = true;
            }
            ProductEvent::ProductDeactivated { .. } => self.active = false,
        }
        self.times = Some(self.times.map_or((at, at), |(created, _)| (created, at)));
    }
}
