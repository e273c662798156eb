//! How a store takes part in a [transaction](crate::transaction): what a transaction needs
//! of its backend and of each store, behind object-safe traits, so one
//! [`Transaction`](crate::Transaction) type serves stores of any backend and codec,
//! `dyn Store<T>` included, and [`Transactions`](crate::Transactions) can be made from a
//! store whose backend type is erased. Here, below the typed layer (which implements
//! [`Participant`] in `typed/transactional.rs`) and the transactions (which use it).

use std::fmt;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::backend::{
    Applied, Backend, Bytes, Check, CommitWrite, Committed, IndexSpace, IndexedOp, WriteExpiry,
};
use crate::concern::WriteConcern;
use crate::error::Result;
use crate::options::TtlPolicy;

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
    /// This backend with its commits acknowledged per `concern`.
    fn with_concern(&self, concern: WriteConcern) -> Result<Box<dyn Committer>>;
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

    fn with_concern(&self, concern: WriteConcern) -> Result<Box<dyn Committer>> {
        Ok(Box::new(Backend::with_concern(self, concern)?))
    }
}

/// Applies a transaction's ops in one index space (one partition), with the checks and
/// writes of its other stores' keys, as one atomic step.
pub(crate) type IndexedCommit = Arc<
    dyn Fn(
            IndexSpace,
            Vec<IndexedOp>,
            Vec<Check>,
            Vec<CommitWrite>,
        ) -> BoxFuture<'static, Result<Applied>>
        + Send
        + Sync,
>;

/// Who hears of a transaction's writes to a store's keys (this process' fail-safe tables):
/// made by the store, told after the commit, when the store itself is no longer borrowed.
#[derive(Clone)]
pub(crate) struct WriteNotice(Arc<dyn Fn(&str) + Send + Sync>);

impl WriteNotice {
    /// A notice that calls `heard` with each key written.
    pub(crate) fn new(heard: impl Fn(&str) + Send + Sync + 'static) -> Self {
        WriteNotice(Arc::new(heard))
    }

    /// Tells that `key` was written (or a write of it was tried).
    pub(crate) fn wrote(&self, key: &str) {
        (self.0)(key)
    }
}

/// A store as a transaction uses it: its keys, its encoding, and, with indexes, its ops.
pub(crate) trait Participant<T>: Send + Sync {
    fn namespace(&self) -> &str;
    /// Its backend, to run transactions on ([`Transactions::of`](crate::Transactions::of)).
    fn committer(&self) -> Arc<dyn Committer>;
    fn data_location(&self) -> String;
    fn key(&self, id: &str) -> Result<String>;
    fn encode(&self, key: &str, value: &T) -> Result<Bytes>;
    fn decode(&self, key: &str, bytes: &[u8]) -> Result<T>;
    fn expiry(&self, ttl: TtlPolicy) -> Result<WriteExpiry>;
    fn indexed(&self) -> bool;
    /// The write concern its writes ask for, if any.
    fn concern(&self) -> Option<WriteConcern>;
    /// The op leaving `key` with `new` (unguarded), and the partition it applies in.
    fn op(
        &self,
        key: &str,
        new: Option<(&T, Bytes)>,
        expiry: WriteExpiry,
    ) -> Result<(IndexSpace, IndexedOp)>;
    fn indexed_commit(&self) -> IndexedCommit;
    fn write_notice(&self) -> WriteNotice;
}

/// How a store takes part in a [transaction](crate::transaction): what
/// [`Store::transaction_part`](crate::Store::transaction_part) answers. Only typedkv's own
/// stores make one; it has no use outside the transaction's calls.
pub struct TransactionPart<'a, T> {
    pub(crate) store: &'a dyn Participant<T>,
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
