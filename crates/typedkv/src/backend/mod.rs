//! The byte-level contract every backend implements once.
//!
//! Backends know keys and bytes, nothing of types, codecs or namespaces: the typed layer
//! ([`TypedStore`](crate::TypedStore)) builds keys, encodes values and resolves TTL policy, then
//! calls these methods. Adding a backend is one file implementing this trait plus one line in
//! the conformance tests.
//!
//! The trait uses `async fn` returning `Send` futures (static dispatch, no boxing per call);
//! object safety is provided one layer up by [`Store`](crate::Store).
//!
//! This folder is the whole contract, and imports nothing above it:
//! - `mod.rs`: the [`Backend`] trait;
//! - `writes.rs`: what a write asks for ([`Write`], [`WriteExpiry`]), what it requires of
//!   the current value ([`Guard`], for compare-and-swap and index operations) and what a
//!   compare-and-swap found ([`Swap`]);
//! - `commits.rs`: what a transaction's commit asks for ([`Check`], [`CommitWrite`]) and
//!   what it did ([`Committed`]);
//! - `indexes.rs`: the index operations of a backend that keeps indexes ([`IndexedOp`],
//!   [`Applied`], ...), and `members.rs`: the byte layout of index entries and the ranges
//!   over them ([`Lex`]).
//!
//! ## Indexes
//!
//! Each index is two sorted sets: its members (all scored 0, ordered by bytes, see
//! `members.rs`) and their expiry times (scored by the Unix millisecond their entity expires,
//! for members of entities with a TTL). Each indexed entity has a record naming its current
//! entries, `index name || 0x00 || member` each, so the next write removes exactly those
//! (how a backend stores it is its own: a string on Redis, see DESIGN.md). A backend
//! applies a batch of [`IndexedOp`]s as one atomic step: every guard and every unique claim
//! is checked before anything is written.
//!
//! A backend cannot decode values, so it cannot tell whether an entity's current value still
//! gives a member: a write around the indexes (another program, a store without them)
//! changes the value and leaves record and members as they were. Where that matters the
//! backend hands the question to the typed layer: a unique value held by another live
//! entity comes back as [`Applied::Held`] with that entity's bytes, and the typed layer
//! removes members it found stale with [`StaleMember`]s, each guarded by the bytes it saw.
//!
//! ## Optional capabilities
//!
//! One capability is optional: [`Backend::get_with_ttl`] has a correct default (two calls)
//! that a backend overrides when it can read both at once. Errors are [`Error`]'s transport
//! variants, naming the backend ([`Backend::kind`]) and the keys.

mod commits;
mod indexes;
mod members;
mod writes;

use std::future::Future;

pub use self::commits::{Check, CommitWrite, Committed};
pub use self::indexes::{
    Applied, IndexKeys, IndexKind, IndexSpace, IndexSupport, IndexedOp, Order, StaleMember,
    member_id,
};
pub use self::members::Lex;
pub(crate) use self::members::{prefix_range, range_member, value_member, value_prefix};
pub use self::writes::{Guard, Swap, Write, WriteExpiry};
use crate::concern::WriteConcern;
use crate::error::{Error, Result};
use crate::options::Expiry;

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

    /// This backend, with every write acknowledged only once `concern` is met (see
    /// [`WriteConcern`]): a write whose concern is not met in time fails with
    /// [`Error::Unacknowledged`]. Stores call it once when built with a concern, and per
    /// write for [`SetOptions::write_concern`](crate::SetOptions::write_concern); so it
    /// must be cheap (Redis pools: a clone with the concern beside it).
    ///
    /// The default takes [`WriteConcern::none`] and refuses any other with
    /// [`Error::InvalidConfig`]: a backend that cannot tell how many replicas have a write
    /// must not pretend it can. The memory backend has no
    /// replicas to lose a write to and treats every concern as met.
    fn with_concern(&self, concern: WriteConcern) -> Result<Self> {
        if !concern.asks() {
            return Ok(self.clone());
        }
        Err(Error::config(format!(
            "the {} backend cannot wait for replicas: it has no write concern",
            self.kind()
        )))
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

    /// Atomically replaces the value at `key`, if it still meets `guard`, by `new`
    /// (`None`: delete the key) written with `expiry` ([`WriteExpiry::Keep`] keeps the key's
    /// TTL). When the value does not meet it, nothing is written and [`Swap::Changed`]
    /// carries the value found, so the caller can retry without reading again.
    fn compare_and_swap(
        &self,
        key: &str,
        guard: &Guard,
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

    /// Applies `writes`, in order, if every one of `checks` holds, as one atomic step; if one
    /// does not, writes nothing and names it. What a
    /// [transaction](crate::transaction) commits. Never called with both slices empty.
    ///
    /// The default refuses with [`Error::Transaction`]: a backend that cannot check and
    /// write several keys atomically has no transactions.
    fn commit(
        &self,
        checks: &[Check],
        writes: &[CommitWrite],
    ) -> impl Future<Output = Result<Committed>> + Send {
        let _ = (checks, writes);
        let kind = self.kind();
        async move {
            Err(Error::Transaction {
                reason: format!("the {kind} backend cannot commit transactions"),
            })
        }
    }

    /// Whether and how this backend keeps indexes (see [the layout](crate::backend#indexes)). The default,
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

    /// [`apply_indexed`](Self::apply_indexed) of `ops`, and [`commit`](Self::commit) of
    /// `checks` and `writes` (keys outside `space`: other stores'), as one atomic step:
    /// nothing is written unless every check holds ([`Applied::Changed`] names the first
    /// that does not) and every op applies. What a [transaction](crate::transaction) commits
    /// when it wrote a store with indexes beside other stores.
    ///
    /// The default applies `ops` alone when there are no checks and writes, and otherwise
    /// refuses with [`Error::Transaction`].
    fn apply_indexed_with(
        &self,
        space: &IndexSpace,
        ops: &[IndexedOp],
        checks: &[Check],
        writes: &[CommitWrite],
    ) -> impl Future<Output = Result<Applied>> + Send {
        let beside = !checks.is_empty() || !writes.is_empty();
        let kind = self.kind();
        async move {
            if beside {
                return Err(Error::Transaction {
                    reason: format!(
                        "the {kind} backend cannot commit a store with indexes beside other stores"
                    ),
                });
            }
            self.apply_indexed(space, ops).await
        }
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
