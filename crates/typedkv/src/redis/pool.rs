//! [`RedisPool`]: a deadpool-redis pool whose plain commands share a few connections
//! ([lanes](super::lanes)) instead of paying a checkout each.

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;

use ::redis::{ProtocolVersion, PushInfo, PushKind};
use deadpool_redis::{Connection, Manager};

use super::builder::{RedisPoolBuilder, Standalone};
use super::config::{Settings, connection_info, invalid_url};
use super::lanes::Generations;
use super::shared::{OnBrokenConnection, Shared};
use crate::error::Result;

impl RedisPoolBuilder<Standalone> {
    /// Validates the settings and creates the pool (without connecting).
    ///
    /// Fails with [`Error::InvalidConfig`](crate::Error::InvalidConfig) for an unparsable
    /// URL, zero timeouts, zero shared connections or a pool smaller than its shared
    /// connections.
    pub fn build(self) -> Result<RedisPool> {
        RedisPool::new(self.settings)
    }
}

/// A pool of Redis connections (standalone server), and the [`Backend`](crate::Backend) of
/// [`RedisStore`](crate::RedisStore). Clones share the pool.
///
/// Creating the pool does not connect; the first command does (or [`RedisPool::ping`]).
///
/// ```no_run
/// use std::time::Duration;
/// use typedkv::redis::RedisPool;
///
/// // All defaults (see the constants in `typedkv::redis`):
/// let pool = RedisPool::from_url("redis://127.0.0.1:6379")?;
///
/// // Or tuned:
/// let pool = RedisPool::builder("rediss://app:secret@redis.internal:6380/0")
///     .pool_size(16)
///     .shared_connections(4)
///     .response_timeout(Some(Duration::from_millis(250)))
///     .build()?;
/// # Ok::<(), typedkv::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisPool {
    inner: Arc<Inner>,
    /// The write concern of this handle's writes (`Backend::with_concern`); `None` for
    /// none.
    concern: Option<crate::WriteConcern>,
}

struct Inner {
    shared: Arc<Shared<Manager, Connection>>,
    settings: Settings,
    /// [`RedisPool::location`], made once: URL parsing costs microseconds, and every
    /// transaction asks for it.
    location: String,
    /// The parsed URL (RESP3, TLS roots applied), for connections outside the pool.
    #[cfg_attr(not(feature = "cache"), allow(dead_code))]
    info: ::redis::ConnectionInfo,
}

impl RedisPool {
    /// A pool for `url` (`redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS
    /// with the `tls` feature) with default settings.
    pub fn from_url(url: impl Into<String>) -> Result<Self> {
        Self::builder(url).build()
    }

    /// Starts configuring a pool for `url`.
    pub fn builder(url: impl Into<String>) -> RedisPoolBuilder<Standalone> {
        RedisPoolBuilder::new(vec![url.into()])
    }

    pub(crate) fn new(settings: Settings) -> Result<Self> {
        settings.validate()?;
        let url = &settings.urls[0];
        // RESP3, so that redis-rs tells us the moment a connection closes (see lanes.rs).
        let info = connection_info(url, ProtocolVersion::RESP3)?;
        #[cfg(feature = "tls")]
        let info = super::tls::prepare(info, settings.tls_roots.as_deref())?;
        let generations = Arc::new(Generations::default());
        let on_push = {
            let generations = Arc::clone(&generations);
            move |push: PushInfo| {
                if push.kind == PushKind::Disconnection {
                    generations.all_dead();
                }
                Ok::<(), Infallible>(())
            }
        };
        let connection = settings.connection_config().set_push_sender(on_push);
        let manager =
            Manager::new_with_config(info.clone(), connection).map_err(|e| invalid_url(url, e))?;
        let shared = Shared::new(
            manager,
            &settings,
            "redis",
            generations,
            OnBrokenConnection::Replace,
        )?;
        Ok(RedisPool {
            inner: Arc::new(Inner {
                shared: Arc::new(shared),
                location: settings.addresses(),
                settings,
                info,
            }),
            concern: None,
        })
    }

    /// Its settings, and the server's address and login as a connection takes them: for
    /// connections of its own (the cache's tracking connections).
    #[cfg(feature = "cache")]
    pub(crate) fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    #[cfg(feature = "cache")]
    pub(crate) fn connection_info(&self) -> &::redis::ConnectionInfo {
        &self.inner.info
    }

    /// This pool's handle with every write acknowledged per `concern` (see
    /// `redis/concern.rs`).
    pub(crate) fn with_write_concern(&self, concern: crate::WriteConcern) -> Result<Self> {
        Ok(RedisPool {
            inner: Arc::clone(&self.inner),
            concern: concern.kept()?,
        })
    }

    /// The write concern of this handle's writes.
    pub(crate) fn concern(&self) -> Option<crate::WriteConcern> {
        self.concern
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<Manager, Connection>> {
        &self.inner.shared
    }

    /// Opens every shared connection that is not open yet and `PING`s Redis on each: call it
    /// at start-up to fail fast on a wrong URL or password, and so the first requests do not
    /// pay for connecting.
    pub async fn ping(&self) -> Result<()> {
        self.inner.shared.ping().await
    }

    /// A connection for this caller alone, e.g. for blocking commands or `WATCH`. Returned to
    /// the pool (and health-checked before reuse) when dropped. Plain commands of the stores
    /// never use this.
    pub async fn checkout(&self) -> Result<Connection> {
        self.inner.shared.checkout().await
    }

    /// Pool occupancy: `max_size`, current `size` (shared lanes count as in use),
    /// `available` idle connections, tasks `waiting` for one.
    pub fn status(&self) -> deadpool_redis::Status {
        self.inner.shared.pool().status()
    }

    /// Publishes the pool's occupancy through the `metrics` facade, labelled `pool` with the
    /// redacted URL: `typedkv_pool_connections` (gauge, label `state`: `max`, `open`,
    /// `idle`; shared connections count as open, not idle) and `typedkv_pool_waiting`
    /// (tasks waiting for a connection). A sample of now: call it periodically, e.g. from a
    /// task every few seconds.
    pub fn record_metrics(&self) {
        self.inner.shared.record_metrics(self.redacted_url());
    }

    /// Where its data lives ([`Backend::data_location`](crate::Backend::data_location)):
    /// address and database.
    pub(crate) fn location(&self) -> String {
        self.inner.location.clone()
    }

    /// The URL this pool connects to, with any password replaced by `***`.
    pub fn redacted_url(&self) -> String {
        self.inner.settings.redacted_urls()
    }
}

impl fmt::Debug for RedisPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisPool")
            .field("settings", &self.inner.settings)
            .field("status", &self.status())
            .finish()
    }
}
