//! Fail-safe reads (opt-in, [`CachedStoreBuilder::fail_safe`](super::CachedStoreBuilder)):
//! the last value this cache read from Redis for each key, kept apart from the cache itself,
//! to answer [`CachedStore::get_fail_safe`](super::CachedStore::get_fail_safe) when Redis
//! fails or is slow.
//!
//! The cache drops its entries when tracking is lost (it can no longer tell whether they are
//! current); these stay, each with the last moment it was known current: when it was read
//! from Redis, or served as a hit while tracking was on. A value's age is counted from then,
//! which over-states it (a tracked entry nobody read for a while was current all along), so
//! the staleness bound holds. A write through this store forgets the key here too, so the
//! process never answers a value it has itself replaced; a write by someone else only ages
//! the value (its invalidation ends the cache entry, and nothing confirms this one again).

use std::sync::Arc;
use std::time::{Duration, Instant};

use quick_cache::sync::Cache;

use crate::error::Error;

/// The fail-safe settings and the last known values.
pub(crate) struct Fallback<T> {
    known: Cache<String, Known<T>>,
    max_staleness: Duration,
    pub(crate) soft_timeout: Option<Duration>,
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
        }
    }

    /// `value` of `key`, read from Redis, was current at `at`.
    pub(crate) fn confirm(&self, key: &str, value: &Arc<T>, at: Instant, expires: Option<Instant>) {
        let known = Known {
            value: Arc::clone(value),
            confirmed: at,
            expires,
        };
        self.known.insert(key.to_owned(), known);
    }

    /// `value` of `key` was served from the tracked cache at `at`, so was current then. Only
    /// the record of that very value is renewed (keeping its expiry); a hot key is renewed
    /// once its record aged noticeably, not on every hit.
    pub(crate) fn confirm_hit(&self, key: &str, value: &Arc<T>, at: Instant) {
        if let Some(known) = self.known.get(key)
            && Arc::ptr_eq(&known.value, value)
            && at.saturating_duration_since(known.confirmed) >= self.max_staleness / 16
        {
            self.known.insert(
                key.to_owned(),
                Known {
                    confirmed: at,
                    ..known
                },
            );
        }
    }

    /// This process wrote `keys`: their old values must never be answered.
    pub(crate) fn forget<'k>(&self, keys: impl IntoIterator<Item = &'k str>) {
        for key in keys {
            self.known.remove(key);
        }
    }

    /// This process cleared the namespace.
    pub(crate) fn forget_all(&self) {
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
