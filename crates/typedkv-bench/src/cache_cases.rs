//! The local-cache cases: `CachedStore` against the same typed store without it (here the
//! "raw" column is the uncached typed store, and the ratio is the cache's speed-up).

use std::sync::Arc;
use std::time::Instant;

use typedkv::{CachedStore, Store};

use crate::args::Args;
use crate::cases::Bench;
use crate::measure::BenchResult;
use crate::payload::BenchUser;
use crate::report::Row;

/// Operations between two looks at the clock in the hot-hit loop: reading the clock costs
/// about as much as a hit.
const CLOCK_EVERY: u64 = 256;

/// Median ns per hot `get_shared` (always the same cached key) on `cached`, of any
/// backend: the standalone and the cluster case measure the same loop.
pub(crate) async fn hot_get_ns<B: typedkv::Trackable>(
    cached: &CachedStore<BenchUser, typedkv::Bincode, B>,
    id: &str,
    args: &Args,
) -> BenchResult<f64> {
    cached.get_shared(id).await?; // now cached
    let mut runs = Vec::new();
    for _ in 0..args.rounds.max(1) {
        let deadline = Instant::now() + args.slice();
        let started = Instant::now();
        let mut done = 0u64;
        while Instant::now() < deadline {
            for _ in 0..CLOCK_EVERY {
                if cached.get_shared(id).await?.is_none() {
                    return Err("cached get: the key vanished".into());
                }
            }
            done += CLOCK_EVERY;
        }
        runs.push(started.elapsed().as_nanos() as f64 / done as f64);
    }
    Ok(crate::measure::median(runs))
}

impl Bench {
    /// A hot `get` (always the same cached key) at 1 task, cached vs uncached; the row's
    /// values are ops/s, and `cached_get_ns` reports the cached side per call.
    pub(crate) async fn cached_get(
        self: &Arc<Self>,
        cached: &CachedStore<BenchUser>,
    ) -> BenchResult<Vec<Row>> {
        let id = self.ids[0][0].clone();
        cached.get_shared(&id).await?; // now cached
        let for_cached = (cached.clone(), id.clone());
        let compared = self
            .compare(
                1,
                move |_, _, deadline| {
                    let (cached, id) = for_cached.clone();
                    async move {
                        let mut done = 0;
                        while Instant::now() < deadline {
                            for _ in 0..CLOCK_EVERY {
                                if cached.get_shared(&id).await?.is_none() {
                                    return Err("cached get: the key vanished".into());
                                }
                            }
                            done += CLOCK_EVERY;
                        }
                        Ok(done)
                    }
                },
                move |b, _, deadline| {
                    let id = id.clone();
                    async move {
                        let mut done = 0;
                        while Instant::now() < deadline {
                            b.store.get(&id).await?;
                            done += 1;
                        }
                        Ok(done)
                    }
                },
            )
            .await?;
        let ns = 1e9 / compared.typed;
        Ok(vec![
            Row::compared("cached_get", 1, compared, 1.0, "ops/s"),
            Row::typed_only("cached_get_ns", ns, "ns"),
        ])
    }

    /// 90% `get`, 10% `set` over each task's 1000 keys, cached vs uncached store.
    pub(crate) async fn cached_mixed(
        self: &Arc<Self>,
        cached: &CachedStore<BenchUser>,
        tasks: usize,
    ) -> BenchResult<Row> {
        let cached = cached.clone();
        let compared = self
            .compare(
                tasks,
                move |b, task, deadline| {
                    let cached = cached.clone();
                    async move { b.mixed_loop(&cached, task, deadline).await }
                },
                move |b, task, deadline| async move {
                    let store = b.store.clone();
                    b.mixed_loop(&store, task, deadline).await
                },
            )
            .await?;
        Ok(Row::compared("mixed_90/10", tasks, compared, 1.0, "ops/s"))
    }

    async fn mixed_loop(
        &self,
        store: &dyn Store<BenchUser>,
        task: usize,
        deadline: Instant,
    ) -> BenchResult<u64> {
        let mut i = 0u64;
        while Instant::now() < deadline {
            // A fixed stride through the keys, so reads hit keys written a while ago.
            let id = &self.ids[task][(i * 37 % 1000) as usize];
            if i.is_multiple_of(10) {
                store.set(id, &self.value).await?;
            } else {
                store.get(id).await?;
            }
            i += 1;
        }
        Ok(i)
    }
}

impl Bench {
    /// The typed layer alone: `get` of one value on a `MemoryStore` (no network), in ns.
    /// What the store adds to every call on any backend (key, decode, telemetry) shows here
    /// undiluted by a round trip.
    pub(crate) async fn memory_get(self: &Arc<Self>) -> BenchResult<Row> {
        let store = typedkv::MemoryStore::<BenchUser>::new("bench")?;
        store.set("1", &self.value).await?;
        let mut runs = Vec::new();
        for _ in 0..self.args.rounds.max(1) {
            let deadline = Instant::now() + self.args.slice();
            let started = Instant::now();
            let mut done = 0u64;
            while Instant::now() < deadline {
                for _ in 0..CLOCK_EVERY {
                    store.get("1").await?;
                }
                done += CLOCK_EVERY;
            }
            runs.push(started.elapsed().as_nanos() as f64 / done as f64);
        }
        Ok(Row::typed_only(
            "memory_get_ns",
            crate::measure::median(runs),
            "ns",
        ))
    }
}
