//! What a transaction needs of a store with indexes: the op of each key it writes or reads,
//! the partition those ops apply in, and one atomic step applying them with the store's
//! own handling of unique values (`indexing.rs`).

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedStore;
use crate::backend::{Applied, Backend, Bytes, Guard, IndexSpace, IndexedOp, WriteExpiry};
use crate::codec::Codec;
use crate::error::Result;

/// Applies a transaction's ops in one index space (one partition) as one atomic step.
pub(crate) type IndexedCommit =
    Arc<dyn Fn(IndexSpace, Vec<IndexedOp>) -> BoxFuture<'static, Result<Applied>> + Send + Sync>;

impl<T, B, C> TypedStore<T, B, C>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    B: Backend,
    C: Codec,
{
    /// The op leaving the entity at `key` with `new` (the value and its bytes; `None`
    /// deletes), unguarded: a transaction sets its guard when it commits. With the index
    /// space (partition) it applies in.
    pub(crate) fn transaction_op(
        &self,
        key: &str,
        new: Option<(&T, Bytes)>,
        expiry: WriteExpiry,
    ) -> Result<(IndexSpace, IndexedOp)> {
        let id = self.inner.keyspace.id_of(key).unwrap_or_default();
        let op = self.op(key, Guard::Always, new, expiry)?;
        Ok((self.space_of(id).clone(), op))
    }

    /// How a transaction applies its ops on this store: all of them or none, a unique value
    /// held by another entity being [`Error::UniqueViolation`](crate::Error::UniqueViolation).
    pub(crate) fn indexed_commit(&self) -> IndexedCommit {
        let store = self.clone();
        Arc::new(move |space, ops| {
            let store = store.clone();
            async move { store.apply_in(&space, &ops).await }.boxed()
        })
    }
}
