//! [`Store<T>`] implemented once, over any [`Backend`]: keys, codec + envelope, TTL policy.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use std::collections::HashSet;

use async_trait::async_trait;
use futures::FutureExt;
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::backend::{Backend, Bytes, Expected, Swap};
use crate::codec::{Bincode, Codec};
use crate::envelope;
use crate::error::{BoxError, Error, Result};
use crate::keyspace::Keyspace;
use crate::load::{Flight, Flights, Landing, Loader, SharedError};
use crate::options::{Condition, Expiry, SetOptions, TtlPolicy, Write, WriteExpiry};
use crate::store::Store;
use crate::update::{DEFAULT_UPDATE_ATTEMPTS, Update, backoff};
use crate::version::{Version, Versioned};

/// Keys asked for per `SCAN` page (Redis' `COUNT` hint).
const SCAN_PAGE: usize = 1000;

/// The schema version a store writes and reads unless its builder says otherwise.
pub const DEFAULT_SCHEMA_VERSION: u32 = 1;

/// The typed store over backend `B` with codec `C`; see [`Store`] for the operations.
///
/// Usually named through [`RedisStore`](crate::RedisStore) or
/// [`MemoryStore`](crate::MemoryStore) and built with [`TypedStore::builder`]. Cloning is
/// cheap and clones share the backend.
pub struct TypedStore<T, B, C = Bincode> {
    inner: Arc<Inner<B, C>>,
    _values: PhantomData<fn() -> T>,
}

struct Inner<B, C> {
    backend: B,
    keyspace: Keyspace,
    codec: C,
    schema: u32,
    default_ttl: Option<Duration>,
    update_attempts: u32,
    /// Updates of one key from this store take turns (striped by key): tasks of one process
    /// then never race each other, and compare-and-swap only resolves races with other
    /// clients. Measured: 64 tasks racing on one Redis key each exhausted 100 attempts.
    /// Correctness does not depend on it (two keys may share a stripe; other stores do not
    /// see it): the swap still checks.
    update_turns: Box<[tokio::sync::Mutex<()>]>,
    /// `get_or_insert_with` loads in flight, by key.
    flights: Flights,
    /// Size of the last encoded value, so the next encode reserves its buffer once.
    size_hint: AtomicUsize,
}

/// Stripes of [`Inner::update_turns`].
const UPDATE_STRIPES: u64 = 64;

impl<T, B, C> Clone for TypedStore<T, B, C> {
    fn clone(&self) -> Self {
        TypedStore {
            inner: Arc::clone(&self.inner),
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
            .field("schema_version", &self.inner.schema)
            .field("default_ttl", &self.inner.default_ttl)
            .finish()
    }
}

impl<T, B: Backend> TypedStore<T, B, Bincode> {
    /// Starts building a store of `T` over `backend`, keys under `namespace:`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use typedkv::{MemoryBackend, MemoryStore};
    ///
    /// let sessions = MemoryStore::<String>::builder(MemoryBackend::new(), "session")
    ///     .ttl(Duration::from_secs(3600))
    ///     .schema_version(2)
    ///     .build()?;
    /// # Ok::<(), typedkv::Error>(())
    /// ```
    pub fn builder(backend: B, namespace: impl Into<String>) -> StoreBuilder<T, B, Bincode> {
        StoreBuilder {
            backend,
            namespace: namespace.into(),
            codec: Bincode::new(),
            schema: DEFAULT_SCHEMA_VERSION,
            default_ttl: None,
            update_attempts: DEFAULT_UPDATE_ATTEMPTS,
            _values: PhantomData,
        }
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

    fn encode(&self, key: &str, value: &T) -> Result<Bytes>
    where
        T: Serialize,
    {
        let inner = &*self.inner;
        let hint = inner.size_hint.load(Ordering::Relaxed);
        let bytes =
            envelope::encode(&inner.codec, inner.schema, value, hint).map_err(|source| {
                Error::Encode {
                    key: key.to_owned(),
                    codec: inner.codec.name(),
                    source,
                }
            })?;
        inner.size_hint.store(bytes.len(), Ordering::Relaxed);
        Ok(bytes)
    }

    fn decode(&self, key: &str, bytes: &[u8]) -> Result<T>
    where
        T: DeserializeOwned,
    {
        let inner = &*self.inner;
        envelope::decode(&inner.codec, inner.schema, bytes).map_err(|(problem, source)| {
            Error::Decode {
                key: key.to_owned(),
                codec: inner.codec.name(),
                expected_schema: inner.schema,
                problem,
                source,
            }
        })
    }

    fn expiry(&self, policy: TtlPolicy) -> Result<WriteExpiry> {
        Ok(match policy {
            TtlPolicy::StoreDefault => match self.inner.default_ttl {
                Some(ttl) => WriteExpiry::After(ttl),
                None => WriteExpiry::Never,
            },
            TtlPolicy::Expire(ttl) => WriteExpiry::After(check_ttl(ttl)?),
            TtlPolicy::Keep => WriteExpiry::Keep,
            TtlPolicy::Persist => WriteExpiry::Never,
        })
    }
}

impl<T, B, C> TypedStore<T, B, C>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    B: Backend,
    C: Codec,
{
    /// Starts the one load of `key` that every caller missing it meanwhile awaits.
    fn launch(&self, key: String, loader: Loader<T>) -> Flight {
        let store = self.clone();
        let task = tokio::spawn(async move {
            let _landing = Landing {
                flights: &store.inner.flights,
                key: &key,
            };
            let shared = |e: Error| SharedError(Arc::new(e));
            // A value may have been stored since the caller's read missed.
            if let Some(bytes) = store.inner.backend.get(&key).await.map_err(shared)? {
                return Ok(Arc::new(bytes));
            }
            let loaded = loader().await.map_err(|e| SharedError(Arc::from(e)))?;
            let bytes = store.encode(&key, &loaded.value).map_err(shared)?;
            let Some(policy) = loaded.cache else {
                return Ok(Arc::new(bytes)); // the loader said: do not store
            };
            let write = Write::new(store.expiry(policy).map_err(shared)?, Condition::Always);
            store
                .inner
                .backend
                .set(&key, bytes.clone(), write)
                .await
                .map_err(shared)?;
            Ok(Arc::new(bytes))
        });
        async move {
            match task.await {
                Ok(outcome) => outcome,
                Err(join) => {
                    let what = if join.is_panic() {
                        "the loader panicked"
                    } else {
                        "the load was cancelled"
                    };
                    Err(SharedError(Arc::from(BoxError::from(what))))
                }
            }
        }
        .boxed()
        .shared()
    }
}

impl<T: Send, B: Backend, C: Codec> TypedStore<T, B, C> {
    /// The namespace's ids, page by page, each id once (see [`Store::scan`]).
    fn id_pages(&self) -> BoxStream<'_, Result<Vec<String>>> {
        let state = Some((0u64, HashSet::<String>::new()));
        stream::unfold(state, move |state| async move {
            let (cursor, mut seen) = state?;
            let keyspace = &self.inner.keyspace;
            let page = self
                .inner
                .backend
                .scan_page(keyspace.prefix(), cursor, SCAN_PAGE)
                .await;
            Some(match page {
                Ok((next, keys)) => {
                    let ids = keys
                        .iter()
                        .filter_map(|key| keyspace.id_of(key))
                        .filter(|id| seen.insert((*id).to_owned()))
                        .map(str::to_owned)
                        .collect();
                    (Ok(ids), (next != 0).then_some((next, seen)))
                }
                Err(e) => (Err(e), None),
            })
        })
        .boxed()
    }
}

fn check_ttl(ttl: Duration) -> Result<Duration> {
    if ttl.is_zero() {
        return Err(Error::config("a TTL must be greater than zero"));
    }
    Ok(ttl)
}

#[async_trait]
impl<T, B, C> Store<T> for TypedStore<T, B, C>
where
    T: Serialize + DeserializeOwned + Send + Sync,
    B: Backend,
    C: Codec,
{
    fn namespace(&self) -> &str {
        self.inner.keyspace.namespace()
    }

    async fn get(&self, id: &str) -> Result<Option<T>> {
        let key = self.inner.keyspace.key(id)?;
        match self.inner.backend.get(&key).await? {
            Some(bytes) => self.decode(&key, &bytes).map(Some),
            None => Ok(None),
        }
    }

    async fn set_with(&self, id: &str, value: &T, options: SetOptions) -> Result<bool> {
        let key = self.inner.keyspace.key(id)?;
        let write = Write::new(self.expiry(options.ttl)?, options.condition);
        let bytes = self.encode(&key, value)?;
        self.inner.backend.set(&key, bytes, write).await
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        let key = self.inner.keyspace.key(id)?;
        self.inner.backend.delete(&key).await
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        let key = self.inner.keyspace.key(id)?;
        self.inner.backend.exists(&key).await
    }

    async fn ttl(&self, id: &str) -> Result<Option<Expiry>> {
        let key = self.inner.keyspace.key(id)?;
        self.inner.backend.ttl(&key).await
    }

    async fn get_many(&self, ids: &[&str]) -> Result<Vec<Option<T>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys = self.inner.keyspace.keys(ids.iter().copied())?;
        let found = self.inner.backend.get_many(&keys).await?;
        keys.iter()
            .zip(found)
            .map(|(key, bytes)| bytes.map(|b| self.decode(key, &b)).transpose())
            .collect()
    }

    async fn update(
        &self,
        id: &str,
        f: &mut (dyn FnMut(Option<T>) -> Update<T> + Send),
    ) -> Result<Option<T>> {
        let inner = &*self.inner;
        let key = inner.keyspace.key(id)?;
        let stripe = {
            let mut hasher = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&key, &mut hasher);
            std::hash::Hasher::finish(&hasher) % UPDATE_STRIPES
        };
        let _turn = inner.update_turns[stripe as usize].lock().await;
        let mut current = inner.backend.get(&key).await?;
        for attempt in 1..=inner.update_attempts {
            let value = current
                .as_deref()
                .map(|b| self.decode(&key, b))
                .transpose()?;
            let (new, result) = match f(value) {
                Update::Keep => {
                    // Nothing to write: answer what is stored (decoded again, as `f` took it).
                    return current.as_deref().map(|b| self.decode(&key, b)).transpose();
                }
                Update::Delete if current.is_none() => return Ok(None),
                Update::Delete => (None, None),
                Update::Set(value) => (Some(self.encode(&key, &value)?), Some(value)),
            };
            // An existing key keeps its TTL; a key created here gets the store default.
            let expiry = match current {
                Some(_) => WriteExpiry::Keep,
                None => self.expiry(TtlPolicy::StoreDefault)?,
            };
            let expected = match current.as_deref() {
                Some(bytes) => Expected::Bytes(bytes),
                None => Expected::Absent,
            };
            match inner
                .backend
                .compare_and_swap(&key, expected, new, expiry)
                .await?
            {
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

    async fn get_or_insert_with(&self, id: &str, loader: Loader<T>) -> Result<T>
    where
        T: 'static,
    {
        let key = self.inner.keyspace.key(id)?;
        if let Some(bytes) = self.inner.backend.get(&key).await? {
            return self.decode(&key, &bytes);
        }
        let flight = {
            let mut flights = self.inner.flights.lock();
            match flights.get(&key) {
                Some(flight) => flight.clone(),
                None => {
                    let flight = self.launch(key.clone(), loader);
                    flights.insert(key.clone(), flight.clone());
                    flight
                }
            }
        };
        match flight.await {
            Ok(bytes) => self.decode(&key, &bytes),
            Err(failure) => Err(Error::Load {
                key,
                source: Box::new(failure),
            }),
        }
    }

    async fn get_versioned(&self, id: &str) -> Result<Option<Versioned<T>>> {
        let key = self.inner.keyspace.key(id)?;
        match self.inner.backend.get(&key).await? {
            Some(bytes) => Ok(Some(Versioned {
                value: self.decode(&key, &bytes)?,
                version: Version::of(&bytes),
            })),
            None => Ok(None),
        }
    }

    async fn set_if_version(
        &self,
        id: &str,
        value: &T,
        version: &Version,
    ) -> Result<Option<Version>> {
        let key = self.inner.keyspace.key(id)?;
        let bytes = self.encode(&key, value)?;
        let written = Version::of(&bytes);
        let expected = Expected::Version(version);
        match self
            .inner
            .backend
            .compare_and_swap(&key, expected, Some(bytes), WriteExpiry::Keep)
            .await?
        {
            Swap::Done => Ok(Some(written)),
            Swap::Changed(_) => Ok(None),
        }
    }

    fn scan(&self) -> BoxStream<'_, Result<(String, T)>> {
        self.id_pages()
            .then(move |page| async move {
                let ids = match page {
                    Ok(ids) if ids.is_empty() => return Vec::new(),
                    Ok(ids) => ids,
                    Err(e) => return vec![Err(e)],
                };
                let keys = match self.inner.keyspace.keys(ids.iter().map(String::as_str)) {
                    Ok(keys) => keys,
                    Err(e) => return vec![Err(e)],
                };
                match self.inner.backend.get_many(&keys).await {
                    // A key deleted since the SCAN has no value: skipped.
                    Ok(values) => ids
                        .into_iter()
                        .zip(keys.iter().zip(values))
                        .filter_map(|(id, (key, bytes))| {
                            bytes.map(|bytes| self.decode(key, &bytes).map(|value| (id, value)))
                        })
                        .collect(),
                    Err(e) => vec![Err(e)],
                }
            })
            .flat_map(stream::iter)
            .boxed()
    }

    fn scan_ids(&self) -> BoxStream<'_, Result<String>> {
        self.id_pages()
            .map_ok(|ids| stream::iter(ids.into_iter().map(Ok)))
            .try_flatten()
            .boxed()
    }

    async fn count(&self) -> Result<u64> {
        self.id_pages()
            .try_fold(0u64, |n, ids| async move { Ok(n + ids.len() as u64) })
            .await
    }

    async fn delete_many(&self, ids: &[&str]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let keys = self.inner.keyspace.keys(ids.iter().copied())?;
        self.inner.backend.delete_many(&keys).await
    }

    async fn clear(&self) -> Result<u64> {
        let keyspace = &self.inner.keyspace;
        let backend = &self.inner.backend;
        self.id_pages()
            .and_then(|ids| async move {
                if ids.is_empty() {
                    return Ok(0);
                }
                backend
                    .delete_many(&keyspace.keys(ids.iter().map(String::as_str))?)
                    .await
            })
            .try_fold(0u64, |n, removed| async move { Ok(n + removed) })
            .await
    }

    async fn set_many(&self, entries: &[(&str, &T)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let expiry = self.expiry(TtlPolicy::StoreDefault)?;
        let encoded = entries
            .iter()
            .map(|(id, value)| {
                let key = self.inner.keyspace.key(id)?;
                let bytes = self.encode(&key, value)?;
                Ok((key, bytes))
            })
            .collect::<Result<Vec<_>>>()?;
        self.inner.backend.set_many(encoded, expiry).await
    }
}

/// Configures a [`TypedStore`]; from [`TypedStore::builder`].
#[must_use = "a builder does nothing until .build()"]
pub struct StoreBuilder<T, B, C> {
    backend: B,
    namespace: String,
    codec: C,
    schema: u32,
    default_ttl: Option<Duration>,
    update_attempts: u32,
    _values: PhantomData<fn() -> T>,
}

impl<T, B: Backend, C: Codec> StoreBuilder<T, B, C> {
    /// Default TTL applied by [`Store::set`], [`Store::set_many`] and writes with
    /// [`TtlPolicy::StoreDefault`]. Must be greater than zero. Default: none (values never
    /// expire).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// The codec values are stored with. Default: [`Bincode`].
    pub fn codec<C2: Codec>(self, codec: C2) -> StoreBuilder<T, B, C2> {
        StoreBuilder {
            backend: self.backend,
            namespace: self.namespace,
            codec,
            schema: self.schema,
            default_ttl: self.default_ttl,
            update_attempts: self.update_attempts,
            _values: PhantomData,
        }
    }

    /// The schema version written into the envelope of every value, and required of every
    /// value read. Bump it when `T`'s layout changes incompatibly: old values then fail with
    /// [`DecodeProblem::SchemaMismatch`](crate::DecodeProblem::SchemaMismatch) instead of
    /// decoding into garbage. Default: [`DEFAULT_SCHEMA_VERSION`] (1). Not recorded by plain
    /// codecs such as JSON.
    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema = version;
        self
    }

    /// How many read-modify-write attempts [`Store::update`] makes before giving up with
    /// [`Error::Conflict`]. Default: [`DEFAULT_UPDATE_ATTEMPTS`] (100). At least 1.
    pub fn update_attempts(mut self, attempts: u32) -> Self {
        self.update_attempts = attempts;
        self
    }

    /// Validates the configuration and builds the store.
    ///
    /// Fails with [`Error::InvalidNamespace`] for a namespace that is empty, longer than
    /// [`MAX_NAMESPACE_LEN`](crate::MAX_NAMESPACE_LEN) or has characters other than ASCII
    /// letters, digits and `_ - . /`, and with [`Error::InvalidConfig`] for a zero TTL or
    /// zero update attempts.
    pub fn build(self) -> Result<TypedStore<T, B, C>> {
        let keyspace = Keyspace::new(&self.namespace)?;
        let default_ttl = self.default_ttl.map(check_ttl).transpose()?;
        if self.update_attempts == 0 {
            return Err(Error::config("update_attempts must be at least 1"));
        }
        Ok(TypedStore {
            inner: Arc::new(Inner {
                backend: self.backend,
                keyspace,
                codec: self.codec,
                schema: self.schema,
                default_ttl,
                update_attempts: self.update_attempts,
                update_turns: (0..UPDATE_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
                flights: Flights::default(),
                size_hint: AtomicUsize::new(0),
            }),
            _values: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;
    use crate::MemoryBackend;
    use crate::options::{Expiry, Write};

    /// A memory backend with Redis' rougher edges, made reliable: every compare-and-swap finds
    /// the value changed by someone else (counting the attempts), and a scan returns every
    /// key twice (Redis' SCAN may, while rehashing).
    #[derive(Clone, Default)]
    struct Quirky {
        inner: MemoryBackend,
        swaps: Arc<AtomicU32>,
    }

    impl Backend for Quirky {
        fn kind(&self) -> &'static str {
            "quirky"
        }
        async fn get(&self, key: &str) -> Result<Option<Bytes>> {
            self.inner.get(key).await
        }
        async fn set(&self, key: &str, value: Bytes, write: Write) -> Result<bool> {
            self.inner.set(key, value, write).await
        }
        async fn delete(&self, key: &str) -> Result<bool> {
            self.inner.delete(key).await
        }
        async fn exists(&self, key: &str) -> Result<bool> {
            self.inner.exists(key).await
        }
        async fn ttl(&self, key: &str) -> Result<Option<Expiry>> {
            self.inner.ttl(key).await
        }
        async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
            self.inner.get_many(keys).await
        }
        async fn set_many(&self, entries: Vec<(String, Bytes)>, expiry: WriteExpiry) -> Result<()> {
            self.inner.set_many(entries, expiry).await
        }
        async fn scan_page(
            &self,
            prefix: &str,
            cursor: u64,
            count: usize,
        ) -> Result<(u64, Vec<String>)> {
            // The same keys on two pages.
            let (_, keys) = self.inner.scan_page(prefix, 0, count).await?;
            Ok((if cursor == 0 { 1 } else { 0 }, keys))
        }
        async fn delete_many(&self, keys: &[String]) -> Result<u64> {
            self.inner.delete_many(keys).await
        }
        async fn compare_and_swap(
            &self,
            key: &str,
            _expected: Expected<'_>,
            _new: Option<Bytes>,
            _expiry: WriteExpiry,
        ) -> Result<Swap> {
            self.swaps.fetch_add(1, Ordering::Relaxed);
            Ok(Swap::Changed(self.inner.get(key).await?))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn update_gives_up_with_a_conflict_after_its_attempts() -> Result<()> {
        let backend = Quirky::default();
        let store: TypedStore<u32, _> = TypedStore::builder(backend.clone(), "n")
            .update_attempts(7)
            .build()?;
        let mut calls = 0;
        let err = store
            .update("k", &mut |n| {
                calls += 1;
                Update::Set(n.unwrap_or(0) + 1)
            })
            .await;
        match err {
            Err(Error::Conflict { key, attempts }) => {
                assert_eq!((key.as_str(), attempts), ("n:k", 7));
            }
            other => panic!("expected a conflict, got {other:?}"),
        }
        assert_eq!(calls, 7);
        assert_eq!(backend.swaps.load(Ordering::Relaxed), 7);
        assert!(!store.exists("k").await?, "nothing was written");
        Ok(())
    }

    #[tokio::test]
    async fn scan_yields_an_id_once_even_if_the_backend_repeats_it() -> Result<()> {
        use futures::TryStreamExt;
        let store: TypedStore<u32, _> = TypedStore::builder(Quirky::default(), "n").build()?;
        store.set_many(&[("a", &1), ("b", &2)]).await?;
        let mut items: Vec<(String, u32)> = store.scan().try_collect().await?;
        items.sort();
        assert_eq!(items, vec![("a".to_owned(), 1), ("b".to_owned(), 2)]);
        assert_eq!(store.count().await?, 2);
        Ok(())
    }

    #[test]
    fn zero_update_attempts_are_refused() {
        let built = TypedStore::<u32, _>::builder(MemoryBackend::new(), "n")
            .update_attempts(0)
            .build();
        assert!(matches!(built, Err(Error::InvalidConfig { .. })));
    }
}
