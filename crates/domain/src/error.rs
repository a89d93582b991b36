//! What kind of failure a domain error is, so outer layers map every aggregate's errors the same
//! way (invalid → 400, not found → 404, conflict → 409, forbidden → 403) without knowing them.

/// The class of a domain error; the API turns it into an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The command's input breaks a validation rule; retrying it unchanged never succeeds.
    Invalid,
    /// The aggregate (or an entity inside it) does not exist.
    NotFound,
    /// The aggregate's current state forbids the command (duplicate, wrong status, limit reached).
    Conflict,
    /// The actor may not do this.
    Forbidden,
}

/// Implemented by every aggregate error: says which [`ErrorKind`] it is.
pub trait DomainError: std::error::Error {
    /// The class of this error.
    fn kind(&self) -> ErrorKind;
}
