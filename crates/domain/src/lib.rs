//! The commerce domain: aggregates, their commands, events and errors.
//!
//! Pure by design: no I/O, no clock, no randomness. Time, ids and prices arrive inside commands,
//! so every decision can be replayed from the log and tested with given/when/then.
//!
//! # Layout
//!
//! - [`money`]: `Money` (integer minor units) and the validated ISO 4217 `Currency`.
//! - [`error`]: `ErrorKind` and the `DomainError` trait every aggregate error implements.
//! - [`ids`]: deterministic aggregate ids (user by email, review by user and product).
//! - [`user`]: `User`, registration, profile, password, roles and deactivation.
//! - [`category`]: `Category`, the catalog's categories and their slugs.
//! - [`product`]: `Product`, catalog entries and their prices.
//! - [`inventory`]: `Inventory`, one per product: stock levels and per-order reservations.
//! - [`cart`]: `Cart`, one per user: the lines a customer intends to buy.
//! - [`order`]: `Order`, its lifecycle and the facts the fulfilment saga records on it.
//! - [`payment`]: `Payment`, one gateway capture and its refunds.
//! - [`payment_method`]: `PaymentMethod`, one per user: saved methods and the single default.
//! - [`review`]: `Review`, one per user and product.
#![deny(clippy::float_arithmetic)]

pub mod cart;
pub mod category;
pub mod error;
pub mod ids;
pub mod inventory;
pub mod money;
pub mod order;
pub mod payment;
pub mod payment_method;
pub mod product;
pub mod review;
pub mod user;
mod validate;
mod words;

pub use error::{DomainError, ErrorKind};

/// What a personal field reads as once its person's data was erased (guarantee 9).
pub const ERASED: &str = "[erased]";
pub use money::{Currency, Money, MoneyError};
