//! Heap allocations per call, counted by the process-wide instrumented allocator.
//!
//! Calls run one after another from one task, so what is counted is the call's own cost,
//! including the work redis-rs' connection task does for it.

use redis::AsyncCommands;
use typedkv::Store;

use crate::cases::Bench;
use crate::counting_alloc::Counter;
use crate::measure::BenchResult;
use crate::payload::{raw_decode, raw_encode, typed_decode, typed_encode};
use crate::report::Row;

const CALLS: u32 = 5_000;

/// Counts allocations of `CALLS` sequential runs of `op`.
async fn per_call<F, Fut>(mut op: F) -> BenchResult<f64>
where
    F: FnMut(u32) -> Fut,
    Fut: std::future::Future<Output = BenchResult<()>>,
{
    op(0).await?; // warm up: first-use allocations are not per-call costs
    let counter = Counter::start();
    for i in 0..CALLS {
        op(i).await?;
    }
    Ok(counter.stop() as f64 / f64::from(CALLS))
}

impl Bench {
    /// Allocations per `get` and `set`, typed vs raw, of an indexed `set` against the same
    /// `set` without the index, and of decoding the value alone.
    pub(crate) async fn allocations(&self) -> BenchResult<Vec<Row>> {
        let (store, value) = (&self.store, &self.value);
        let ids = &self.ids[0];
        let id = |i: u32| ids[(i % 1000) as usize].as_str();
        let key = |i: u32| crate::cases::raw_key(id(i));
        let typed_get = per_call(|i| async move {
            store.get(id(i)).await?;
            Ok(())
        })
        .await?;
        let raw_get = per_call(|i| {
            let mut raw = self.raw.clone();
            async move {
                let bytes: Option<Vec<u8>> = raw.get(key(i)).await?;
                if let Some(bytes) = bytes {
                    raw_decode(&bytes)?;
                }
                Ok(())
            }
        })
        .await?;
        let typed_set = per_call(|i| async move {
            store.set(id(i), value).await?;
            Ok(())
        })
        .await?;
        let raw_set = per_call(|i| {
            let mut raw = self.raw.clone();
            async move {
                let () = raw.set(key(i), raw_encode(value)?).await?;
                Ok(())
            }
        })
        .await?;
        let indexed = crate::index_workload::age_indexed(typedkv::RedisStore::builder(
            store.backend().clone(),
            format!("{}-allocs", crate::cases::PREFIX),
        ))
        .build()?;
        let indexed = &indexed;
        let indexed_set = per_call(|i| async move {
            let (id, user) = crate::index_workload::write_of(0, u64::from(i));
            indexed.set(&id, &user).await?;
            Ok(())
        })
        .await?;
        let plain_moves = per_call(|i| async move {
            let (id, user) = crate::index_workload::write_of(0, u64::from(i));
            store.set(&id, &user).await?;
            Ok(())
        })
        .await?;
        let bytes = typed_encode(value, 0)?;
        let decode_only = per_call(|_| {
            let decoded = typed_decode(&bytes);
            async move {
                decoded?;
                Ok(())
            }
        })
        .await?;
        Ok(vec![
            Row::pair("allocs_get", typed_get, raw_get, "allocs/op"),
            Row::pair("allocs_set", typed_set, raw_set, "allocs/op"),
            // The same writes, with and without one equality index (both count the id's
            // formatting).
            Row::pair("allocs_set_indexed", indexed_set, plain_moves, "allocs/op"),
            Row::typed_only("allocs_decode_value", decode_only, "allocs/op"),
        ])
    }
}
