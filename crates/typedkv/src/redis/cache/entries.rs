//! The cached entries and the rules that keep them fresh.
//!
//! A miss reads Redis and then inserts; an invalidation can arrive in between (the read saw
//! the old value, the write happened, its invalidation was handled, then the insert came).
//! So every invalidation, eviction and flush bumps an epoch, a fill remembers the epoch it
//! started at, and the insert happens only if the epoch is unchanged, checked and done under
//! the same lock the invalidations take. Hits take no lock.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use quick_cache::sync::Cache;

use super::CacheStats;
use crate::typed::write_listeners::WriteListener;

/// One cached value and when Redis will expire its key (`None`: never).
pub(crate) struct Entry<T> {
    value: Arc<T>,
    expires: Option<Instant>,
}

impl<T> Clone for Entry<T> {
    fn clone(&self) -> Self {
        Entry {
            value: Arc::clone(&self.value),
            expires: self.expires,
        }
    }
}

pub(crate) struct Entries<T> {
    cache: Cache<String, Entry<T>>,
    /// Bumped by every invalidation, eviction and flush.
    epoch: AtomicU64,
    /// Whether invalidations are being received. While not, nothing is cached.
    tracking: AtomicBool,
    /// Orders fills against invalidations (see the module docs).
    turn: Mutex<()>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
}

impl<T> Entries<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Entries {
            cache: Cache::new(capacity),
            epoch: AtomicU64::new(0),
            tracking: AtomicBool::new(false),
            turn: Mutex::new(()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    /// The cached value of `key`, unless absent or past its key's expiry.
    pub(crate) fn get(&self, key: &str) -> Option<Arc<T>> {
        let found = self
            .cache
            .get(key)
            .filter(|entry| entry.expires.is_none_or(|expires| Instant::now() < expires));
        let counter = match found {
            Some(_) => &self.hits,
            None => &self.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found.map(|entry| entry.value)
    }

    /// Where a fill starts: the epoch to check at insert time, or `None` when nothing may be
    /// cached (not tracking).
    pub(crate) fn fill_ticket(&self) -> Option<u64> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        self.tracking.load(Ordering::SeqCst).then_some(epoch)
    }

    /// Caches `value` if nothing was invalidated since `ticket` was taken.
    pub(crate) fn insert(&self, ticket: u64, key: String, value: Arc<T>, expires: Option<Instant>) {
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        if self.epoch.load(Ordering::SeqCst) == ticket && self.tracking.load(Ordering::SeqCst) {
            self.cache.insert(key, Entry { value, expires });
        }
    }

    /// Drops `keys` (an invalidation from Redis, or a write through the store).
    pub(crate) fn evict<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for key in keys {
            if let Ok(key) = std::str::from_utf8(key) {
                self.cache.remove(key);
            }
        }
    }

    /// Counts one invalidation message from Redis, once applied: a reader of the count
    /// (acquire) then sees its evictions done, so a fill it starts after is not voided by it.
    pub(crate) fn note_invalidation(&self) {
        self.invalidations.fetch_add(1, Ordering::Release);
    }

    /// Drops everything (Redis dropped its tracking table, or the store was cleared).
    pub(crate) fn flush(&self) {
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        self.drop_all();
    }

    /// Invalidations stopped arriving: drops everything and caches nothing until
    /// [`Entries::start_tracking`].
    pub(crate) fn stop_tracking(&self) {
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        self.drop_all();
        // Last, so whoever sees tracking off (a hit takes no lock) finds the entries gone.
        self.tracking.store(false, Ordering::SeqCst);
    }

    /// [`Entries::flush`]'s work; the caller holds `turn`.
    fn drop_all(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.clear();
        self.flushes.fetch_add(1, Ordering::Release);
    }

    /// Invalidations are being received (again): caching may start.
    pub(crate) fn start_tracking(&self) {
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.tracking.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_tracking(&self) -> bool {
        self.tracking.load(Ordering::SeqCst)
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Acquire),
            flushes: self.flushes.load(Ordering::Acquire),
            entries: self.cache.len(),
        }
    }
}

impl<T: Send + Sync> WriteListener for Entries<T> {
    /// This process wrote `key` through some store: evicted before that write returns, so a
    /// read after it never hits the old value, whichever store or cache it goes through.
    fn wrote(&self, key: &str) {
        self.evict([key.as_bytes()]);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn tracking() -> Entries<u32> {
        let entries = Entries::new(100);
        entries.start_tracking();
        entries
    }

    #[test]
    fn a_fill_is_cached_when_nothing_changed_meanwhile() {
        let entries = tracking();
        let ticket = entries.fill_ticket().unwrap();
        entries.insert(ticket, "k".into(), Arc::new(1), None);
        assert_eq!(entries.get("k").as_deref(), Some(&1));
    }

    /// The race the epoch exists for: the fill read the old value, the write's invalidation
    /// was handled (of any key: evictions are not per key), then the fill tried to insert.
    #[test]
    fn a_fill_that_raced_an_invalidation_is_not_cached() {
        let entries = tracking();
        let ticket = entries.fill_ticket().unwrap();
        entries.evict([b"k".as_slice()]);
        entries.insert(ticket, "k".into(), Arc::new(1), None);
        assert_eq!(entries.get("k"), None);
    }

    #[test]
    fn nothing_is_cached_while_not_tracking() {
        let entries = tracking();
        let ticket = entries.fill_ticket().unwrap();
        entries.stop_tracking();
        assert_eq!(entries.fill_ticket(), None);
        entries.insert(ticket, "k".into(), Arc::new(1), None);
        assert_eq!(entries.get("k"), None);
        entries.start_tracking();
        let ticket = entries.fill_ticket().unwrap();
        entries.insert(ticket, "k".into(), Arc::new(2), None);
        assert_eq!(entries.get("k").as_deref(), Some(&2));
    }

    /// A reader that sees tracking off never finds an entry cached before: the fail-safe
    /// read answers entries as current, so one left over would be answered as fresh after
    /// invalidations stopped. Checked while another thread stops and restarts tracking.
    #[test]
    fn entries_are_gone_once_tracking_is_seen_off() {
        let entries = Arc::new(tracking());
        let rounds = 2_000;
        let stopper = {
            let entries = Arc::clone(&entries);
            std::thread::spawn(move || {
                for round in 0..rounds {
                    entries.start_tracking();
                    let ticket = entries.fill_ticket().unwrap();
                    entries.insert(ticket, "k".into(), Arc::new(round), None);
                    entries.stop_tracking();
                }
            })
        };
        while !stopper.is_finished() {
            if !entries.is_tracking() {
                let flushes = entries.stats().flushes;
                let found = entries.get("k");
                // Unless a later round started and stopped meanwhile (it flushes again).
                let same_stop = !entries.is_tracking() && entries.stats().flushes == flushes;
                assert!(found.is_none() || !same_stop, "{found:?}");
            }
        }
        stopper.join().unwrap();
    }

    #[test]
    fn expired_entries_are_not_served() {
        let entries = tracking();
        let past = Instant::now() - Duration::from_millis(1);
        let ticket = entries.fill_ticket().unwrap();
        entries.insert(ticket, "k".into(), Arc::new(1), Some(past));
        assert_eq!(entries.get("k"), None);
        let stats = entries.stats();
        assert_eq!((stats.hits, stats.misses), (0, 1));
    }
}
