//! Authentication and roles.
//!
//! - [`password`]: argon2id hashing and verification, off the async worker threads.
//! - [`token`]: short-lived HS256 access tokens.
//! - [`refresh`]: rotating refresh tokens stored (hashed) in Postgres; reuse revokes the family.
//! - [`signing_key`]: the signing key generated and kept in Postgres when none is configured.
//! - [`caller`]: the `Caller` extractor: a valid token of a user who is active *now*.

pub mod caller;
pub mod password;
pub mod refresh;
pub mod signing_key;
pub mod token;

pub use caller::Caller;
