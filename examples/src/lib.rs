//! Shared by the examples: pick the in-memory store, Redis when `REDIS_URL` is set, or Redis
//! Cluster when `REDIS_CLUSTER_URLS` is.
//!
//! Run an example with `cargo run -p typedkv-examples --example quickstart`, against Redis
//! with `REDIS_URL=redis://127.0.0.1:6379 cargo run -p typedkv-examples --example quickstart`,
//! or against a cluster with
//! `REDIS_CLUSTER_URLS=redis://127.0.0.1:7000,redis://127.0.0.1:7001 cargo run ...`.

pub mod users_api;

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use typedkv::redis::{RedisClusterPool, RedisPool};
use typedkv::{MemoryBackend, MemoryStore, RedisClusterStore, RedisStore, Store};

/// Where the examples keep their data.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In process; gone when the example exits.
    Memory(MemoryBackend),
    /// A Redis server.
    Redis(RedisPool),
    /// A Redis Cluster.
    Cluster(RedisClusterPool),
}

impl Backend {
    /// Redis Cluster through the comma-separated seed URLs in `$REDIS_CLUSTER_URLS`, else
    /// Redis at `$REDIS_URL` (either checked with a PING), otherwise in memory. Says which on
    /// stdout, and how to run `example` on Redis instead.
    pub async fn from_env(example: &str) -> typedkv::Result<Backend> {
        if let Ok(seeds) = std::env::var("REDIS_CLUSTER_URLS") {
            let pool = RedisClusterPool::from_urls(seeds.split(',').map(str::trim))?;
            pool.ping().await?;
            println!("Using Redis Cluster through {}.", pool.redacted_urls());
            return Ok(Backend::Cluster(pool));
        }
        match std::env::var("REDIS_URL") {
            Ok(url) => {
                let pool = RedisPool::from_url(url)?;
                pool.ping().await?;
                println!("Using Redis at {}.", pool.redacted_url());
                Ok(Backend::Redis(pool))
            }
            Err(_) => {
                println!(
                    "Neither REDIS_URL nor REDIS_CLUSTER_URLS is set: using the in-memory store."
                );
                println!(
                    "To use Redis: REDIS_URL=redis://127.0.0.1:6379 \\
    cargo run -p typedkv-examples --example {example}"
                );
                println!(
                    "Or a cluster: REDIS_CLUSTER_URLS=redis://127.0.0.1:7000,redis://127.0.0.1:7001 \\
    cargo run -p typedkv-examples --example {example}"
                );
                Ok(Backend::Memory(MemoryBackend::new()))
            }
        }
    }

    /// A store of `T` under `namespace` on this backend, as the trait object application code
    /// takes.
    pub fn store<T>(&self, namespace: &str) -> typedkv::Result<Arc<dyn Store<T>>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        self.store_with(namespace, false)
    }

    /// Like [`Backend::store`], with keys `{namespace}:id` when `hash_tag` is true (one
    /// cluster slot for the whole namespace).
    pub fn store_with<T>(
        &self,
        namespace: &str,
        hash_tag: bool,
    ) -> typedkv::Result<Arc<dyn Store<T>>>
    where
        T: Serialize + DeserializeOwned + Send + Sync + 'static,
    {
        Ok(match self {
            Backend::Memory(backend) => Arc::new(
                MemoryStore::<T>::builder(backend.clone(), namespace)
                    .hash_tag(hash_tag)
                    .build()?,
            ),
            Backend::Redis(pool) => Arc::new(
                RedisStore::<T>::builder(pool.clone(), namespace)
                    .hash_tag(hash_tag)
                    .build()?,
            ),
            Backend::Cluster(pool) => Arc::new(
                RedisClusterStore::<T>::builder(pool.clone(), namespace)
                    .hash_tag(hash_tag)
                    .build()?,
            ),
        })
    }
}

/// What `main` returns on failure: prints the error and each of its causes, one per line
/// (Rust prints a `main` error with `Debug`, which would dump the enum instead).
pub struct Failure(typedkv::BoxError);

impl<E: Into<typedkv::BoxError>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(error.into())
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut previous = String::new();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            // redis-rs repeats its I/O source's text in its own; print each message once.
            let message = error.to_string();
            if message != previous {
                write!(f, "\n  caused by: {message}")?;
            }
            previous = message;
            cause = error.source();
        }
        Ok(())
    }
}
