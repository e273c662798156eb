//! The deadpool manager of connections to the master that Sentinel names.
//!
//! Each new connection asks the sentinels (redis-rs' `SentinelClient`: every sentinel in
//! turn, then `ROLE` on the answer to check it is a master) where the master is now, so a
//! connection made after a failover goes to the new master. The lanes replace their
//! connections when one dies or is answered `READONLY` (see `shared.rs`), which is how a
//! pool follows a failover.

use ::redis::aio::MultiplexedConnection;
use ::redis::sentinel::SentinelClient;
use ::redis::{AsyncConnectionConfig, RedisError};
use deadpool::managed::{Manager, Metrics, Object, RecycleError, RecycleResult};

use crate::redis::lanes::Pooled;

/// Creates connections to the current master and health-checks returned ones.
pub(crate) struct SentinelManager {
    /// `SentinelClient` needs `&mut` to look the master up (it caches sentinel connections).
    client: tokio::sync::Mutex<SentinelClient>,
    /// For a manager of replica connections: the master's client, used when no replica can
    /// be reached (reads then go to the master rather than fail).
    fallback: Option<tokio::sync::Mutex<SentinelClient>>,
    config: AsyncConnectionConfig,
    /// Starts the `+switch-master` watcher (`watch.rs`) at the first connection: pools are
    /// built outside any runtime, connections inside one.
    start_watcher: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl SentinelManager {
    /// A manager connecting through `client`; `start_watcher` is run once, at the first
    /// connection.
    pub(crate) fn new(
        client: SentinelClient,
        config: AsyncConnectionConfig,
        start_watcher: impl FnOnce() + Send + 'static,
    ) -> Self {
        SentinelManager {
            client: tokio::sync::Mutex::new(client),
            fallback: None,
            config,
            start_watcher: std::sync::Mutex::new(Some(Box::new(start_watcher))),
        }
    }
}

impl SentinelManager {
    /// The same manager connecting to a replica (`client` asks for one), or to the master
    /// through `master` when no replica answers.
    pub(crate) fn of_replicas(
        client: SentinelClient,
        master: SentinelClient,
        config: AsyncConnectionConfig,
    ) -> Self {
        let mut manager = SentinelManager::new(client, config, || {});
        manager.fallback = Some(tokio::sync::Mutex::new(master));
        manager
    }

    /// A connection to the server the sentinels name now (the master, or for a replica
    /// manager a replica), configured by `config`.
    pub(crate) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> Result<MultiplexedConnection, RedisError> {
        let connected = {
            let mut client = self.client.lock().await;
            client.get_async_connection_with_config(config).await
        };
        match (connected, &self.fallback) {
            (Err(_no_replica), Some(master)) => {
                let mut master = master.lock().await;
                master.get_async_connection_with_config(config).await
            }
            (connected, _) => connected,
        }
    }
}

impl Manager for SentinelManager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        let start = self
            .start_watcher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(start) = start {
            start();
        }
        self.connect(&self.config).await
    }

    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        _: &Metrics,
    ) -> RecycleResult<RedisError> {
        // One round trip that proves the connection alive and still on the master: after a
        // failover its server may be up but a replica.
        let role: ::redis::Value = ::redis::cmd("ROLE").query_async(conn).await?;
        match &role {
            ::redis::Value::Array(parts) if matches!(parts.first(), Some(::redis::Value::BulkString(r)) if r == b"master") => {
                Ok(())
            }
            _ => Err(RecycleError::message("the server is no longer the master")),
        }
    }
}

impl Pooled for Object<SentinelManager> {
    type Conn = MultiplexedConnection;

    fn handle(&self) -> MultiplexedConnection {
        MultiplexedConnection::clone(self)
    }

    fn detach(self) {
        drop(Object::take(self));
    }
}
