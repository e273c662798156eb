//! [`RedisPool`] (and, with the `sentinel` feature, `RedisSentinelPool`) as a [`Backend`]:
//! every command as `commands.rs` sends it.

use super::RedisPool;
use super::commands::forward_commands_to_shared;
use crate::backend::{Backend, Bytes, Expected, Swap};
use crate::backend::{Write, WriteExpiry};
use crate::error::Result;
use crate::options::Expiry;

/// `impl Backend` for a pool of one server at a time (standalone, or the master Sentinel
/// names): every command through the pool's `Shared`, indexes atomic in one script.
macro_rules! single_server_backend {
    ($pool:ty) => {
        single_server_backend!($pool, reads_from = shared);
    };
    ($pool:ty, reads_from = $reads:ident) => {
        impl Backend for $pool {
            forward_commands_to_shared!(reads_from = $reads);

            fn data_location(&self) -> String {
                self.location()
            }

            fn index_support(&self) -> crate::index::ops::IndexSupport {
                crate::index::ops::IndexSupport::Atomic
            }

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
                self.shared().scan_page(prefix, cursor, count).await
            }

            async fn set_many(
                &self,
                entries: Vec<(String, Bytes)>,
                expiry: WriteExpiry,
            ) -> Result<()> {
                self.shared().set_many(entries, expiry).await
            }
        }
    };
}

single_server_backend!(RedisPool);
#[cfg(feature = "sentinel")]
single_server_backend!(super::RedisSentinelPool, reads_from = reads);

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
