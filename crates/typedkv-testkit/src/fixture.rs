//! What a conformance test runs against: a backend, and whatever must live as long as it.

use std::any::Any;
use std::sync::Arc;

use typedkv::{Backend, MemoryBackend};

use crate::server::TestRedis;

/// A backend for one test, plus a guard (e.g. the [`TestRedis`] behind it) dropped at the end
/// of the test.
pub struct Fixture<B> {
    backend: B,
    peer: Option<Arc<dyn Fn() -> B + Send + Sync>>,
    _guard: Option<Box<dyn Any + Send>>,
}

impl<B: Backend + std::fmt::Debug> std::fmt::Debug for Fixture<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("backend", &self.backend)
            .field("has_peer", &self.peer.is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Backend> Fixture<B> {
    /// A fixture whose backend needs nothing kept alive.
    pub fn new(backend: B) -> Self {
        Fixture {
            backend,
            peer: None,
            _guard: None,
        }
    }

    /// A fixture that keeps `guard` alive until the test ends.
    pub fn with_guard(backend: B, guard: impl Any + Send) -> Self {
        Fixture {
            backend,
            peer: None,
            _guard: Some(Box::new(guard)),
        }
    }

    /// Makes [`Fixture::peer`] call `make` for a second client of the same data.
    pub fn with_peer(mut self, make: impl Fn() -> B + Send + Sync + 'static) -> Self {
        self.peer = Some(Arc::new(make));
        self
    }

    /// Another client of the same data, connected on its own (like another process), if the
    /// fixture knows how to make one; otherwise a handle on the same backend.
    pub fn peer(&self) -> B {
        match &self.peer {
            Some(make) => make(),
            None => self.backend.clone(),
        }
    }

    /// A handle on the backend (backends are cheap to clone).
    pub fn backend(&self) -> B {
        self.backend.clone()
    }
}

/// A fresh [`MemoryBackend`].
pub async fn memory() -> Fixture<MemoryBackend> {
    Fixture::new(MemoryBackend::new())
}

/// A [`RedisPool`](typedkv::redis::RedisPool) on a private redis-server that lives as long
/// as the fixture, with [batching](typedkv::redis::RedisPoolBuilder::batching) switched off:
/// every command goes out alone.
pub async fn redis() -> Fixture<typedkv::redis::RedisPool> {
    redis_pools(false).await
}

/// Like [`redis()`], with batching on, as pools are built by default.
pub async fn redis_batching() -> Fixture<typedkv::redis::RedisPool> {
    redis_pools(true).await
}

/// A private server; its pools batch or not. The peer is a pool connected on its own.
async fn redis_pools(batching: bool) -> Fixture<typedkv::redis::RedisPool> {
    let server = TestRedis::start().await;
    let url = server.url();
    let pool = move |url: &str| {
        typedkv::redis::RedisPool::builder(url)
            .batching(batching)
            .build()
            .expect("a loopback URL is valid")
    };
    Fixture::with_guard(pool(&url), server).with_peer(move || pool(&url))
}
