//! Money as integer minor units plus an ISO 4217 currency. No floating point anywhere: amounts are
//! added and multiplied with overflow checks, and currencies never mix silently.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::error::{DomainError, ErrorKind};

/// A validated ISO 4217 currency code: exactly three ASCII uppercase letters. Serialised as a
/// string (`"USD"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency([u8; 3]);

impl Currency {
    /// US dollar, the API's default currency.
    pub const USD: Self = Self(*b"USD");
    /// Euro.
    pub const EUR: Self = Self(*b"EUR");

    /// Parses a code; it must be three uppercase ASCII letters (no case folding, no trimming).
    pub fn new(code: &str) -> Result<Self, MoneyError> {
        match code.as_bytes() {
            &[a, b, c] if [a, b, c].iter().all(u8::is_ascii_uppercase) => Ok(Self([a, b, c])),
            _ => Err(MoneyError::InvalidCurrency {
                code: code.to_owned(),
            }),
        }
    }

    /// The code, e.g. `"USD"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII uppercase letters are ever stored (see `new`).
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Currency {
    type Err = MoneyError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Self::new(code)
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;

    fn try_from(code: String) -> Result<Self, Self::Error> {
        Self::new(&code)
    }
}

impl From<Currency> for String {
    fn from(currency: Currency) -> Self {
        currency.as_str().to_owned()
    }
}

/// An amount of money: integer minor units (cents for USD) in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Amount in the currency's minor unit; negative only for differences, never for prices.
    pub amount_minor: i64,
    /// The currency of the amount.
    pub currency: Currency,
}

impl Money {
    /// An amount in minor units of `currency`.
    pub const fn new(amount_minor: i64, currency: Currency) -> Self {
        Self {
            amount_minor,
            currency,
        }
    }

    /// Zero in `currency`.
    pub const fn zero(currency: Currency) -> Self {
        Self::new(0, currency)
    }

    /// Whether the amount is below zero (never allowed for a price or a payment).
    pub const fn is_negative(&self) -> bool {
        self.amount_minor < 0
    }

    /// The sum; fails on different currencies or overflow.
    pub fn checked_add(self, other: Self) -> Result<Self, MoneyError> {
        self.same_currency(other)?;
        let amount = self
            .amount_minor
            .checked_add(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::new(amount, self.currency))
    }

    /// The difference `self - other`; fails on different currencies or overflow.
    pub fn checked_sub(self, other: Self) -> Result<Self, MoneyError> {
        self.same_currency(other)?;
        let amount = self
            .amount_minor
            .checked_sub(other.amount_minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::new(amount, self.currency))
    }

    /// The amount times a quantity (a line subtotal); fails on overflow.
    pub fn checked_mul(self, quantity: u32) -> Result<Self, MoneyError> {
        let amount = self
            .amount_minor
            .checked_mul(i64::from(quantity))
            .ok_or(MoneyError::Overflow)?;
        Ok(Self::new(amount, self.currency))
    }

    fn same_currency(self, other: Self) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                expected: self.currency,
                found: other.currency,
            })
        }
    }
}

/// Why a money value or operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MoneyError {
    /// A currency code must be three uppercase ASCII letters (ISO 4217).
    #[error("invalid currency code {code:?}: expected three uppercase letters")]
    InvalidCurrency {
        /// The code as given.
        code: String,
    },
    /// Amounts in different currencies are never combined.
    #[error("currency mismatch: expected {expected}, found {found}")]
    CurrencyMismatch {
        /// The currency of the left operand.
        expected: Currency,
        /// The currency of the right operand.
        found: Currency,
    },
    /// The result does not fit in 64-bit minor units.
    #[error("amount overflow")]
    Overflow,
}

impl DomainError for MoneyError {
    fn kind(&self) -> ErrorKind {
        ErrorKind::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_currency_is_three_uppercase_letters() {
        assert_eq!(Currency::new("USD"), Ok(Currency::USD));
        for bad in ["usd", "US", "USDX", "U1D", ""] {
            assert!(Currency::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn money_serialises_with_the_currency_as_a_string() {
        let money = Money::new(19_999, Currency::USD);
        let json = serde_json::to_value(money).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"amount_minor": 19_999, "currency": "USD"})
        );
        assert_eq!(serde_json::from_value::<Money>(json).unwrap(), money);
        assert!(serde_json::from_value::<Money>(
            serde_json::json!({"amount_minor": 1, "currency": "usd"})
        )
        .is_err());
    }

    #[test]
    fn adding_different_currencies_or_overflowing_fails() {
        let usd = Money::new(1, Currency::USD);
        let eur = Money::new(1, Currency::EUR);
        assert!(matches!(
            usd.checked_add(eur),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert_eq!(
            Money::new(i64::MAX, Currency::USD).checked_add(usd),
            Err(MoneyError::Overflow)
        );
        assert_eq!(usd.checked_mul(3), Ok(Money::new(3, Currency::USD)));
    }
}
