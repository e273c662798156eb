//! The Redis standalone backend: a deadpool-redis pool with shared multiplexed connections.
//!
//! Build a [`RedisPool`] from a URL, then stores on it with
//! [`RedisStore::builder`](crate::TypedStore::builder). One pool serves any number of stores.

mod backend;
mod config;
mod errors;
mod lanes;
mod pool;
#[cfg(feature = "tls")]
mod tls;

pub use self::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_CREATE_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_RECYCLE_TIMEOUT,
    DEFAULT_RESPONSE_TIMEOUT, DEFAULT_SHARED_CONNECTIONS, DEFAULT_WAIT_TIMEOUT, redact_url,
};
pub use self::pool::{RedisPool, RedisPoolBuilder};
