//! Who in this process hears of its writes: the entries and fail-safe tables of every
//! [`CachedStore`](crate::CachedStore), by data location and namespace.
//!
//! A fail-safe table must never answer a value this process wrote over. Writes through its
//! own `CachedStore` are easy, but the same namespace may be written through another store
//! of the process: a second `CachedStore` built separately, a plain `RedisStore`, the store
//! behind a cache (`CachedStore::store`). Redis' invalidations reach every cache, but they
//! are asynchronous, and an invalidation does not mean "this process wrote" (another client
//! may have). So every write of every `TypedStore` tells the tables registered under its
//! backend's [`data_location`](crate::Backend::data_location) and key prefix, after the
//! write and before it returns (also when it failed: it may have applied). The location
//! keeps a process that uses one namespace on several servers (tenants, tests) from
//! evicting the caches of one server for writes to another.
//!
//! Cost when no table is registered (no fail-safe cache in the process): one atomic load
//! per write. Otherwise a read lock and one lookup per write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, PoisonError, RwLock, Weak};

use crate::backend::Backend;

/// A table that must forget what this process writes.
pub(crate) trait WriteListener: Send + Sync {
    /// This process wrote `key` (or tried to): its old value must never be answered.
    fn wrote(&self, key: &str);
}

/// Registered listeners, dead ones included until the next registration prunes them.
static REGISTERED: AtomicUsize = AtomicUsize::new(0);
type Listeners = HashMap<String, Vec<Weak<dyn WriteListener>>>;
static LISTENERS: LazyLock<RwLock<Listeners>> = LazyLock::new(RwLock::default);

/// What listeners of the writes of stores on `backend` under `prefix` are registered under.
pub(crate) fn key<B: Backend>(backend: &B, prefix: &str) -> String {
    format!("{}\n{prefix}", backend.data_location())
}

/// `listener` hears every write of this process under `key` (from [`key`]), for as long as
/// it lives.
pub(crate) fn listen(key: &str, listener: Weak<dyn WriteListener>) {
    let mut all = LISTENERS.write().unwrap_or_else(PoisonError::into_inner);
    all.values_mut()
        .for_each(|listeners| listeners.retain(|l| l.strong_count() > 0));
    all.retain(|_, listeners| !listeners.is_empty());
    all.entry(key.to_owned()).or_default().push(listener);
    let count = all.values().map(Vec::len).sum();
    REGISTERED.store(count, Ordering::SeqCst);
}

/// Whether any listener may hear a write (so that a write path can skip collecting keys).
pub(crate) fn any() -> bool {
    REGISTERED.load(Ordering::SeqCst) > 0
}

/// This process wrote `keys` through a store whose listeners are under `key` (or tried to).
pub(crate) fn wrote<'k>(key: &str, keys: impl IntoIterator<Item = &'k [u8]>) {
    if !any() {
        return;
    }
    let listeners: Vec<Arc<dyn WriteListener>> = {
        let all = LISTENERS.read().unwrap_or_else(PoisonError::into_inner);
        let Some(listeners) = all.get(key) else {
            return;
        };
        listeners.iter().filter_map(Weak::upgrade).collect()
    };
    for key in keys {
        // Tables hold keys of ids a store accepts, which are text.
        if let Ok(key) = std::str::from_utf8(key) {
            listeners.iter().for_each(|listener| listener.wrote(key));
        }
    }
}
