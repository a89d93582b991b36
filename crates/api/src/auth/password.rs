//! argon2id password hashes. Hashing costs tens of milliseconds of CPU by design, so it runs on
//! the blocking pool, never on an async worker thread.

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};

use crate::error::ApiError;

fn hasher(memory_kib: u32) -> Result<Argon2<'static>, ApiError> {
    let params = Params::new(memory_kib, 2, 1, None)
        .map_err(|e| ApiError::Internal(e.to_string().into()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// The PHC string (`$argon2id$v=19$m=…`) of `password`.
pub async fn hash(password: String, memory_kib: u32) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher(memory_kib)?
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| ApiError::Internal(e.to_string().into()))
    })
    .await
    .map_err(ApiError::internal)?
}

/// Whether `password` matches `phc` (the parameters are read from the hash itself).
pub async fn verify(password: String, phc: String) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&phc) else {
            return Ok(false);
        };
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .map_err(ApiError::internal)?
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
