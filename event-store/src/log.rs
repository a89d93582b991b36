//! Reading the global log in commit-safe order (guarantee 2).
//!
//! A reader takes only rows whose `transaction_id` is below the oldest transaction still running
//! (`pg_snapshot_xmin(pg_current_snapshot())`), ordered by `(transaction_id, global_position)`, and
//! uses that pair as its cursor. Every transaction below the horizon has ended, so nothing can
//! later appear behind the cursor: no event committed late is skipped, no rolled-back one is waited
//! for, and there are no timeouts. `global_position > last` alone would lose events.

use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row as _};

use crate::privacy::Privacy;
use crate::record::{from_row, EVENT_COLUMNS};
use crate::{Position, StoreError, StoredEvent};

/// Filters of a log query (all optional, combined with AND).
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Only events after this position.
    pub after: Position,
    /// Only events before this position.
    pub before: Option<Position>,
    /// Newest first (paging backwards with `before`) rather than in log order.
    pub newest_first: bool,
    /// At most this many events (clamped to 1..=10 000).
    pub limit: i64,
    /// Only the event with this id.
    pub event_id: Option<uuid::Uuid>,
    /// Only events a process wrote in reaction to the event with this id (their metadata's
    /// `causation_id`).
    pub causation_id: Option<String>,
    /// Only this aggregate type.
    pub aggregate_type: Option<String>,
    /// Only this event type.
    pub event_type: Option<String>,
    /// Only events whose metadata carries this correlation id.
    pub correlation_id: Option<String>,
    /// Only events recorded at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only events recorded before this instant.
    pub to: Option<DateTime<Utc>>,
}

/// What [`LogReader::scan_after`] read.
#[derive(Debug)]
pub struct Scan {
    /// The events scanned whose routing key may match, in log order.
    pub events: Vec<StoredEvent>,
    /// Events scanned, wanted or not.
    pub scanned: usize,
    /// The position of the last event scanned.
    pub last: Option<Position>,
}

/// Topic patterns narrowed to what SQL tests cheaply: routing keys are
/// `<AggregateType>.<EventType>`, so `A.*` is an aggregate type, `*.E` an event type, `A.E` a
/// key, and anything else (a `#`, other shapes) matches everything: a superset of what the
/// patterns match (the exact test is [`crate::consumer::topic_matches`]).
#[derive(Debug, Default)]
struct TopicFilter {
    aggregate_types: Vec<String>,
    event_types: Vec<String>,
    keys: Vec<String>,
    everything: bool,
}

impl TopicFilter {
    fn new(bindings: &[String]) -> Self {
        let mut filter = Self::default();
        for pattern in bindings {
            match pattern.split('.').collect::<Vec<_>>().as_slice() {
                [a, e] if !a.contains(['*', '#']) && *e == "*" => {
                    filter.aggregate_types.push((*a).to_owned());
                }
                [a, e] if *a == "*" && !e.contains(['*', '#']) => {
                    filter.event_types.push((*e).to_owned());
                }
                [a, e] if !a.contains(['*', '#']) && !e.contains(['*', '#']) => {
                    filter.keys.push(pattern.clone());
                }
                _ => filter.everything = true,
            }
        }
        filter
    }
}

fn events_of(rows: &[PgRow]) -> Result<Vec<StoredEvent>, StoreError> {
    Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
}

/// Reads the `events` table as one ordered log.
#[derive(Debug, Clone)]
pub struct LogReader {
    pool: PgPool,
    /// Opens personal fields of the events read (guarantee 9); without it they come back as
    /// stored, sealed (what the relay publishes).
    privacy: Option<Privacy>,
}

impl LogReader {
    /// A reader over `pool`'s database, answering events as stored (personal fields sealed).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            privacy: None,
        }
    }

    /// The same reader opening personal fields with `privacy` (a destroyed key reads as
    /// [`crate::privacy::ERASED`]).
    pub fn with_privacy(mut self, privacy: Option<Privacy>) -> Self {
        self.privacy = privacy;
        self
    }

    /// `events` with their personal fields opened, when this reader has a keyring.
    async fn opened(&self, mut events: Vec<StoredEvent>) -> Result<Vec<StoredEvent>, StoreError> {
        if let Some(privacy) = &self.privacy {
            privacy.open_events(&self.pool, &mut events).await?;
        }
        Ok(events)
    }

    /// Up to `limit` events after `after`, in log order, below the horizon.
    pub async fn read_after(
        &self,
        after: Position,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
               AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY transaction_id, global_position LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(after.transaction_id.to_string())
            .bind(after.global_position)
            .bind(limit.clamp(1, 10_000))
            .fetch_all(&self.pool)
            .await?;
        self.opened(events_of(&rows)?).await
    }

    /// Like [`LogReader::read_after`], for a reader that wants only the events whose routing
    /// key (`<AggregateType>.<EventType>`) matches one of `bindings` (topic patterns, as bound to
    /// a queue): the others are scanned but come back as positions only, without payload or
    /// metadata, so skipping most of the log costs little. Patterns are narrowed in SQL to a
    /// superset (a `#` matches everything); the caller still filters what comes back exactly (e.g. with [`crate::ConsumerConfig::wants`]).
    pub async fn scan_after(
        &self,
        after: Position,
        limit: i64,
        bindings: &[String],
    ) -> Result<Scan, StoreError> {
        let filter = TopicFilter::new(bindings);
        let rows = sqlx::query(
            "SELECT event_id, transaction_id::text::bigint AS tx, global_position, recorded_at, \
                    aggregate_type, aggregate_id, sequence, event_type, event_version, \
                    CASE WHEN w.wanted THEN payload END AS payload, \
                    CASE WHEN w.wanted THEN metadata END AS metadata, w.wanted \
             FROM events, LATERAL (SELECT $7 OR aggregate_type = ANY($4) \
                 OR event_type = ANY($5) OR aggregate_type || '.' || event_type = ANY($6) \
                 AS wanted) w \
             WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
               AND transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY transaction_id, global_position LIMIT $3",
        )
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .bind(limit.clamp(1, 10_000))
        .bind(&filter.aggregate_types)
        .bind(&filter.event_types)
        .bind(&filter.keys)
        .bind(filter.everything)
        .fetch_all(&self.pool)
        .await?;
        let mut scan = Scan {
            events: Vec::new(),
            scanned: rows.len(),
            last: None,
        };
        for row in &rows {
            if row.try_get::<bool, _>("wanted")? {
                scan.events.push(from_row(row)?);
            }
        }
        if let Some(row) = rows.last() {
            scan.last = Some(Position::new(
                row.try_get("tx")?,
                row.try_get("global_position")?,
            ));
        }
        scan.events = self.opened(scan.events).await?;
        Ok(scan)
    }

    /// Waits (at most `timeout`) until every transaction running now has ended, so that a tail
    /// read afterwards sees everything committed before this call. Returns whether it settled.
    pub async fn settle(&self, timeout: std::time::Duration) -> Result<bool, StoreError> {
        let target: i64 =
            sqlx::query_scalar("SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint")
                .fetch_one(&self.pool)
                .await?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let horizon: i64 =
                sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                    .fetch_one(&self.pool)
                    .await?;
            if horizon >= target {
                return Ok(true);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(false);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// The position of the last event a reader can see now ([`Position::START`] if none).
    pub async fn head(&self) -> Result<Position, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT transaction_id::text::bigint, global_position FROM events \
             WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
             ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map_or(Position::START, |(tx, pos)| Position::new(tx, pos)))
    }

    /// How many visible events lie after `after`, and when the oldest of them was recorded.
    pub async fn backlog(
        &self,
        after: Position,
    ) -> Result<(i64, Option<DateTime<Utc>>), StoreError> {
        let (count, oldest): (i64, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*), min(recorded_at) FROM events \
             WHERE (transaction_id, global_position) > ($1::text::xid8, $2) \
               AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())",
        )
        .bind(after.transaction_id.to_string())
        .bind(after.global_position)
        .fetch_one(&self.pool)
        .await?;
        Ok((count, oldest))
    }

    /// The position of the last event of one aggregate, if it has any: what a command that wrote
    /// nothing new (an idempotent repeat) reports, so a reader waiting for it sees the state the
    /// repeat found.
    pub async fn last_of_stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Option<Position>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT transaction_id::text::bigint, global_position FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence DESC LIMIT 1",
        )
        .bind(aggregate_type)
        .bind(aggregate_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(tx, pos)| Position::new(tx, pos)))
    }

    /// The position of the last event, in log order, of any aggregate of `aggregate_type`: what
    /// a reader must have applied to have seen every one of them written so far.
    pub async fn last_of_type(&self, aggregate_type: &str) -> Result<Option<Position>, StoreError> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT transaction_id::text::bigint, global_position FROM events \
             WHERE aggregate_type = $1 ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
        )
        .bind(aggregate_type)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(tx, pos)| Position::new(tx, pos)))
    }

    /// Every event of one aggregate, by version.
    pub async fn stream(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence"
        );
        let rows = sqlx::query(&sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .fetch_all(&self.pool)
            .await?;
        self.opened(events_of(&rows)?).await
    }

    /// One aggregate's stream and the events of `referring` whose payload names it in `field`
    /// (`payload -> event_type ->> field`, where cqrs-es keeps an event's fields), in log order,
    /// at most `limit`. E.g. an order's events with the payments and stock movements it caused.
    ///
    /// `referring` and `field` are written into the statement as literals (quotes doubled), so a
    /// partial expression index over exactly that predicate serves it; they are the caller's
    /// constants, never input.
    pub async fn stream_with_references(
        &self,
        aggregate_type: &str,
        aggregate_id: &str,
        referring: &[&str],
        field: &str,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let literal = |text: &str| format!("'{}'", text.replace('\'', "''"));
        let types = referring
            .iter()
            .map(|t| literal(t))
            .collect::<Vec<_>>()
            .join(", ");
        let field = literal(field);
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM ( \
                 SELECT * FROM events WHERE aggregate_type = $1 AND aggregate_id = $2 \
                 UNION ALL \
                 SELECT * FROM events \
                 WHERE aggregate_type IN ({types}) AND payload -> event_type ->> {field} = $2 \
             ) e \
             ORDER BY transaction_id, global_position LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(aggregate_type)
            .bind(aggregate_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        self.opened(events_of(&rows)?).await
    }

    /// Events matching `filter`, in log order (or newest first), below the horizon: paging with
    /// `after` set to the last position of the previous page never skips an event, nor does
    /// paging newest first with `before` (every event below the horizon has committed, so none
    /// can appear behind either cursor later).
    pub async fn query(&self, filter: &LogFilter) -> Result<Vec<StoredEvent>, StoreError> {
        self.select(filter, true).await
    }

    async fn select(
        &self,
        filter: &LogFilter,
        below_horizon: bool,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let horizon = if below_horizon {
            "AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
        } else {
            ""
        };
        let order = if filter.newest_first { "DESC" } else { "ASC" };
        let before = filter.before.unwrap_or(Position::new(i64::MAX, i64::MAX));
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE (transaction_id, global_position) > ($1::text::xid8, $2) {horizon} \
               AND (transaction_id, global_position) < ($9::text::xid8, $10) \
               AND ($3::text IS NULL OR aggregate_type = $3) \
               AND ($4::text IS NULL OR event_type = $4) \
               AND ($5::text IS NULL OR metadata ->> 'correlation_id' = $5) \
               AND ($6::timestamptz IS NULL OR recorded_at >= $6) \
               AND ($7::timestamptz IS NULL OR recorded_at < $7) \
               AND ($11::uuid IS NULL OR event_id = $11) \
               AND ($12::text IS NULL OR metadata ->> 'causation_id' = $12) \
             ORDER BY transaction_id {order}, global_position {order} LIMIT $8"
        );
        let rows = sqlx::query(&sql)
            .bind(filter.after.transaction_id.to_string())
            .bind(filter.after.global_position)
            .bind(filter.aggregate_type.as_deref())
            .bind(filter.event_type.as_deref())
            .bind(filter.correlation_id.as_deref())
            .bind(filter.from)
            .bind(filter.to)
            .bind(filter.limit.clamp(1, 10_000))
            .bind(before.transaction_id.to_string())
            .bind(before.global_position)
            .bind(filter.event_id)
            .bind(filter.causation_id.as_deref())
            .fetch_all(&self.pool)
            .await?;
        self.opened(events_of(&rows)?).await
    }

    /// Every committed event carrying `correlation_id`, in log order. (A complete read, not a tail:
    /// it does not wait for the horizon.)
    pub async fn by_correlation(
        &self,
        correlation_id: &str,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.select(
            &LogFilter {
                correlation_id: Some(correlation_id.to_owned()),
                limit,
                ..LogFilter::default()
            },
            false,
        )
        .await
    }

    /// Every committed event recorded in `[from, to)`, in log order (a complete read, not a tail).
    pub async fn by_time_range(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        self.select(
            &LogFilter {
                from: Some(from),
                to: Some(to),
                limit,
                ..LogFilter::default()
            },
            false,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::TopicFilter;

    fn filter(patterns: &[&str]) -> TopicFilter {
        TopicFilter::new(&patterns.iter().map(|p| (*p).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn topic_patterns_narrow_to_types_keys_or_everything() {
        let f = filter(&["Product.*", "*.OrderPlaced", "Category.CategoryCreated"]);
        assert_eq!(f.aggregate_types, ["Product"]);
        assert_eq!(f.event_types, ["OrderPlaced"]);
        assert_eq!(f.keys, ["Category.CategoryCreated"]);
        assert!(!f.everything);
        for wide in [
            "#",
            "Order.#",
            "#.OrderPlaced",
            "*.*",
            "Order",
            "A.B.C",
            "Or*.X",
        ] {
            assert!(filter(&[wide]).everything, "{wide} must match everything");
        }
    }
}
