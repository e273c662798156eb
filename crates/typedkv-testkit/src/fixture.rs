//! What a conformance test runs against: a backend, and whatever must live as long as it.

use std::any::Any;

use typedkv::{Backend, MemoryBackend};

use crate::server::TestRedis;

/// A backend for one test, plus a guard (e.g. the [`TestRedis`] behind it) dropped at the end
/// of the test.
pub struct Fixture<B> {
    backend: B,
    _guard: Option<Box<dyn Any + Send>>,
}

impl<B: Backend> Fixture<B> {
    /// A fixture whose backend needs nothing kept alive.
    pub fn new(backend: B) -> Self {
        Fixture {
            backend,
            _guard: None,
        }
    }

    /// A fixture that keeps `guard` alive until the test ends.
    pub fn with_guard(backend: B, guard: impl Any + Send) -> Self {
        Fixture {
            backend,
            _guard: Some(Box::new(guard)),
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
/// as the fixture.
pub async fn redis() -> Fixture<typedkv::redis::RedisPool> {
    let server = TestRedis::start().await;
    Fixture::with_guard(server.pool(), server)
}
