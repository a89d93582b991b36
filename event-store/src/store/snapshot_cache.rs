//! The snapshot texts this process has read, so a hot aggregate's snapshot crosses the wire (and
//! Postgres's jsonb output, most of a load of a big snapshot) once per snapshot, not once per load.
//!
//! Never trusted on its own: every load still asks Postgres for the row's `version` and `xmin`
//! (which every write to the row changes) and gets the state only when they differ from the
//! cached pair. Bounded in bytes and entries, least recently used out first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Bytes of state text kept at most; a snapshot over a quarter of it is never kept.
const BUDGET_BYTES: usize = 32 << 20;
const MAX_ENTRIES: usize = 1024;

/// One snapshot row as it was read.
#[derive(Debug, Clone)]
pub(super) struct Cached {
    pub(super) version: i64,
    /// The row's `xmin`: which write produced it.
    pub(super) row_version: String,
    pub(super) state: Arc<str>,
}

#[derive(Debug, Default)]
pub(super) struct SnapshotCache {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<(&'static str, String), Entry>,
    bytes: usize,
    clock: u64,
}

#[derive(Debug)]
struct Entry {
    cached: Cached,
    last_used: u64,
}

impl SnapshotCache {
    pub(super) fn get(&self, aggregate_type: &'static str, aggregate_id: &str) -> Option<Cached> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.clock += 1;
        let now = inner.clock;
        let entry = inner
            .entries
            .get_mut(&(aggregate_type, aggregate_id.to_owned()))?;
        entry.last_used = now;
        Some(entry.cached.clone())
    }

    pub(super) fn put(&self, aggregate_type: &'static str, aggregate_id: &str, cached: Cached) {
        let size = cached.state.len();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.remove(aggregate_type, aggregate_id);
        if size > BUDGET_BYTES / 4 {
            return;
        }
        while inner.bytes + size > BUDGET_BYTES || inner.entries.len() >= MAX_ENTRIES {
            let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.last_used)
                .map(|(key, _)| key.clone())
            else {
                break;
            };
            inner.remove(oldest.0, &oldest.1);
        }
        inner.clock += 1;
        let last_used = inner.clock;
        inner.bytes += size;
        inner.entries.insert(
            (aggregate_type, aggregate_id.to_owned()),
            Entry { cached, last_used },
        );
    }

    pub(super) fn remove(&self, aggregate_type: &'static str, aggregate_id: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.remove(aggregate_type, aggregate_id);
    }
}

impl Inner {
    fn remove(&mut self, aggregate_type: &'static str, aggregate_id: &str) {
        if let Some(entry) = self
            .entries
            .remove(&(aggregate_type, aggregate_id.to_owned()))
        {
            self.bytes -= entry.cached.state.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cached(version: i64, bytes: usize) -> Cached {
        Cached {
            version,
            row_version: version.to_string(),
            state: "x".repeat(bytes).into(),
        }
    }

    #[test]
    fn the_least_recently_used_snapshot_leaves_first_when_the_budget_is_spent() {
        let cache = SnapshotCache::default();
        let quarter = BUDGET_BYTES / 4;
        for id in ["a", "b", "c", "d"] {
            cache.put("T", id, cached(1, quarter));
        }
        assert!(cache.get("T", "a").is_some(), "now the most recently used");
        cache.put("T", "e", cached(1, quarter));
        assert!(cache.get("T", "b").is_none());
        for id in ["a", "c", "d", "e"] {
            assert!(cache.get("T", id).is_some(), "{id}");
        }
        cache.put("T", "huge", cached(1, quarter + 1));
        assert!(cache.get("T", "huge").is_none());
        cache.put("T", "a", cached(2, 10));
        assert_eq!(cache.get("T", "a").map(|c| c.version), Some(2));
        cache.remove("T", "a");
        assert!(cache.get("T", "a").is_none());
        assert_eq!(
            cache.inner.lock().unwrap().bytes,
            3 * quarter,
            "bytes follow the entries"
        );
    }
}
