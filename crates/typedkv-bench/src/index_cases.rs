//! The index cases: what an indexed write costs against a plain one (the "raw" column is the
//! same typed store without indexes), and `find_by` against the hand-written way of finding
//! by field: a Redis set of ids per value, `SMEMBERS` + `MGET` + decode, both sides
//! collecting the `(id, value)` pairs a caller gets. `--only indexes` measures the same
//! beside the lean hand-written code of `index_workload.rs`, with CPU per call.

use std::sync::Arc;
use std::time::Instant;

use futures::future::BoxFuture;
use futures::{FutureExt, TryStreamExt};
use redis::AsyncCommands;
use typedkv::redis::RedisPool;
use typedkv::{Index, Keyspace, RedisStore, Store};

use crate::cases::{Bench, KEYS_PER_TASK, PREFIX, raw_key, until};
use crate::index_workload::{
    Lean, LeanUnique, MATCHES, age_indexed, id_unique, lean, lean_unique, population, query_of,
    typed, typed_writes, unique_write_of,
};
use crate::measure::BenchResult;
use crate::payload::{BenchUser, raw_decode, raw_encode};
use crate::peer_cases::measure;
use crate::probe::Probe;
use crate::report::Row;

/// The reference side of the unique cases: a plain typed `set` of each task's own values.
fn plain_sets(
    values: Arc<Vec<Vec<BenchUser>>>,
) -> impl Fn(Arc<Bench>, usize, Instant) -> BoxFuture<'static, BenchResult<u64>> + Send + Sync + 'static
{
    move |b, task, deadline| {
        let values = Arc::clone(&values);
        async move {
            until!(deadline, |i| async {
                let value = &values[task][(i % KEYS_PER_TASK) as usize];
                Ok(b.store.set(b.id(task, i), value).await?)
            })
        }
        .boxed()
    }
}

impl Bench {
    /// A store of the bench's values on its pool, under `namespace`, with `indexes` indexes:
    /// 1 is an equality index on the email; 3 add the tags (three entries per value) and a
    /// range index on the creation time.
    fn indexed_store(&self, namespace: &str, indexes: usize) -> BenchResult<RedisStore<BenchUser>> {
        let mut builder =
            RedisStore::builder(self.store.backend().clone(), namespace)
                .index(Index::equality("email", |u: &BenchUser| {
                    [u.email().to_owned()]
                }));
        if indexes >= 3 {
            builder = builder
                .index(Index::equality("tag", |u: &BenchUser| u.tags().to_vec()))
                .index(Index::range("created", |u: &BenchUser| {
                    Some(u.created_at())
                }));
        }
        Ok(builder.build()?)
    }

    /// `set` with `indexes` indexes against the same `set` without.
    pub(crate) async fn set_indexed(
        self: &Arc<Self>,
        tasks: usize,
        indexes: usize,
    ) -> BenchResult<Row> {
        let indexed = self.indexed_store(&format!("{PREFIX}-ix{indexes}"), indexes)?;
        let compared = self
            .compare(
                tasks,
                move |b, task, deadline| {
                    let indexed = indexed.clone();
                    async move {
                        until!(deadline, |i| async {
                            Ok(indexed.set(b.id(task, i), &b.value).await?)
                        })
                    }
                },
                |b, task, deadline| async move {
                    until!(deadline, |i| async {
                        Ok(b.store.set(b.id(task, i), &b.value).await?)
                    })
                },
            )
            .await?;
        let case = if indexes == 1 {
            "set+1index"
        } else {
            "set+3indexes"
        };
        Ok(Row::compared(case, tasks, compared, 1.0, "ops/s"))
    }

    /// `set` on a store with one unique index (on the user's numeric id, so every entity
    /// holds its own value) against the same `set` without: each entity's value is its own
    /// on both sides.
    ///
    /// Beside it, [`LeanUnique`] against the same plain `set`: what the leanest code for a
    /// unique index reaches on this machine.
    pub(crate) async fn set_unique(self: &Arc<Self>, tasks: usize) -> BenchResult<Vec<Row>> {
        let unique = id_unique(RedisStore::builder(
            self.store.backend().clone(),
            format!("{PREFIX}-uq"),
        ))
        .build()?;
        // values[task][n]: the value of the task's n-th id, numbered uniquely.
        let values: Arc<Vec<Vec<BenchUser>>> = Arc::new(
            (0..tasks as u64)
                .map(|task| {
                    (0..KEYS_PER_TASK)
                        .map(|n| BenchUser::numbered(task * KEYS_PER_TASK + n))
                        .collect()
                })
                .collect(),
        );
        let (theirs, for_lean) = (Arc::clone(&values), Arc::clone(&values));
        let compared = self
            .compare(
                tasks,
                move |b, task, deadline| {
                    let (unique, values) = (unique.clone(), Arc::clone(&values));
                    async move {
                        until!(deadline, |i| async {
                            let value = &values[task][(i % KEYS_PER_TASK) as usize];
                            Ok(unique.set(b.id(task, i), value).await?)
                        })
                    }
                },
                plain_sets(theirs),
            )
            .await?;
        let typed = Row::compared("set+unique", tasks, compared, 1.0, "ops/s");
        let lean = self.set_unique_lean(tasks, for_lean).await?;
        Ok(vec![typed, lean])
    }

    /// The floor of a unique write: the leanest hand-written script for the same writes
    /// ([`LeanUnique`]) against the same plain typed `set`, in rounds of its own.
    async fn set_unique_lean(
        self: &Arc<Self>,
        tasks: usize,
        values: Arc<Vec<Vec<BenchUser>>>,
    ) -> BenchResult<Row> {
        let lean = LeanUnique::new(self.raw.clone(), &format!("{PREFIX}-lu"));
        let theirs = Arc::clone(&values);
        let compared = self
            .compare(
                tasks,
                move |b, task, deadline| {
                    let (lean, values) = (lean.clone(), Arc::clone(&values));
                    async move {
                        until!(deadline, |i| async {
                            let value = &values[task][(i % KEYS_PER_TASK) as usize];
                            lean.set(b.id(task, i), value).await
                        })
                    }
                },
                plain_sets(theirs),
            )
            .await?;
        Ok(Row::compared(
            "set+unique lean",
            tasks,
            compared,
            1.0,
            "ops/s",
        ))
    }

    /// `find_by` of [`MATCHES`] entities against `SMEMBERS` + `MGET` + decode of the same.
    pub(crate) async fn find_by(self: &Arc<Self>, tasks: usize) -> BenchResult<Row> {
        let store = age_indexed(RedisStore::builder(
            self.store.backend().clone(),
            format!("{PREFIX}-find"),
        ))
        .build()?;
        let mut raw = self.raw.clone();
        for (id, value) in population() {
            store.set(&id, &value).await?;
            let () = raw
                .set(raw_key(&format!("find-{id}")), raw_encode(&value)?)
                .await?;
            let () = raw.sadd(age_set(value.age()), &id).await?;
        }
        let compared = self
            .compare(
                tasks,
                move |_, task, deadline| {
                    let store = store.clone();
                    async move {
                        until!(deadline, |i| async {
                            let age = query_of(task, i).to_string();
                            let found: Vec<_> =
                                TryStreamExt::try_collect(store.find_by("age", age.as_bytes()))
                                    .await?;
                            if found.len() != MATCHES as usize {
                                return Err(format!("find_by found {}", found.len()).into());
                            }
                            Ok(())
                        })
                    }
                },
                |b, task, deadline| async move {
                    let mut conn = b.raw.clone();
                    until!(deadline, |i| async {
                        let age = query_of(task, i);
                        let ids: Vec<String> = conn.smembers(age_set(age)).await?;
                        let keys: Vec<String> = ids
                            .iter()
                            .map(|id| raw_key(&format!("find-{id}")))
                            .collect();
                        let values: Vec<Option<Vec<u8>>> = conn.mget(&keys).await?;
                        // What a caller gets back, as from find_by: (id, value) pairs.
                        let mut found: Vec<(String, BenchUser)> = Vec::with_capacity(ids.len());
                        for (id, bytes) in ids.into_iter().zip(values) {
                            if let Some(bytes) = bytes {
                                found.push((id, raw_decode(&bytes)?));
                            }
                        }
                        if found.len() != MATCHES as usize {
                            return Err(format!("SMEMBERS + MGET found {}", found.len()).into());
                        }
                        Ok(())
                    })
                },
            )
            .await?;
        Ok(Row::compared(
            "find_by(10)",
            tasks,
            compared,
            1.0,
            "queries/s",
        ))
    }

    /// Writes that move entities between ages (`write`), or `find_by` of one age, at 1
    /// and 64 tasks, each beside [`Lean`], with client and server CPU per call (`probe`):
    /// rows `indexes set ...` against a plain typed `set` of the same writes (the issue's
    /// reference; the indexed store also on a pool of `url` without batching), rows
    /// `indexes find_by(10) ...` against the lean reads.
    pub(crate) async fn beside_lean(
        &self,
        url: &str,
        probe: &Probe,
        write: bool,
    ) -> BenchResult<Vec<Row>> {
        let backend = self.store.backend();
        let namespace = |name: &str| format!("{PREFIX}-{name}");
        let indexed_on = |pool: &RedisPool, name: &str| {
            age_indexed(RedisStore::builder(pool.clone(), namespace(name))).build()
        };
        let indexed = |name: &str| indexed_on(backend, name);
        let lean_in = |name: &str| {
            let keyspace = Keyspace::hash_tagged(&namespace(name))?;
            Lean::new(self.raw.clone(), keyspace)
        };
        let tasks = [1, 64];
        if write {
            let plain = RedisStore::builder(backend.clone(), namespace("plain")).build()?;
            let unbatched = RedisPool::builder(url)
                .shared_connections(self.args.shared_connections)
                .batching(false)
                .build()?;
            let writers = [
                typed("typed plain", plain, true),
                typed("typed 1 index", indexed("age")?, true),
                typed(
                    "typed 1 index unbatched",
                    indexed_on(&unbatched, "age-unbatched")?,
                    true,
                ),
                lean("lean script", lean_in("lean")?, true),
                lean(
                    "lean sorted set",
                    lean_in("lean-sorted")?.one_sorted_set(),
                    true,
                ),
                typed_writes(
                    "typed unique",
                    id_unique(RedisStore::builder(backend.clone(), namespace("unique"))).build()?,
                    unique_write_of,
                ),
                lean_unique(
                    "lean unique",
                    LeanUnique::new(self.raw.clone(), &namespace("lean-unique")),
                ),
            ];
            return measure("indexes", "set", &writers, &tasks, &self.args, Some(probe)).await;
        }
        let (found, lean_found) = (indexed("age-find")?, lean_in("lean-find")?);
        for (id, user) in population() {
            found.set(&id, &user).await?;
            lean_found.set(&id, &user).await?;
        }
        let readers = [
            lean("lean", lean_found, false),
            typed("typed", found, false),
        ];
        measure(
            "indexes",
            "find_by(10)",
            &readers,
            &tasks,
            &self.args,
            Some(probe),
        )
        .await
    }
}

/// The hand-written index set of one age.
fn age_set(age: u32) -> String {
    format!("{PREFIX}-raw-idx:age:{age}")
}
