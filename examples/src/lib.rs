//! Shared by the examples: pick the in-memory store, or Redis when `REDIS_URL` is set.
//!
//! Run an example with `cargo run -p typedkv-examples --example quickstart`, or against Redis
//! with `REDIS_URL=redis://127.0.0.1:6379 cargo run -p typedkv-examples --example quickstart`.

use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use typedkv::redis::RedisPool;
use typedkv::{MemoryBackend, MemoryStore, RedisStore, Store};

/// Where the examples keep their data.
#[derive(Debug, Clone)]
pub enum Backend {
    /// In process; gone when the example exits.
    Memory(MemoryBackend),
    /// A Redis server.
    Redis(RedisPool),
}

impl Backend {
    /// Redis at `$REDIS_URL` if it is set (checked with a PING), otherwise in memory. Says
    /// which on stdout, and how to run `example` on Redis instead.
    pub async fn from_env(example: &str) -> typedkv::Result<Backend> {
        match std::env::var("REDIS_URL") {
            Ok(url) => {
                let pool = RedisPool::from_url(url)?;
                pool.ping().await?;
                println!("Using Redis at {}.", pool.redacted_url());
                Ok(Backend::Redis(pool))
            }
            Err(_) => {
                println!("REDIS_URL is not set: using the in-memory store.");
                println!(
                    "To use Redis: REDIS_URL=redis://127.0.0.1:6379 \\
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
        Ok(match self {
            Backend::Memory(backend) => {
                Arc::new(MemoryStore::<T>::builder(backend.clone(), namespace).build()?)
            }
            Backend::Redis(pool) => {
                Arc::new(RedisStore::<T>::builder(pool.clone(), namespace).build()?)
            }
        })
    }
}

/// What `main` returns on failure: prints the error and each of its causes, one per line
/// (Rust prints a `main` error with `Debug`, which would dump the enum instead).
pub struct Failure(typedkv::Error);

impl From<typedkv::Error> for Failure {
    fn from(error: typedkv::Error) -> Self {
        Failure(error)
    }
}

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut previous = String::new();
        let mut cause = std::error::Error::source(&self.0);
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
