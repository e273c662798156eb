//! What a [`CachedStore`](crate::CachedStore) needs of a cluster pool (features `cluster` and
//! `cache`): its masters, and a connection of the cache's own to each, for client tracking.
//! A key's invalidations come from the master serving its slot, so the cache tracks on every
//! master, and tracks again when the set of masters changes (failover, resharding).

use ::redis::aio::{AsyncPushSender, MultiplexedConnection};
use ::redis::{ConnectionAddr, ProtocolVersion, Value};

use super::RedisClusterPool;
use super::slots::slot_ranges;
use crate::error::Result;
use crate::error::Waited;
use crate::redis::config::connection_info;
use crate::redis::errors::unexpected;
use crate::redis::keys::NoKey;
use crate::redis::shared::Resend;

impl RedisClusterPool {
    /// The masters serving slots now, as `(host, port)`, sorted.
    pub(crate) async fn masters(&self) -> Result<Vec<(String, u16)>> {
        let table: Value = self
            .shared()
            .query(&NoKey, ::redis::cmd("CLUSTER").arg("SLOTS"), Resend::Safe)
            .await?;
        let Some(ranges) = slot_ranges(&table) else {
            let reason = "CLUSTER SLOTS answered an entry of an unknown shape";
            return Err(unexpected(&NoKey, self.shared().limits(), reason.into()));
        };
        let mut masters: Vec<(String, u16)> = ranges.into_iter().map(|r| r.master).collect();
        masters.sort_unstable();
        masters.dedup();
        Ok(masters)
    }

    /// A new connection of its own to the node at `host:port` (with the seeds' credentials
    /// and TLS settings), whose server pushes (RESP3) go to `on_push`.
    pub(crate) async fn dedicated_connection_to(
        &self,
        (host, port): &(String, u16),
        on_push: impl AsyncPushSender,
    ) -> Result<MultiplexedConnection> {
        let settings = &self.inner.settings;
        let seed = connection_info(&settings.urls[0], ProtocolVersion::RESP3)?;
        let addr = match seed.addr() {
            ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(host.clone(), *port),
        };
        let info = seed.set_addr(addr);
        #[cfg(feature = "tls")]
        let info = crate::redis::tls::prepare(info, settings.tls_roots.as_deref())?;
        let config = settings.connection_config().set_push_sender(on_push);
        let failed = |e| self.shared().error(&NoKey, e, Waited::Connection);
        ::redis::Client::open(info)
            .map_err(failed)?
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(failed)
    }
}
