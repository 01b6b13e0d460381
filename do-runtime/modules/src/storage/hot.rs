//! The hot tier: a bounded, least-recently-used cache of the Things an object's `get`
//! read, in front of SQLite.
//!
//! It never serves stale data: every write of a Thing forgets it as the write is made
//! (inside the write's transaction, before anything can read it again), and a rollback
//! anywhere in the object (a failed write, a class's transaction that fails, a
//! coalesced commit that fails) empties the cache: the host counts its rollbacks
//! ([`crate::host::Sql::rollbacks`]) and the cache compares that count before each use.
//! A host that does not count them gets no cache. Only `get` fills it.

use super::things::Thing;
use hashlink::LinkedHashMap;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The default of [`HotConfig::bytes`]: 4 MiB per object.
pub const DEFAULT_HOT_BYTES: usize = 4 << 20;

/// Bytes a cached Thing counts besides its id, type and data text.
const ENTRY_OVERHEAD: usize = 128;

/// Hits and misses of the hot tiers of every object of a host (for its metrics).
#[derive(Debug, Default)]
pub struct HotStats {
    /// Gets answered from memory.
    pub hits: AtomicU64,
    /// Gets that read SQLite.
    pub misses: AtomicU64,
}

impl HotStats {
    /// Hits / (hits + misses), 0 before any get.
    pub fn hit_rate(&self) -> f64 {
        let (h, m) = (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed));
        if h + m == 0 {
            0.0
        } else {
            h as f64 / (h + m) as f64
        }
    }
}

/// How big each object's hot tier is, and where its counts go.
#[derive(Debug, Clone)]
pub struct HotConfig {
    /// Bytes of Things (id, type and data as JSON text, plus a fixed overhead each) one
    /// object keeps; 0 turns the tier off.
    pub bytes: usize,
    /// Shared by the host's objects.
    pub stats: Arc<HotStats>,
}

impl Default for HotConfig {
    fn default() -> Self {
        HotConfig { bytes: DEFAULT_HOT_BYTES, stats: Arc::default() }
    }
}

struct Entry {
    thing: Rc<Thing>,
    bytes: usize,
}

/// One object's hot tier.
pub struct HotCache {
    config: HotConfig,
    map: RefCell<LinkedHashMap<String, Entry>>,
    bytes: Cell<usize>,
    /// The host's rollback count when the cache was last known coherent.
    rollbacks: Cell<Option<u64>>,
}

impl HotCache {
    /// An empty cache.
    pub fn new(config: HotConfig) -> HotCache {
        HotCache { config, map: RefCell::default(), bytes: Cell::new(0), rollbacks: Cell::new(None) }
    }

    /// Whether the cache may be used now, given the host's rollback count (`None`: the
    /// host does not count them). Empties it if a rollback happened since the last use.
    fn usable(&self, rollbacks: Option<u64>) -> bool {
        let Some(now) = rollbacks else { return false };
        if self.config.bytes == 0 {
            return false;
        }
        if self.rollbacks.get() != Some(now) {
            self.clear();
            self.rollbacks.set(Some(now));
        }
        true
    }

    /// The cached Thing `id`, counting a hit or a miss.
    pub fn get(&self, id: &str, rollbacks: Option<u64>) -> Option<Rc<Thing>> {
        if !self.usable(rollbacks) {
            return None;
        }
        let hit = self.map.borrow_mut().to_back(id).map(|e| e.thing.clone());
        let counter = if hit.is_some() { &self.config.stats.hits } else { &self.config.stats.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Keeps `thing` (read from SQLite, `text_bytes` its data's JSON text), evicting the
    /// least recently used beyond the budget. A Thing larger than the budget is not kept.
    pub fn put(&self, thing: Rc<Thing>, text_bytes: usize, rollbacks: Option<u64>) {
        if !self.usable(rollbacks) {
            return;
        }
        let bytes = text_bytes + thing.id.len() + thing.type_.len() + ENTRY_OVERHEAD;
        if bytes > self.config.bytes {
            return;
        }
        let mut map = self.map.borrow_mut();
        if let Some(old) = map.insert(thing.id.clone(), Entry { thing, bytes }) {
            self.bytes.set(self.bytes.get() - old.bytes);
        }
        self.bytes.set(self.bytes.get() + bytes);
        while self.bytes.get() > self.config.bytes {
            match map.pop_front() {
                Some((_, e)) => self.bytes.set(self.bytes.get() - e.bytes),
                None => break,
            }
        }
    }

    /// Forgets `id` (it is being written).
    pub fn forget(&self, id: &str) {
        if let Some(e) = self.map.borrow_mut().remove(id) {
            self.bytes.set(self.bytes.get() - e.bytes);
        }
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.map.borrow_mut().clear();
        self.bytes.set(0);
    }

    /// Things and bytes held now.
    pub fn size(&self) -> (usize, usize) {
        (self.map.borrow().len(), self.bytes.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thing(id: &str, n: usize) -> Rc<Thing> {
        Rc::new(Thing {
            id: id.into(),
            type_: "T".into(),
            data: serde_json::json!({ "s": "x".repeat(n) }),
            created_at: 1,
            updated_at: 1,
            deleted_at: None,
            version: 1,
        })
    }

    #[test]
    fn the_least_recently_used_go_first_and_the_budget_holds() {
        let c = HotCache::new(HotConfig { bytes: 1000, stats: Arc::default() });
        for id in ["a", "b", "c"] {
            c.put(thing(id, 100), 200, Some(0));
        }
        assert!(c.get("a", Some(0)).is_some(), "a is now the most recent");
        c.put(thing("d", 100), 200, Some(0));
        assert!(c.get("b", Some(0)).is_none(), "b was the least recently used");
        assert!(c.get("a", Some(0)).is_some() && c.get("d", Some(0)).is_some());
        assert!(c.size().1 <= 1000);
        c.put(thing("huge", 5000), 5000, Some(0));
        assert!(c.get("huge", Some(0)).is_none(), "over the budget alone: not kept");
        assert_eq!(
            (c.config.stats.hits.load(Ordering::Relaxed), c.config.stats.misses.load(Ordering::Relaxed)),
            (3, 2)
        );
    }

    #[test]
    fn a_rollback_or_a_host_without_a_count_means_no_cached_answer() {
        let c = HotCache::new(HotConfig::default());
        c.put(thing("a", 1), 10, Some(3));
        assert!(c.get("a", Some(3)).is_some());
        assert!(c.get("a", Some(4)).is_none(), "a rollback since: emptied");
        c.put(thing("a", 1), 10, None);
        assert!(c.get("a", None).is_none());
        c.put(thing("a", 1), 10, Some(4));
        c.forget("a");
        assert!(c.get("a", Some(4)).is_none());
        assert_eq!(c.size(), (0, 0));
    }
}
