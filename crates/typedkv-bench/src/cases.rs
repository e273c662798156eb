//! The measured cases. "typed" is a `RedisStore` on a `RedisPool` with default settings;
//! "raw" is what the mission says users write by hand today: one redis-rs multiplexed
//! connection, `bincode::serde::encode_to_vec` + `SET`, `GET` + check for nil + decode.
//! Both start from the same string ids (prepared outside the timed loop, as a service has
//! them from its requests) and store the same value on the same server: typed passes the id,
//! the store builds the key; raw formats the key itself.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use typedkv::codec::Json;
use typedkv::envelope::Stamp;
use typedkv::{RedisStore, Store, StoreExt, Update, envelope};

use crate::args::Args;
use crate::measure::{
    BenchResult, Compared, compare, compare_ns, median, ns_per_call, ops_per_sec,
};
use crate::payload::{
    BenchUser, BorrowedUser, raw_decode, raw_encode, sample, typed_decode, typed_encode,
};
use crate::report::Row;

/// Keys each task cycles through.
pub(crate) const KEYS_PER_TASK: u64 = 1000;
/// Values per `get_many` / `set_many` call.
pub(crate) const BATCH: usize = 100;
/// Prefix of every key the benchmark writes.
pub(crate) const PREFIX: &str = "typedkv-bench";
/// Most concurrent tasks of any case.
pub(crate) const MAX_TASKS: usize = 64;

/// What every case works on; shared by all tasks through an `Arc`.
pub(crate) struct Bench {
    pub(crate) store: RedisStore<BenchUser>,
    pub(crate) raw: MultiplexedConnection,
    pub(crate) value: BenchUser,
    pub(crate) args: Args,
    /// `ids[task][n]`: the ids task `task` cycles through, `"{task}-{n}"`.
    pub(crate) ids: Vec<Vec<String>>,
}

/// The ids of every task.
pub(crate) fn all_ids() -> Vec<Vec<String>> {
    (0..MAX_TASKS)
        .map(|task| (0..KEYS_PER_TASK).map(|n| format!("{task}-{n}")).collect())
        .collect()
}

/// The key hand-written code uses for an id.
pub(crate) fn raw_key(id: &str) -> String {
    format!("{PREFIX}-raw:{id}")
}

fn missing(what: &str) -> typedkv::BoxError {
    format!("{what}: a key the benchmark wrote is missing").into()
}

/// The body of a task: runs `$body` (an async block giving `BenchResult<()>`, with `$i` the
/// iteration) until `$deadline`, and answers how many times it ran. Each task owns its
/// handles (an `Arc` of the bench, a connection clone) for the whole run, as service code
/// does, so no per-call clone of shared handles is measured on either side.
macro_rules! until {
    ($deadline:expr, |$i:ident| $body:expr) => {{
        let mut $i: u64 = 0;
        while Instant::now() < $deadline {
            let done: BenchResult<()> = $body.await;
            done?;
            $i += 1;
        }
        Ok($i)
    }};
}
pub(crate) use until;

impl Bench {
    /// The id task `task` uses in iteration `i`.
    pub(crate) fn id(&self, task: usize, i: u64) -> &str {
        &self.ids[task][(i % KEYS_PER_TASK) as usize]
    }

    /// [`BATCH`] consecutive ids of `task`, starting at a position derived from `i`.
    fn batch(&self, task: usize, i: u64) -> impl Iterator<Item = &str> {
        (0..BATCH as u64).map(move |k| self.id(task, i * 7 + k))
    }

    /// Runs `typed` and `raw` (each a task body: `(task, deadline) -> operations done`) as
    /// [`compare`] does, each task getting its own handle on the bench.
    pub(crate) async fn compare<F, Fut, G, Gut>(
        self: &Arc<Self>,
        tasks: usize,
        typed: F,
        raw: G,
    ) -> BenchResult<Compared>
    where
        F: Fn(Arc<Bench>, usize, Instant) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = BenchResult<u64>> + Send + 'static,
        G: Fn(Arc<Bench>, usize, Instant) -> Gut + Send + Sync + 'static,
        Gut: std::future::Future<Output = BenchResult<u64>> + Send + 'static,
    {
        let (for_typed, for_raw) = (Arc::clone(self), Arc::clone(self));
        compare(
            tasks,
            self.args.slice(),
            self.args.rounds,
            Arc::new(move |task, deadline| typed(Arc::clone(&for_typed), task, deadline)),
            Arc::new(move |task, deadline| raw(Arc::clone(&for_raw), task, deadline)),
        )
        .await
    }

    /// `set` of one value.
    pub(crate) async fn set(self: &Arc<Self>, tasks: usize) -> BenchResult<Row> {
        let compared = self
            .compare(
                tasks,
                |b, task, deadline| async move {
                    until!(deadline, |i| async {
                        Ok(b.store.set(b.id(task, i), &b.value).await?)
                    })
                },
                |b, task, deadline| async move {
                    let mut conn = b.raw.clone();
                    until!(deadline, |i| async {
                        let bytes = raw_encode(&b.value)?;
                        let () = conn.set(raw_key(b.id(task, i)), bytes).await?;
                        Ok(())
                    })
                },
            )
            .await?;
        Ok(Row::compared("set", tasks, compared, 1.0, "ops/s"))
    }

    /// `get` of one existing value (the `set` case wrote them).
    pub(crate) async fn get(self: &Arc<Self>, tasks: usize) -> BenchResult<Row> {
        let compared = self
            .compare(
                tasks,
                |b, task, deadline| async move {
                    until!(deadline, |i| async {
                        b.store
                            .get(b.id(task, i))
                            .await?
                            .ok_or_else(|| missing("typed get"))?;
                        Ok(())
                    })
                },
                |b, task, deadline| async move {
                    let mut conn = b.raw.clone();
                    until!(deadline, |i| async {
                        let bytes: Option<Vec<u8>> = conn.get(raw_key(b.id(task, i))).await?;
                        raw_decode(&bytes.ok_or_else(|| missing("raw get"))?)?;
                        Ok(())
                    })
                },
            )
            .await?;
        Ok(Row::compared("get", tasks, compared, 1.0, "ops/s"))
    }

    /// `set_many` of [`BATCH`] values vs `MSET`; reported in values per second.
    pub(crate) async fn set_many(self: &Arc<Self>, in_flight: usize) -> BenchResult<Row> {
        let compared = self
            .compare(
                in_flight,
                |b, task, deadline| async move {
                    until!(deadline, |i| async {
                        let entries: Vec<(&str, &BenchUser)> =
                            b.batch(task, i).map(|id| (id, &b.value)).collect();
                        Ok(b.store.set_many(&entries).await?)
                    })
                },
                |b, task, deadline| async move {
                    let mut conn = b.raw.clone();
                    until!(deadline, |i| async {
                        let entries = b
                            .batch(task, i)
                            .map(|id| Ok((raw_key(id), raw_encode(&b.value)?)))
                            .collect::<BenchResult<Vec<_>>>()?;
                        let () = conn.mset(&entries).await?;
                        Ok(())
                    })
                },
            )
            .await?;
        Ok(Row::compared(
            "set_many(100)",
            in_flight,
            compared,
            BATCH as f64,
            "values/s",
        ))
    }

    /// `get_many` of [`BATCH`] existing values vs `MGET`; reported in values per second.
    pub(crate) async fn get_many(self: &Arc<Self>, in_flight: usize) -> BenchResult<Row> {
        let compared = self
            .compare(
                in_flight,
                |b, task, deadline| async move {
                    until!(deadline, |i| async {
                        let ids: Vec<&str> = b.batch(task, i).collect();
                        let values = b.store.get_many(&ids).await?;
                        if values.iter().any(Option::is_none) {
                            return Err(missing("typed get_many"));
                        }
                        Ok(())
                    })
                },
                |b, task, deadline| async move {
                    let mut conn = b.raw.clone();
                    until!(deadline, |i| async {
                        let keys: Vec<String> = b.batch(task, i).map(raw_key).collect();
                        let found: Vec<Option<Vec<u8>>> = conn.mget(&keys).await?;
                        // Kept, as the typed call returns them: freeing 100 values at once
                        // costs the allocator more than freeing each right after decoding.
                        let values = found
                            .into_iter()
                            .map(|bytes| {
                                Ok(raw_decode(&bytes.ok_or_else(|| missing("raw mget"))?)?)
                            })
                            .collect::<BenchResult<Vec<BenchUser>>>()?;
                        std::hint::black_box(values);
                        Ok(())
                    })
                },
            )
            .await?;
        Ok(Row::compared(
            "get_many(100)",
            in_flight,
            compared,
            BATCH as f64,
            "values/s",
        ))
    }

    /// `update` (read + compare-and-swap) ops/s at `tasks` tasks, each on its own key
    /// (`hot` false) or all on one key (`hot` true). Typed only: hand-written code would need
    /// WATCH/MULTI on a connection of its own, a different design rather than a baseline.
    pub(crate) async fn update(self: &Arc<Self>, tasks: usize, hot: bool) -> BenchResult<Row> {
        let counters: RedisStore<u64> =
            RedisStore::builder(self.store.backend().clone(), format!("{PREFIX}-counter"))
                .build()?;
        let run = Arc::new(move |task: usize, deadline: Instant| {
            let counters = counters.clone();
            async move {
                let id = if hot {
                    "hot".to_owned()
                } else {
                    task.to_string()
                };
                until!(deadline, |_i| async {
                    counters
                        .update_with(&id, |n| Update::Set(n.unwrap_or(0) + 1))
                        .await?;
                    Ok(())
                })
            }
        });
        let mut runs = Vec::with_capacity(self.args.rounds);
        for _ in 0..self.args.rounds {
            runs.push(ops_per_sec(tasks, self.args.slice(), Arc::clone(&run)).await?);
        }
        let case = if hot {
            "update_hot_key"
        } else {
            "update_own_key"
        };
        Ok(Row::typed_only_at(case, tasks, median(runs), "ops/s"))
    }

    /// Encode + decode of the value: the store's path (envelope, pre-sized buffer) vs
    /// `encode_to_vec` + `decode_from_slice`; and JSON, which has no raw counterpart here.
    ///
    /// `case` names the process state: glibc's `calloc` (which bincode's own decoding uses for
    /// every `String`; typedkv's does not) is much faster while a process has a single thread,
    /// so `main` measures once before the tokio runtime exists and once inside it, where
    /// services run.
    pub(crate) fn codecs(args: &Args, case: &'static str) -> BenchResult<Vec<Row>> {
        let value = &sample();
        let hint = typed_encode(value, 0)?.len();
        let (rounds, iterations) = (args.rounds, codec_iterations(args));
        let both = compare_ns(
            rounds,
            iterations,
            || {
                let back = typed_decode(&typed_encode(value, hint)?)?;
                std::hint::black_box(back);
                Ok(())
            },
            || {
                std::hint::black_box(raw_decode(&raw_encode(value)?)?);
                Ok(())
            },
        )?;
        let json_hint = envelope::encode(&Json::new(), Stamp::new(1), value, 0)?.len();
        let json = ns_per_call(rounds, iterations, || {
            let bytes = envelope::encode(&Json::new(), Stamp::new(1), value, json_hint)?;
            let back: BenchUser =
                envelope::decode(&Json::new(), Stamp::new(1), &bytes).map_err(|(p, _)| p)?;
            std::hint::black_box(back);
            Ok(())
        })?;
        let json_case = if case == "codec_bincode" {
            "codec_json"
        } else {
            "codec_json_1thread"
        };
        Ok(vec![
            Row::compared(case, 1, both, 1.0, "ns/op"),
            Row::typed_only(json_case, json, "ns/op"),
        ])
    }

    /// Where the codec's time goes: encode and decode alone, typed vs raw; and the two floors
    /// under any bincode decode of an owned value: building the value's heap parts (five
    /// strings and a vector) with no decoding, and bincode decoding the bytes with its text
    /// borrowed (no strings built).
    pub(crate) fn codec_breakdown(args: &Args) -> BenchResult<Vec<Row>> {
        let value = &sample();
        let hint = typed_encode(value, 0)?.len();
        let (stored, raw_bytes) = (typed_encode(value, hint)?, raw_encode(value)?);
        let (rounds, iterations) = (args.rounds, codec_iterations(args));
        let encode = compare_ns(
            rounds,
            iterations,
            || {
                std::hint::black_box(typed_encode(value, hint)?);
                Ok(())
            },
            || {
                std::hint::black_box(raw_encode(value)?);
                Ok(())
            },
        )?;
        let decode = compare_ns(
            rounds,
            iterations,
            || {
                std::hint::black_box(typed_decode(&stored)?);
                Ok(())
            },
            || {
                std::hint::black_box(raw_decode(&raw_bytes)?);
                Ok(())
            },
        )?;
        let clone = ns_per_call(rounds, iterations, || {
            std::hint::black_box(std::hint::black_box(value).clone());
            Ok(())
        })?;
        let borrowed = ns_per_call(rounds, iterations, || {
            let (back, _): (BorrowedUser<'_>, usize) =
                bincode::serde::borrow_decode_from_slice(&raw_bytes, bincode::config::standard())?;
            std::hint::black_box(back);
            Ok(())
        })?;
        Ok(vec![
            Row::compared("codec_bincode_encode", 1, encode, 1.0, "ns/op"),
            Row::compared("codec_bincode_decode", 1, decode, 1.0, "ns/op"),
            Row::typed_only("codec_value_clone", clone, "ns/op"),
            Row::typed_only("codec_decode_borrowed", borrowed, "ns/op"),
        ])
    }

    /// `get` at 16 tasks on random ids of a namespace holding `keys` keys, typed vs raw on the
    /// same keys (raw skips the envelope header by hand); loads the keys it is missing first,
    /// so call it with growing sizes. Redis itself slows down as its table outgrows the CPU
    /// caches, so what must stay flat is the ratio.
    pub(crate) async fn get_with_keys_loaded(
        self: &Arc<Self>,
        keys: u64,
        loaded: &mut u64,
    ) -> BenchResult<Row> {
        let namespace = format!("{PREFIX}-flat");
        let store: RedisStore<BenchUser> =
            RedisStore::builder(self.store.backend().clone(), namespace.as_str()).build()?;
        while *loaded < keys {
            let end = (*loaded + 1000).min(keys);
            let ids: Vec<String> = (*loaded..end).map(|n| n.to_string()).collect();
            let entries: Vec<(&str, &BenchUser)> =
                ids.iter().map(|id| (id.as_str(), &self.value)).collect();
            store.set_many(&entries).await?;
            *loaded = end;
        }
        let ids: Arc<Vec<String>> = Arc::new((0..keys).map(|n| n.to_string()).collect());
        // A cheap scatter over the whole key range (splitmix64 of task and i).
        let pick = move |task: usize, i: u64| {
            let mut x = ((task as u64) << 40 ^ i).wrapping_add(0x9E37_79B9_7F4A_7C15);
            x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((x ^ (x >> 31)) % keys) as usize
        };
        let typed_ids = Arc::clone(&ids);
        let compared = self
            .compare(
                16,
                move |_, task, deadline| {
                    let (store, ids) = (store.clone(), Arc::clone(&typed_ids));
                    async move {
                        until!(deadline, |i| async {
                            store
                                .get(&ids[pick(task, i)])
                                .await?
                                .ok_or_else(|| missing("flat get"))?;
                            Ok(())
                        })
                    }
                },
                move |b, task, deadline| {
                    let (ids, namespace) = (Arc::clone(&ids), namespace.clone());
                    async move {
                        let mut conn = b.raw.clone();
                        until!(deadline, |i| async {
                            let key = format!("{namespace}:{}", ids[pick(task, i)]);
                            let bytes: Option<Vec<u8>> = conn.get(key).await?;
                            let bytes = bytes.ok_or_else(|| missing("flat raw get"))?;
                            raw_decode(bytes.get(envelope::HEADER_LEN..).unwrap_or_default())?;
                            Ok(())
                        })
                    }
                },
            )
            .await?;
        let case = match keys {
            1_000 => "get@1k_keys",
            100_000 => "get@100k_keys",
            _ => "get@1M_keys",
        };
        Ok(Row::compared(case, 16, compared, 1.0, "ops/s"))
    }
}

/// Calls per codec round: about `per_case` seconds' worth at ~300 ns per call in all.
fn codec_iterations(args: &Args) -> u32 {
    ((args.per_case.as_secs_f64() * 100_000.0) as u32).max(10_000)
}

/// How long a whole run takes at most, roughly, for the progress line.
pub(crate) fn estimate(args: &Args) -> Duration {
    // 16 compared cases (3 of them the cache's) with a quarter-slice warm-up each, 4 update
    // cases of half a case each, the peer cases (8 of 6 contenders: 30 cases' worth),
    // codecs, allocations, loading keys.
    args.per_case * 16 * 5 / 4 + args.per_case * 32 + Duration::from_secs(15)
}
