//! Verifying the log against its seals (guarantee 10): names the first place, in log order, where
//! what is stored is not what was sealed.
//!
//! For each seal in order: the seal must be the next id, and equal `SHA-256(previous seal ‖ its
//! links)` (else the seal itself was rewritten); then every event in its range must hash to its
//! stored content hash (else its content changed) and match the seal's list one for one, in order
//! (else it is missing, was moved, or was not there when sealed). Events after the latest seal
//! have their content hashes checked only. What this proves, and what it cannot, is in
//! `docs/audit.md`.

use sqlx::PgPool;

use crate::sealer::{chain, latest_seal, Link, SealHead, GENESIS};
use crate::{Position, StoreError};

/// What kind of difference was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MismatchKind {
    /// The event's content no longer hashes to its stored content hash.
    ContentChanged,
    /// A sealed event is not in the log any more.
    Missing,
    /// The event at this position is not the one sealed there (content and hash replaced, or
    /// rows swapped).
    NotTheSealedEvent,
    /// The event is in a sealed range but was not sealed (inserted later).
    NotSealed,
    /// A sealed event is in the log, but not where it was sealed.
    Moved,
    /// The seal does not equal the hash of the previous seal and its own links.
    SealRewritten,
    /// A seal id is missing from the chain.
    SealMissing,
}

impl MismatchKind {
    /// A sentence for operators.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ContentChanged => "the event's content does not match its stored hash",
            Self::Missing => "a sealed event is missing from the log",
            Self::NotTheSealedEvent => "the event at this position is not the one sealed there",
            Self::NotSealed => "the event was not in the log when its range was sealed",
            Self::Moved => "a sealed event is no longer where it was sealed",
            Self::SealRewritten => "the seal does not match the previous seal and its events",
            Self::SealMissing => "a seal is missing from the chain",
        }
    }

    /// A stable machine name.
    pub fn code(self) -> &'static str {
        match self {
            Self::ContentChanged => "content_changed",
            Self::Missing => "missing",
            Self::NotTheSealedEvent => "not_the_sealed_event",
            Self::NotSealed => "not_sealed",
            Self::Moved => "moved",
            Self::SealRewritten => "seal_rewritten",
            Self::SealMissing => "seal_missing",
        }
    }
}

/// The first difference found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The event's position (for a seal: the last event it covers; for a missing seal: the end
    /// of the one before).
    pub position: Position,
    /// The seal whose range it is in, when it is in one.
    pub seal_id: Option<i64>,
    /// What differs.
    pub kind: MismatchKind,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// The last event of the last seal that verified (`None`: none did).
    pub verified_through: Option<Position>,
    /// Seals checked.
    pub seals_checked: u64,
    /// Events checked against seals.
    pub events_sealed: u64,
    /// Events after the latest seal, whose content hashes were checked.
    pub events_unsealed: u64,
    /// The latest seal, to publish elsewhere.
    pub latest_seal: Option<SealHead>,
    /// The first difference, `None` when everything matched.
    pub first_mismatch: Option<Mismatch>,
}

impl Verification {
    /// Whether everything matched.
    pub fn ok(&self) -> bool {
        self.first_mismatch.is_none()
    }
}

/// A stored seal with its links.
struct SealRow {
    head: SealHead,
    links: Vec<Link>,
}

/// An event of a seal's range: position, stored hash, hash of its content now.
struct Found {
    position: Position,
    stored: Vec<u8>,
    recomputed: Vec<u8>,
}

/// Unsealed events are checked this many at a time.
const PAGE: i64 = 1000;

/// Recomputes the chain from the seal covering `from` (the beginning when `None`) to the head of
/// the log and returns the first mismatch, if any.
pub async fn verify(pool: &PgPool, from: Option<Position>) -> Result<Verification, StoreError> {
    let latest = latest_seal(pool).await?;
    let mut outcome = Verification {
        verified_through: None,
        seals_checked: 0,
        events_sealed: 0,
        events_unsealed: 0,
        latest_seal: latest.clone(),
        first_mismatch: None,
    };
    let first_seal = match from {
        None => Some(1),
        Some(from) => sqlx::query_scalar::<_, i64>(
            "SELECT seal_id FROM log_seals WHERE (transaction_id, global_position) >= ($1, $2) \
                 ORDER BY seal_id LIMIT 1",
        )
        .bind(from.transaction_id)
        .bind(from.global_position)
        .fetch_optional(pool)
        .await?,
    };
    // What the first checked seal chains from: the seal before it, taken as stored.
    let (mut previous, mut next_id) = match first_seal {
        Some(id) if id > 1 => match seal(pool, id - 1).await? {
            Some(before) => (before.head, id),
            None => {
                outcome.first_mismatch = Some(Mismatch {
                    position: from.unwrap_or_default(),
                    seal_id: Some(id - 1),
                    kind: MismatchKind::SealMissing,
                });
                return Ok(outcome);
            }
        },
        Some(id) => (genesis(), id),
        None => match &latest {
            Some(head) => (head.clone(), head.seal_id + 1),
            None => (genesis(), 1),
        },
    };
    while let Some(row) = next_seal(pool, next_id).await? {
        if let Some(mismatch) = check_seal(pool, &previous, next_id, &row).await? {
            outcome.first_mismatch = Some(mismatch);
            return Ok(outcome);
        }
        outcome.seals_checked += 1;
        outcome.events_sealed += row.links.len() as u64;
        outcome.verified_through = Some(row.head.through);
        next_id = row.head.seal_id + 1;
        previous = row.head;
    }
    // Seals written while this ran are as good as the one read at the start.
    if previous.seal_id > outcome.latest_seal.as_ref().map_or(0, |l| l.seal_id) {
        outcome.latest_seal = Some(previous.clone());
    }
    let mut after = previous.through;
    loop {
        let page = events_between(pool, after, None, PAGE).await?;
        for found in &page {
            if found.stored != found.recomputed {
                outcome.first_mismatch = Some(Mismatch {
                    position: found.position,
                    seal_id: None,
                    kind: MismatchKind::ContentChanged,
                });
                return Ok(outcome);
            }
        }
        outcome.events_unsealed += page.len() as u64;
        match page.last() {
            Some(last) if page.len() as i64 == PAGE => after = last.position,
            _ => return Ok(outcome),
        }
    }
}

fn genesis() -> SealHead {
    SealHead {
        seal_id: 0,
        seal: GENESIS.to_vec(),
        through: Position::START,
    }
}

/// The first difference between seal `row` (expected to have id `expected_id`, chained from
/// `previous`) and the log.
async fn check_seal(
    pool: &PgPool,
    previous: &SealHead,
    expected_id: i64,
    row: &SealRow,
) -> Result<Option<Mismatch>, StoreError> {
    let at = |position, kind| {
        Ok(Some(Mismatch {
            position,
            seal_id: Some(row.head.seal_id),
            kind,
        }))
    };
    if row.head.seal_id != expected_id {
        return Ok(Some(Mismatch {
            position: previous.through,
            seal_id: Some(expected_id),
            kind: MismatchKind::SealMissing,
        }));
    }
    if chain(&previous.seal, &row.links) != row.head.seal
        || row.links.last().map(|l| l.position) != Some(row.head.through)
    {
        return at(row.head.through, MismatchKind::SealRewritten);
    }
    // Every row in the range, however many there are now.
    let found = events_between(pool, previous.through, Some(row.head.through), i64::MAX).await?;
    for i in 0..found.len().max(row.links.len()) {
        let (expected, event) = (row.links.get(i), found.get(i));
        if let Some(event) = event {
            if event.stored != event.recomputed {
                return at(event.position, MismatchKind::ContentChanged);
            }
        }
        match (expected, event) {
            (Some(e), Some(f)) if e.position == f.position && e.hash == f.stored => continue,
            (Some(e), Some(f)) if e.position == f.position => {
                return at(f.position, MismatchKind::NotTheSealedEvent)
            }
            (Some(e), _) if !in_log(pool, e.position.global_position).await? => {
                return at(e.position, MismatchKind::Missing)
            }
            (_, Some(f)) if !row.links.iter().any(|l| l.position == f.position) => {
                return at(f.position, MismatchKind::NotSealed)
            }
            (_, Some(f)) => return at(f.position, MismatchKind::Moved),
            (Some(e), None) => return at(e.position, MismatchKind::Moved),
            (None, None) => break,
        }
    }
    Ok(None)
}

async fn in_log(pool: &PgPool, global_position: i64) -> Result<bool, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM events WHERE global_position = $1)")
            .bind(global_position)
            .fetch_one(pool)
            .await?,
    )
}

/// The events after `after` (through `through`, when given), in log order, at most `limit`.
async fn events_between(
    pool: &PgPool,
    after: Position,
    through: Option<Position>,
    limit: i64,
) -> Result<Vec<Found>, StoreError> {
    let through = through.unwrap_or(Position::new(i64::MAX, i64::MAX));
    let rows: Vec<(i64, i64, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "SELECT transaction_id::text::bigint, global_position, content_hash, \
         event_content_hash(aggregate_type, aggregate_id, sequence, event_type, event_version, \
                            payload, metadata) \
         FROM events \
         WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
           AND (transaction_id, global_position) <= ($3::text::xid8, $4) \
         ORDER BY transaction_id, global_position LIMIT $5",
    )
    .bind(after.transaction_id.to_string())
    .bind(after.global_position)
    .bind(through.transaction_id.to_string())
    .bind(through.global_position)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(tx, pos, stored, recomputed)| Found {
            position: Position::new(tx, pos),
            stored,
            recomputed,
        })
        .collect())
}

/// Seal `seal_id` with its links, if stored.
async fn seal(pool: &PgPool, seal_id: i64) -> Result<Option<SealRow>, StoreError> {
    load_seal(pool, "seal_id = $1", seal_id).await
}

/// The first seal with an id of at least `seal_id`.
async fn next_seal(pool: &PgPool, seal_id: i64) -> Result<Option<SealRow>, StoreError> {
    load_seal(pool, "seal_id >= $1", seal_id).await
}

async fn load_seal(
    pool: &PgPool,
    condition: &str,
    seal_id: i64,
) -> Result<Option<SealRow>, StoreError> {
    type Row = (i64, i64, i64, Vec<i64>, Vec<i64>, Vec<Vec<u8>>, Vec<u8>);
    let sql = format!(
        "SELECT seal_id, transaction_id, global_position, transaction_ids, positions, hashes, seal \
         FROM log_seals WHERE {condition} ORDER BY seal_id LIMIT 1"
    );
    let row: Option<Row> = sqlx::query_as(&sql)
        .bind(seal_id)
        .fetch_optional(pool)
        .await?;
    Ok(
        row.map(|(seal_id, tx, pos, txs, positions, hashes, seal)| SealRow {
            head: SealHead {
                seal_id,
                seal,
                through: Position::new(tx, pos),
            },
            links: txs
                .into_iter()
                .zip(positions)
                .zip(hashes)
                .map(|((tx, pos), hash)| Link {
                    position: Position::new(tx, pos),
                    hash,
                })
                .collect(),
        }),
    )
}
