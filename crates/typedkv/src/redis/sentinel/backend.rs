//! [`RedisSentinelPool`] as a [`Backend`]: as [`RedisPool`](crate::redis::RedisPool)'s, on the
//! master the sentinels name; with `read_from_replicas`, plain reads (`get`, `exists`, `ttl`,
//! `get_many`) go to the replicas' core. Everything else, `get_with_ttl` included (a cache
//! fill must not read behind an invalidation), goes to the master.

use std::time::Duration;

use super::RedisSentinelPool;
use crate::backend::{
    Applied, Backend, Bytes, Check, CommitWrite, Committed, Guard, IndexSpace, IndexSupport,
    IndexedOp, Lex, Order, StaleMember, Swap, Write, WriteExpiry,
};
use crate::error::Result;
use crate::options::Expiry;

impl Backend for RedisSentinelPool {
    /// `"redis-sentinel"`, as every error of this pool names its backend.
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
        self.reads().get(key)
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
        self.reads().exists(key)
    }

    async fn ttl(&self, key: &str) -> Result<Option<Expiry>> {
        self.reads().ttl(key).await
    }

    async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Expiry)>> {
        self.shared().get_with_ttl(key).await
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        self.reads().get_many(keys).await
    }

    async fn commit(&self, checks: &[Check], writes: &[CommitWrite]) -> Result<Committed> {
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

    async fn scan_page(
        &self,
        prefix: &str,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<Bytes>)> {
        self.shared().scan_page(prefix, cursor, count).await
    }

    async fn delete_many(&self, keys: &[Bytes]) -> Result<u64> {
        self.shared().delete_many(keys, self.concern()).await
    }

    async fn set_many(&self, entries: Vec<(String, Bytes)>, expiry: WriteExpiry) -> Result<()> {
        self.shared()
            .set_many(entries, expiry, self.concern())
            .await
    }

    fn index_support(&self) -> IndexSupport {
        IndexSupport::Atomic
    }

    async fn apply_indexed(&self, space: &IndexSpace, ops: &[IndexedOp]) -> Result<Applied> {
        self.shared()
            .apply_indexed(space, ops, self.concern())
            .await
    }

    async fn apply_indexed_with(
        &self,
        space: &IndexSpace,
        ops: &[IndexedOp],
        checks: &[Check],
        writes: &[CommitWrite],
    ) -> Result<Applied> {
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
