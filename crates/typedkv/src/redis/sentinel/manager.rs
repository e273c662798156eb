//! The deadpool manager of connections to the master that Sentinel names (or, for plain
//! reads with `read_from_replicas`, to a replica).
//!
//! Each new connection asks the sentinels where the master is now (`lookup.rs`), so a
//! connection made after a failover goes to the new master. The lanes replace their
//! connections when one dies or is answered `READONLY` (see `shared.rs`), and the watcher
//! (`watch.rs`) marks them dead when a sentinel announces a switch: that is how a pool
//! follows a failover.

use std::sync::Arc;

use ::redis::aio::MultiplexedConnection;
use ::redis::sentinel::SentinelClient;
use ::redis::{AsyncConnectionConfig, RedisError};
use deadpool::managed::{Manager, Metrics, Object, RecycleError, RecycleResult};

use super::lookup::{MasterLookup, check_master};
use crate::redis::lanes::Pooled;

/// Creates connections to the current master (or a replica) and health-checks returned ones.
pub(crate) struct SentinelManager {
    /// Finds the master; for a replica manager, used when no replica answers (reads then go
    /// to the master rather than fail).
    master: Arc<MasterLookup>,
    /// For a manager of replica connections: redis-rs' client asking the sentinels for a
    /// replica (it needs `&mut`: it caches its sentinel connections).
    replicas: Option<tokio::sync::Mutex<SentinelClient>>,
    config: AsyncConnectionConfig,
    /// Starts the watcher (`watch.rs`) at the first connection: pools are built outside any
    /// runtime, connections inside one.
    start_watcher: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl SentinelManager {
    /// A manager connecting to the master `master` finds; `start_watcher` is run once, at the
    /// first connection.
    pub(crate) fn new(
        master: Arc<MasterLookup>,
        config: AsyncConnectionConfig,
        start_watcher: impl FnOnce() + Send + 'static,
    ) -> Self {
        SentinelManager {
            master,
            replicas: None,
            config,
            start_watcher: std::sync::Mutex::new(Some(Box::new(start_watcher))),
        }
    }

    /// A manager connecting to a replica (`replicas` asks for one), or to the master when
    /// no replica answers.
    pub(crate) fn of_replicas(
        replicas: SentinelClient,
        master: Arc<MasterLookup>,
        config: AsyncConnectionConfig,
    ) -> Self {
        let mut manager = SentinelManager::new(master, config, || {});
        manager.replicas = Some(tokio::sync::Mutex::new(replicas));
        manager
    }

    /// The master's lookup.
    #[cfg(feature = "cache")]
    pub(crate) fn lookup(&self) -> &Arc<MasterLookup> {
        &self.master
    }

    /// Starts the watcher, once (`start_watcher`).
    fn start_watching(&self) {
        let start = self
            .start_watcher
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(start) = start {
            start();
        }
    }

    /// A connection to the server the sentinels name now (the master, or for a replica
    /// manager a replica), configured by `config`.
    pub(crate) async fn connect(
        &self,
        config: &AsyncConnectionConfig,
    ) -> Result<MultiplexedConnection, RedisError> {
        // Also for connections outside the pool (the cache's tracking one), which must hear
        // of switches even before the pool made a connection.
        self.start_watching();
        if let Some(replicas) = &self.replicas {
            let mut replicas = replicas.lock().await;
            if let Ok(conn) = replicas.get_async_connection_with_config(config).await {
                return Ok(conn);
            }
        }
        self.master.connect(config).await
    }
}

impl Manager for SentinelManager {
    type Type = MultiplexedConnection;
    type Error = RedisError;

    async fn create(&self) -> Result<MultiplexedConnection, RedisError> {
        self.connect(&self.config).await
    }

    async fn recycle(
        &self,
        conn: &mut MultiplexedConnection,
        _: &Metrics,
    ) -> RecycleResult<RedisError> {
        if self.replicas.is_some() {
            // Any role serves reads: a replica promoted since is still current.
            let _: () = ::redis::cmd("PING").query_async(conn).await?;
            return Ok(());
        }
        // One round trip that proves the connection alive and still on the master: after a
        // failover its server may be up but a replica.
        check_master(conn)
            .await
            .map_err(|_| RecycleError::message("the server is no longer the master"))
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

    fn reply_within(conn: &mut MultiplexedConnection, limit: std::time::Duration) {
        conn.set_response_timeout(limit);
    }
}
