//! The aggregates this process last loaded or wrote, each exactly at the version recorded with it.
//!
//! A hint, never the truth: a cached state is only used in two ways that the log itself checks.
//! - [`super::EventStore::load`] folds onto it whatever the log holds after its version, in one
//!   statement, so a load from the cache is as fresh as a full one.
//! - Command dispatch takes it out (no copy), decides against it without reading, and puts the
//!   state after its append back; the append at the cached version conflicts if anyone (another
//!   process) wrote since, and the command is decided again on a fresh load. A decision that writes nothing (a rejection, an idempotent repeat) is never
//!   trusted from the cache: dispatch loads and decides again first.
//!
//! Bounded: a fixed number of slots, each holding one aggregate; a newcomer whose key hashes to a
//! taken slot evicts its occupant. A slot only ever moves forward for the same aggregate (versions
//! only grow in the log), so a slow loader cannot put back an older state over a newer one.

use std::any::Any;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use crate::Position;

/// How many aggregates one process keeps.
const SLOTS: usize = 8192;

/// A cached aggregate: the state, its version and, when known, the position of its last event.
pub(crate) struct Hit<A> {
    pub(crate) aggregate: A,
    pub(crate) version: i64,
    pub(crate) position: Option<Position>,
}

struct Slot {
    aggregate_type: &'static str,
    aggregate_id: Box<str>,
    version: i64,
    position: Option<Position>,
    state: Arc<dyn Any + Send + Sync>,
}

impl Slot {
    fn holds(&self, aggregate_type: &str, aggregate_id: &str) -> bool {
        self.aggregate_type == aggregate_type && &*self.aggregate_id == aggregate_id
    }
}

pub(crate) struct AggregateCache {
    slots: Box<[Mutex<Option<Slot>>]>,
}

impl Default for AggregateCache {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| Mutex::new(None)).collect(),
        }
    }
}

impl AggregateCache {
    fn slot(&self, aggregate_type: &str, aggregate_id: &str) -> &Mutex<Option<Slot>> {
        let mut hasher = DefaultHasher::new();
        (aggregate_type, aggregate_id).hash(&mut hasher);
        &self.slots[(hasher.finish() as usize) % self.slots.len()]
    }

    /// A copy of the cached state of `aggregate_id`, if this process holds one.
    pub(crate) fn get<A: Clone + Send + Sync + 'static>(
        &self,
        aggregate_type: &'static str,
        aggregate_id: &str,
    ) -> Option<Hit<A>> {
        // Clone the `Arc` under the lock, the (possibly large) state outside it.
        let (state, version, position) = {
            let slot = self
                .slot(aggregate_type, aggregate_id)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let slot = slot
                .as_ref()
                .filter(|s| s.holds(aggregate_type, aggregate_id))?;
            (Arc::clone(&slot.state), slot.version, slot.position)
        };
        let aggregate = state.downcast_ref::<A>()?.clone();
        Some(Hit {
            aggregate,
            version,
            position,
        })
    }

    /// Takes the cached state of `aggregate_id` out of the cache: the caller (command dispatch,
    /// one command per aggregate at a time) owns it without a copy, and puts the state after its
    /// command back. A state shared with a reader being copied right now is copied instead.
    pub(crate) fn take<A: Clone + Send + Sync + 'static>(
        &self,
        aggregate_type: &'static str,
        aggregate_id: &str,
    ) -> Option<Hit<A>> {
        let slot = {
            let mut slot = self
                .slot(aggregate_type, aggregate_id)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !slot
                .as_ref()
                .is_some_and(|s| s.holds(aggregate_type, aggregate_id))
            {
                return None;
            }
            slot.take()?
        };
        let state = slot.state.downcast::<A>().ok()?;
        let aggregate = Arc::try_unwrap(state).unwrap_or_else(|shared| (*shared).clone());
        Some(Hit {
            aggregate,
            version: slot.version,
            position: slot.position,
        })
    }

    /// Records `aggregate` as the state of `aggregate_id` at `version`, unless a later version of
    /// it is cached already.
    pub(crate) fn put<A: Send + Sync + 'static>(
        &self,
        aggregate_type: &'static str,
        aggregate_id: &str,
        version: i64,
        position: Option<Position>,
        aggregate: A,
    ) {
        self.put_shared(
            aggregate_type,
            aggregate_id,
            version,
            position,
            Arc::new(aggregate),
        );
    }

    /// [`Self::put`] of a state the caller keeps a handle on (no copy).
    pub(crate) fn put_shared<A: Send + Sync + 'static>(
        &self,
        aggregate_type: &'static str,
        aggregate_id: &str,
        version: i64,
        position: Option<Position>,
        aggregate: Arc<A>,
    ) {
        let mut slot = self
            .slot(aggregate_type, aggregate_id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(held) = slot.as_ref() {
            let same = held.holds(aggregate_type, aggregate_id);
            if same && (held.version > version || (held.version == version && position.is_none())) {
                return;
            }
        }
        *slot = Some(Slot {
            aggregate_type,
            aggregate_id: aggregate_id.into(),
            version,
            position,
            state: aggregate,
        });
    }

    /// Forgets `aggregate_id`.
    pub(crate) fn remove(&self, aggregate_type: &'static str, aggregate_id: &str) {
        let mut slot = self
            .slot(aggregate_type, aggregate_id)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot
            .as_ref()
            .is_some_and(|s| s.holds(aggregate_type, aggregate_id))
        {
            *slot = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_never_moves_back_to_an_older_version() {
        let cache = AggregateCache::default();
        cache.put("T", "a", 5, None, 5_u32);
        cache.put("T", "a", 3, None, 3_u32);
        let hit = cache.get::<u32>("T", "a").map(|h| (h.aggregate, h.version));
        assert_eq!(hit, Some((5, 5)));
        cache.put("T", "a", 6, None, 6_u32);
        assert_eq!(cache.get::<u32>("T", "a").map(|h| h.version), Some(6));
    }

    #[test]
    fn a_taken_state_is_gone_until_put_back() {
        let cache = AggregateCache::default();
        cache.put("T", "a", 1, None, 1_u32);
        assert!(cache.take::<u32>("T", "b").is_none());
        assert_eq!(cache.take::<u32>("T", "a").map(|h| h.aggregate), Some(1));
        assert!(cache.get::<u32>("T", "a").is_none());
        cache.put("T", "a", 2, None, 2_u32);
        assert_eq!(cache.get::<u32>("T", "a").map(|h| h.version), Some(2));
    }

    #[test]
    fn another_aggregate_or_type_is_a_miss() {
        let cache = AggregateCache::default();
        cache.put("T", "a", 1, None, 1_u32);
        assert!(cache.get::<u32>("T", "b").is_none());
        assert!(cache.get::<u32>("U", "a").is_none());
        cache.remove("T", "a");
        assert!(cache.get::<u32>("T", "a").is_none());
    }
}
