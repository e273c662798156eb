//! Configuring a store.

use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::indexing::Indexes;
use super::migration::Migrations;
use super::telemetry::Telemetry;
use super::{DEFAULT_SCHEMA_VERSION, Inner, TypedStore};
use crate::at_rest::AtRest;
use crate::backend::Backend;
use crate::codec::{Bincode, Codec};
use crate::concern::WriteConcern;
use crate::envelope::Stamp;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::index::terms::Terms;
use crate::keyspace::Keyspace;
use crate::layout::Layout;
use crate::load::Flights;
use crate::options::check_ttl;
use crate::update::DEFAULT_UPDATE_ATTEMPTS;

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
            hash_tag: false,
            partitions: None,
            telemetry: Telemetry::default(),
            migrations: Migrations::default(),
            migrations_dropped: false,
            indexes: Vec::new(),
            at_rest: AtRest::default(),
            concern: WriteConcern::none(),
            _values: PhantomData,
        }
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
    hash_tag: bool,
    partitions: Option<u16>,
    telemetry: Telemetry,
    migrations: Migrations<T, C>,
    /// `codec` was called after `migrate_from`: those conversions decoded with the old codec.
    migrations_dropped: bool,
    indexes: Vec<Index<T>>,
    at_rest: AtRest,
    concern: WriteConcern,
    _values: PhantomData<fn() -> T>,
}

impl<T, B: Backend, C: Codec> std::fmt::Debug for StoreBuilder<T, B, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("backend", &self.backend.kind())
            .field("namespace", &self.namespace)
            .field("codec", &self.codec.name())
            .field("schema_version", &self.schema)
            .field("default_ttl", &self.default_ttl)
            .field("update_attempts", &self.update_attempts)
            .field("hash_tag", &self.hash_tag)
            .field("partitions", &self.partitions)
            .field("migrations", &self.migrations.schemas().collect::<Vec<_>>())
            .field("indexes", &self.indexes)
            .field("at_rest", &self.at_rest)
            .field("write_concern", &self.concern)
            .finish_non_exhaustive()
    }
}

impl<T, B: Backend, C: Codec> StoreBuilder<T, B, C> {
    /// Default TTL applied by [`Store::set`](crate::Store::set),
    /// [`Store::set_many`](crate::Store::set_many) and writes with
    /// [`TtlPolicy::StoreDefault`](crate::TtlPolicy::StoreDefault). Must be greater than
    /// zero. Default: none (values never expire).
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// Compresses values at rest: encoded values of at least the threshold are stored as
    /// LZ4 blocks when that makes them smaller (see [`Compression`](crate::Compression)).
    /// Values stored before, compressed or not, stay readable. Default: off.
    #[cfg(feature = "compression")]
    #[cfg_attr(docsrs, doc(cfg(feature = "compression")))]
    pub fn compression(mut self, compression: crate::Compression) -> Self {
        self.at_rest.compression = Some(compression);
        self
    }

    /// Encrypts values at rest under `keyring`'s current key (AES-256-GCM), each bound
    /// to its key (`namespace:id`) and schema version: a value copied to another key, or
    /// changed in any byte, is a [`DecodeProblem::Unauthentic`](crate::DecodeProblem)
    /// error, never garbage. Values under the keyring's older keys stay readable;
    /// [`TypedStore::reencrypt`] moves them to the current key. Unencrypted values are
    /// refused unless the keyring
    /// [accepts them](crate::Keyring::accept_unencrypted). Default: off.
    ///
    /// Keys (ids), TTLs, sizes and access patterns stay visible to whoever can read Redis;
    /// see SECURITY.md. [Equality and unique indexes](Self::index) of an encrypted store
    /// hold keyed hashes of their values (HMAC-SHA256 under
    /// [`Keyring::with_index_key`](crate::Keyring::with_index_key), required then); range
    /// indexes, whose entries must keep their values in order, are refused at `build`.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use typedkv::{EncryptionKey, Keyring, MemoryBackend, MemoryStore, Store};
    ///
    /// #[derive(Debug, PartialEq, Serialize, Deserialize)]
    /// struct Session { user: String }
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> typedkv::Result<()> {
    /// // In production the key comes from a secret manager, not from the code.
    /// let key = EncryptionKey::generate()?;
    /// let sessions = MemoryStore::<Session>::builder(MemoryBackend::new(), "session")
    ///     .encryption(Keyring::new(1, key))
    ///     .build()?;
    /// sessions.set("s1", &Session { user: "ann".into() }).await?;
    /// assert_eq!(sessions.get("s1").await?, Some(Session { user: "ann".into() }));
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "encryption")]
    #[cfg_attr(docsrs, doc(cfg(feature = "encryption")))]
    pub fn encryption(mut self, keyring: crate::Keyring) -> Self {
        self.at_rest.keyring = Some(Arc::new(keyring));
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
            hash_tag: self.hash_tag,
            partitions: self.partitions,
            telemetry: self.telemetry,
            migrations: Migrations::default(),
            migrations_dropped: self.migrations_dropped
                || self.migrations.schemas().next().is_some(),
            indexes: self.indexes,
            at_rest: self.at_rest,
            concern: self.concern,
            _values: PhantomData,
        }
    }

    /// How many replicas must have each write of this store before it is acknowledged
    /// (`set`, `set_many`, `update`, `set_if_version`, deletes, index entries): see
    /// [`WriteConcern`]. One write may ask otherwise in
    /// [`SetOptions::write_concern`](crate::SetOptions::write_concern). Default:
    /// [`WriteConcern::none`]. `build` fails with [`Error::InvalidConfig`] for a wait of zero
    /// or a backend without write concerns (the memory backend treats every concern as met).
    ///
    /// ```no_run
    /// # use typedkv::{redis::RedisPool, RedisStore, WriteConcern};
    /// # let pool = RedisPool::from_url("redis://127.0.0.1:6379")?;
    /// let orders = RedisStore::<String>::builder(pool, "order")
    ///     .write_concern(WriteConcern::replicas(1))
    ///     .build()?;
    /// # Ok::<(), typedkv::Error>(())
    /// ```
    pub fn write_concern(mut self, concern: WriteConcern) -> Self {
        self.concern = concern;
        self
    }

    /// The schema version written into the envelope of every value, and required of every
    /// value read. Bump it when `T`'s layout changes incompatibly: old values then fail with
    /// [`DecodeProblem::SchemaMismatch`](crate::DecodeProblem::SchemaMismatch) instead of
    /// decoding into garbage. Default: [`DEFAULT_SCHEMA_VERSION`] (1). Plain codecs such as
    /// JSON record no schema version: with them, another version is refused at `build`.
    pub fn schema_version(mut self, version: u32) -> Self {
        self.schema = version;
        self
    }

    /// How many read-modify-write attempts [`Store::update`](crate::Store::update) makes
    /// before giving up with [`Error::Conflict`]. Default: [`DEFAULT_UPDATE_ATTEMPTS`] (100).
    /// At least 1.
    pub fn update_attempts(mut self, attempts: u32) -> Self {
        self.update_attempts = attempts;
        self
    }

    /// Keys as `{namespace}:id` instead of `namespace:id` (a Redis Cluster hash tag), so the
    /// whole namespace lives in one slot: `set_many`, `get_many` and `delete_many` are then
    /// atomic on a cluster too. The price is a hot shard: one master holds all of the
    /// namespace's data and serves all of its traffic, whatever the cluster's size. Keys differ
    /// from an untagged store's, so switching loses access to existing data. Default: `false`.
    /// Works on every backend (on a single server it changes only the key names).
    pub fn hash_tag(mut self, enabled: bool) -> Self {
        self.hash_tag = enabled;
        self
    }

    /// Spreads the store over `count` partitions (1 to [`MAX_PARTITIONS`](crate::MAX_PARTITIONS)),
    /// each its own Redis Cluster hash tag: keys `{namespace#s}:id` (see
    /// [`Keyspace::partitioned`] for which partition an id is in). This is how an *indexed*
    /// store spreads over a cluster's masters: an entity's value, index entries and record
    /// share its partition's slot, so every write stays one atomic step, while the
    /// partitions' slots are spread evenly over the slot space. Queries ask every partition
    /// and merge the answers (same order, pages and cursors as one partition), so they cost
    /// more the more partitions there are: 16 is a good start for up to 4 masters, a few per
    /// master beyond. Batches (`set_many`, `delete_many`) are atomic per partition.
    /// [Unique indexes](crate::Index::unique) need one slot to stay unique, so they are
    /// refused with more than one partition. Keys differ from an unpartitioned store's and
    /// move when `count` changes. Not with [`hash_tag`](Self::hash_tag). Default: no
    /// partitions. Works on every backend (on a single server it changes only key names).
    ///
    /// ```
    /// # use serde::{Deserialize, Serialize};
    /// # use typedkv::{Index, MemoryBackend, MemoryStore, Store};
    /// # #[derive(Serialize, Deserialize)] struct User { team: String }
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> typedkv::Result<()> {
    /// let users = MemoryStore::<User>::builder(MemoryBackend::new(), "user")
    ///     .partitions(16)
    ///     .index(Index::equality("team", |u: &User| [u.team.clone()]))
    ///     .build()?;
    /// users.set("1", &User { team: "core".into() }).await?;
    /// users.set("2", &User { team: "core".into() }).await?;
    /// assert_eq!(users.count_by("team", b"core").await?, 2);
    /// # Ok(()) }
    /// ```
    pub fn partitions(mut self, count: u16) -> Self {
        self.partitions = Some(count);
        self
    }

    /// Whether the store's `tracing` spans and events carry the id (and key) of the value
    /// an operation concerns. Default: `false`, because ids are often personal data (user
    /// ids, emails); spans still carry the namespace, backend, outcome and size.
    pub fn trace_ids(mut self, enabled: bool) -> Self {
        self.telemetry.trace_ids = enabled;
        self
    }

    /// Whether operations are counted and timed through the `metrics` facade
    /// (`typedkv_operations_total`, `typedkv_operation_errors_total`,
    /// `typedkv_operation_seconds`, each labelled `op`; errors also `kind`, as
    /// [`Error::kind`](crate::Error::kind) names it). Default: `false`, so stores of
    /// applications without metrics do not read the clock twice per call.
    pub fn metrics(mut self, enabled: bool) -> Self {
        self.telemetry.metrics = enabled;
        self
    }

    /// Reads values stored under the older schema version `old_schema` as `Old` (the type as
    /// it was then) and turns them into `T` with `convert`, instead of failing with
    /// [`DecodeProblem::SchemaMismatch`](crate::DecodeProblem::SchemaMismatch). Register one
    /// per old version still in the data; bump [`schema_version`](Self::schema_version) with
    /// every incompatible change of `T`. Needs an enveloped codec (the default [`Bincode`]:
    /// JSON values carry no schema version, and JSON usually reads old values as they are
    /// with `#[serde(default)]`). Call [`codec`](Self::codec) first.
    ///
    /// Every read (`get`, `get_many`, `scan`, `update`, ...) then converts values of
    /// `old_schema`; writes store the current version. A conversion reads only values written
    /// by `Old`'s layout (see [`layout`](crate::layout)), and one version may have several
    /// (values written under version 1 before and after a change nobody bumped for). Without
    /// [`write_back_migrated`](Self::write_back_migrated), older releases keep reading their
    /// values during a rolling deploy; with it, `get` also stores what it converted
    /// (compare-and-swap, TTL kept), so old values disappear as they are read.
    ///
    /// ```
    /// use serde::{Deserialize, Serialize};
    /// use typedkv::{MemoryBackend, MemoryStore};
    ///
    /// #[derive(Deserialize)]
    /// struct UserV1 { name: String }
    /// #[derive(Serialize, Deserialize)]
    /// struct User { name: String, email: Option<String> }
    ///
    /// let users = MemoryStore::<User>::builder(MemoryBackend::new(), "user")
    ///     .schema_version(2)
    ///     .migrate_from(1, |old: UserV1| User { name: old.name, email: None })
    ///     .write_back_migrated(true)
    ///     .build()?;
    /// # Ok::<(), typedkv::Error>(())
    /// ```
    pub fn migrate_from<Old: DeserializeOwned>(
        mut self,
        old_schema: u32,
        convert: impl Fn(Old) -> T + Send + Sync + 'static,
    ) -> Self
    where
        T: 'static,
    {
        self.migrations.add(old_schema, convert);
        self
    }

    /// Whether [`Store::get`](crate::Store::get) stores a value it converted from an older
    /// schema back in the current one (with a compare-and-swap, so a concurrent write wins;
    /// the key's TTL is kept), so old values disappear as they are read. Default: `false`:
    /// old values stay as they are, and are converted on every read.
    pub fn write_back_migrated(mut self, enabled: bool) -> Self {
        self.migrations.write_back = enabled;
        self
    }

    /// Adds an index, so the store can find its values by a field: [`Index::equality`],
    /// [`Index::unique`] or [`Index::range`]. Every write of the store keeps it right, in
    /// the same atomic step as the value (see the README's "Finding by field"; on Redis
    /// Cluster the store needs [`partitions`](Self::partitions) or [`hash_tag`](Self::hash_tag)).
    /// Index names are validated like namespaces and must differ. Needs a backend that keeps
    /// indexes (memory, Redis, Redis Cluster). Adding an index to a store that already holds
    /// data: run [`TypedStore::rebuild_indexes`] once.
    pub fn index(mut self, index: Index<T>) -> Self {
        self.indexes.push(index);
        self
    }

    /// Validates the configuration and builds the store.
    ///
    /// Fails with [`Error::InvalidNamespace`] for a namespace that is empty, longer than
    /// [`MAX_NAMESPACE_LEN`](crate::MAX_NAMESPACE_LEN) or has characters other than ASCII
    /// letters, digits and `_ - . /`, and with [`Error::InvalidConfig`] for a TTL out of
    /// range, zero update attempts, a partition count out of range or with `hash_tag`, and
    /// settings the codec cannot honour: a `schema_version`
    /// or `migrate_from` with a codec that writes no envelope (JSON), or `codec` called
    /// after `migrate_from` (conversions decode with the store's codec); with
    /// [`Error::InvalidIndex`] for an index with a bad or repeated name, one the backend
    /// cannot keep, or a unique index on more than one partition.
    pub fn build(self) -> Result<TypedStore<T, B, C>>
    where
        T: DeserializeOwned,
    {
        let keyspace = match (self.hash_tag, self.partitions) {
            (false, None) => Keyspace::new(&self.namespace)?,
            (true, None) => Keyspace::hash_tagged(&self.namespace)?,
            (false, Some(count)) => Keyspace::partitioned(&self.namespace, count)?,
            (true, Some(_)) => {
                return Err(Error::config(
                    "hash_tag and partitions are two key layouts: a store has one or the other",
                ));
            }
        };
        let default_ttl = self.default_ttl.map(check_ttl).transpose()?;
        if self.update_attempts == 0 {
            return Err(Error::config("update_attempts must be at least 1"));
        }
        if self.migrations_dropped {
            return Err(Error::config(
                "migrate_from must come after codec: conversions decode with the store's codec",
            ));
        }
        // Only an envelope records a schema version, migrations and the layout fingerprint.
        let enveloped = self.codec.envelope_id().is_some();
        if !enveloped && self.schema != DEFAULT_SCHEMA_VERSION {
            return Err(Error::config(format!(
                "schema_version needs a codec with an envelope: {} values (such as JSON) carry \
                 no schema version, so schema_version({}) would do nothing",
                self.codec.name(),
                self.schema
            )));
        }
        if !enveloped && self.migrations.schemas().next().is_some() {
            return Err(Error::config(format!(
                "migrate_from needs a codec with an envelope: {} values (such as JSON) carry no \
                 schema version, so no migration would ever run; read older shapes with serde \
                 attributes (#[serde(default)], aliases) instead",
                self.codec.name()
            )));
        }
        if self
            .migrations
            .schemas()
            .any(|schema| schema == self.schema)
        {
            return Err(Error::config(
                "migrate_from names the current schema_version; migrations are from older ones",
            ));
        }
        #[allow(unused_mut)]
        let mut terms = Terms::default();
        #[cfg(feature = "encryption")]
        if let (Some(index), Some(keyring)) = (self.indexes.first(), &self.at_rest.keyring) {
            terms = Terms::keyed(keyring.index_key().ok_or_else(|| {
                Error::InvalidIndex {
                    index: index.name().to_owned(),
                    reason: "an encrypted store's indexes need Keyring::with_index_key: their \
                         entries hold keyed hashes of the values, not the values"
                        .to_owned(),
                }
            })?);
        }
        let indexes = match self.indexes.is_empty() {
            true => Indexes::none(),
            false => Indexes::new(self.indexes, &keyspace, self.backend.index_support(), terms)?,
        };
        // Traced once per store.
        let layout = if enveloped { Layout::of::<T>() } else { None };
        #[cfg(feature = "cache")]
        let listen_key = super::write_listeners::key(&self.backend, keyspace.prefix());
        let concern = self.concern.kept()?;
        let backend = match concern {
            Some(concern) => self.backend.with_concern(concern)?,
            None => self.backend,
        };
        Ok(TypedStore {
            inner: Arc::new(Inner {
                #[cfg(feature = "cache")]
                write_notice: super::writes::write_notice(listen_key.clone()),
                #[cfg(not(feature = "cache"))]
                write_notice: super::writes::write_notice(),
                #[cfg(feature = "cache")]
                listen_key,
                codec: self.codec,
                backend,
                keyspace,
                stamp: Stamp::new(self.schema).with_layout(layout),
                default_ttl,
                update_attempts: self.update_attempts,
                update_turns: Default::default(),
                flights: Flights::default(),
                size_hint: AtomicUsize::new(0),
                telemetry: self.telemetry,
                at_rest: self.at_rest,
                concern,
            }),
            migrations: Arc::new(self.migrations),
            indexes: Arc::new(indexes),
            _values: PhantomData,
        })
    }
}
