//! Access tokens: HS256 JWTs carrying the user id and roles, valid for minutes. The algorithm is
//! pinned: a token claiming `alg: none` or any other algorithm is refused, as is a bad signature,
//! a tampered payload or an expired token.

use chrono::{DateTime, Utc};
use commerce_domain::user::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::ApiError;

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// Roles when the token was issued (authorisation re-reads the current ones).
    pub roles: Vec<Role>,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds).
    pub exp: i64,
    /// Always `access`.
    pub typ: String,
}

/// The signing key.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

impl TokenKeys {
    /// Keys from the shared secret.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// A signed token for `user_id`, valid for `ttl`, and its expiry.
    pub fn issue(
        &self,
        user_id: Uuid,
        roles: &[Role],
        now: DateTime<Utc>,
        ttl: std::time::Duration,
    ) -> Result<(String, DateTime<Utc>), ApiError> {
        let ttl = chrono::Duration::from_std(ttl).map_err(ApiError::internal)?;
        let expires_at = now + ttl;
        let claims = Claims {
            sub: user_id,
            roles: roles.to_vec(),
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            typ: "access".to_owned(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(ApiError::internal)?;
        Ok((token, expires_at))
    }

    /// The claims of a valid, unexpired HS256 access token.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| ApiError::Unauthorized(format!("invalid token: {}", reason(&e))))?;
        if data.claims.typ != "access" {
            return Err(ApiError::Unauthorized("not an access token".to_owned()));
        }
        Ok(data.claims)
    }
}

fn reason(error: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm => "algorithm not accepted",
        _ => "malformed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn issue(keys: &TokenKeys, ttl_secs: i64) -> String {
        let now = Utc::now() + chrono::Duration::seconds(ttl_secs) - chrono::Duration::seconds(60);
        keys.issue(
            Uuid::nil(),
            &[Role::Customer],
            now,
            std::time::Duration::from_secs(60),
        )
        .unwrap()
        .0
    }

    #[test]
    fn a_fresh_token_verifies() {
        let keys = TokenKeys::new(SECRET);
        let claims = keys.verify(&issue(&keys, 60)).unwrap();
        assert_eq!(claims.sub, Uuid::nil());
        assert_eq!(claims.roles, vec![Role::Customer]);
    }

    #[test]
    fn expired_wrong_key_tampered_and_unsigned_tokens_are_refused() {
        let keys = TokenKeys::new(SECRET);
        assert!(keys.verify(&issue(&keys, -5)).is_err(), "expired");
        let other = TokenKeys::new(b"another secret of enough length!!");
        assert!(keys.verify(&issue(&other, 60)).is_err(), "wrong key");

        let token = issue(&keys, 60);
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims["roles"] = serde_json::json!(["admin"]);
        let tampered = URL_SAFE_NO_PAD.encode(claims.to_string());
        let forged = format!("{}.{}.{}", parts[0], tampered, parts[2]);
        assert!(keys.verify(&forged).is_err(), "tampered");

        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        assert!(
            keys.verify(&format!("{none}.{}.", parts[1])).is_err(),
            "alg none"
        );
        assert!(keys.verify("garbage").is_err());
    }
}
