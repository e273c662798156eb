//! [`RedisClusterPool`] as a [`Backend`]: the standalone commands, plus what a cluster does
//! differently: scans over every master, TTL batches written slot by slot.
//!
//! redis-rs routes each single-key command (and the compare-and-swap script, by its one key)
//! to the master of the key's slot, and splits `MGET` and `UNLINK` into one command per slot,
//! reassembling replies in order (counts summed): each slot's part is atomic, the batch is not.

use std::time::Duration;

use ::redis::cluster_routing::RoutingInfo;
use ::redis::{Cmd, FromRedisValue, RedisError};
use deadpool::managed::Object;
use futures::future::try_join_all;

use super::RedisClusterPool;
use super::manager::ClusterManager;
use crate::backend::{
    Applied, Backend, Bytes, Check, CommitWrite, Committed, Guard, IndexSpace, IndexSupport,
    IndexedOp, Lex, Order, StaleMember, Swap, Write, WriteExpiry,
};
use crate::error::Result;
use crate::keyspace::grouped;
use crate::keyspace::slots::slot_of;
use crate::options::Expiry;
use crate::redis::commands::set_each;
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
    /// `"redis-cluster"`, as every error of this pool names its backend.
    fn kind(&self) -> &'static str {
        self.shared().limits().backend
    }

    fn data_location(&self) -> String {
        self.location()
    }

    fn with_concern(&self, concern: crate::WriteConcern) -> Result<Self> {
        self.with_write_concern(concern)
    }

    fn response_timeout(&self) -> Option<Duration> {
        self.shared().limits().response
    }

    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        self.shared().get(key)
    }

    fn set(
        &self,
        key: &str,
        value: Bytes,
        write: Write,
    ) -> impl Future<Output = Result<bool>> + Send {
        self.shared().set(key, value, write, self.concern())
    }

    fn delete(&self, key: &str) -> impl Future<Output = Result<bool>> + Send {
        self.shared().delete(key, self.concern())
    }

    fn exists(&self, key: &str) -> impl Future<Output = Result<bool>> + Send {
        self.shared().exists(key)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Expiry>> {
        self.shared().ttl(key).await
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Expiry)>> {
        self.shared().get_with_ttl(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        self.shared().get_many(keys).await
    }

    /// One script on the slot's master: refused at once when the keys span slots.
    async fn commit(&self, checks: &[Check], writes: &[CommitWrite]) -> Result<Committed> {
        let keys = checks
            .iter()
            .map(|check| check.key.as_str())
            .chain(writes.iter().map(|write| write.key.as_str()));
        crate::keyspace::slots::one_slot(keys)?;
        self.shared().commit(checks, writes, self.concern()).await
    }

    async fn compare_and_swap(
        &self,
        key: &str,
        guard: &Guard,
        new: Option<Bytes>,
        expiry: WriteExpiry,
    ) -> Result<Swap> {
        self.shared()
            .compare_and_swap(key, guard, new, expiry, self.concern())
            .await
    }

    /// Every master in turn (`scan.rs`).
    async fn scan_page(
        &self,
        prefix: &str,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<Bytes>)> {
        self.scan_master_page(prefix, cursor, count).await
    }

    /// `UNLINK`, split per slot by redis-rs; with a write concern, one `UNLINK` and its wait
    /// per slot, sent concurrently.
    async fn delete_many(&self, keys: &[Bytes]) -> Result<u64> {
        let Some(concern) = self.concern() else {
            return self.shared().delete_many(keys, None).await;
        };
        let by_slot = grouped(keys.iter().cloned(), |key| slot_of(key));
        let deletes = by_slot.into_values().map(|keys| async move {
            self.shared().delete_many_acknowledged(&keys, concern).await
        });
        Ok(try_join_all(deletes).await?.into_iter().sum())
    }

    /// Atomic per slot: `MSET` (split per slot by redis-rs) without a TTL, one `MULTI`/`EXEC`
    /// of `SET ... PX` per slot with one; with a write concern, each slot's write and its
    /// wait in one pipeline. Slots are written concurrently; if one fails, the others may
    /// have been written.
    async fn set_many(&self, entries: Vec<(String, Bytes)>, expiry: WriteExpiry) -> Result<()> {
        let concern = self.concern();
        if concern.is_none() && !matches!(expiry, WriteExpiry::After(_)) {
            return self.shared().set_many(entries, expiry, None).await;
        }
        let by_slot = grouped(entries, |(key, _)| slot_of(key.as_bytes()));
        let writes = by_slot.into_values().map(|entries| async move {
            let batch = KeyBatch::from_entries(&entries);
            match concern {
                Some(concern) => {
                    let shared = self.shared();
                    shared
                        .set_many_acknowledged(&entries, expiry, concern)
                        .await
                }
                None => {
                    let pipe = set_each(&entries, expiry);
                    self.shared().query_pipeline::<()>(&batch, &pipe).await
                }
            }
        });
        try_join_all(writes).await.map(drop)
    }

    /// The atomic index script touches the entity's, its record's and its indexes' keys at
    /// once, which a cluster allows only within one slot (hash-tagged stores).
    fn index_support(&self) -> IndexSupport {
        IndexSupport::SameSlot
    }

    /// The one atomic script, as on a single server (indexed stores are hash-tagged here).
    async fn apply_indexed(&self, space: &IndexSpace, ops: &[IndexedOp]) -> Result<Applied> {
        self.shared()
            .apply_indexed(space, ops, self.concern())
            .await
    }

    /// One script on the slot's master: refused at once when the keys span slots.
    async fn apply_indexed_with(
        &self,
        space: &IndexSpace,
        ops: &[IndexedOp],
        checks: &[Check],
        writes: &[CommitWrite],
    ) -> Result<Applied> {
        let keys = ops
            .iter()
            .map(|op| op.key.as_str())
            .chain(checks.iter().map(|check| check.key.as_str()))
            .chain(writes.iter().map(|write| write.key.as_str()));
        crate::keyspace::slots::one_slot(keys)?;
        self.shared()
            .apply_indexed_with(space, ops, (checks, writes), self.concern())
            .await
    }

    async fn index_members(
        &self,
        space: &IndexSpace,
        index: usize,
        range: (&Lex, &Lex),
        order: Order,
        limit: usize,
    ) -> Result<Vec<Bytes>> {
        self.shared()
            .index_members(space, index, range, order, limit)
            .await
    }

    async fn index_count(
        &self,
        space: &IndexSpace,
        index: usize,
        range: (&Lex, &Lex),
    ) -> Result<u64> {
        self.shared().index_count(space, index, range).await
    }

    async fn index_forget(
        &self,
        space: &IndexSpace,
        index: usize,
        stale: &[StaleMember],
    ) -> Result<u64> {
        self.shared().index_forget(space, index, stale).await
    }
}
