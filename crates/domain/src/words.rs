//! Status words: the one place an enum's UPPERCASE name (on the wire, in read models, in
//! filters) is spelled. `serde` writes the same names (`SCREAMING_SNAKE_CASE`); a test of each
//! enum checks the two agree, so a renamed variant cannot drift.

/// Implements `as_str`, `ALL` and `parse_word` for a status enum from its variant-to-word table.
macro_rules! status_words {
    ($ty:ty { $($variant:ident => $word:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The status word, as the API answers it and read models store it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $word),+
                }
            }

            /// The value a status word names, if any.
            pub fn parse_word(word: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == word)
            }
        }
    };
}

pub(crate) use status_words;

#[cfg(test)]
mod tests {
    use crate::order::{CancellationReason, OrderPaymentStatus, OrderStatus, StockStatus};
    use crate::payment::PaymentStatus;

    fn agrees<T: serde::Serialize + Copy>(all: &[T], word: impl Fn(T) -> &'static str) {
        for &value in all {
            assert_eq!(serde_json::to_value(value).unwrap(), word(value));
        }
    }

    #[test]
    fn every_status_word_is_what_serde_writes() {
        agrees(OrderStatus::ALL, OrderStatus::as_str);
        agrees(StockStatus::ALL, StockStatus::as_str);
        agrees(OrderPaymentStatus::ALL, OrderPaymentStatus::as_str);
        agrees(CancellationReason::ALL, CancellationReason::as_str);
        agrees(PaymentStatus::ALL, PaymentStatus::as_str);
        assert_eq!(
            OrderStatus::parse_word("CONFIRMED"),
            Some(OrderStatus::Confirmed)
        );
        assert_eq!(OrderStatus::parse_word("confirmed"), None);
    }
}
