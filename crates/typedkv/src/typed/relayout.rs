//! [`TypedStore::move_from`]: moves every entity of a store written with another key layout
//! (hash-tagged, partitioned, plain, or another namespace) into this store's layout, index
//! entries included.
//!
//! A key layout cannot change in place: an entity's key, its index entries and its record
//! all carry the layout's prefix. So each entity is copied, then its old copy deleted, one
//! entity at a time: on a cluster the two copies live in different slots, and no step can
//! span them. The order (copy only where this store has nothing, delete the old copy only if
//! unchanged, undo the copy otherwise) is what keeps a value from being lost or rolled back.

use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedStore;
use crate::backend::{Backend, Bytes, Guard, Swap, WriteExpiry};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::options::Expiry;

/// Entities of a page moved at once: each is 3 round trips of its own.
const IN_FLIGHT: usize = 32;

/// What [`TypedStore::move_from`] did, so far or in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MoveReport {
    /// Keys of the old layout looked at.
    pub scanned: u64,
    /// Entities copied into this store (value, TTL and index entries) and deleted from the
    /// old layout.
    pub moved: u64,
    /// Entities this store already held (written through it since the old copy was): the
    /// old copy was deleted, this store's value kept.
    pub superseded: u64,
    /// Entities written in the old layout while they were being moved: left there, and not
    /// in this store. Run the move again once nothing writes through the old layout.
    pub changed: u64,
    /// Values that do not decode, or whose ids this store refuses: left in the old layout
    /// ([`scan`](crate::Store::scan) of the old store reports them).
    pub skipped: u64,
    /// Entities whose unique value another entity of this store holds: left in the old
    /// layout.
    pub conflicts: u64,
}

/// What became of one entity.
enum Outcome {
    Moved,
    Superseded,
    Changed,
    Skipped,
    Conflict,
    /// Deleted or expired before it was read.
    Gone,
}

impl<T, B, C> TypedStore<T, B, C>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    B: Backend,
    C: Codec,
{
    /// Moves every entity of `old`, a store of the same type with another key layout, into
    /// this store's layout: from a hash-tagged store to a [partitioned](super::StoreBuilder::partitions)
    /// one when it outgrows one cluster shard, back again, between plain and tagged keys, or
    /// into another namespace. Each entity keeps its value and remaining TTL, and gets this
    /// store's index entries; its old key, index entries and record are deleted. `progress`
    /// hears the running totals after each page of keys.
    ///
    /// Safe to run while the application writes through this store: an entity this store
    /// already holds is newer, so it is kept and only the old copy goes (`superseded`). An
    /// entity written through the old layout while it is being moved is left there and
    /// counted as `changed`; nothing is lost, and a second run moves it. Until an entity is
    /// moved, this store does not find it: switch readers over after the move.
    ///
    /// Refused with [`Error::InvalidConfig`] when both stores use the same key prefix
    /// (same namespace and layout: the same keys, or, for two partition counts, keys that
    /// would overlap); move through another namespace instead.
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use typedkv::{Index, MemoryBackend, MemoryStore, Store, StoreExt};
    /// # #[derive(Serialize, Deserialize)] struct User { email: String }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> typedkv::Result<()> {
    /// let backend = MemoryBackend::new();
    /// let email = || Index::equality("email", |u: &User| [u.email.clone()]);
    /// let one_slot = MemoryStore::<User>::builder(backend.clone(), "user")
    ///     .hash_tag(true)
    ///     .index(email())
    ///     .build()?;
    /// one_slot.set("1", &User { email: "ann@example.com".into() }).await?;
    ///
    /// // The data outgrew one cluster shard: spread it over 16 partitions.
    /// let spread = MemoryStore::<User>::builder(backend, "user")
    ///     .partitions(16)
    ///     .index(email())
    ///     .build()?;
    /// let report = spread.move_from(&one_slot, &mut |so_far| println!("{so_far:?}")).await?;
    /// assert_eq!(report.moved, 1);
    /// assert!(spread.find_one_by("email", b"ann@example.com").await?.is_some());
    /// assert!(one_slot.get("1").await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn move_from<C2: Codec>(
        &self,
        old: &TypedStore<T, B, C2>,
        progress: &mut (dyn FnMut(&MoveReport) + Send),
    ) -> Result<MoveReport> {
        let (from, to) = (old.keyspace().prefix(), self.keyspace().prefix());
        if from == to {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "move_from: both stores use the key prefix {to:?}; move through another \
                     namespace instead"
                ),
                source: None,
            });
        }
        let mut report = MoveReport::default();
        let mut pages = old.key_pages();
        while let Some(keys) = pages.next().await {
            let keys = keys?;
            report.scanned += keys.len() as u64;
            let outcomes: Vec<Outcome> = stream::iter(keys)
                .map(|key| self.move_one(old, key))
                .buffer_unordered(IN_FLIGHT)
                .try_collect()
                .await?;
            for outcome in outcomes {
                match outcome {
                    Outcome::Moved => report.moved += 1,
                    Outcome::Superseded => report.superseded += 1,
                    Outcome::Changed => report.changed += 1,
                    Outcome::Skipped => report.skipped += 1,
                    Outcome::Conflict => report.conflicts += 1,
                    Outcome::Gone => {}
                }
            }
            progress(&report);
        }
        Ok(report)
    }

    /// Moves the entity at `old_key` of `old` into this store.
    async fn move_one<C2: Codec>(
        &self,
        old: &TypedStore<T, B, C2>,
        old_key: Bytes,
    ) -> Result<Outcome> {
        let Ok(old_key) = old.addressable(old_key) else {
            return Ok(Outcome::Skipped);
        };
        let Some((bytes, expiry)) = old.inner.backend.get_with_ttl(&old_key).await? else {
            return Ok(Outcome::Gone);
        };
        let expiry = match expiry {
            Expiry::Never => WriteExpiry::Never,
            Expiry::In(left) if left.is_zero() => return Ok(Outcome::Gone),
            Expiry::In(left) => WriteExpiry::After(left),
        };
        let id = old.inner.keyspace.id_of(&old_key).unwrap_or_default();
        let (Ok(value), Ok(key)) = (old.decode(&old_key, &bytes), self.inner.keyspace.key(id))
        else {
            return Ok(Outcome::Skipped);
        };
        let new = self.encode(&key, &value)?;
        // Only where this store has nothing: a value written through it is newer.
        let copied = match self
            .swap(&key, Guard::Absent, Some((&value, new.clone())), expiry)
            .await
        {
            Ok(Swap::Done) => true,
            Ok(Swap::Changed(_)) => false,
            Err(Error::UniqueViolation { .. }) => return Ok(Outcome::Conflict),
            Err(e) => return Err(e),
        };
        // The old copy goes only if it is still what was copied (or superseded).
        let guard = Guard::Bytes(bytes);
        match old.swap(&old_key, guard, None, WriteExpiry::Keep).await? {
            Swap::Done if copied => Ok(Outcome::Moved),
            Swap::Done => Ok(Outcome::Superseded),
            Swap::Changed(_) if copied => {
                // Written through the old layout meanwhile: undo the copy (unless this
                // store's own writers changed it since, which makes it theirs).
                let guard = Guard::Bytes(new);
                self.swap(&key, guard, None, WriteExpiry::Keep).await?;
                Ok(Outcome::Changed)
            }
            Swap::Changed(_) => Ok(Outcome::Changed),
        }
    }
}
