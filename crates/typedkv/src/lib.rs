//! Typed key-value repositories over Redis.
//!
//! `typedkv` turns "connect, `SET` bytes, `GET` bytes, check for nil, decode" into one typed
//! call: [`Store<T>`] for any `T: Serialize + DeserializeOwned + Send + Sync`, with a missing key
//! as `Ok(None)` and every failure a typed [`Error`] naming the key.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use typedkv::{MemoryStore, Store};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct User { name: String, email: String }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> typedkv::Result<()> {
//! // In production: RedisStore::<User>::builder(RedisPool::from_url(url)?, "user").build()?
//! let users = MemoryStore::<User>::new("user")?;
//! let alice = User { name: "Alice".into(), email: "alice@example.com".into() };
//! users.set("42", &alice).await?;                        // key "user:42"
//! assert_eq!(users.get("42").await?, Some(alice));
//! assert_eq!(users.get("43").await?, None);              // missing is not an error
//! # Ok(()) }
//! ```
//!
//! # Layers
//!
//! - [`Store<T>`]: the typed, object-safe trait (`Arc<dyn Store<User>>` works), with generic
//!   conveniences on [`StoreExt`].
//! - [`TypedStore<T, B, C>`]: the one implementation of it, over any byte-level [`Backend`]:
//!   [`Keyspace`] (`namespace:id`), [`Codec`](codec::Codec) + [envelope], TTL policy.
//! - Backends: [`RedisPool`](redis::RedisPool) (deadpool-redis, shared multiplexed
//!   connections), `RedisClusterPool` (feature `cluster`) and [`MemoryBackend`]
//!   (in-process, TTL-aware, same semantics).
//!
//! # Features
//!
//! - `redis` (default): the Redis backend, [`RedisPool`](redis::RedisPool) and `RedisStore`.
//!   Without it (`default-features = false`) typedkv is the typed layer and `MemoryStore`,
//!   with no Redis crate in the dependency tree.
//! - `json`: the [`Json`](codec::Json) codec (plain JSON values, readable by any client).
//! - `tls`: `rediss://` URLs, through rustls; certificates are always verified.
//! - `cluster`: Redis Cluster, `RedisClusterPool` and `RedisClusterStore`.
//! - `sentinel`: a master found and followed through Redis Sentinel, `RedisSentinelPool` and
//!   `RedisSentinelStore`.
//! - `cache`: `CachedStore`, decoded values cached in process and invalidated by Redis.
//! - `encryption`: values encrypted at rest (AES-256-GCM) under a `Keyring`.
//! - `compression`: large values stored LZ4-compressed.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod at_rest;
pub mod backend;
pub mod codec;
mod concern;
pub mod envelope;
mod error;
pub mod index;
mod keyspace;
pub mod layout;
mod load;
mod memory;
mod options;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
mod store;
mod transaction;
mod typed;
mod update;
mod version;

#[cfg(feature = "compression")]
#[cfg_attr(docsrs, doc(cfg(feature = "compression")))]
pub use crate::at_rest::Compression;
#[cfg(feature = "encryption")]
#[cfg_attr(docsrs, doc(cfg(feature = "encryption")))]
pub use crate::at_rest::{EncryptionKey, Keyring};
pub use crate::backend::{Backend, Guard, Swap, Write, WriteExpiry};
pub use crate::codec::Bincode;
pub use crate::concern::{Replicas, WriteConcern};
pub use crate::error::{BoxError, DecodeProblem, Error, ErrorSource, Keys, Result, Waited};
pub use crate::index::{
    Index, IndexKind, IndexReport, Order, RangeCursor, RangeKey, RangePage, RangeQuery,
};
pub use crate::keyspace::{Keyspace, MAX_ID_LEN, MAX_NAMESPACE_LEN, MAX_PARTITIONS};
pub use crate::layout::Layout;
pub use crate::load::{Loaded, Loader};
pub use crate::memory::MemoryBackend;
pub use crate::options::{Condition, Expiry, MAX_TTL, SetOptions, TtlPolicy};
#[cfg(feature = "cache")]
#[cfg_attr(docsrs, doc(cfg(feature = "cache")))]
pub use crate::redis::cache::{
    CacheStats, CachedStore, CachedStoreBuilder, DEFAULT_CACHE_CAPACITY, Served, Stale,
    StaleBecause, TRACKING_CLIENT_NAME, Trackable,
};
pub use crate::store::{Store, StoreExt, TransactionPart};
pub use crate::transaction::{
    DEFAULT_TRANSACTION_DEADLINE, Transaction, TransactionOptions, Transactions, transaction,
    transaction_with,
};
pub use crate::typed::{
    DEFAULT_SCHEMA_VERSION, MoveReport, ReencryptReport, StoreBuilder, TypedStore,
};
pub use crate::update::{DEFAULT_UPDATE_ATTEMPTS, Update};
pub use crate::version::{ParseVersionError, Version, Versioned};

/// A typed store on Redis (standalone), from [`TypedStore::builder`] with a
/// [`RedisPool`](redis::RedisPool) (feature `redis`, on by default).
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub type RedisStore<T, C = Bincode> = TypedStore<T, redis::RedisPool, C>;

/// A typed store on Redis Cluster, from [`TypedStore::builder`] with a
/// [`RedisClusterPool`](redis::RedisClusterPool) (feature `cluster`).
#[cfg(feature = "cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
pub type RedisClusterStore<T, C = Bincode> = TypedStore<T, redis::RedisClusterPool, C>;

/// A typed store on the master Redis Sentinel names, from [`TypedStore::builder`] with a
/// [`RedisSentinelPool`](redis::RedisSentinelPool) (feature `sentinel`).
#[cfg(feature = "sentinel")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
pub type RedisSentinelStore<T, C = Bincode> = TypedStore<T, redis::RedisSentinelPool, C>;

/// A typed store in process memory, with the same semantics as [`RedisStore`].
pub type MemoryStore<T, C = Bincode> = TypedStore<T, MemoryBackend, C>;

impl<T: serde::de::DeserializeOwned> MemoryStore<T> {
    /// A store of `T` under `namespace` on a fresh, private [`MemoryBackend`], with default
    /// settings. Use [`TypedStore::builder`] for a shared backend, a TTL or another codec.
    pub fn new(namespace: &str) -> Result<Self> {
        Self::builder(MemoryBackend::new(), namespace).build()
    }
}
