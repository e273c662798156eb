//! How a store takes part in a transaction ([`Participant`]): the op of each key it writes
//! or reads, the partition those ops apply in, and one atomic step applying them with the
//! store's own handling of unique values (`indexing.rs`).

use std::sync::Arc;

use futures::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedStore;
use crate::backend::{Backend, Bytes, Guard, IndexSpace, IndexedOp, WriteExpiry};
use crate::codec::Codec;
use crate::error::Result;
use crate::options::TtlPolicy;
use crate::store::participation::{Committer, IndexedCommit, Participant, WriteNotice};

impl<T, B, C> Participant<T> for TypedStore<T, B, C>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    B: Backend,
    C: Codec,
{
    fn namespace(&self) -> &str {
        self.inner.keyspace.namespace()
    }

    fn committer(&self) -> Arc<dyn Committer> {
        Arc::new(self.inner.backend.clone())
    }

    fn data_location(&self) -> String {
        self.inner.backend.data_location()
    }

    fn key(&self, id: &str) -> Result<String> {
        self.inner.keyspace.key(id)
    }

    fn encode(&self, key: &str, value: &T) -> Result<Bytes> {
        TypedStore::encode(self, key, value)
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<T> {
        TypedStore::decode(self, key, bytes)
    }

    fn expiry(&self, ttl: TtlPolicy) -> Result<WriteExpiry> {
        TypedStore::expiry(self, ttl)
    }

    fn indexed(&self) -> bool {
        TypedStore::indexed(self)
    }

    fn concern(&self) -> Option<crate::WriteConcern> {
        self.inner.concern
    }

    /// The op leaving the entity at `key` with `new` (the value and its bytes; `None`
    /// deletes), unguarded: a transaction sets its guard when it commits.
    fn op(
        &self,
        key: &str,
        new: Option<(&T, Bytes)>,
        expiry: WriteExpiry,
    ) -> Result<(IndexSpace, IndexedOp)> {
        let id = self.inner.keyspace.id_of(key).unwrap_or_default();
        let op = TypedStore::op(self, key, Guard::Always, new, expiry)?;
        Ok((self.space_of(id).clone(), op))
    }

    /// All of the ops or none, a unique value held by another entity being
    /// [`Error::UniqueViolation`](crate::Error::UniqueViolation).
    fn indexed_commit(&self) -> IndexedCommit {
        let store = self.clone();
        Arc::new(move |space, ops, checks, writes| {
            let store = store.clone();
            async move {
                let backend = &store.inner.backend;
                store
                    .apply_in(backend, &space, &ops, (&checks, &writes))
                    .await
            }
            .boxed()
        })
    }

    fn write_notice(&self) -> WriteNotice {
        TypedStore::write_notice(self)
    }
}
