//! The Redis backends: [`RedisPool`] for one server, with the `sentinel` feature
//! `RedisSentinelPool` for a master found (and followed) through Redis Sentinel, and with
//! the `cluster` feature `RedisClusterPool` for Redis Cluster. All are deadpool pools whose
//! plain commands share multiplexed connections.
//!
//! Build a pool from a URL (or the cluster's seed URLs), then stores on it with
//! [`RedisStore::builder`](crate::TypedStore::builder). One pool serves any number of stores.

mod backend;
mod batching;
mod builder;
#[cfg(feature = "cache")]
pub(crate) mod cache;
#[cfg(feature = "cluster")]
pub(crate) mod cluster;
mod commands;
mod concern;
mod config;
mod errors;
mod indexes;
mod keys;
mod lanes;
mod pool;
#[cfg(feature = "sentinel")]
mod sentinel;
mod shared;
#[cfg(feature = "tls")]
mod tls;

pub use self::builder::{RedisPoolBuilder, Standalone};
#[cfg(feature = "cluster")]
pub use self::cluster::{Cluster, RedisClusterPool};
pub use self::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_CREATE_TIMEOUT, DEFAULT_POOL_SIZE, DEFAULT_RECYCLE_TIMEOUT,
    DEFAULT_RESPONSE_TIMEOUT, DEFAULT_SHARED_CONNECTIONS, DEFAULT_WAIT_TIMEOUT, redact_url,
};
pub use self::pool::RedisPool;
#[cfg(feature = "sentinel")]
#[cfg_attr(docsrs, doc(cfg(feature = "sentinel")))]
pub use self::sentinel::{RedisSentinelPool, Sentinel};
