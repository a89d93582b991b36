//! argon2id password hashes. Hashing costs tens of milliseconds of CPU and `memory_kib` of memory
//! by design, so it runs on the blocking pool, never on an async worker thread, and at most one
//! hash per core runs at a time: a burst of sign-ins waits its turn (or gets a 503) instead of
//! starting hundreds of blocking threads that hold hundreds of times the memory cost and starve
//! every other request of CPU.

use std::sync::OnceLock;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// How long a hash waits for its turn before the request is shed with a 503.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// One permit per core: hashing is CPU-bound, more at once only adds memory and latency.
fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get))
    })
}

/// Runs `work` on the blocking pool once a permit is free. The permit moves into the blocking
/// task, so a request that gives up (timeout, disconnect) still counts until its hash is done.
async fn limited<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let permit = tokio::time::timeout(QUEUE_WAIT, permits().acquire())
        .await
        .map_err(|_| {
            ApiError::Unavailable("too many sign-ins at once; try again shortly".to_owned())
        })?
        .map_err(ApiError::internal)?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(ApiError::internal)?
}

fn hasher(memory_kib: u32) -> Result<Argon2<'static>, ApiError> {
    let params = Params::new(memory_kib, 2, 1, None)
        .map_err(|e| ApiError::Internal(e.to_string().into()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string (`$argon2id$v=19$m=…`) of `password`.
pub async fn hash(password: String, memory_kib: u32) -> Result<String, ApiError> {
    limited(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher(memory_kib)?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(e.to_string().into()))
    })
    .await
}

/// Whether `password` matches `phc` (the parameters are read from the hash itself).
pub async fn verify(password: String, phc: String) -> Result<bool, ApiError> {
    limited(move || {
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return Ok(false);
        };
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
}

/// A hash of a random password, verified against when the email is unknown, so a login for an
/// unknown email costs as much as one for a known email (no user enumeration by timing).
pub async fn dummy_hash(memory_kib: u32) -> Result<String, ApiError> {
    hash("not-a-real-password-0".to_owned(), memory_kib).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only() {
        let phc = hash("correct horse 1".to_owned(), 1024).await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify("correct horse 1".to_owned(), phc.clone())
            .await
            .unwrap());
        assert!(!verify("correct horse 2".to_owned(), phc).await.unwrap());
        assert!(!verify("x".to_owned(), "garbage".to_owned()).await.unwrap());
    }
}
