//! [`RedisPool`] as a [`Backend`]: every command as `commands.rs` sends it on the pool's
//! [`Shared`](super::shared::Shared) core, indexes atomic in one script.
//!
//! The hot commands (`get`, `set`, `delete`, `exists`) hand back the core's future itself:
//! an `async fn` wrapper would store its arguments once more in a future that every call
//! allocates.

use std::time::Duration;

use super::RedisPool;
use crate::backend::{
    Applied, Backend, Bytes, Check, CommitWrite, Committed, Guard, IndexSpace, IndexSupport,
    IndexedOp, Lex, Order, StaleMember, Swap, Write, WriteExpiry,
};
use crate::error::Result;
use crate::options::Expiry;

impl Backend for RedisPool {
    /// `"redis"`, as every error of this pool names its backend.
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
#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Condition;

    /// Every command's future is allocated (boxed by `Store`) and moved on each call; the
    /// pool's checkout path once made a GET future 7.3 KiB, which cost ~9% more instructions
    /// per GET than raw redis-rs. Keep the common path small.
    #[test]
    fn command_futures_stay_small() -> Result<()> {
        let pool = RedisPool::from_url("redis://127.0.0.1:1")?;
        let write = Write::new(WriteExpiry::Never, Condition::Always);
        let sizes = [
            ("get", std::mem::size_of_val(&pool.get("k"))),
            (
                "set",
                std::mem::size_of_val(&pool.set("k", Vec::new(), write)),
            ),
            ("get_many", std::mem::size_of_val(&pool.get_many(&[]))),
            (
                "set_many",
                std::mem::size_of_val(&pool.set_many(Vec::new(), WriteExpiry::Never)),
            ),
        ];
        for (command, size) in sizes {
            assert!(size <= 1024, "{command} future is {size} bytes");
        }
        Ok(())
    }

    /// A store's calls box their futures (the `Store` trait is object-safe), so each call
    /// allocates one. Up to 1,032 bytes glibc serves it from a per-thread cache; beyond, it
    /// locks an arena, which the tasks on other threads freeing theirs contend for. At 1.8
    /// KiB (an `async fn` storing the operation future twice) batched calls spent 1.2-1.3x
    /// the client CPU of the bench's lean coalescer; under 1 KiB, 0.7-1.0x (BENCHMARKS.md).
    #[test]
    fn store_futures_fit_the_allocators_per_thread_cache() -> Result<()> {
        use crate::Store;
        let pool = RedisPool::from_url("redis://127.0.0.1:1")?;
        let store = crate::RedisStore::<String>::builder(pool, "p").build()?;
        let value = String::new();
        let sizes = [
            ("get", std::mem::size_of_val(&*store.get("k"))),
            ("set", std::mem::size_of_val(&*store.set("k", &value))),
            (
                "set_opts",
                std::mem::size_of_val(&*store.set_opts("k", &value, crate::SetOptions::new())),
            ),
            ("delete", std::mem::size_of_val(&*store.delete("k"))),
            ("exists", std::mem::size_of_val(&*store.exists("k"))),
        ];
        for (call, size) in sizes {
            assert!(size <= 1024, "{call} future is {size} bytes");
        }
        Ok(())
    }
}
