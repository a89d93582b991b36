//! Deterministic aggregate ids. Deriving an id from the natural key makes uniqueness race-free:
//! two concurrent registrations of one email (in any letter case) target the same `User`
//! stream, so optimistic concurrency lets exactly one of them create it; likewise one `Review`
//! per user and product.

use uuid::Uuid;

/// Namespace of [`user_id_for_email`]. Never change it: existing user ids depend on it.
pub const USER_EMAIL_NAMESPACE: Uuid = Uuid::from_u128(0x6c2f_3a51_8b0e_4d7a_9f44_2b1e_c0de_0001);

/// Namespace of [`review_id`]. Never change it: existing review ids depend on it.
pub const REVIEW_NAMESPACE: Uuid = Uuid::from_u128(0x6c2f_3a51_8b0e_4d7a_9f44_2b1e_c0de_0002);

/// The normal form of an email for identity: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// The `User` aggregate id of an email: UUID v5 of [`normalize_email`] under
/// [`USER_EMAIL_NAMESPACE`].
pub fn user_id_for_email(email: &str) -> Uuid {
    Uuid::new_v5(&USER_EMAIL_NAMESPACE, normalize_email(email).as_bytes())
}

/// The `Review` aggregate id of a user's review of a product: UUID v5 of both ids under
/// [`REVIEW_NAMESPACE`].
pub fn review_id(user_id: Uuid, product_id: Uuid) -> Uuid {
    let mut name = [0_u8; 32];
    name[..16].copy_from_slice(user_id.as_bytes());
    name[16..].copy_from_slice(product_id.as_bytes());
    Uuid::new_v5(&REVIEW_NAMESPACE, &name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_differing_only_in_case_and_spaces_share_a_user_id() {
        assert_eq!(
            user_id_for_email(" Alice@Example.COM "),
            user_id_for_email("alice@example.com")
        );
        assert_ne!(
            user_id_for_email("alice@example.com"),
            user_id_for_email("bob@example.com")
        );
    }

    #[test]
    fn a_review_id_depends_on_both_user_and_product_in_order() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_eq!(review_id(a, b), review_id(a, b));
        assert_ne!(review_id(a, b), review_id(b, a));
    }
}
