//! [`Store<T>`] implemented once, over any [`Backend`]: keys, codec + envelope, TTL policy.
//!
//! `builder.rs` configures a store; `loading.rs` and `scanning.rs` hold the machinery of
//! `get_or_load` and `scan`; `migration.rs` reads older schema versions; `reencrypt.rs`
//! moves values to the current key after a rotation;
//! `telemetry.rs` reports every operation (tracing spans, metrics).

mod builder;
mod indexing;
mod loading;
mod migration;
mod partitions;
mod reencrypt;
mod relayout;
mod scanning;
pub(crate) mod telemetry;
#[cfg(test)]
mod tests;
mod transactional;
mod turns;
#[cfg(feature = "cache")]
pub(crate) mod write_listeners;
mod writes;

pub use self::builder::StoreBuilder;
pub use self::reencrypt::ReencryptReport;
pub use self::relayout::MoveReport;

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::at_rest::{AtRest, Context};
use crate::backend::{Backend, Bytes, Guard, Swap, Write, WriteExpiry};
use crate::codec::{Bincode, Codec};
use crate::envelope::{self, Stamp};
use crate::error::{DecodeProblem, Error, ErrorSource, Result};
use crate::index::{RangePage, RangeQuery};
use crate::keyspace::Keyspace;
use crate::load::{Flights, Loader};
use crate::options::{Expiry, SetOptions, TtlPolicy, check_ttl};
use crate::store::Store;
use crate::store::participation::{TransactionPart, WriteNotice};
use crate::update::{Update, backoff};
use crate::version::{Version, Versioned};

use self::indexing::Indexes;
use self::migration::Migrations;
use self::telemetry::{Telemetry, observed};
use self::turns::UpdateTurns;

/// The schema version a store writes and reads unless its builder says otherwise.
pub const DEFAULT_SCHEMA_VERSION: u32 = 1;

/// The typed store over backend `B` with codec `C`; see [`Store`] for the operations.
///
/// Usually named through [`RedisStore`](crate::RedisStore) or
/// [`MemoryStore`](crate::MemoryStore) and built with [`TypedStore::builder`]. Cloning is
/// cheap and clones share the backend.
pub struct TypedStore<T, B, C = Bincode> {
    inner: Arc<Inner<B, C>>,
    migrations: Arc<Migrations<T, C>>,
    indexes: Arc<Indexes<T>>,
    _values: PhantomData<fn() -> T>,
}

struct Inner<B, C> {
    backend: B,
    keyspace: Keyspace,
    codec: C,
    /// The schema version, and the layout fingerprint of `T` (see `layout`), of every value
    /// this store writes and reads.
    stamp: Stamp,
    default_ttl: Option<Duration>,
    update_attempts: u32,
    /// Updates of one key from this store take turns (see `turns.rs`).
    update_turns: UpdateTurns,
    /// `get_or_load` loads in flight, by key.
    flights: Flights,
    /// Under which the fail-safe tables and caches of the process hear this store's writes:
    /// the backend's data location and the key prefix (`write_listeners.rs`).
    #[cfg(feature = "cache")]
    listen_key: String,
    /// The same, for a transaction's writes to this store's keys: made once, as each write
    /// of a transaction takes one.
    write_notice: WriteNotice,
    /// Size of the last encoded value, so the next encode reserves its buffer once.
    size_hint: AtomicUsize,
    /// What operations report beyond their span (see `telemetry.rs`).
    telemetry: Telemetry,
    /// Compression and encryption of stored values (see `at_rest`).
    at_rest: AtRest,
    /// The write concern `backend` keeps for every write (`None`: none): what a
    /// transaction's writes to this store ask for too.
    concern: Option<crate::WriteConcern>,
}

impl<T, B, C> Clone for TypedStore<T, B, C> {
    fn clone(&self) -> Self {
        TypedStore {
            inner: Arc::clone(&self.inner),
            migrations: Arc::clone(&self.migrations),
            indexes: Arc::clone(&self.indexes),
            _values: PhantomData,
        }
    }
}

impl<T, B: Backend, C: Codec> fmt::Debug for TypedStore<T, B, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedStore")
            .field("backend", &self.inner.backend.kind())
            .field("namespace", &self.inner.keyspace.namespace())
            .field("codec", &self.inner.codec.name())
            .field("schema_version", &self.inner.stamp.schema)
            .field("layout", &self.inner.stamp.layout)
            .field("default_ttl", &self.inner.default_ttl)
            .field("indexes", &self.indexes.names())
            .field("at_rest", &self.inner.at_rest)
            .finish()
    }
}

impl<T, B: Backend, C: Codec> TypedStore<T, B, C> {
    /// The backend, e.g. to build another store on it.
    pub fn backend(&self) -> &B {
        &self.inner.backend
    }

    /// The key layout, e.g. to find the Redis key of an id.
    pub fn keyspace(&self) -> &Keyspace {
        &self.inner.keyspace
    }

    /// The store's default TTL, if any.
    pub fn default_ttl(&self) -> Option<Duration> {
        self.inner.default_ttl
    }

    pub(crate) fn encode(&self, key: &str, value: &T) -> Result<Bytes>
    where
        T: Serialize,
    {
        let inner = &*self.inner;
        let hint = inner.size_hint.load(Ordering::Relaxed);
        let context = self.context(key);
        let bytes = inner
            .at_rest
            .encode(&inner.codec, inner.stamp, context, value, hint)
            .map_err(|source| Error::Encode {
                key: key.to_owned(),
                codec: inner.codec.name(),
                source: source.into(),
            })?;
        inner.size_hint.store(bytes.len(), Ordering::Relaxed);
        Ok(bytes)
    }

    pub(crate) fn decode(&self, key: &str, bytes: &[u8]) -> Result<T>
    where
        T: DeserializeOwned,
    {
        let inner = &*self.inner;
        let context = self.context(key);
        let mut decoded = inner
            .at_rest
            .decode(&inner.codec, inner.stamp, context, bytes);
        if let Err((DecodeProblem::SchemaMismatch { found, .. }, _)) = decoded
            && let Some(converted) =
                self.migrations
                    .convert(&inner.codec, &inner.at_rest, context, found, bytes)
        {
            decoded = converted;
        }
        decoded.map_err(|(problem, source)| Error::Decode {
            key: key.to_owned(),
            codec: inner.codec.name(),
            expected_schema: inner.stamp.schema,
            problem,
            source: source.map(ErrorSource::from),
        })
    }

    /// What an encrypted value at `key` (a key of this store's keyspace) is bound to.
    fn context<'k>(&'k self, key: &'k str) -> Context<'k> {
        let keyspace = &self.inner.keyspace;
        Context {
            namespace: keyspace.namespace(),
            id: keyspace.id_of(key).unwrap_or(key),
        }
    }

    /// The value at `key` and its remaining life, read together.
    #[cfg(feature = "cache")]
    pub(crate) async fn get_expiring(&self, key: &str) -> Result<Option<(T, Expiry)>>
    where
        T: DeserializeOwned,
    {
        let Some((bytes, expiry)) = self.inner.backend.get_with_ttl(key).await? else {
            return Ok(None);
        };
        Ok(Some((self.decode(key, &bytes)?, expiry)))
    }

    /// Stores `value`, just converted from the older-schema `old` bytes at `key`, in the
    /// current schema, unless the key changed meanwhile. Best effort: the caller has its
    /// value either way, and the next read converts again if this did not happen.
    async fn write_back(&self, key: &str, old: &[u8], value: &T)
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let stored = envelope::Header::parse(old).map(|(header, _)| header.stamp.schema);
        if stored == Ok(self.inner.stamp.schema) {
            return;
        }
        if let Ok(new) = self.encode(key, value) {
            let guard = Guard::Bytes(old.to_vec());
            let _ = self
                .swap(key, guard, Some((value, new)), WriteExpiry::Keep)
                .await;
        }
    }

    /// Decodes what a backend read at `key`; nothing read stays `None`.
    fn decode_found(&self, key: &str, bytes: Option<&[u8]>) -> Result<Option<T>>
    where
        T: DeserializeOwned,
    {
        bytes.map(|b| self.decode(key, b)).transpose()
    }

    /// Reads each key a multi-key read found nothing at again, alone: a key of another
    /// Redis type reads as nothing in `MGET` but is `WRONGTYPE` for `GET`, and `get_many`
    /// keeps `get`'s rule. Costs one more round trip, only when something is missing.
    async fn check_misses(&self, keys: &[String], found: &mut [Option<Bytes>]) -> Result<()> {
        let backend = &self.inner.backend;
        let misses = keys
            .iter()
            .zip(found.iter_mut())
            .filter(|(_, bytes)| bytes.is_none())
            .map(|(key, bytes)| async move {
                // A value written since the multi-key read is as good an answer as none.
                *bytes = backend.get(key).await?;
                Ok::<_, Error>(())
            });
        futures::future::try_join_all(misses).await?;
        Ok(())
    }

    /// The read-modify-write loop of `update`, run while holding the key's turn.
    async fn update_in_turn(
        &self,
        key: String,
        f: &mut (dyn FnMut(Option<T>) -> Update<T> + Send),
    ) -> Result<Option<T>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        let inner = &*self.inner;
        let mut current = inner.backend.get(&key).await?;
        for attempt in 1..=inner.update_attempts {
            let value = self.decode_found(&key, current.as_deref())?;
            let (new, result) = match f(value) {
                Update::Keep => {
                    // Nothing to write: answer what is stored (decoded again, as `f` took it).
                    return self.decode_found(&key, current.as_deref());
                }
                Update::Delete if current.is_none() => return Ok(None),
                Update::Delete => (None, None),
                Update::Set(value) => (Some(self.encode(&key, &value)?), Some(value)),
            };
            let new = new.map(|bytes| (result.as_ref(), bytes));
            // An existing key keeps its TTL; a key created here gets the store default.
            let expiry = match current {
                Some(_) => WriteExpiry::Keep,
                None => self.expiry(TtlPolicy::StoreDefault)?,
            };
            // The bytes read become the guard: every way on from the swap reads anew.
            let guard = match current.take() {
                Some(bytes) => Guard::Bytes(bytes),
                None => Guard::Absent,
            };
            let new = new.and_then(|(value, bytes)| Some((value?, bytes)));
            match self.swap(&key, guard, new, expiry).await? {
                Swap::Done => return Ok(result),
                // Retry at once with the value the swap found, or, under contention, after a
                // random pause with a fresh read (what the swap found is stale by then).
                Swap::Changed(found) => match backoff(attempt) {
                    None => current = found,
                    Some(pause) => {
                        tokio::time::sleep(pause).await;
                        current = inner.backend.get(&key).await?;
                    }
                },
            }
        }
        Err(Error::Conflict {
            key,
            attempts: inner.update_attempts,
        })
    }

    /// `set_opts`, for `set` too (both report as `typedkv.set_opts`).
    async fn set_observed(&self, id: &str, value: &T, options: SetOptions) -> Result<bool>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        observed!(self, "set_opts", Some(id), |span| async {
            let key = self.inner.keyspace.key(id)?;
            let write = Write::new(self.expiry(options.ttl)?, options.condition);
            let bytes = self.encode(&key, value)?;
            span.record("bytes", bytes.len());
            match options.concern {
                None => self.write(&key, value, bytes, write).await,
                // Boxed: rare, and inlined it would enlarge every `set`'s future.
                Some(concern) => {
                    let backend = self.inner.backend.with_concern(concern.checked()?)?;
                    Box::pin(self.write_on(&backend, &key, value, bytes, write)).await
                }
            }
        })
    }

    pub(crate) fn expiry(&self, policy: TtlPolicy) -> Result<WriteExpiry> {
        Ok(match policy {
            TtlPolicy::StoreDefault => match self.inner.default_ttl {
                Some(ttl) => WriteExpiry::After(ttl),
                None => WriteExpiry::Never,
            },
            TtlPolicy::Expire(ttl) => WriteExpiry::After(check_ttl(ttl)?),
            TtlPolicy::Keep => WriteExpiry::Keep,
            TtlPolicy::Never => WriteExpiry::Never,
        })
    }
}

#[async_trait]
impl<T, B, C> Store<T> for TypedStore<T, B, C>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    B: Backend,
    C: Codec,
{
    fn namespace(&self) -> &str {
        self.inner.keyspace.namespace()
    }

    fn transaction_part(&self) -> Option<TransactionPart<'_, T>> {
        Some(TransactionPart::new(self))
    }

    async fn get(&self, id: &str) -> Result<Option<T>> {
        observed!(self, "get", Some(id), |span| async {
            let key = self.inner.keyspace.key(id)?;
            let found = self.inner.backend.get(&key).await?;
            if let Some(bytes) = &found {
                span.record("bytes", bytes.len());
            }
            let value = self.decode_found(&key, found.as_deref())?;
            if let (true, Some(bytes), Some(value)) =
                (self.migrations.write_back, found.as_deref(), &value)
            {
                // Boxed: rare, and it would otherwise enlarge every get's future.
                Box::pin(self.write_back(&key, bytes, value)).await;
            }
            Ok(value)
        })
    }

    // Not the trait's default, which would box `set_opts`' future inside `set`'s: one
    // allocation per `set`, not two.
    async fn set(&self, id: &str, value: &T) -> Result<()> {
        self.set_observed(id, value, SetOptions::new())
            .await
            .map(|_| ())
    }

    async fn set_opts(&self, id: &str, value: &T, options: SetOptions) -> Result<bool> {
        self.set_observed(id, value, options).await
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        observed!(self, "delete", Some(id), |span| async {
            let key = self.inner.keyspace.key(id)?;
            self.remove_one(key).await
        })
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        observed!(self, "exists", Some(id), |span| async {
            let key = self.inner.keyspace.key(id)?;
            self.inner.backend.exists(&key).await
        })
    }

    async fn ttl(&self, id: &str) -> Result<Option<Expiry>> {
        observed!(self, "ttl", Some(id), |span| async {
            let key = self.inner.keyspace.key(id)?;
            self.inner.backend.ttl(&key).await
        })
    }

    async fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<T>>> {
        observed!(self, "get_many", None, |span| async {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let keys = self.inner.keyspace.keys(ids.iter().copied())?;
            let mut found = self.inner.backend.get_many(&keys).await?;
            self.check_misses(&keys, &mut found).await?;
            keys.iter()
                .zip(found)
                .map(|(key, bytes)| self.decode_found(key, bytes.as_deref()))
                .collect()
        })
    }

    async fn update(
        &self,
        id: &str,
        f: &mut (dyn FnMut(Option<T>) -> Update<T> + Send),
    ) -> Result<Option<T>> {
        observed!(self, "update", Some(id), |span| async {
            let key = self.inner.keyspace.key(id)?;
            let backend = &self.inner.backend;
            let limit = backend.response_timeout();
            let mut turn = self
                .inner
                .update_turns
                .take(backend.kind(), &key, limit)
                .await?;
            let result = self.update_in_turn(key, f).await;
            if matches!(result, Err(Error::Timeout { .. })) {
                turn.timed_out();
            }
            result
        })
    }

    async fn get_or_load(&self, id: &str, loader: Loader<T>) -> Result<T> {
        observed!(self, "get_or_load", Some(id), |span| async {
            let key = self.inner.keyspace.key(id)?;
            let call = self.inner.flights.begin(&key);
            if let Some(bytes) = self.inner.backend.get(&key).await? {
                return self.decode(&key, &bytes);
            }
            let flight = call.join_or(|| self.launch(key.clone(), loader));
            match flight.await {
                Ok(bytes) => self.decode(&key, &bytes),
                Err(failure) => Err(failure.into_error(key.clone())),
            }
        })
    }

    async fn get_versioned(&self, id: &str) -> Result<Option<Versioned<T>>> {
        observed!(self, "get_versioned", Some(id), |span| async {
            let key = self.inner.keyspace.key(id)?;
            match self.inner.backend.get(&key).await? {
                Some(bytes) => Ok(Some(Versioned {
                    value: self.decode(&key, &bytes)?,
                    version: Version::of(&bytes),
                })),
                None => Ok(None),
            }
        })
    }

    async fn set_if_version(
        &self,
        id: &str,
        value: &T,
        version: &Version,
    ) -> Result<Option<Version>> {
        observed!(self, "set_if_version", Some(id), |span| async {
            let key = self.inner.keyspace.key(id)?;
            let bytes = self.encode(&key, value)?;
            let written = Version::of(&bytes);
            let guard = Guard::Version(version.clone());
            match self
                .swap(&key, guard, Some((value, bytes)), WriteExpiry::Keep)
                .await?
            {
                Swap::Done => Ok(Some(written)),
                Swap::Changed(_) => Ok(None),
            }
        })
    }

    fn scan(&self) -> BoxStream<'static, Result<(String, T)>> {
        let store = self.clone();
        self.key_pages()
            .then(move |page| {
                let store = store.clone();
                async move {
                    match page {
                        Ok(keys) => store.page_values(keys).await,
                        Err(e) => vec![Err(e)],
                    }
                }
            })
            .flat_map(stream::iter)
            .boxed()
    }

    fn scan_ids(&self) -> BoxStream<'static, Result<String>> {
        let store = self.clone();
        self.key_pages()
            .map_ok(move |keys| {
                let ids: Vec<Result<String>> = keys
                    .into_iter()
                    .map(|key| Ok(store.id_from(store.addressable(key)?)))
                    .collect();
                stream::iter(ids)
            })
            .try_flatten()
            .boxed()
    }

    async fn count(&self) -> Result<u64> {
        observed!(self, "count", None, |span| async {
            self.key_pages()
                .try_fold(0u64, |n, keys| async move { Ok(n + keys.len() as u64) })
                .await
        })
    }

    async fn delete_many(&self, ids: &[&str]) -> Result<u64> {
        observed!(self, "delete_many", None, |span| async {
            if ids.is_empty() {
                return Ok(0);
            }
            let keys = self.inner.keyspace.keys(ids.iter().copied())?;
            let keys: Vec<Bytes> = keys.into_iter().map(String::into_bytes).collect();
            self.remove(keys).await
        })
    }

    async fn clear(&self) -> Result<u64> {
        observed!(self, "clear", None, |span| async {
            self.key_pages()
                .and_then(|keys| async move {
                    match keys.is_empty() {
                        true => Ok(0),
                        false => self.remove(keys).await,
                    }
                })
                .try_fold(0u64, |n, removed| async move { Ok(n + removed) })
                .await
        })
    }

    fn find_by(&self, index: &str, value: &[u8]) -> BoxStream<'static, Result<(String, T)>> {
        self.find_by_stream(index, value)
    }

    async fn count_by(&self, index: &str, value: &[u8]) -> Result<u64> {
        observed!(self, "count_by", None, |span| async {
            self.count_of(index, value).await
        })
    }

    async fn find_range(&self, index: &str, query: RangeQuery) -> Result<RangePage<T>> {
        observed!(self, "find_range", None, |span| async {
            self.range_page(index, query).await
        })
    }

    async fn set_many(&self, entries: &[(&str, &T)]) -> Result<()> {
        observed!(self, "set_many", None, |span| async {
            if entries.is_empty() {
                return Ok(());
            }
            let expiry = self.expiry(TtlPolicy::StoreDefault)?;
            let encoded = entries
                .iter()
                .map(|(id, value)| {
                    let key = self.inner.keyspace.key(id)?;
                    let bytes = self.encode(&key, value)?;
                    Ok((key, *value, bytes))
                })
                .collect::<Result<Vec<_>>>()?;
            self.write_many(encoded, expiry).await
        })
    }
}
