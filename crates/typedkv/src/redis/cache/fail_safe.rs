//! Fail-safe reads (opt-in, [`CachedStoreBuilder::fail_safe`](super::CachedStoreBuilder)):
//! the last value this cache read from Redis for each key, kept apart from the cache itself,
//! to answer [`CachedStore::get_fail_safe`](super::CachedStore::get_fail_safe) when Redis
//! fails or is slow.
//!
//! The cache drops its entries when tracking is lost (it can no longer tell whether they are
//! current); these stay, each with the last moment it was known current: when it was read
//! from Redis, or served as a hit while tracking was on. A value's age is counted from then,
//! which over-states it (a tracked entry nobody read for a while was current all along), so
//! the staleness bound holds. A write by this process, through any store of the namespace
//! (this one, another `CachedStore` built apart, a plain store), forgets the key here too
//! (`typed/write_listeners.rs`), so the process never answers a value it has itself
//! replaced; a write by someone else only ages the value (its invalidation ends the cache
//! entry, and nothing confirms this one again).
//!
//! A read that started before such a write may finish after it with the old value: like a
//! cache fill (`entries.rs`), it confirms its value only if no write of its key's stripe was
//! heard since it started (a ticket), checked under the lock writes take.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use crate::error::Error;
use crate::typed::write_listeners::WriteListener;

/// Keys are spread over this many epochs, so that writes of some keys rarely keep reads of
/// others from confirming their values.
const STRIPES: usize = 64;

/// The fail-safe settings and the last known values.
pub(crate) struct Fallback<T> {
    known: Cache<String, Known<T>>,
    max_staleness: Duration,
    pub(crate) soft_timeout: Option<Duration>,
    /// Bumped by every write heard of a key of the stripe.
    epochs: [AtomicU64; STRIPES],
    stripe_of: RandomState,
    /// Orders confirmations against writes heard.
    turn: Mutex<()>,
}

/// Where a read of one key started, for [`Fallback::confirm`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    stripe: usize,
    epoch: u64,
}

struct Known<T> {
    value: Arc<T>,
    /// The last moment the value was known current.
    confirmed: Instant,
    /// When Redis expires the key (`None`: never); never served after.
    expires: Option<Instant>,
}

impl<T> Clone for Known<T> {
    fn clone(&self) -> Self {
        Known {
            value: Arc::clone(&self.value),
            confirmed: self.confirmed,
            expires: self.expires,
        }
    }
}

impl<T> Fallback<T> {
    pub(crate) fn new(
        capacity: usize,
        max_staleness: Duration,
        soft_timeout: Option<Duration>,
    ) -> Self {
        Fallback {
            known: Cache::new(capacity),
            max_staleness,
            soft_timeout,
            epochs: std::array::from_fn(|_| AtomicU64::new(0)),
            stripe_of: RandomState::new(),
            turn: Mutex::new(()),
        }
    }

    fn stripe(&self, key: &str) -> usize {
        // The modulo keeps the value below STRIPES, so the cast cannot truncate.
        (self.stripe_of.hash_one(key) % STRIPES as u64) as usize
    }

    /// Taken before a read of `key` starts.
    pub(crate) fn ticket(&self, key: &str) -> Ticket {
        let stripe = self.stripe(key);
        let epoch = self.epochs[stripe].load(Ordering::SeqCst);
        Ticket { stripe, epoch }
    }

    /// `value` of `key`, read from Redis by a read that took `ticket`, was current at `at`:
    /// kept, unless this process wrote a key of the stripe since the read started.
    pub(crate) fn confirm(
        &self,
        ticket: Ticket,
        key: &str,
        value: &Arc<T>,
        at: Instant,
        expires: Option<Instant>,
    ) {
        let known = Known {
            value: Arc::clone(value),
            confirmed: at,
            expires,
        };
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        if self.epochs[ticket.stripe].load(Ordering::SeqCst) == ticket.epoch {
            self.known.insert(key.to_owned(), known);
        }
    }

    /// `value` of `key` was served from the tracked cache at `at`, so was current then. Only
    /// the record of that very value is renewed (keeping its expiry); a hot key is renewed
    /// once its record aged noticeably, not on every hit.
    pub(crate) fn confirm_hit(&self, key: &str, value: &Arc<T>, at: Instant) {
        let renew = |known: &Known<T>| {
            Arc::ptr_eq(&known.value, value)
                && at.saturating_duration_since(known.confirmed) >= self.max_staleness / 16
        };
        if self.known.get(key).is_some_and(|known| renew(&known)) {
            // Checked again under the turn: a write heard meanwhile removed the record, and
            // must not see it come back.
            let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(known) = self.known.get(key).filter(|known| renew(known)) {
                let renewed = Known {
                    confirmed: at,
                    ..known
                };
                self.known.insert(key.to_owned(), renewed);
            }
        }
    }

    /// A read found `key` absent: nothing to fall back on.
    pub(crate) fn forget(&self, key: &str) {
        self.known.remove(key);
    }

    /// This process cleared the namespace.
    pub(crate) fn forget_all(&self) {
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        self.epochs
            .iter()
            .for_each(|epoch| _ = epoch.fetch_add(1, Ordering::SeqCst));
        self.known.clear();
    }

    /// The last known value of `key` and its age, if it is within the staleness bound and
    /// its key has not expired.
    pub(crate) fn stale(&self, key: &str) -> Option<(Arc<T>, Duration)> {
        let known = self.known.get(key)?;
        let now = Instant::now();
        let age = now.saturating_duration_since(known.confirmed);
        let alive = known.expires.is_none_or(|expires| now < expires);
        (alive && age <= self.max_staleness).then_some((known.value, age))
    }
}

impl<T: Send + Sync> WriteListener for Fallback<T> {
    /// This process wrote `key` (through any store): its old value must never be answered,
    /// and a read that started before must not confirm it.
    fn wrote(&self, key: &str) {
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        self.epochs[self.stripe(key)].fetch_add(1, Ordering::SeqCst);
        self.known.remove(key);
    }
}

/// A value answered by [`CachedStore::get_fail_safe`](super::CachedStore::get_fail_safe):
/// current, or the last known one.
#[derive(Debug)]
#[non_exhaustive]
pub struct Served<T> {
    /// The value.
    pub value: Arc<T>,
    /// `None`: read from Redis or from the tracked cache, current. `Some`: the last value
    /// known, answered because Redis failed or was slow.
    pub stale: Option<Stale>,
}

impl<T> Served<T> {
    /// Whether this is the last known value rather than the current one.
    pub fn is_stale(&self) -> bool {
        self.stale.is_some()
    }
}

/// Why and how stale a [`Served`] value is.
#[derive(Debug)]
#[non_exhaustive]
pub struct Stale {
    /// Time since the value was last known current (an upper bound).
    pub age: Duration,
    /// What kept the current value from being read.
    pub because: StaleBecause,
}

/// What kept a fail-safe read from answering the current value.
#[derive(Debug)]
#[non_exhaustive]
pub enum StaleBecause {
    /// Redis failed with a transient error (timeout, connection, failover).
    Failed(Error),
    /// Redis had not answered within the soft timeout; the read went on in the background
    /// and caches what it finds.
    SoftTimeout(Duration),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Fallback<u32> {
        Fallback::new(100, Duration::from_secs(60), None)
    }

    fn stale_value(table: &Fallback<u32>, key: &str) -> Option<u32> {
        table.stale(key).map(|(value, _)| *value)
    }

    #[test]
    fn a_read_confirms_what_it_read() {
        let table = table();
        let ticket = table.ticket("k");
        table.confirm(ticket, "k", &Arc::new(1), Instant::now(), None);
        assert_eq!(stale_value(&table, "k"), Some(1));
    }

    /// The race tickets exist for: a read started, this process wrote the key (through any
    /// store), then the read came back with the old value. It must not be kept.
    #[test]
    fn a_read_that_raced_a_write_of_this_process_is_not_kept() {
        let table = table();
        let ticket = table.ticket("k");
        table.wrote("k");
        table.confirm(ticket, "k", &Arc::new(1), Instant::now(), None);
        assert_eq!(stale_value(&table, "k"), None);
        // A read started after the write is kept.
        let ticket = table.ticket("k");
        table.confirm(ticket, "k", &Arc::new(2), Instant::now(), None);
        assert_eq!(stale_value(&table, "k"), Some(2));
    }

    #[test]
    fn a_write_forgets_and_a_hit_cannot_bring_the_value_back() {
        let table = Fallback::new(100, Duration::from_millis(160), None);
        let value = Arc::new(1);
        let read_at = Instant::now();
        table.confirm(table.ticket("k"), "k", &value, read_at, None);
        table.wrote("k");
        // A hit of the old value from a cache that had not heard of the write yet.
        table.confirm_hit("k", &value, read_at + Duration::from_millis(20));
        assert_eq!(stale_value(&table, "k"), None);
    }

    #[test]
    fn clearing_forgets_everything_and_stops_reads_in_flight() {
        let table = table();
        table.confirm(table.ticket("a"), "a", &Arc::new(1), Instant::now(), None);
        let in_flight = table.ticket("b");
        table.forget_all();
        table.confirm(in_flight, "b", &Arc::new(2), Instant::now(), None);
        assert_eq!(
            (stale_value(&table, "a"), stale_value(&table, "b")),
            (None, None)
        );
    }
}
