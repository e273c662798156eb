//! [`Transaction`]: the handle a transaction's closure reads and writes through, and what
//! one attempt gathered (the keys it read with what it saw, the writes it decided).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::cannot_take_part;
use crate::backend::{
    Applied, Bytes, Check, CommitWrite, Guard, IndexSpace, IndexedOp, WriteExpiry,
};
use crate::concern::WriteConcern;
use crate::error::{Error, Result};
use crate::options::{Condition, SetOptions};
use crate::store::Store;
use crate::store::participation::{Committer, IndexedCommit, Participant, WriteNotice};

/// One attempt of a [`transaction`](crate::transaction): reads go to the backend once per
/// key and are remembered, writes are kept until the commit.
///
/// Handed to the closure by value; clones share the attempt (for reads joined with
/// `futures::join!`). Once the attempt ends (committed, retried, or given up), every call on
/// it fails with [`Error::Transaction`]: a handle kept past its closure cannot add a write
/// to a commit that already happened.
#[derive(Clone)]
pub struct Transaction {
    backend: Arc<dyn Committer>,
    location: Arc<str>,
    state: Arc<Mutex<Option<Attempt>>>,
}

impl fmt::Debug for Transaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (reads, writes) = state
            .as_ref()
            .map_or((0, 0), |a| (a.checks.len(), a.writes.len()));
        f.debug_struct("Transaction")
            .field("backend", &self.backend.kind())
            .field("ended", &state.is_none())
            .field("reads", &reads)
            .field("writes", &writes)
            .finish()
    }
}

/// What one attempt gathered.
#[derive(Default)]
pub(super) struct Attempt {
    /// Each key read, with what it held then (in the order first read).
    pub(super) checks: Vec<Check>,
    /// Each key written, with its last write (in the order first written).
    pub(super) writes: Vec<CommitWrite>,
    /// Who hears of each write (its store's fail-safe tables), by position in `writes`.
    pub(super) notices: Vec<WriteNotice>,
    /// The store with indexes the attempt touched, if any (one per attempt).
    pub(super) indexed: Option<IndexedPart>,
    /// The write concern of the stores written, with the namespace of the first: all
    /// must ask for the same, which the commit then waits for.
    pub(super) concern: Option<(String, Option<WriteConcern>)>,
    read_at: HashMap<String, usize>,
    written_at: HashMap<String, usize>,
}

/// What an attempt on a store with indexes commits: the op of each key, applied in one
/// index space (the store's partition of those keys) as one atomic step.
pub(super) struct IndexedPart {
    /// The store's namespace, to name it in errors.
    namespace: String,
    space: IndexSpace,
    /// By key: the op of its last write.
    writes: HashMap<String, IndexedOp>,
    /// By key, for keys read: the op writing back what was read (its entries unchanged),
    /// the step's way to check that a key it does not write still holds what was read.
    reads: HashMap<String, IndexedOp>,
    commit: IndexedCommit,
}

impl IndexedPart {
    /// Applies `ops`, with `beside` (the other stores' checks and writes), as one atomic
    /// step.
    pub(super) async fn apply(&self, ops: Vec<IndexedOp>, beside: Beside) -> Result<Applied> {
        (self.commit)(self.space.clone(), ops, beside.checks, beside.writes).await
    }
}

/// What an attempt on a store with indexes commits beside its ops: the keys of its other
/// stores, checked and written as a plain commit would.
#[derive(Default)]
pub(super) struct Beside {
    pub(super) checks: Vec<Check>,
    /// The position of each of `checks` among the attempt's.
    pub(super) positions: Vec<usize>,
    pub(super) writes: Vec<CommitWrite>,
}

/// The refusal of an attempt that mixes two stores with indexes, or two partitions of one.
fn alone(namespace: &str) -> Error {
    Error::Transaction {
        reason: format!(
            "store {namespace:?} has indexes: a transaction takes one store with indexes, with \
             every key it reads or writes of that store in one of its partitions"
        ),
    }
}

impl Attempt {
    /// What the transaction sees at `key` if it already read or wrote it: the bytes it wrote
    /// (`Some(None)` for a delete), else those it read.
    fn seen(&self, key: &str) -> Option<Option<Bytes>> {
        if let Some(&at) = self.written_at.get(key) {
            return Some(self.writes[at].value.clone());
        }
        self.read_at
            .get(key)
            .map(|&at| match &self.checks[at].guard {
                Guard::Bytes(bytes) => Some(bytes.clone()),
                _ => None,
            })
    }

    /// Records that `key` held `found`, unless a read of it raced this one and was recorded
    /// first; what the transaction sees there now.
    fn read(&mut self, key: String, found: Option<Bytes>) -> Option<Bytes> {
        if let Some(seen) = self.seen(&key) {
            return seen;
        }
        let guard = match &found {
            Some(bytes) => Guard::Bytes(bytes.clone()),
            None => Guard::Absent,
        };
        self.read_at.insert(key.clone(), self.checks.len());
        self.checks.push(Check::new(key, guard));
        found
    }

    /// The ops of an attempt on a store with indexes: each of its written keys' write,
    /// then each of its keys only read written back as read, each guarded by its read;
    /// with, per op, the position of its check. The keys of other stores go `beside`, as a
    /// plain commit's checks and writes.
    pub(super) fn indexed_ops(
        &self,
        part: &IndexedPart,
    ) -> (Vec<IndexedOp>, Vec<Option<usize>>, Beside) {
        let written = self.writes.iter().map(|write| (&write.key, &part.writes));
        let read_only = self
            .checks
            .iter()
            .filter(|check| !self.written_at.contains_key(&check.key))
            .map(|check| (&check.key, &part.reads));
        let mut ops = Vec::with_capacity(self.checks.len() + self.writes.len());
        let mut positions = Vec::with_capacity(ops.capacity());
        let mut beside = Beside::default();
        for (key, ops_of) in written.chain(read_only) {
            let check = self.read_at.get(key).copied();
            let Some(op) = ops_of.get(key) else {
                // Another store's key: checked if read, written if written.
                if let Some(at) = check {
                    beside.checks.push(self.checks[at].clone());
                    beside.positions.push(at);
                }
                if let Some(&at) = self.written_at.get(key) {
                    beside.writes.push(self.writes[at].clone());
                }
                continue;
            };
            let mut op = op.clone();
            if let Some(at) = check {
                op.guard = self.checks[at].guard.clone();
            }
            ops.push(op);
            positions.push(check);
        }
        (ops, positions, beside)
    }

    /// The first key the attempt read or wrote, to name in an error.
    pub(super) fn first_key(&self) -> Option<String> {
        let read = self.checks.first().map(|check| &check.key);
        read.or_else(|| self.writes.first().map(|write| &write.key))
            .cloned()
    }

    /// Joins `store`'s indexed part (the first key of an indexed store starts it) with the
    /// op of `key`, as a write or as what was read.
    fn index<T>(
        &mut self,
        store: &dyn Participant<T>,
        (space, op): (IndexSpace, IndexedOp),
        write: bool,
    ) -> Result<()> {
        let namespace = store.namespace();
        let part = self.indexed.get_or_insert_with(|| IndexedPart {
            namespace: namespace.to_owned(),
            space: space.clone(),
            writes: HashMap::new(),
            reads: HashMap::new(),
            commit: store.indexed_commit(),
        });
        if part.namespace != namespace || part.space != space {
            return Err(alone(&part.namespace));
        }
        if write {
            part.writes.insert(op.key.clone(), op);
        } else {
            part.reads.entry(op.key.clone()).or_insert(op);
        }
        Ok(())
    }

    /// Keeps `write` of a key of `store`, replacing an earlier write of the same key; with
    /// its op when the store has indexes.
    fn write<T>(
        &mut self,
        store: &dyn Participant<T>,
        write: CommitWrite,
        op: Option<(IndexSpace, IndexedOp)>,
    ) -> Result<()> {
        if let Some(op) = op {
            self.index(store, op, true)?;
        }
        match &self.concern {
            None => self.concern = Some((store.namespace().to_owned(), store.concern())),
            Some((first, concern)) if *concern != store.concern() => {
                return Err(Error::Transaction {
                    reason: format!(
                        "stores {first:?} and {:?} ask for different write concerns \
                         ({concern:?} and {:?}): a commit waits for one",
                        store.namespace(),
                        store.concern()
                    ),
                });
            }
            Some(_) => {}
        }
        match self.written_at.get(&write.key) {
            Some(&at) => self.writes[at] = write,
            None => {
                self.written_at.insert(write.key.clone(), self.writes.len());
                self.writes.push(write);
                self.notices.push(store.write_notice());
            }
        }
        Ok(())
    }
}

impl Transaction {
    pub(super) fn new(backend: Arc<dyn Committer>, location: Arc<str>) -> Self {
        Transaction {
            backend,
            location,
            state: Arc::new(Mutex::new(Some(Attempt::default()))),
        }
    }

    /// The value of `id` in `store`, as this transaction sees it: what it wrote there, or what
    /// the key held when the transaction first read it (read from the backend then, and
    /// checked again at the commit).
    ///
    /// `store` is any of typedkv's stores on the transaction's backend: a
    /// [`TypedStore`](crate::TypedStore), a [`CachedStore`](crate::CachedStore), or either
    /// behind `&`, `Arc` or `Box`, as `dyn Store<T>` too.
    pub async fn get<T, S>(&self, store: &S, id: &str) -> Result<Option<T>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        S: Store<T> + ?Sized,
    {
        let store = self.part(store)?;
        let key = store.key(id)?;
        if let Some(seen) = self.with_attempt(|attempt| attempt.seen(&key))? {
            return seen.map(|bytes| store.decode(&key, &bytes)).transpose();
        }
        let found = self.backend.get(&key).await?;
        let bytes = self.with_attempt(|attempt| attempt.read(key.clone(), found))?;
        self.decode_read(store, &key, bytes)
    }

    /// The value of `bytes` just read at `key`; for a store with indexes, the op writing it
    /// back joins the attempt (its commit checks the key that way). Keys the attempt had
    /// already read or written are decoded without it: their op is there already.
    fn decode_read<T>(
        &self,
        store: &dyn Participant<T>,
        key: &str,
        bytes: Option<Bytes>,
    ) -> Result<Option<T>> {
        let value = bytes
            .as_ref()
            .map(|bytes| store.decode(key, bytes))
            .transpose()?;
        if store.indexed() {
            let op = match (&value, bytes) {
                (Some(value), Some(bytes)) => {
                    store.op(key, Some((value, bytes)), WriteExpiry::Keep)?
                }
                _ => store.op(key, None, WriteExpiry::Never)?,
            };
            self.with_attempt(|attempt| attempt.index(store, op, false))??;
        }
        Ok(value)
    }

    /// The values of `ids` in `store`, in order, as [`get`](Transaction::get) sees each:
    /// those not read or written yet are read from the backend at once, so a transfer
    /// reads both accounts in one round trip.
    pub async fn get_many<T, S>(&self, store: &S, ids: &[&str]) -> Result<Vec<Option<T>>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        S: Store<T> + ?Sized,
    {
        let store = self.part(store)?;
        let keys = ids
            .iter()
            .map(|id| store.key(id))
            .collect::<Result<Vec<String>>>()?;
        let mut seen = self
            .with_attempt(|attempt| keys.iter().map(|key| attempt.seen(key)).collect::<Vec<_>>())?;
        let fresh: Vec<bool> = seen.iter().map(Option::is_none).collect();
        let missing: Vec<String> = keys
            .iter()
            .zip(&fresh)
            .filter(|(_, fresh)| **fresh)
            .map(|(key, _)| key.clone())
            .collect();
        if !missing.is_empty() {
            // Concurrent single reads rather than one `get_many`: on Redis they share the
            // round trip all the same, and when other calls are in flight they join
            // batching's `MGET`s (one `MGET` of their own measured 0.55-0.68 of the lean
            // hand-written transfer at 64 tasks, two batched reads 0.76; BENCHMARKS.md).
            let reads = missing.iter().map(|key| self.backend.get(key));
            let found = futures::future::try_join_all(reads).await?;
            let mut found = missing.into_iter().zip(found);
            self.with_attempt(|attempt| {
                for slot in seen.iter_mut().filter(|seen| seen.is_none()) {
                    if let Some((key, bytes)) = found.next() {
                        *slot = Some(attempt.read(key, bytes));
                    }
                }
            })?;
        }
        let decoded = keys.iter().zip(seen).zip(fresh);
        decoded
            .map(|((key, bytes), fresh)| match fresh {
                true => self.decode_read(store, key, bytes.flatten()),
                false => bytes.flatten().map(|b| store.decode(key, &b)).transpose(),
            })
            .collect()
    }

    /// Writes `value` at `id` in `store` when the transaction commits, with the store's
    /// default TTL.
    pub fn set<T, S>(&self, store: &S, id: &str, value: &T) -> Result<()>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        S: Store<T> + ?Sized,
    {
        self.set_opts(store, id, value, SetOptions::new())
    }

    /// As [`set`](Transaction::set), with the TTL of `options`. A write's
    /// [`Condition`] is refused: read the key in the transaction and decide instead.
    pub fn set_opts<T, S>(&self, store: &S, id: &str, value: &T, options: SetOptions) -> Result<()>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        S: Store<T> + ?Sized,
    {
        let store = self.part(store)?;
        if options.condition != Condition::Always {
            return Err(Error::Transaction {
                reason: "a write in a transaction takes no condition: read the key in the \
                         transaction and decide instead"
                    .to_owned(),
            });
        }
        let key = store.key(id)?;
        let expiry = store.expiry(options.ttl)?;
        let bytes = store.encode(&key, value)?;
        let op = match store.indexed() {
            true => Some(store.op(&key, Some((value, bytes.clone())), expiry)?),
            false => None,
        };
        let write = CommitWrite::new(key, Some(bytes), expiry);
        self.with_attempt(|attempt| attempt.write(store, write, op))?
    }

    /// Deletes `id` from `store` when the transaction commits.
    pub fn delete<T, S>(&self, store: &S, id: &str) -> Result<()>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        S: Store<T> + ?Sized,
    {
        let store = self.part(store)?;
        let key = store.key(id)?;
        let op = match store.indexed() {
            true => Some(store.op(&key, None, WriteExpiry::Never)?),
            false => None,
        };
        let write = CommitWrite::new(key, None, WriteExpiry::Never);
        self.with_attempt(|attempt| attempt.write(store, write, op))?
    }

    /// Ends the attempt: what it gathered, and every later call on its handles fails.
    pub(super) fn end(&self) -> Option<Attempt> {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The first key the attempt read or wrote, to name in an error.
    pub(super) fn first_key(&self) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.as_ref()?.first_key()
    }

    fn with_attempt<R>(&self, f: impl FnOnce(&mut Attempt) -> R) -> Result<R> {
        // Nothing panics while holding the lock (the attempt's methods only move data).
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match state.as_mut() {
            Some(attempt) => Ok(f(attempt)),
            None => Err(Error::Transaction {
                reason: "this attempt of the transaction has ended: use the handle only \
                         inside its closure"
                    .to_owned(),
            }),
        }
    }

    /// How `store` takes part: refused when it is not one of typedkv's stores, or is on
    /// another backend than the transaction's.
    fn part<'s, T, S>(&self, store: &'s S) -> Result<&'s dyn Participant<T>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        S: Store<T> + ?Sized,
    {
        let Some(part) = store.transaction_part() else {
            return Err(cannot_take_part(store.namespace()));
        };
        let part = part.store;
        if part.data_location() == *self.location {
            return Ok(part);
        }
        Err(Error::Transaction {
            reason: format!(
                "store {:?} is on another {} backend than the transaction's",
                part.namespace(),
                self.backend.kind()
            ),
        })
    }
}
