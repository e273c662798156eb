//! The deadpool manager of cluster connections.
//!
//! deadpool-redis' own cluster manager takes only seed URLs and a replica flag, so its
//! connections would have no connect or response timeout (redis-rs' cluster default is to
//! wait for ever). This one builds the redis-rs `ClusterClient` from the pool's settings.

use std::sync::atomic::{AtomicUsize, Ordering};

use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_read_routing::RandomReplicaStrategy;
use ::redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo};
use ::redis::{ProtocolVersion, RedisError};
use deadpool::managed::{Manager, Metrics, Object, RecycleError, RecycleResult};

use crate::error::Result;
use crate::redis::config::{Settings, connection_info, invalid_url};
use crate::redis::lanes::Pooled;

/// Creates cluster connections (each one talks to every node) and health-checks returned ones.
pub(crate) struct ClusterManager {
    client: ClusterClient,
    pings: AtomicUsize,
}

impl ClusterManager {
    pub(crate) fn new(settings: &Settings) -> Result<Self> {
        let seeds = settings
            .urls
            .iter()
            // RESP3 like standalone pools, so replies have the same shapes on both.
            .map(|url| connection_info(url, ProtocolVersion::RESP3))
            .collect::<Result<Vec<_>>>()?;
        let mut builder =
            ClusterClientBuilder::new(seeds).connection_timeout(settings.connect_timeout);
        if let Some(timeout) = settings.response_timeout {
            // Also bounds redis-rs' redirects and retries of one command (overall timeout).
            builder = builder.response_timeout(timeout);
        }
        if settings.read_from_replicas {
            builder = builder.read_routing_strategy(RandomReplicaStrategy);
        }
        #[cfg(feature = "tls")]
        {
            builder = crate::redis::tls::prepare_cluster(builder, settings)?;
        }
        let client = builder
            .build()
            .map_err(|e| invalid_url(&settings.urls[0], e))?;
        Ok(ClusterManager {
            client,
            pings: AtomicUsize::new(0),
        })
    }
}

impl Manager for ClusterManager {
    type Type = ClusterConnection;
    type Error = RedisError;

    async fn create(&self) -> std::result::Result<ClusterConnection, RedisError> {
        self.client.get_async_connection().await
    }

    async fn recycle(
        &self,
        conn: &mut ClusterConnection,
        _: &Metrics,
    ) -> RecycleResult<RedisError> {
        let token = self.pings.fetch_add(1, Ordering::Relaxed).to_string();
        let echoed: String = ::redis::cmd("PING").arg(&token).query_async(conn).await?;
        if echoed == token {
            Ok(())
        } else {
            Err(RecycleError::message("unexpected PING reply"))
        }
    }
}

impl Pooled for Object<ClusterManager> {
    type Conn = ClusterConnection;

    fn handle(&self) -> ClusterConnection {
        ClusterConnection::clone(self)
    }

    fn detach(self) {
        drop(Object::take(self));
    }

    /// Some master answers a `PING`. redis-rs 1.8's cluster connection can stop answering
    /// for good when a node dies under load: its slot refresh waits for a lock that a
    /// request it no longer polls was granted, and every later call times out. One master
    /// down or stopped does not make this `false`; a connection so stuck does.
    async fn answers(mut conn: ClusterConnection) -> bool {
        let all_masters = RoutingInfo::MultiNode((
            MultipleNodeRoutingInfo::AllMasters,
            Some(ResponsePolicy::OneSucceeded),
        ));
        let ping = conn.route_command(::redis::cmd("PING"), all_masters).await;
        !ping.is_err_and(|e| e.is_timeout())
    }
}
