//! Find by field: equality, unique and range indexes declared on a store's builder.
//!
//! An [`Index`] names a field of `T` and how to read it; the store keeps one sorted set per
//! index (plain Redis commands and Lua, no modules) and changes it together with the value on
//! every write path. `query.rs` holds the range queries and their pages, `terms.rs` what an
//! index stores for a value; the byte layout of index entries and what the typed layer asks
//! of a [`Backend`](crate::Backend) (one atomic step per write batch) are part of the
//! [backend contract](crate::backend#indexes). DESIGN.md ("Indexes") has the layout and guarantees.
//!
//! ## Guarantees and limits
//!
//! - **Equality** indexes answer `find_by` (a stream of `(id, T)` in id order, read a page at a
//!   time) and `count_by`; an extractor gives zero or more values of any bytes (normalise there,
//!   and query with the same form). **Unique** indexes also refuse a write that would give a value
//!   to a second live entity: `Error::UniqueViolation` naming the key, index and value, and
//!   nothing is written (a batch is refused whole). The value is free again once its holder is
//!   deleted, changed or expired, however that happened: a claim checks the holder's current
//!   value, so a holder changed around the indexes (another program, a store without them)
//!   holds nothing it no longer has (a holder whose value does not decode fails the write with
//!   that `Error::Decode`, naming the holder's key: nobody can tell what it holds).
//!   **Range** indexes order by a number or time (`i64`, `u64`, `f64`, `SystemTime`, ...)
//!   with pages in either direction and a cursor that never repeats or skips an entity that
//!   stays put, whatever is written between pages.
//! - **Every write keeps them right** (`set` and its conditions, `set_many`, `update`,
//!   `set_if_version`, `get_or_insert_with`, `delete`, `delete_many`, `clear`, migration
//!   write-back): the value, its index entries and a small record of them (`customer#rec:id`)
//!   change in one atomic step, on one server and in memory (in a partitioned store, per
//!   partition: a batch spanning partitions is one step in each). Entries of TTL'd entities carry
//!   the TTL: they are never answered after it, writes remove them as they go, and an index whose
//!   every entry expires has the TTL of its last one, so indexes of expiring data never outlive
//!   it (unlike index sets that never expire).
//! - **Queries check each answer against the current value**, so a query never answers an
//!   entity whose value no longer matches (written around the indexes, by another program or a
//!   store without them) or that expired. Under concurrent writes a query sees each entity as it
//!   was at some moment during the query: entities that stay put are answered exactly once;
//!   one changed meanwhile may be answered at its old place, its new one, or neither.
//! - **Adding an index to existing data**: `store.rebuild_indexes(&mut |so_far| ...)` indexes
//!   every entity, reporting progress per page, safe while others write (each entity is
//!   rewritten only if unchanged since read); an entity whose unique value another holds is
//!   counted as a conflict and left out of every index. `store.repair_indexes()` checks every
//!   entry against its entity's current value and removes those that writes around the
//!   indexes (a store without them, `SET`/`DEL` from another program) or expiries left behind;
//!   it adds none (that is `rebuild_indexes`). Measured: 100,000 entities with four indexes rebuilt
//!   in 12–14 s on a 2-core machine, ~890 bytes of Redis memory per entity for the four.
//! - **Limits**: index names are validated like namespaces; an extractor that panics is
//!   `Error::IndexValue` for that write, nothing written; querying an index the store does not
//!   have is `Error::UnknownIndex`, a range query of an equality index (or the reverse)
//!   `Error::InvalidIndex`. An index write costs one script call instead of one `SET`
//!   (measured in BENCHMARKS.md).
//! - **On a cluster** an indexed store needs one of two layouts, so that an entity's value,
//!   entries and record share a slot and every write is the same single atomic step as on
//!   one server; without either, `build()` refuses with `Error::InvalidIndex`.
//!   [`partitions(n)`](crate::StoreBuilder::partitions) spreads the store over `n`
//!   partitions, each one slot, evenly over the masters: each query asks every partition
//!   and merges their answers (same order, pages, cursors and counts as one partition; it
//!   costs a command per partition), `set_many`/`delete_many` are atomic per partition, and
//!   unique indexes are refused (a claim must see every holder in one step).
//!   [`hash_tag(true)`](crate::StoreBuilder::hash_tag) keeps the whole store in one slot,
//!   unique indexes included, at the price of a hot shard. Both work on every backend.

mod query;
pub(crate) mod terms;

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

pub use self::query::{DEFAULT_RANGE_LIMIT, RangeCursor, RangeKey, RangePage, RangeQuery};
pub use crate::backend::{IndexKind, Order};

use self::terms::Terms;
use crate::error::{Error, Result};

/// Longest accepted index name, in bytes.
pub const MAX_INDEX_NAME_LEN: usize = 64;

/// An extractor, type-erased: hands each index value of a `T` to the visitor, so that a
/// query's check of an answer allocates nothing of its own.
type Extract<T> = dyn Fn(&T, &mut dyn FnMut(&[u8])) + Send + Sync;

/// One index of a store: a name, a kind and how to read its values from a `T`; given to
/// [`StoreBuilder::index`](crate::StoreBuilder::index).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use typedkv::{Index, MemoryBackend, MemoryStore};
///
/// #[derive(Serialize, Deserialize)]
/// struct User { email: String, handle: String, tags: Vec<String>, age: u32 }
///
/// let users = MemoryStore::<User>::builder(MemoryBackend::new(), "user")
///     .index(Index::equality("email", |u: &User| [u.email.to_lowercase()]))
///     .index(Index::equality("tag", |u: &User| u.tags.clone()))  // one entry per tag
///     .index(Index::unique("handle", |u: &User| [u.handle.clone()]))
///     .index(Index::range("age", |u: &User| Some(u.age)))
///     .build()?;
/// # let _ = users;
/// # Ok::<(), typedkv::Error>(())
/// ```
pub struct Index<T> {
    name: String,
    kind: IndexKind,
    extract: Arc<Extract<T>>,
}

impl<T> Clone for Index<T> {
    fn clone(&self) -> Self {
        Index {
            name: self.name.clone(),
            kind: self.kind,
            extract: Arc::clone(&self.extract),
        }
    }
}

impl<T> fmt::Debug for Index<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl<T> Index<T> {
    /// An equality index: `values` gives zero or more values (any bytes: text, ids, tags)
    /// for an entity, and [`find_by`](crate::Store::find_by) answers the entities holding one.
    /// Normalise in the extractor (e.g. lower-case an email) and query with the same form.
    pub fn equality<F, I>(name: impl Into<String>, values: F) -> Self
    where
        F: Fn(&T) -> I + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        Self::of_values(name, IndexKind::Equality, values)
    }

    /// A unique index: like [`equality`](Self::equality), and no two live entities may hold
    /// the same value. [`find_one_by`](crate::Store::find_one_by) answers the holder.
    pub fn unique<F, I>(name: impl Into<String>, values: F) -> Self
    where
        F: Fn(&T) -> I + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        Self::of_values(name, IndexKind::Unique, values)
    }

    /// A range index on a number or time ([`RangeKey`]): `value` gives at most one per
    /// entity, and [`find_range`](crate::Store::find_range) answers entities in order.
    pub fn range<F, K>(name: impl Into<String>, value: F) -> Self
    where
        F: Fn(&T) -> Option<K> + Send + Sync + 'static,
        K: RangeKey,
    {
        Index {
            name: name.into(),
            kind: IndexKind::Range,
            extract: Arc::new(move |t: &T, visit: &mut dyn FnMut(&[u8])| {
                if let Some(k) = value(t) {
                    visit(&k.sortable());
                }
            }),
        }
    }

    fn of_values<F, I>(name: impl Into<String>, kind: IndexKind, values: F) -> Self
    where
        F: Fn(&T) -> I + Send + Sync + 'static,
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        Index {
            name: name.into(),
            kind,
            extract: Arc::new(move |t: &T, visit: &mut dyn FnMut(&[u8])| {
                for v in values(t) {
                    visit(v.as_ref());
                }
            }),
        }
    }

    /// The index's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The index's kind.
    pub fn kind(&self) -> IndexKind {
        self.kind
    }

    /// Whether `value` gives the stored term `wanted` (a query checking an answer); a panic
    /// as in [`visit`](Self::visit).
    pub(crate) fn gives(&self, key: &str, value: &T, wanted: &[u8], terms: &Terms) -> Result<bool> {
        let mut found = false;
        self.visit(key, value, &mut |v| {
            found |= terms.of(&self.name, v).as_ref() == wanted;
        })?;
        Ok(found)
    }

    /// Hands each index value of `value` to `visit` (range values in their sortable 8-byte
    /// form), as the extractor gives them. An extractor that panics is an
    /// [`Error::IndexValue`] naming `key` and the index, never a panic of the caller.
    pub(crate) fn visit(&self, key: &str, value: &T, visit: &mut dyn FnMut(&[u8])) -> Result<()> {
        catch_unwind(AssertUnwindSafe(|| (self.extract)(value, visit))).map_err(|_| {
            Error::IndexValue {
                key: key.to_owned(),
                index: self.name.clone(),
            }
        })
    }
}

/// Index names are validated like namespaces (they are part of Redis keys): 1 to
/// [`MAX_INDEX_NAME_LEN`] bytes of ASCII letters, digits and `_ - . /`.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let refuse = |reason: &str| Error::InvalidIndex {
        index: name.chars().take(MAX_INDEX_NAME_LEN).collect(),
        reason: reason.to_owned(),
    };
    if name.is_empty() {
        return Err(refuse("the name is empty"));
    }
    if name.len() > MAX_INDEX_NAME_LEN {
        return Err(refuse("the name is longer than 64 bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
    {
        return Err(refuse("only ASCII letters, digits and _ - . / are allowed"));
    }
    Ok(())
}

/// What [`TypedStore::rebuild_indexes`](crate::TypedStore::rebuild_indexes) and
/// [`TypedStore::repair_indexes`](crate::TypedStore::repair_indexes) did, so far or in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexReport {
    /// Entities (rebuild) or index entries (repair) looked at.
    pub scanned: u64,
    /// Entities whose index entries were written anew (rebuild).
    pub indexed: u64,
    /// Entities skipped because another writer changed them meanwhile (that write indexed
    /// them), or because their value could not be decoded (rebuild).
    pub skipped: u64,
    /// Index entries removed: left by deleted, expired or changed entities (repair).
    pub removed: u64,
    /// Entities left out of a unique index because another entity holds the same value
    /// (rebuild): the data broke the rule before the index existed.
    pub conflicts: u64,
}
