//! [`Transaction`]: the handle a transaction's closure reads and writes through, and what
//! one attempt gathered (the keys it read with what it saw, the writes it decided).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Backend, Bytes, Check, CommitWrite, Guard};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::options::{Condition, SetOptions};
use crate::typed::{TypedStore, WriteNotice};

/// One attempt of a [`transaction`](crate::transaction): reads go to the backend once per
/// key and are remembered, writes are kept until the commit.
///
/// Handed to the closure by value; clones share the attempt (for reads joined with
/// `futures::join!`). Once the attempt ends (committed, retried, or given up), every call on
/// it fails with [`Error::Transaction`]: a handle kept past its closure cannot add a write
/// to a commit that already happened.
pub struct Transaction<B> {
    backend: B,
    location: Arc<str>,
    state: Arc<Mutex<Option<Attempt>>>,
}

impl<B: Clone> Clone for Transaction<B> {
    fn clone(&self) -> Self {
        Transaction {
            backend: self.backend.clone(),
            location: Arc::clone(&self.location),
            state: Arc::clone(&self.state),
        }
    }
}

impl<B: Backend> fmt::Debug for Transaction<B> {
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
    read_at: HashMap<String, usize>,
    written_at: HashMap<String, usize>,
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

    /// Keeps `write`, replacing an earlier write of the same key.
    fn write(&mut self, write: CommitWrite, notice: WriteNotice) {
        match self.written_at.get(&write.key) {
            Some(&at) => self.writes[at] = write,
            None => {
                self.written_at.insert(write.key.clone(), self.writes.len());
                self.writes.push(write);
                self.notices.push(notice);
            }
        }
    }
}

impl<B: Backend> Transaction<B> {
    pub(super) fn new(backend: B, location: Arc<str>) -> Self {
        Transaction {
            backend,
            location,
            state: Arc::new(Mutex::new(Some(Attempt::default()))),
        }
    }

    /// The value of `id` in `store`, as this transaction sees it: what it wrote there, or what
    /// the key held when the transaction first read it (read from the backend then, and
    /// checked again at the commit).
    pub async fn get<T, C>(&self, store: &TypedStore<T, B, C>, id: &str) -> Result<Option<T>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        C: Codec,
    {
        self.same_backend(store)?;
        let key = store.keyspace().key(id)?;
        let bytes = match self.with_attempt(|attempt| attempt.seen(&key))? {
            Some(seen) => seen,
            None => {
                let found = self.backend.get(&key).await?;
                self.with_attempt(|attempt| attempt.read(key.clone(), found))?
            }
        };
        bytes.map(|bytes| store.decode(&key, &bytes)).transpose()
    }

    /// The values of `ids` in `store`, in order, as [`get`](Transaction::get) sees each:
    /// those not read or written yet are read from the backend at once, so a transfer
    /// reads both accounts in one round trip.
    pub async fn get_many<T, C>(
        &self,
        store: &TypedStore<T, B, C>,
        ids: &[&str],
    ) -> Result<Vec<Option<T>>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        C: Codec,
    {
        self.same_backend(store)?;
        let keys = ids
            .iter()
            .map(|id| store.keyspace().key(id))
            .collect::<Result<Vec<String>>>()?;
        let mut seen = self
            .with_attempt(|attempt| keys.iter().map(|key| attempt.seen(key)).collect::<Vec<_>>())?;
        let missing: Vec<String> = keys
            .iter()
            .zip(&seen)
            .filter(|(_, seen)| seen.is_none())
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
        keys.iter()
            .zip(seen)
            .map(|(key, bytes)| match bytes.flatten() {
                Some(bytes) => store.decode(key, &bytes).map(Some),
                None => Ok(None),
            })
            .collect()
    }

    /// Writes `value` at `id` in `store` when the transaction commits, with the store's
    /// default TTL.
    pub fn set<T, C>(&self, store: &TypedStore<T, B, C>, id: &str, value: &T) -> Result<()>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        C: Codec,
    {
        self.set_opts(store, id, value, SetOptions::new())
    }

    /// As [`set`](Transaction::set), with the TTL of `options`. A write's
    /// [`Condition`] is refused: read the key in the transaction and decide instead.
    pub fn set_opts<T, C>(
        &self,
        store: &TypedStore<T, B, C>,
        id: &str,
        value: &T,
        options: SetOptions,
    ) -> Result<()>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        C: Codec,
    {
        self.writable(store)?;
        if options.condition != Condition::Always {
            return Err(Error::Transaction {
                reason: "a write in a transaction takes no condition: read the key in the \
                         transaction and decide instead"
                    .to_owned(),
            });
        }
        let key = store.keyspace().key(id)?;
        let expiry = store.expiry(options.ttl)?;
        let bytes = store.encode(&key, value)?;
        let write = CommitWrite::new(key, Some(bytes), expiry);
        self.with_attempt(|attempt| attempt.write(write, store.write_notice()))
    }

    /// Deletes `id` from `store` when the transaction commits.
    pub fn delete<T, C>(&self, store: &TypedStore<T, B, C>, id: &str) -> Result<()>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        C: Codec,
    {
        self.writable(store)?;
        let key = store.keyspace().key(id)?;
        let write = CommitWrite::new(key, None, crate::backend::WriteExpiry::Never);
        self.with_attempt(|attempt| attempt.write(write, store.write_notice()))
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
        let attempt = state.as_ref()?;
        let read = attempt.checks.first().map(|check| &check.key);
        read.or_else(|| attempt.writes.first().map(|write| &write.key))
            .cloned()
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

    /// Refuses a store on another backend than the transaction's.
    fn same_backend<T, C: Codec>(&self, store: &TypedStore<T, B, C>) -> Result<()> {
        if store.backend().data_location().as_str() == &*self.location {
            return Ok(());
        }
        Err(Error::Transaction {
            reason: format!(
                "store {:?} is on another {} backend than the transaction's",
                store.keyspace().namespace(),
                self.backend.kind()
            ),
        })
    }

    /// Refuses writes the commit cannot make: to a store on another backend, or with indexes.
    fn writable<T, C>(&self, store: &TypedStore<T, B, C>) -> Result<()>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
        C: Codec,
    {
        self.same_backend(store)?;
        if store.indexed() {
            return Err(Error::Transaction {
                reason: format!(
                    "store {:?} has indexes, and transactions do not write indexed stores yet",
                    store.keyspace().namespace()
                ),
            });
        }
        Ok(())
    }
}
