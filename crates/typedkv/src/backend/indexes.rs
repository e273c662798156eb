//! The index operations of a [`Backend`](crate::Backend) that keeps indexes: keys and bytes
//! only, like the rest of the backend contract (see [the contract's docs](crate::backend#indexes)).

use super::{Bytes, Guard, WriteExpiry};
use crate::version::Version;

/// What an index answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexKind {
    /// Every entity holding a value: [`Store::find_by`](crate::Store::find_by).
    Equality,
    /// At most one entity per value: a write that would take a value another live entity
    /// holds fails with [`Error::UniqueViolation`](crate::Error::UniqueViolation) and writes nothing.
    Unique,
    /// Ordered by a number or time: [`Store::find_range`](crate::Store::find_range).
    Range,
}

/// The direction of a range query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Lowest value first (ties by id).
    #[default]
    Ascending,
    /// Highest value first (ties by id, reversed).
    Descending,
}

/// How a backend keeps indexes; from [`Backend::index_support`](crate::Backend::index_support).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IndexSupport {
    /// It keeps none: a store with indexes on it fails to build.
    None,
    /// Values, records and index entries change in one atomic step, whatever their keys.
    Atomic,
    /// Atomic when the keys of one step share one Redis Cluster slot: a store in one slot
    /// ([`StoreBuilder::hash_tag`](crate::StoreBuilder::hash_tag)) or in partitions of one
    /// slot each ([`StoreBuilder::partitions`](crate::StoreBuilder::partitions)), whose
    /// steps stay in a partition; a store whose keys are spread otherwise cannot have
    /// indexes.
    SameSlot,
}

/// The keys of one index.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexKeys {
    /// The index's name, as records name it.
    pub name: String,
    /// What it answers; unique indexes are checked on write.
    pub kind: IndexKind,
    /// The sorted set of members.
    pub members: String,
    /// The sorted set of members' expiry times.
    pub expiries: String,
}

/// The indexes of one store, and how its entity and record keys are built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexSpace {
    /// Prefix of entity keys (`namespace:`), so a member's id names its entity.
    pub entity_prefix: String,
    /// Prefix of record keys (`namespace#rec:`).
    pub record_prefix: String,
    /// The store's indexes, in declaration order ([`IndexedOp::members`] follows it).
    pub indexes: Vec<IndexKeys>,
}

impl IndexSpace {
    /// The index called `name`, with its position.
    pub fn find(&self, name: &str) -> Option<(usize, &IndexKeys)> {
        self.indexes
            .iter()
            .enumerate()
            .find(|(_, i)| i.name == name)
    }
}

/// One write of an entity with its index entries.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IndexedOp {
    /// The entity's key.
    pub key: String,
    /// The entity's record key.
    pub record: String,
    /// What the current value must be for the batch to apply.
    pub guard: Guard,
    /// The new value; `None` deletes the entity.
    pub value: Option<Bytes>,
    /// The value's expiry (ignored on delete).
    pub expiry: WriteExpiry,
    /// The entity's members after the write, per index of the [`IndexSpace`] (empty lists
    /// on delete).
    pub members: Vec<Vec<Bytes>>,
}

impl IndexedOp {
    /// An op with every field given.
    pub fn new(
        key: String,
        record: String,
        guard: Guard,
        value: Option<Bytes>,
        expiry: WriteExpiry,
        members: Vec<Vec<Bytes>>,
    ) -> Self {
        IndexedOp {
            key,
            record,
            guard,
            value,
            expiry,
            members,
        }
    }
}

/// What applying a batch of [`IndexedOp`]s did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Applied {
    /// Every op was applied; `existed` counts the deleted entities that existed.
    Done {
        /// Deletes of entities that existed.
        existed: u64,
    },
    /// Op `op`'s guard was not met (the entity holds `found`); nothing was written.
    Unmet {
        /// Position of the op in the batch.
        op: usize,
        /// What the entity's key holds.
        found: Option<Bytes>,
    },
    /// Op `op` would take a value of unique index `index` that another op of the batch
    /// takes for another entity; nothing was written.
    Taken {
        /// Position of the op in the batch.
        op: usize,
        /// Its entity's key.
        key: String,
        /// Position of the index in the [`IndexSpace`].
        index: usize,
        /// The value, as the index stores it.
        value: Bytes,
    },
    /// Op `op` would take a value of unique index `index` whose member `member` belongs to
    /// another live entity, at `holder`, which the batch does not rewrite. Whether that
    /// entity still holds the value depends on its current value, `found`, which only the
    /// typed layer can decode: it refuses the write if so, and otherwise removes the stale
    /// member ([`Backend::index_forget`](crate::Backend::index_forget)) and tries again.
    /// Nothing was written.
    Held {
        /// Position of the op in the batch.
        op: usize,
        /// Its entity's key.
        key: String,
        /// Position of the index in the [`IndexSpace`].
        index: usize,
        /// The value, as the index stores it.
        value: Bytes,
        /// The member that holds the value.
        member: Bytes,
        /// The key of the entity the member names.
        holder: String,
        /// That entity's current bytes.
        found: Bytes,
    },
    /// Check `check` of [`Backend::apply_indexed_with`](crate::Backend::apply_indexed_with)
    /// did not hold; nothing was written.
    Changed {
        /// Position of the check.
        check: usize,
    },
}

/// An index member the typed layer found stale: the value its entity held when it looked
/// does not give it (or the entity was gone). Removed, with its entry in the entity's
/// record, only if the entity still holds what was seen: a write since may have given it
/// the member again.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StaleMember {
    /// The member.
    pub member: Bytes,
    /// The id of the entity it names.
    pub id: String,
    /// The version of the bytes the entity held, `None` when it was absent (then its record
    /// goes too).
    pub seen: Option<Version>,
}

impl StaleMember {
    /// A stale member of entity `id`, which held `seen` (`None`: absent).
    pub fn new(member: Bytes, id: String, seen: Option<&[u8]>) -> Self {
        StaleMember {
            member,
            id,
            seen: seen.map(Version::of),
        }
    }
}

/// The id in `member` of an index of `kind`, if `member` is well formed.
pub fn member_id(kind: IndexKind, member: &[u8]) -> Option<&str> {
    let value_len = match kind {
        IndexKind::Range => 8,
        IndexKind::Equality | IndexKind::Unique => super::members::equality_value_len(member)?,
    };
    super::members::id_of(member, value_len)
}
