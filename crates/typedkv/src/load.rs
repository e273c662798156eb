//! Cache-aside loading (`get_or_load`): what a loader returns, and the shared result of
//! one load awaited by every concurrent caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures::future::{BoxFuture, Shared};

use crate::backend::Bytes;
use crate::error::{BoxError, Error, ErrorSource};
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
            cache: Some(TtlPolicy::Never),
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

/// Why a load failed, for every caller awaiting it.
#[derive(Debug, Clone)]
pub(crate) enum LoadFailure {
    /// The loader failed, panicked or was cancelled: [`Error::Load`] for every caller.
    Loader(ErrorSource),
    /// A step of the store's own failed (reading, encoding, the TTL the loader asked for,
    /// writing): every caller gets that same error, not a load failure.
    Store(Error),
}

impl LoadFailure {
    /// The error of one caller of the failed load of `key`.
    pub(crate) fn into_error(self, key: String) -> Error {
        match self {
            LoadFailure::Loader(failure) => Error::Load {
                key,
                source: failure,
            },
            LoadFailure::Store(error) => error,
        }
    }
}

/// A load in flight, awaited by every caller that missed the key meanwhile: the bytes of the
/// value (each caller decodes its own), or why it failed.
pub(crate) type Flight = Shared<BoxFuture<'static, Result<Arc<Bytes>, LoadFailure>>>;

/// The loads of one store, by key, and the calls of each key in progress.
///
/// The rule: a load is shared by every call of the key that began before the load ended
/// (whenever its read of the key returns), and by no call that began after (an error is
/// never cached, a value is read from the store). Each call takes a ticket when it begins;
/// an ended load remembers the ticket count at its end and stays for the calls holding
/// earlier tickets, until the last call of the key is answered.
#[derive(Default)]
pub(crate) struct Flights(Mutex<HashMap<String, Slot>>);

/// One key's calls in progress and its load.
#[derive(Default)]
struct Slot {
    /// Calls begun and not yet answered (or dropped).
    calls: usize,
    /// Tickets handed out so far.
    tickets: u64,
    /// The running load, or the last one with the ticket count at its end.
    load: Option<(Flight, Option<u64>)>,
}

impl Flights {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // Nothing panics while holding this lock; a poisoned map is still consistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A call of `key` begins (before it reads the key).
    pub(crate) fn begin<'a>(&'a self, key: &'a str) -> Call<'a> {
        let mut slots = self.lock();
        let slot = match slots.get_mut(key) {
            Some(slot) => slot,
            None => slots.entry(key.to_owned()).or_default(),
        };
        slot.calls += 1;
        let ticket = slot.tickets;
        slot.tickets += 1;
        Call {
            flights: self,
            key,
            ticket,
        }
    }

    /// The load of `key` ended: calls begun from now on load anew.
    fn ended(&self, key: &str) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(key) {
            match slot.calls {
                0 => drop(slots.remove(key)),
                _ => {
                    let end = slot.tickets;
                    if let Some((_, ended)) = &mut slot.load {
                        *ended = Some(end);
                    }
                }
            }
        }
    }
}

/// A call of one key in progress; answered when dropped.
pub(crate) struct Call<'a> {
    flights: &'a Flights,
    key: &'a str,
    ticket: u64,
}

impl Call<'_> {
    /// The key's running load, or one that ended after this call began, or the one
    /// `launch` starts.
    pub(crate) fn join_or(&self, launch: impl FnOnce() -> Flight) -> Flight {
        let mut slots = self.flights.lock();
        let slot = slots.entry(self.key.to_owned()).or_default();
        match &slot.load {
            Some((flight, None)) => flight.clone(),
            Some((flight, Some(end))) if self.ticket < *end => flight.clone(),
            _ => {
                let flight = launch();
                slot.load = Some((flight.clone(), None));
                flight
            }
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        let mut slots = self.flights.lock();
        if let Some(slot) = slots.get_mut(self.key) {
            slot.calls = slot.calls.saturating_sub(1);
            let running = matches!(slot.load, Some((_, None)));
            if slot.calls == 0 && !running {
                slots.remove(self.key);
            }
        }
    }
}

/// Marks a load ended when its task ends, however it ends (a panicking loader unwinds
/// through this drop), so that no call begun after it joins a finished or failed load.
pub(crate) struct Landing<'a> {
    pub(crate) flights: &'a Flights,
    pub(crate) key: &'a str,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        self.flights.ended(self.key);
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    fn load(answer: &[u8]) -> Flight {
        let bytes = Arc::new(answer.to_vec());
        async move { Ok(bytes) }.boxed().shared()
    }

    fn answer(flight: &Flight) -> Option<Vec<u8>> {
        match flight.clone().now_or_never() {
            Some(Ok(bytes)) => Some(bytes.to_vec()),
            _ => None,
        }
    }

    /// The rule, step by step: a call that began before a load ended shares it, even when
    /// it asks after the end; a call that began after the end loads anew.
    #[test]
    fn a_load_is_shared_by_calls_begun_before_it_ended() {
        let flights = Flights::default();
        let early = flights.begin("k");
        let leader = flights.begin("k");
        let first = leader.join_or(|| load(b"first"));
        drop(leader);
        flights.ended("k"); // the load's task ended (Landing)
        let late = flights.begin("k");
        // `early` missed before the end but asks after it: the ended load.
        assert_eq!(answer(&early.join_or(|| load(b"other"))), answer(&first));
        // `late` began after the end: a load of its own.
        assert_eq!(
            answer(&late.join_or(|| load(b"second"))).as_deref(),
            Some(&b"second"[..])
        );
    }

    /// Slots live only while calls or a load of the key are in progress: nothing is kept
    /// (no error, no value) once the last call is answered.
    #[test]
    fn nothing_is_kept_once_every_call_is_answered() {
        let flights = Flights::default();
        let call = flights.begin("k");
        drop(call.join_or(|| load(b"v")));
        drop(call);
        assert!(flights.lock().contains_key("k"), "kept while its load runs");
        flights.ended("k");
        assert!(flights.lock().is_empty());
        drop(flights.begin("hit")); // a call answered by its read
        assert!(flights.lock().is_empty());
    }
}
