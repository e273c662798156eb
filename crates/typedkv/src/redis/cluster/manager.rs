//! The deadpool manager of cluster connections.
//!
//! deadpool-redis' own cluster manager takes only seed URLs and a replica flag, so its
//! connections would have no connect or response timeout (redis-rs' cluster default is to
//! wait for ever). This one builds the redis-rs `ClusterClient` from the pool's settings.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_read_routing::RandomReplicaStrategy;
use ::redis::cluster_routing::{
    MultipleNodeRoutingInfo, ResponsePolicy, Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr,
};
use ::redis::{ProtocolVersion, RedisError};
use deadpool::managed::{Manager, Metrics, Object, RecycleError, RecycleResult};

use super::slots::slot_ranges;
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
    /// down or stopped does not make this `false`; a connection so stuck does, and so does
    /// one that still sends a slot to a master the cluster has replaced ([`routes_stale`]).
    async fn answers(mut conn: ClusterConnection, limit: Duration) -> bool {
        let ping = conn.route_command(::redis::cmd("PING").clone(), any_master());
        match tokio::time::timeout(limit / 2, ping).await {
            Ok(Err(e)) if e.is_timeout() => false,
            Err(_elapsed) => false,
            Ok(_) => !matches!(
                tokio::time::timeout(limit / 2, routes_stale(conn, limit / 4)).await,
                Ok(true)
            ),
        }
    }
}

/// Every master, the first answer wins.
fn any_master() -> RoutingInfo {
    RoutingInfo::MultiNode((
        MultipleNodeRoutingInfo::AllMasters,
        Some(ResponsePolicy::OneSucceeded),
    ))
}

/// Whether `conn` sends some slot to a node that does not answer while the master the
/// cluster now names for that slot does: a master that hangs (stopped, frozen VM, cut off)
/// rather than dies is failed over by the cluster, but redis-rs reads the slot map again
/// only on `MOVED` and broken connections, never on a timeout, so it would send that
/// master's slots to it until it answered again. A fresh connection reads the map anew
/// (and leaves out the node that does not answer). Asked only after a command timed out.
async fn routes_stale(mut conn: ClusterConnection, wait: Duration) -> bool {
    let layout = conn
        .route_command(::redis::cmd("CLUSTER").arg("SLOTS").clone(), any_master())
        .await;
    // The reply came from a master that answers, so the masters it names are current.
    let Some(ranges) = layout.ok().as_ref().and_then(slot_ranges) else {
        return false;
    };
    let checks = ranges.into_iter().map(|range| {
        let (mut by_slot, mut by_address) = (conn.clone(), conn.clone());
        async move {
            let (host, port) = range.master;
            let ours = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
                range.start,
                SlotAddr::Master,
            )));
            let theirs = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port });
            let ping = ::redis::cmd("PING").clone();
            let (ours, theirs) = futures::join!(
                tokio::time::timeout(wait, by_slot.route_command(ping.clone(), ours)),
                tokio::time::timeout(wait, by_address.route_command(ping, theirs))
            );
            !matches!(ours, Ok(Ok(_))) && matches!(theirs, Ok(Ok(_)))
        }
    });
    futures::future::join_all(checks).await.contains(&true)
}
