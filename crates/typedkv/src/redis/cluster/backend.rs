//! [`RedisClusterPool`] as a [`Backend`]: the standalone commands, plus what a cluster does
//! differently: scans over every master, TTL batches written slot by slot.
//!
//! redis-rs routes each single-key command (and the compare-and-swap script, by its one key)
//! to the master of the key's slot, and splits `MGET` and `UNLINK` into one command per slot,
//! reassembling replies in order (counts summed): each slot's part is atomic, the batch is not.

use std::collections::HashMap;

use ::redis::cluster_routing::{RoutingInfo, Slot};
use ::redis::{Cmd, FromRedisValue, RedisError};
use deadpool::managed::Object;
use futures::future::try_join_all;

use super::RedisClusterPool;
use super::manager::ClusterManager;
use crate::backend::{Backend, Bytes, Expected, Swap};
use crate::backend::{Write, WriteExpiry};
use crate::error::Result;
use crate::options::Expiry;
use crate::redis::commands::{forward_commands_to_shared, set_each};
use crate::redis::keys::{KeyBatch, ToKeys};
use crate::redis::shared::Shared;

impl Shared<ClusterManager, Object<ClusterManager>> {
    /// Sends `cmd` about `key` to the node(s) `routing` names.
    pub(super) async fn route<R: FromRedisValue>(
        &self,
        key: &dyn ToKeys,
        cmd: Cmd,
        routing: RoutingInfo,
    ) -> Result<R> {
        let mut lent = self.lend(key).await?;
        let reply = lent
            .conn
            .route_command(cmd, routing)
            .await
            .and_then(|value| R::from_redis_value(value).map_err(RedisError::from));
        reply.map_err(|e| self.failed(key, &lent, e))
    }
}

impl Backend for RedisClusterPool {
    forward_commands_to_shared!();

    fn data_location(&self) -> String {
        self.location()
    }

    /// The atomic index script touches the entity's, its record's and its indexes' keys at
    /// once, which a cluster allows only within one slot (hash-tagged stores).
    fn index_support(&self) -> crate::index::ops::IndexSupport {
        crate::index::ops::IndexSupport::SameSlot
    }

    /// The one atomic script, as on a single server (indexed stores are hash-tagged here).
    async fn apply_indexed(
        &self,
        space: &crate::index::ops::IndexSpace,
        ops: &[crate::index::ops::IndexedOp],
    ) -> Result<crate::index::ops::Applied> {
        self.shared().apply_indexed(space, ops).await
    }

    async fn scan_page(
        &self,
        prefix: &str,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<Bytes>)> {
        self.scan_master_page(prefix, cursor, count).await
    }

    /// Atomic per slot: `MSET` (split per slot by redis-rs) without a TTL, one `MULTI`/`EXEC`
    /// of `SET ... PX` per slot with one. Slots are written concurrently; if one fails, the
    /// others may have been written.
    async fn set_many(&self, entries: Vec<(String, Bytes)>, expiry: WriteExpiry) -> Result<()> {
        if !matches!(expiry, WriteExpiry::After(_)) {
            return self.shared().set_many(entries, expiry).await;
        }
        let mut by_slot: HashMap<Slot, Vec<(String, Bytes)>> = HashMap::new();
        for (key, bytes) in entries {
            by_slot
                .entry(Slot::for_key(&key))
                .or_default()
                .push((key, bytes));
        }
        let writes = by_slot.into_values().map(|entries| async move {
            let batch = KeyBatch::from_entries(&entries);
            self.shared()
                .query_pipeline::<()>(&batch, &set_each(&entries, expiry))
                .await
        });
        try_join_all(writes).await.map(drop)
    }
}
