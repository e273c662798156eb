//! The byte-level storage trait every backend implements once.
//!
//! Backends know keys and bytes, nothing of types, codecs or namespaces: the typed layer
//! ([`TypedStore`](crate::TypedStore)) builds keys, encodes values and resolves TTL policy, then
//! calls these methods. Adding a backend is one file implementing this trait plus one line in
//! the conformance tests.
//!
//! The trait uses `async fn` returning `Send` futures (static dispatch, no boxing per call);
//! object safety is provided one layer up by [`Store`](crate::Store).
//!
//! This module is the whole byte-level contract: the trait, what a write asks for
//! ([`Write`], [`WriteExpiry`]), compare-and-swap ([`Expected`], [`Swap`]), and the
//! millisecond rounding every backend applies to TTLs. One capability is optional:
//! [`Backend::get_with_ttl`] has a correct default (two calls) that a backend overrides when
//! it can read both at once. Errors are [`Error`]'s transport variants, naming
//! the backend ([`Backend::kind`]) and the keys.

use std::future::Future;

use std::time::Duration;

use crate::error::{Error, Result};
use crate::index::Order;
use crate::index::ops::{Applied, IndexSpace, IndexSupport, IndexedOp, Lex, StaleMember};
use crate::options::{Condition, Expiry};
use crate::version::Version;

/// Bytes of one stored value.
pub type Bytes = Vec<u8>;

/// A byte-level key-value backend with Redis string semantics.
///
/// Implementations must be cheap to clone (an `Arc` inside), so one backend can serve many
/// typed stores, and every error they return must name the key(s) involved.
pub trait Backend: Clone + Send + Sync + 'static {
    /// A short name for logs and errors: `"redis"`, `"memory"`.
    fn kind(&self) -> &'static str;

    /// Where this backend's data lives, as text that two backends reaching the same data
    /// share and others do not (Redis: the servers' addresses and database, never
    /// credentials). The caches of a process hear every write its stores make to the same
    /// location and namespace ([`CachedStore`](crate::CachedStore)). Redis pools name their
    /// URLs' addresses: pools of one server, or one Sentinel master, built from the same
    /// addresses share a location; two pools of one cluster built from different seeds do
    /// not. The default, empty, is for backends no cache sits in front of.
    fn data_location(&self) -> String {
        String::new()
    }

    /// How long one call waits for the backend's reply before failing with
    /// [`Error::Timeout`] (Redis: the pool's response timeout);
    /// `None` (the default) when calls do not wait on anything that can hang, as in process.
    ///
    /// Stores also bound with it how long an [`update`](crate::Store::update) waits for its
    /// turn behind another update of the same key, so that no call outlives its own deadline
    /// because others ahead of it each waited theirs.
    fn response_timeout(&self) -> Option<std::time::Duration> {
        None
    }

    /// The bytes stored at `key`, or `None`.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>>> + Send;

    /// Writes `value` at `key` per `write`; `Ok(false)` when the write's condition was not met.
    fn set(
        &self,
        key: &str,
        value: Bytes,
        write: Write,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Removes `key`; whether it existed.
    fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Whether `key` exists.
    fn exists(&self, key: &str) -> impl Future<Output = Result<bool>> + Send;

    /// The remaining life of `key`, `None` if it does not exist.
    fn ttl(&self, key: &str) -> impl Future<Output = Result<Option<Expiry>>> + Send;

    /// The bytes at `key` with its remaining life, or `None`: what a cache needs to know how
    /// long it may keep a value. Backends that can should read both at once (Redis: one
    /// round trip); the default asks twice.
    fn get_with_ttl(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(Bytes, Expiry)>>> + Send {
        async move {
            let Some(bytes) = self.get(key).await? else {
                return Ok(None);
            };
            Ok(self.ttl(key).await?.map(|expiry| (bytes, expiry)))
        }
    }

    /// The bytes at each key, in order. Never called with an empty slice.
    fn get_many(&self, keys: &[String]) -> impl Future<Output = Result<Vec<Option<Bytes>>>> + Send;

    /// Atomically replaces the value at `key`, if it is still as `expected`, by `new`
    /// (`None`: delete the key) written with `expiry` ([`WriteExpiry::Keep`] keeps the key's
    /// TTL). When the value was not as expected, nothing is written and [`Swap::Changed`]
    /// carries the value found, so the caller can retry without reading again.
    fn compare_and_swap(
        &self,
        key: &str,
        expected: Expected<'_>,
        new: Option<Bytes>,
        expiry: WriteExpiry,
    ) -> impl Future<Output = Result<Swap>> + Send;

    /// One page of the keys that start with `prefix` (a literal prefix, not a pattern), from
    /// `cursor` (0 starts a scan): the next cursor (0 when the scan is complete) and the keys,
    /// as the bytes they are (keys are binary-safe: another program may have written one that
    /// is not UTF-8). Like Redis SCAN: a key present for the whole scan is returned at least
    /// once, a page may be empty, and only string keys are returned.
    fn scan_page(
        &self,
        prefix: &str,
        cursor: u64,
        count: usize,
    ) -> impl Future<Output = Result<(u64, Vec<Bytes>)>> + Send;

    /// Removes the keys, given as bytes (so that keys a scan found can be removed whatever
    /// they hold); how many existed. Never called with an empty slice.
    fn delete_many(&self, keys: &[Bytes]) -> impl Future<Output = Result<u64>> + Send;

    /// Writes every entry unconditionally with `expiry` (never [`WriteExpiry::Keep`]),
    /// atomically where the backend can. Never called with an empty slice.
    fn set_many(
        &self,
        entries: Vec<(String, Bytes)>,
        expiry: WriteExpiry,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Whether and how this backend keeps indexes (see [`crate::index::ops`]). The default,
    /// [`IndexSupport::None`], makes a store with indexes fail to build, and the `index_*`
    /// methods below are then never called.
    fn index_support(&self) -> IndexSupport {
        IndexSupport::None
    }

    /// Applies `ops` to entities and their index entries as one atomic step: every guard and
    /// every unique claim is checked first, and nothing is written unless all hold. Then, per
    /// op in order: the entity's old members (named by its record) leave their indexes, the
    /// value is written or deleted, and its new members and record are written with the
    /// value's expiry. Expired members of the space's indexes may be removed on the way.
    ///
    /// A unique value is free when no member of another entity has it, or only members of
    /// entities that expired or are gone (removed on the way), or of entities the batch
    /// rewrites without it. A member of another live entity is [`Applied::Held`]: the typed
    /// layer decides from that entity's bytes.
    fn apply_indexed(
        &self,
        space: &IndexSpace,
        ops: &[IndexedOp],
    ) -> impl Future<Output = Result<Applied>> + Send {
        let _ = (space, ops);
        async { Err(no_indexes(self.kind())) }
    }

    /// Up to `limit` members of index `index` of `space` between `lo` and `hi`, in `order`
    /// (for [`Order::Descending`], from `hi` down). Members of expired entities may be among
    /// them until removed; the typed layer skips those.
    fn index_members(
        &self,
        space: &IndexSpace,
        index: usize,
        range: (&Lex, &Lex),
        order: Order,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Bytes>>> + Send {
        let _ = (space, index, range, order, limit);
        async { Err(no_indexes(self.kind())) }
    }

    /// How many members of index `index` lie between `lo` and `hi`, not counting those of
    /// expired entities.
    fn index_count(
        &self,
        space: &IndexSpace,
        index: usize,
        range: (&Lex, &Lex),
    ) -> impl Future<Output = Result<u64>> + Send {
        let _ = (space, index, range);
        async { Err(no_indexes(self.kind())) }
    }

    /// Removes each of `stale` (members of index `index`) from the index and from its
    /// entity's record, in one atomic step per member, if the entity still holds what the
    /// member's [`seen`](StaleMember::seen) says (when it was absent and still is, its record
    /// goes). How many it removed. The typed layer calls it for members a query, a repair or
    /// a unique claim found stale by decoding the entity's value.
    fn index_forget(
        &self,
        space: &IndexSpace,
        index: usize,
        stale: &[StaleMember],
    ) -> impl Future<Output = Result<u64>> + Send {
        let _ = (space, index, stale);
        async { Err(no_indexes(self.kind())) }
    }
}

/// The error of an index operation on a backend that keeps no indexes.
fn no_indexes(backend: &str) -> Error {
    Error::InvalidIndex {
        index: String::new(),
        reason: format!("the {backend} backend keeps no indexes"),
    }
}

/// The expiry a backend applies to a write, after the store resolved its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteExpiry {
    /// No expiry (clears an existing one).
    Never,
    /// Expire this long after the write. Never zero.
    After(Duration),
    /// Keep the key's current TTL.
    Keep,
}

/// A backend-level write: expiry and condition, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Write {
    /// Expiry to apply.
    pub expiry: WriteExpiry,
    /// Condition of the write.
    pub condition: Condition,
}

impl Write {
    /// A write with this expiry and condition.
    pub const fn new(expiry: WriteExpiry, condition: Condition) -> Self {
        Write { expiry, condition }
    }
}

/// `d` in whole milliseconds, rounded up (Redis' `PX` precision; never 0 for a non-zero `d`).
pub(crate) fn ceil_millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// The outcome of [`Backend::compare_and_swap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The value was as expected and has been replaced (or deleted).
    Done,
    /// The value was not as expected; this is what was found (`None`: absent).
    Changed(Option<Bytes>),
}

/// What [`Backend::compare_and_swap`] requires of the current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected<'a> {
    /// The key must be absent.
    Absent,
    /// The key must hold exactly these bytes.
    Bytes(&'a [u8]),
    /// The key must hold bytes with this [`Version`] (SHA-1 digest).
    Version(&'a Version),
}

impl Expected<'_> {
    /// Whether `current` (the bytes at the key, if any) is as expected.
    pub fn matches(&self, current: Option<&[u8]>) -> bool {
        match (self, current) {
            (Expected::Absent, None) => true,
            (Expected::Bytes(want), Some(have)) => want == &have,
            (Expected::Version(want), Some(have)) => **want == Version::of(have),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_milliseconds() {
        assert_eq!(ceil_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(ceil_millis(Duration::from_micros(1500)), 2);
        assert_eq!(ceil_millis(Duration::MAX), u64::MAX);
    }
}
