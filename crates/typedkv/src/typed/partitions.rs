//! How a store's index operations reach its partitions (see
//! [`StoreBuilder::partitions`](crate::StoreBuilder::partitions)): writes go to the
//! partition of each entity, one atomic step per partition; queries ask every partition and
//! merge the answers, so a partitioned store answers exactly what one partition holding
//! everything would (same order, same pages, same cursors). An unpartitioned store has one
//! partition, and each of these is then the one backend call it was before partitions
//! (no grouping, no merge: `find_by` is on the hot path).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use futures::future::try_join_all;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedStore;
use crate::backend::{Applied, Backend, Bytes, IndexSpace, IndexedOp, Lex, Order, StaleMember};
use crate::codec::Codec;
use crate::error::Result;
use crate::keyspace::grouped;

impl<T, B, C> TypedStore<T, B, C>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    B: Backend,
    C: Codec,
{
    /// The index keys of the partition of entity `id`.
    pub(super) fn space_of(&self, id: &str) -> &IndexSpace {
        &self.indexes.spaces[self.inner.keyspace.partition_of(id)]
    }

    /// The partition of the entity at `key`, a key of this store.
    fn partition_of_key(&self, key: &str) -> usize {
        let id = self.inner.keyspace.id_of(key).unwrap_or_default();
        self.inner.keyspace.partition_of(id)
    }

    /// Applies `ops`: one atomic step per partition they touch, all of them at once. What
    /// a partition's step refused (an unmet guard, a unique value taken) is the answer, and
    /// the other partitions' steps may have been applied; otherwise `Done`, with the deletes
    /// that found their entity summed.
    pub(super) async fn apply(&self, ops: &[IndexedOp]) -> Result<Applied> {
        self.apply_on(&self.inner.backend, ops).await
    }

    /// [`apply`](Self::apply) on `backend` (the store's, or with one write's concern).
    pub(super) async fn apply_on(&self, backend: &B, ops: &[IndexedOp]) -> Result<Applied> {
        if let [space] = self.indexes.spaces.as_slice() {
            return self.apply_in(backend, space, ops, (&[], &[])).await;
        }
        let by_partition = grouped(ops.iter().cloned(), |op| self.partition_of_key(&op.key));
        let steps = by_partition
            .iter()
            .map(|(&p, ops)| self.apply_in(backend, &self.indexes.spaces[p], ops, (&[], &[])));
        let mut existed = 0;
        for applied in try_join_all(steps).await? {
            match applied {
                Applied::Done { existed: n } => existed += n,
                refused => return Ok(refused),
            }
        }
        Ok(Applied::Done { existed })
    }

    /// Removes the `stale` members of index `n`, each from its entity's partition; how many
    /// it removed.
    pub(super) async fn forget(&self, n: usize, stale: Vec<StaleMember>) -> Result<u64> {
        let backend = &self.inner.backend;
        if let [space] = self.indexes.spaces.as_slice() {
            return backend.index_forget(space, n, &stale).await;
        }
        let keyspace = &self.inner.keyspace;
        let by_partition = grouped(stale, |member| keyspace.partition_of(&member.id));
        let steps = by_partition
            .iter()
            .map(|(&p, stale)| backend.index_forget(&self.indexes.spaces[p], n, stale));
        Ok(try_join_all(steps).await?.into_iter().sum())
    }

    /// The first `limit` members of index `n` in `range`, in `order`, over every partition.
    pub(super) async fn members_page(
        &self,
        n: usize,
        range: (&Lex, &Lex),
        order: Order,
        limit: usize,
    ) -> Result<Vec<Bytes>> {
        let backend = &self.inner.backend;
        if let [space] = self.indexes.spaces.as_slice() {
            return backend.index_members(space, n, range, order, limit).await;
        }
        let pages = self
            .indexes
            .spaces
            .iter()
            .map(|space| backend.index_members(space, n, range, order, limit));
        let pages = try_join_all(pages).await?;
        Ok(merge(pages, order, limit))
    }

    /// How many live members of index `n` lie in `range`, over every partition.
    pub(super) async fn count_members(&self, n: usize, range: (&Lex, &Lex)) -> Result<u64> {
        let backend = &self.inner.backend;
        if let [space] = self.indexes.spaces.as_slice() {
            return backend.index_count(space, n, range).await;
        }
        let counts = self
            .indexes
            .spaces
            .iter()
            .map(|space| backend.index_count(space, n, range));
        Ok(try_join_all(counts).await?.into_iter().sum())
    }
}

/// The first `limit` members of `pages`, each in `order`, in `order`: a k-way merge
/// (Redis orders members by their bytes, as `Vec<u8>` compares). A member is in one
/// partition only (its id's), so none repeats.
fn merge(pages: Vec<Vec<Bytes>>, order: Order, limit: usize) -> Vec<Bytes> {
    match order {
        Order::Ascending => merge_by(pages, limit, Reverse, |Reverse(member)| member),
        Order::Descending => merge_by(pages, limit, |member| member, |member| member),
    }
}

/// [`merge`] with the heap ordered by `key`, greatest first.
fn merge_by<K: Ord>(
    pages: Vec<Vec<Bytes>>,
    limit: usize,
    key: impl Fn(Bytes) -> K,
    member: impl Fn(K) -> Bytes,
) -> Vec<Bytes> {
    let total = pages.iter().map(Vec::len).sum::<usize>();
    let mut pages: Vec<_> = pages.into_iter().map(Vec::into_iter).collect();
    let mut heads = BinaryHeap::with_capacity(pages.len());
    for (p, page) in pages.iter_mut().enumerate() {
        if let Some(next) = page.next() {
            heads.push((key(next), p));
        }
    }
    let mut merged = Vec::with_capacity(limit.min(total));
    while merged.len() < limit
        && let Some((head, p)) = heads.pop()
    {
        merged.push(member(head));
        if let Some(next) = pages[p].next() {
            heads.push((key(next), p));
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_pages_are_the_first_members_in_order() {
        let pages = || {
            vec![
                vec![b"a".to_vec(), b"ab".to_vec(), b"c".to_vec()],
                vec![],
                vec![b"aa".to_vec(), b"b".to_vec()],
            ]
        };
        let text = |members: Vec<Bytes>| -> Vec<String> {
            members
                .into_iter()
                .map(|m| String::from_utf8_lossy(&m).into_owned())
                .collect()
        };
        assert_eq!(
            text(merge(pages(), Order::Ascending, 4)),
            ["a", "aa", "ab", "b"]
        );
        assert_eq!(
            text(merge(pages(), Order::Ascending, 99)),
            ["a", "aa", "ab", "b", "c"]
        );
        let reversed = pages()
            .into_iter()
            .map(|page| page.into_iter().rev().collect())
            .collect();
        assert_eq!(
            text(merge(reversed, Order::Descending, 3)),
            ["c", "b", "ab"]
        );
    }
}
