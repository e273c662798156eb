//! Cache-aside loading (`get_or_load`): what a loader returns, and the shared result of
//! one load awaited by every concurrent caller.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::{BoxFuture, Shared};

use crate::backend::Bytes;
use crate::error::{BoxError, Error};
use crate::options::TtlPolicy;

/// What a [`get_or_load`](crate::Store::get_or_load) loader returns: the value,
/// and whether and how long to cache it.
///
/// ```
/// use std::time::Duration;
/// use typedkv::Loaded;
///
/// let user = Loaded::new("alice");                                  // store's default TTL
/// let quote = Loaded::with_ttl(42.5, Duration::from_secs(5));       // this TTL
/// let flag = Loaded::uncached(false);                               // answer, do not store
/// # let _ = (user, quote, flag);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded<T> {
    pub(crate) value: T,
    /// How to store it; `None`: do not store.
    pub(crate) cache: Option<TtlPolicy>,
}

impl<T> Loaded<T> {
    /// Cache `value` with the store's default TTL (none if the store has none).
    pub fn new(value: T) -> Self {
        Loaded {
            value,
            cache: Some(TtlPolicy::StoreDefault),
        }
    }

    /// Cache `value` for `ttl` (rounded up to whole milliseconds; must not be zero).
    pub fn with_ttl(value: T, ttl: Duration) -> Self {
        Loaded {
            value,
            cache: Some(TtlPolicy::Expire(ttl)),
        }
    }

    /// Cache `value` without expiry, whatever the store's default.
    pub fn forever(value: T) -> Self {
        Loaded {
            value,
            cache: Some(TtlPolicy::Persist),
        }
    }

    /// Return `value` to the callers waiting now, but do not store it: the next call loads
    /// again.
    pub fn uncached(value: T) -> Self {
        Loaded { value, cache: None }
    }
}

/// A loader for [`Store::get_or_load`](crate::Store::get_or_load) in its
/// object-safe form; [`StoreExt::get_or_insert_with`](crate::StoreExt::get_or_insert_with) boxes a closure.
pub type Loader<T> = Box<dyn FnOnce() -> BoxFuture<'static, Result<Loaded<T>, BoxError>> + Send>;

/// One error shared by every caller of a load.
#[derive(Debug, Clone)]
pub(crate) struct SharedError(pub(crate) Arc<dyn std::error::Error + Send + Sync>);

impl fmt::Display for SharedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl std::error::Error for SharedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// Why a load failed, for every caller awaiting it.
#[derive(Debug, Clone)]
pub(crate) enum LoadFailure {
    /// The loader failed, panicked or was cancelled: [`Error::Load`] for every caller.
    Loader(SharedError),
    /// A step of the store's own failed (reading, encoding, the TTL the loader asked for,
    /// writing): every caller gets that same error, not a load failure.
    Store(Arc<Error>),
}

impl LoadFailure {
    /// The error of one caller of the failed load of `key`.
    pub(crate) fn into_error(self, key: String) -> Error {
        match self {
            LoadFailure::Loader(failure) => Error::Load {
                key,
                source: Box::new(failure),
            },
            LoadFailure::Store(error) => Error::replicate(&error),
        }
    }
}

/// A load in flight, awaited by every caller that missed the key meanwhile: the bytes of the
/// value (each caller decodes its own), or why it failed.
pub(crate) type Flight = Shared<BoxFuture<'static, Result<Arc<Bytes>, LoadFailure>>>;

/// The loads in flight of one store, by key.
#[derive(Default)]
pub(crate) struct Flights(Mutex<HashMap<String, Flight>>);

impl Flights {
    pub(crate) fn lock(&self) -> MutexGuard<'_, HashMap<String, Flight>> {
        // Nothing panics while holding this lock; a poisoned map is still consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Removes a flight from the map when its task ends, however it ends (a panicking loader
/// unwinds through this drop), so no later caller joins a finished or failed load.
pub(crate) struct Landing<'a> {
    pub(crate) flights: &'a Flights,
    pub(crate) key: &'a str,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.flights.lock().remove(self.key);
    }
}
