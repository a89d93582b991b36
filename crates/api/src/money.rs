//! Money on the wire: a JSON number with at most two decimals (`199.99`), read from its literal
//! text and written as one, so no amount ever passes through floating point.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// An amount in minor units (cents), as it appears in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(pub i64);

impl Amount {
    /// Parses `199.99`, `5`, `0.5`; refuses signs, exponents and more than two decimals.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err("must not be negative");
        }
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || (text.contains('.') && !digits(fraction)) {
            return Err("must be a decimal number like 19.99");
        }
        if fraction.len() > 2 {
            return Err("must have at most 2 decimals");
        }
        let whole: i64 = whole.parse().map_err(|_| "is too large")?;
        let mut cents: i64 = 0;
        for (i, b) in fraction.bytes().enumerate() {
            let scale = if i == 0 { 10 } else { 1 };
            cents += i64::from(b - b'0') * scale;
        }
        whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(cents))
            .filter(|v| *v <= MAX_MINOR)
            .map(Self)
            .ok_or("is too large")
    }
}

/// The largest amount accepted (10^13 minor units), far below `i64` overflow in totals.
const MAX_MINOR: i64 = 10_000_000_000_000;

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: &RawValue = Deserialize::deserialize(deserializer)?;
        let text = raw.get();
        if text.starts_with('"') || text.contains(['e', 'E']) {
            return Err(D::Error::custom("must be a JSON number like 19.99"));
        }
        Self::parse(text).map_err(D::Error::custom)
    }
}

impl utoipa::PartialSchema for Amount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        money_schema(false)
    }
}

impl utoipa::ToSchema for Amount {}

/// The schema of an [`Amount`] that must be more than zero (a refund).
#[derive(Debug)]
pub struct PositiveAmount;

impl utoipa::PartialSchema for PositiveAmount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        money_schema(true)
    }
}

/// A money amount's schema: a number of at most 2 decimals up to the largest amount stored, from
/// zero, or above zero when `positive`.
fn money_schema(positive: bool) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    let builder = utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::Number)
        .multiple_of(Some(0.01))
        .maximum(Some(MAX_MINOR / 100));
    let (builder, description, example) = if positive {
        (
            builder.exclusive_minimum(Some(0)),
            "Money above zero: a number with at most 2 decimals",
            19.99,
        )
    } else {
        (
            builder.minimum(Some(0)),
            "Money: a number with at most 2 decimals",
            199.99,
        )
    };
    builder
        .description(Some(description))
        .examples([serde_json::json!(example)])
        .into()
}

impl utoipa::ToSchema for PositiveAmount {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_from_their_literal_text() {
        assert_eq!(Amount::parse("199.99"), Ok(Amount(19_999)));
        assert_eq!(Amount::parse("5"), Ok(Amount(500)));
        assert_eq!(Amount::parse("0.5"), Ok(Amount(50)));
        assert_eq!(Amount::parse("0.05"), Ok(Amount(5)));
        assert!(Amount::parse("1.999").is_err());
        assert!(Amount::parse("-1").is_err());
        assert!(Amount::parse("1.").is_err());
        assert!(Amount::parse(".5").is_err());
        assert!(Amount::parse("99999999999999999999").is_err());
    }

    #[test]
    fn json_amounts_round_trip_without_floats() {
        let a: Amount = serde_json::from_str("19.9").unwrap();
        assert_eq!(a, Amount(1990));
        assert_eq!(serde_json::to_string(&a).unwrap(), "19.90");
        assert!(serde_json::from_str::<Amount>("\"19.90\"").is_err());
        assert!(serde_json::from_str::<Amount>("1e3").is_err());
        assert!(serde_json::from_str::<Amount>("19.999").is_err());
    }
}
