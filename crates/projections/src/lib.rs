//! The read side: projection workers, their read models and the queries the API calls.
//!
//! Every projection owns one Postgres schema named after it (tables defined in `migrations/`),
//! is fed by its own durable consumer (queue `<ns>.<name>`, catch-up from the log first), and
//! applies events with unqualified table names under a `search_path` set per transaction. That is
//! what lets a rebuild replay the log into a shadow copy of the schema and swap it in atomically.
//!
//! # Layout
//! - [`projection`]: the [`Projection`] trait and the consumer handler that runs one.
//! - [`rebuild`]: replay into a shadow schema, verify, swap (guarantee 6).
//! - [`wait`]: read-your-writes: wait until projections have passed a position (guarantee 7).
//! - [`page`]: pagination of list queries.
//! - [`registry`]: every projection by name, to run or rebuild.
//! - [`users`]: users (profile, roles, active flag).
//! - [`catalog`]: products with category, stock and rating; search, filters, sorting.
//! - [`categories`]: categories with product counts.
//! - [`inventory`]: stock levels and movement history.
//! - [`carts`]: shopping carts.
//! - [`orders`]: orders with items and statuses.
//! - [`payments`]: payments and saved payment methods.
//! - [`reviews`]: product reviews.

pub mod carts;
pub mod catalog;
pub mod categories;
pub mod erasure;
pub mod inventory;
pub mod orders;
pub mod page;
pub mod payments;
pub mod projection;
pub mod rebuild;
pub mod registry;
pub mod reviews;
pub mod users;
pub mod wait;

pub use page::Page;
pub use projection::{Projection, ProjectionHandler};
