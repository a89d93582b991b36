//! A place in the global log: `(transaction_id, global_position)`.
//!
//! Guarantee 2: the log is read in this order, below the oldest running transaction, so a cursor of
//! this pair never skips an event that a slow transaction commits late.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A position in the global log, ordered as readers see events.
///
/// `Position::START` comes before every event. The string form (`"<tx>.<pos>"`) is the opaque
/// token that crosses the HTTP boundary (`X-Event-Position`, `X-Min-Position`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position {
    /// The id of the transaction that wrote the event (`xid8`, never above `i64::MAX` in practice).
    pub transaction_id: i64,
    /// The event's `global_position` (insertion order).
    pub global_position: i64,
}

impl Position {
    /// Before the first event.
    pub const START: Self = Self {
        transaction_id: 0,
        global_position: 0,
    };

    /// A position from its two parts.
    pub fn new(transaction_id: i64, global_position: i64) -> Self {
        Self {
            transaction_id,
            global_position,
        }
    }

    /// The opaque token form.
    pub fn token(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.transaction_id, self.global_position)
    }
}

/// A position token that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid position token {0:?}: expected \"<transaction>.<position>\"")]
pub struct InvalidPosition(String);

impl FromStr for Position {
    type Err = InvalidPosition;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidPosition(s.chars().take(64).collect());
        let (tx, pos) = s.trim().split_once('.').ok_or_else(invalid)?;
        let transaction_id: i64 = tx.parse().map_err(|_| invalid())?;
        let global_position: i64 = pos.parse().map_err(|_| invalid())?;
        if transaction_id < 0 || global_position < 0 {
            return Err(invalid());
        }
        Ok(Self::new(transaction_id, global_position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips() {
        let p = Position::new(812, 40);
        assert_eq!(p.token().parse::<Position>(), Ok(p));
    }

    #[test]
    fn positions_order_by_transaction_first() {
        // A late commit of an earlier insert: smaller global_position, larger transaction.
        assert!(Position::new(10, 7) > Position::new(9, 8));
        assert!(Position::START < Position::new(1, 1));
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        for bad in [
            "",
            "12",
            "a.b",
            "1.-2",
            "-1.2",
            "1.2.3",
            "99999999999999999999.1",
        ] {
            assert!(bad.parse::<Position>().is_err(), "{bad} parsed");
        }
    }
}
