//! What a transaction needs of its backend and of each store it uses, behind object-safe
//! traits: so one [`Transaction`](super::Transaction) type serves stores of any backend
//! and codec, `dyn Store<T>` included, and [`Transactions`](super::Transactions) can be
//! made from a store whose backend type is erased.

use std::fmt;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{
    Backend, Bytes, Check, CommitWrite, Committed, IndexSpace, IndexedOp, WriteExpiry,
};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::options::TtlPolicy;
use crate::typed::{IndexedCommit, TypedStore, WriteNotice};

/// A backend as a transaction uses it: reads, and the atomic commit.
pub(crate) trait Committer: Send + Sync {
    fn kind(&self) -> &'static str;
    fn data_location(&self) -> String;
    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>>;
    fn commit<'a>(
        &'a self,
        checks: &'a [Check],
        writes: &'a [CommitWrite],
    ) -> BoxFuture<'a, Result<Committed>>;
}

impl<B: Backend> Committer for B {
    fn kind(&self) -> &'static str {
        Backend::kind(self)
    }

    fn data_location(&self) -> String {
        Backend::data_location(self)
    }

    fn get<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Bytes>>> {
        Backend::get(self, key).boxed()
    }

    fn commit<'a>(
        &'a self,
        checks: &'a [Check],
        writes: &'a [CommitWrite],
    ) -> BoxFuture<'a, Result<Committed>> {
        Backend::commit(self, checks, writes).boxed()
    }
}

/// A store as a transaction uses it: its keys, its encoding, and, with indexes, its ops.
pub(crate) trait Participant<T>: Send + Sync {
    fn namespace(&self) -> &str;
    /// Its backend, to run transactions on ([`Transactions::of`](super::Transactions::of)).
    fn committer(&self) -> Arc<dyn Committer>;
    fn data_location(&self) -> String;
    fn key(&self, id: &str) -> Result<String>;
    fn encode(&self, key: &str, value: &T) -> Result<Bytes>;
    fn decode(&self, key: &str, bytes: &[u8]) -> Result<T>;
    fn expiry(&self, ttl: TtlPolicy) -> Result<WriteExpiry>;
    fn indexed(&self) -> bool;
    /// The op leaving `key` with `new`, and the partition it applies in (`TypedStore::
    /// transaction_op`).
    fn op(
        &self,
        key: &str,
        new: Option<(&T, Bytes)>,
        expiry: WriteExpiry,
    ) -> Result<(IndexSpace, IndexedOp)>;
    fn indexed_commit(&self) -> IndexedCommit;
    fn write_notice(&self) -> WriteNotice;
}

impl<T, B, C> Participant<T> for TypedStore<T, B, C>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    B: Backend,
    C: Codec,
{
    fn namespace(&self) -> &str {
        self.keyspace().namespace()
    }

    fn committer(&self) -> Arc<dyn Committer> {
        Arc::new(self.backend().clone())
    }

    fn data_location(&self) -> String {
        self.backend().data_location()
    }

    fn key(&self, id: &str) -> Result<String> {
        self.keyspace().key(id)
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

    fn op(
        &self,
        key: &str,
        new: Option<(&T, Bytes)>,
        expiry: WriteExpiry,
    ) -> Result<(IndexSpace, IndexedOp)> {
        self.transaction_op(key, new, expiry)
    }

    fn indexed_commit(&self) -> IndexedCommit {
        TypedStore::indexed_commit(self)
    }

    fn write_notice(&self) -> WriteNotice {
        TypedStore::write_notice(self)
    }
}

/// How a store takes part in a [transaction](crate::transaction): what
/// [`Store::transaction_part`](crate::Store::transaction_part) answers. Only typedkv's own
/// stores make one; it has no use outside the transaction's calls.
pub struct TransactionPart<'a, T> {
    pub(super) store: &'a dyn Participant<T>,
}

impl<'a, T> TransactionPart<'a, T> {
    /// The part of `store`.
    pub(crate) fn new(store: &'a dyn Participant<T>) -> Self {
        TransactionPart { store }
    }
}

impl<T> fmt::Debug for TransactionPart<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionPart")
            .field("namespace", &self.store.namespace())
            .finish()
    }
}

/// The refusal of a store that has no [`TransactionPart`] (implemented outside typedkv).
pub(super) fn cannot_take_part(namespace: &str) -> Error {
    Error::Transaction {
        reason: format!(
            "store {namespace:?} cannot take part in a transaction: only typedkv's own stores can"
        ),
    }
}
