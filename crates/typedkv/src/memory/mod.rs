//! The in-process backend: a TTL-aware map with Redis string semantics.
//!
//! It exists for two jobs: the embedded default (examples, single-process tools) and users'
//! own unit tests. It runs behind the same typed layer as Redis, so values go through the same
//! codec and envelope and a serde attribute bincode cannot handle fails in tests already.
//!
//! Indexes (`indexes.rs`) live in the same map, under the same lock, so a write changes
//! the value and its index entries in one step, as a Redis script does.
//!
//! Time is `tokio::time::Instant`, so tests under a paused tokio clock
//! (`#[tokio::test(start_paused = true)]`) can advance past TTLs instantly.

mod indexes;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::backend::{Applied, IndexSpace, IndexSupport, IndexedOp, Lex, StaleMember};
use crate::backend::{Backend, Bytes, Check, CommitWrite, Committed, Guard, Swap};
use crate::backend::{Write, WriteExpiry};
use crate::error::Result;
use crate::index::Order;
use crate::options::ceil_millis;
use crate::options::{Condition, Expiry};

/// The in-process backend; clones share one map.
///
/// ```
/// use typedkv::{MemoryBackend, MemoryStore};
///
/// let backend = MemoryBackend::new();
/// let names = MemoryStore::<String>::builder(backend.clone(), "name").build()?;
/// let ages = MemoryStore::<u8>::builder(backend, "age").build()?;  // same map, other keys
/// # let _ = (names, ages);
/// # Ok::<(), typedkv::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct MemoryBackend {
    map: Arc<Mutex<Map>>,
}

#[derive(Default)]
struct Map {
    entries: HashMap<String, Entry>,
    /// Index members by the index's members key (see `indexes.rs`).
    indexes: HashMap<String, indexes::MemoryIndex>,
    /// When the map reaches this many entries, expired ones are swept out, so keys that
    /// expire without being read again do not accumulate.
    sweep_at: usize,
}

struct Entry {
    bytes: Bytes,
    expires_at: Option<Instant>,
    /// The entity's index members, as `(index name, member)`: its record.
    record: Vec<(String, Bytes)>,
}

impl Entry {
    fn alive(&self, now: Instant) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

const MIN_SWEEP: usize = 1024;

impl Map {
    fn live(&mut self, key: &str, now: Instant) -> Option<&Entry> {
        if self.entries.get(key).is_some_and(|e| !e.alive(now)) {
            self.entries.remove(key);
        }
        self.entries.get(key)
    }

    fn insert(&mut self, key: String, bytes: Bytes, expires_at: Option<Instant>, now: Instant) {
        // A record is the index layer's, apart from the value (Redis keeps it in a key of
        // its own): a plain overwrite leaves it, as it leaves a Redis record.
        let record = match self.entries.remove(&key) {
            Some(old) if old.alive(now) => old.record,
            _ => Vec::new(),
        };
        let entry = Entry {
            bytes,
            expires_at,
            record,
        };
        self.entries.insert(key, entry);
        if self.entries.len() >= self.sweep_at {
            self.entries.retain(|_, e| e.alive(now));
            self.sweep_at = (self.entries.len() * 2).max(MIN_SWEEP);
        }
    }

    /// The position of the first of a commit's `checks` that does not hold.
    fn unmet(&mut self, checks: &[Check], now: Instant) -> Option<usize> {
        checks.iter().position(|check| {
            let current = self.live(&check.key, now).map(|e| e.bytes.as_slice());
            !check.guard.matches(current)
        })
    }

    /// A commit's `writes`, in order.
    fn write_all(&mut self, writes: &[CommitWrite], now: Instant) {
        for write in writes {
            match &write.value {
                None => {
                    self.entries.remove(&write.key);
                }
                Some(bytes) => {
                    let expires_at = match write.expiry {
                        WriteExpiry::Never => None,
                        WriteExpiry::After(ttl) => deadline(ttl, now),
                        WriteExpiry::Keep => self.live(&write.key, now).and_then(|e| e.expires_at),
                    };
                    self.insert(write.key.clone(), bytes.clone(), expires_at, now);
                }
            }
        }
    }
}

fn deadline(after: Duration, now: Instant) -> Option<Instant> {
    // Same millisecond rounding as Redis PX; a TTL beyond Instant's range is "never".
    now.checked_add(Duration::from_millis(ceil_millis(after)))
}

impl MemoryBackend {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys currently stored, counting expired keys not yet swept out.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no keys are stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Map> {
        // No code panics while holding the lock, so a poisoned map is still consistent.
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for MemoryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBackend")
            .field("keys", &self.len())
            .finish()
    }
}

impl Backend for MemoryBackend {
    fn kind(&self) -> &'static str {
        "memory"
    }

    /// Itself: a process' map has no replicas to lose a write to, so every concern is met.
    fn with_concern(&self, concern: crate::WriteConcern) -> Result<Self> {
        concern.checked()?;
        Ok(self.clone())
    }

    /// The map's address: clones share it, separate maps differ (a
    /// [transaction](crate::transaction) refuses stores of another map).
    fn data_location(&self) -> String {
        format!("memory@{:p}", Arc::as_ptr(&self.map))
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        Ok(self
            .lock()
            .live(key, Instant::now())
            .map(|e| e.bytes.clone()))
    }

    async fn set(&self, key: &str, value: Bytes, write: Write) -> Result<bool> {
        let now = Instant::now();
        let mut map = self.lock();
        let current = map.live(key, now);
        let allowed = match write.condition {
            Condition::Always => true,
            Condition::IfAbsent => current.is_none(),
            Condition::IfPresent => current.is_some(),
        };
        if !allowed {
            return Ok(false);
        }
        let expires_at = match write.expiry {
            WriteExpiry::Never => None,
            WriteExpiry::After(ttl) => deadline(ttl, now),
            WriteExpiry::Keep => current.and_then(|e| e.expires_at),
        };
        map.insert(key.to_owned(), value, expires_at, now);
        Ok(true)
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        let now = Instant::now();
        let mut map = self.lock();
        Ok(map.entries.remove(key).is_some_and(|e| e.alive(now)))
    }

    async fn exists(&self, key: &str) -> Result<bool> {
        Ok(self.lock().live(key, Instant::now()).is_some())
    }

    async fn ttl(&self, key: &str) -> Result<Option<Expiry>> {
        let now = Instant::now();
        Ok(self.lock().live(key, now).map(|e| match e.expires_at {
            None => Expiry::Never,
            // Whole milliseconds, as Redis PTTL reports.
            Some(at) => Expiry::In(Duration::from_millis(
                u64::try_from(at.duration_since(now).as_millis()).unwrap_or(u64::MAX),
            )),
        }))
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let now = Instant::now();
        let mut map = self.lock();
        Ok(keys
            .iter()
            .map(|key| map.live(key, now).map(|e| e.bytes.clone()))
            .collect())
    }

    async fn commit(&self, checks: &[Check], writes: &[CommitWrite]) -> Result<Committed> {
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(check) = map.unmet(checks, now) {
            return Ok(Committed::Changed { check });
        }
        map.write_all(writes, now);
        Ok(Committed::Done)
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        guard: &Guard,
        new: Option<Bytes>,
        expiry: WriteExpiry,
    ) -> Result<Swap> {
        let now = Instant::now();
        let mut map = self.lock();
        let current = map.live(key, now);
        if !guard.matches(current.map(|e| e.bytes.as_slice())) {
            return Ok(Swap::Changed(current.map(|e| e.bytes.clone())));
        }
        let kept = current.and_then(|e| e.expires_at);
        match new {
            None => {
                map.entries.remove(key);
            }
            Some(bytes) => {
                let expires_at = match expiry {
                    WriteExpiry::Never => None,
                    WriteExpiry::After(ttl) => deadline(ttl, now),
                    WriteExpiry::Keep => kept,
                };
                map.insert(key.to_owned(), bytes, expires_at, now);
            }
        }
        Ok(Swap::Done)
    }

    async fn scan_page(
        &self,
        prefix: &str,
        _cursor: u64,
        _count: usize,
    ) -> Result<(u64, Vec<Bytes>)> {
        // One page holds every key: the map is in memory already, and a snapshot taken under
        // the lock returns each key exactly once.
        let now = Instant::now();
        let map = self.lock();
        let keys = map
            .entries
            .iter()
            .filter(|(key, entry)| key.starts_with(prefix) && entry.alive(now))
            .map(|(key, _)| key.clone().into_bytes())
            .collect();
        Ok((0, keys))
    }

    async fn delete_many(&self, keys: &[Bytes]) -> Result<u64> {
        let now = Instant::now();
        let mut map = self.lock();
        // Every key of this map is UTF-8 (it came from a `&str`); other bytes are not here.
        Ok(keys
            .iter()
            .filter_map(|key| std::str::from_utf8(key).ok())
            .filter(|key| map.entries.remove(*key).is_some_and(|e| e.alive(now)))
            .count() as u64)
    }

    fn index_support(&self) -> IndexSupport {
        IndexSupport::Atomic
    }

    async fn apply_indexed(&self, space: &IndexSpace, ops: &[IndexedOp]) -> Result<Applied> {
        Ok(self.apply_indexed_now(space, ops))
    }

    async fn apply_indexed_with(
        &self,
        space: &IndexSpace,
        ops: &[IndexedOp],
        checks: &[Check],
        writes: &[CommitWrite],
    ) -> Result<Applied> {
        let now = Instant::now();
        let mut map = self.lock();
        if let Some(check) = map.unmet(checks, now) {
            return Ok(Applied::Changed { check });
        }
        let applied = map.apply(space, ops, now);
        if matches!(applied, Applied::Done { .. }) {
            map.write_all(writes, now);
        }
        Ok(applied)
    }

    async fn index_members(
        &self,
        space: &IndexSpace,
        index: usize,
        range: (&Lex, &Lex),
        order: Order,
        limit: usize,
    ) -> Result<Vec<Bytes>> {
        Ok(self.index_members_now(space, index, range, order, limit))
    }

    async fn index_count(
        &self,
        space: &IndexSpace,
        index: usize,
        range: (&Lex, &Lex),
    ) -> Result<u64> {
        Ok(self.index_count_now(space, index, range))
    }

    async fn index_forget(
        &self,
        space: &IndexSpace,
        index: usize,
        stale: &[StaleMember],
    ) -> Result<u64> {
        Ok(self.index_forget_now(space, index, stale))
    }

    async fn set_many(&self, entries: Vec<(String, Bytes)>, expiry: WriteExpiry) -> Result<()> {
        let now = Instant::now();
        let expires_at = match expiry {
            WriteExpiry::After(ttl) => deadline(ttl, now),
            WriteExpiry::Never | WriteExpiry::Keep => None,
        };
        let mut map = self.lock();
        for (key, bytes) in entries {
            map.insert(key, bytes, expires_at, now);
        }
        Ok(())
    }
}
