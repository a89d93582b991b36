//! The orders an `Inventory` has settled, remembered forever so redelivered saga commands stay
//! idempotent, and their compact serialisation.
//!
//! A popular product settles an order every couple of events, so this is nearly all of a long
//! stream's state, and of its snapshot. Written as a JSON map (`{"<uuid>": "Committed", ...}`) it
//! cost about 52 bytes and one jsonb key per order, and reading a 20,000-event product's snapshot
//! took several times longer than a whole command on a fresh product. So it is written as two
//! strings, `{"orders": "…", "outcomes": "…"}`: the ids in ascending order, each as 22 base-64
//! digits (its 128 bits, most significant first, in the base64url alphabet), and one letter per
//! order for how it ended (`x` rejected, `r` released, `c` committed). 23 bytes an order, moved by
//! Postgres and serde as plain strings and read back already sorted. Every id is kept whole, so
//! idempotency stays exact.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// How an order's reservation ended; remembered so redelivered saga commands emit nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    Rejected,
    Released,
    Committed,
    /// Committed, then given back when the order was cancelled.
    Returned,
}

/// Digits of one id: 22 × 6 bits hold its 128 (the first digit carries only 2).
const DIGITS: usize = 22;
const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const INVALID: u8 = 0xff;
/// The inverse of `ALPHABET`, `INVALID` elsewhere: a table, as decoding is most of a load.
const VALUES: [u8; 256] = {
    let mut values = [INVALID; 256];
    let mut digit = 0;
    while digit < 64 {
        values[ALPHABET[digit] as usize] = digit as u8;
        digit += 1;
    }
    values
};

impl Settled {
    fn letter(self) -> u8 {
        match self {
            Self::Rejected => b'x',
            Self::Released => b'r',
            Self::Committed => b'c',
            Self::Returned => b'u',
        }
    }

    fn from_letter(letter: u8) -> Option<Self> {
        match letter {
            b'x' => Some(Self::Rejected),
            b'r' => Some(Self::Released),
            b'c' => Some(Self::Committed),
            b'u' => Some(Self::Returned),
            _ => None,
        }
    }
}

fn encode(id: Uuid, out: &mut Vec<u8>) {
    let bits = id.as_u128();
    out.extend(
        (0..DIGITS)
            .rev()
            .map(|digit| ALPHABET[((bits >> (6 * digit)) & 63) as usize]),
    );
}

fn decode(digits: &[u8]) -> Option<Uuid> {
    // The first digit holds the top 2 bits only; anything more would not fit in 128.
    if VALUES[usize::from(digits[0])] > 3 {
        return None;
    }
    let mut bits: u128 = 0;
    let mut seen = 0;
    for &c in digits {
        let value = VALUES[usize::from(c)];
        seen |= value;
        bits = bits << 6 | u128::from(value);
    }
    // Any INVALID among the digits sets the bits no digit has.
    (seen < 64).then_some(Uuid::from_u128(bits))
}

#[derive(Serialize, Deserialize)]
struct Compact {
    orders: String,
    outcomes: String,
}

/// `#[serde(with = "settled")]` for `BTreeMap<Uuid, Settled>`.
pub(super) fn serialize<S: Serializer>(
    settled: &BTreeMap<Uuid, Settled>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut orders = Vec::with_capacity(settled.len() * DIGITS);
    let mut outcomes = Vec::with_capacity(settled.len());
    for (order, outcome) in settled {
        encode(*order, &mut orders);
        outcomes.push(outcome.letter());
    }
    let ascii = |bytes| String::from_utf8(bytes).map_err(S::Error::custom);
    Compact {
        orders: ascii(orders)?,
        outcomes: ascii(outcomes)?,
    }
    .serialize(serializer)
}

/// The inverse of [`serialize`]; a malformed list is an error (the store then replays events).
pub(super) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<Uuid, Settled>, D::Error> {
    let Compact { orders, outcomes } = Compact::deserialize(deserializer)?;
    if orders.len() != outcomes.len() * DIGITS {
        return Err(D::Error::custom(
            "settled orders: not one 22-digit id per outcome",
        ));
    }
    let mut entries = Vec::with_capacity(outcomes.len());
    for (digits, &letter) in orders
        .as_bytes()
        .chunks_exact(DIGITS)
        .zip(outcomes.as_bytes())
    {
        let order = decode(digits).ok_or_else(|| D::Error::custom("settled orders: a bad id"))?;
        let outcome = Settled::from_letter(letter)
            .ok_or_else(|| D::Error::custom("settled orders: a bad outcome"))?;
        if entries
            .last()
            .is_some_and(|&(previous, _)| previous >= order)
        {
            return Err(D::Error::custom("settled orders: ids not ascending"));
        }
        entries.push((order, outcome));
    }
    // Ascending already: the map is built without sorting.
    Ok(BTreeMap::from_iter(entries))
}
