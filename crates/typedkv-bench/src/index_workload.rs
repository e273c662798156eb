//! The indexed workload that the cluster and single-server index cases share: writes that
//! move an entity to another age (one equality index), `find_by` of one age (10 matches),
//! and [`Lean`], the leanest hand-written redis-rs code for the same work, so every typed
//! contender is measured beside what the layout itself costs. Beside them, writes that keep
//! a unique value ([`unique_write_of`]) and [`LeanUnique`], their lean counterpart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use futures::TryStreamExt;
use futures::future::try_join_all;
use redis::AsyncCommands;
use redis::aio::ConnectionLike;
use typedkv::{Backend, Index, Keyspace, Store, StoreBuilder, TypedStore};

use crate::measure::BenchResult;
use crate::payload::{BenchUser, raw_decode, raw_encode};
use crate::peer_cases::{Contender, contender, timed_until};

/// Distinct ages, and entities per age, in the `find_by` case.
const AGES: u32 = 100;
pub(crate) const MATCHES: u32 = 10;
/// Ids each writing task cycles through.
const IDS_PER_TASK: u64 = 1000;

/// `builder` with the workload's one equality index, on the age.
pub(crate) fn age_indexed<B: Backend>(
    builder: StoreBuilder<BenchUser, B, typedkv::Bincode>,
) -> StoreBuilder<BenchUser, B, typedkv::Bincode> {
    builder.index(Index::equality("age", |u: &BenchUser| {
        [u.age().to_string()]
    }))
}

/// The write of the bench's loop: task `t`'s `i`-th write moves entity `t-(i mod 1000)` to
/// age `(i + i / 1000) mod 100`, one more than its age at its previous write, so every
/// write after an entity's first moves it to another term. (`i mod 100` alone, used until
/// 2026-12-06, gave each entity the same age at every write: the case measured rewrites.)
pub(crate) fn write_of(task: usize, i: u64) -> (String, BenchUser) {
    let id = format!("{task}-{}", i % IDS_PER_TASK);
    let age = (i + i / IDS_PER_TASK) % u64::from(AGES);
    (id, BenchUser::aged(age as u32))
}

/// `builder` with the unique workload's index: each user's numeric id, unique.
pub(crate) fn id_unique<B: Backend>(
    builder: StoreBuilder<BenchUser, B, typedkv::Bincode>,
) -> StoreBuilder<BenchUser, B, typedkv::Bincode> {
    builder.index(Index::unique("uid", |u: &BenchUser| [u.id().to_string()]))
}

/// The unique workload's write: task `t`'s `i`-th write rewrites entity `t-(i mod 1000)`
/// with its own value, whose numeric id no other entity has (every write after an
/// entity's first keeps its unique value, as most writes of a unique field do).
pub(crate) fn unique_write_of(task: usize, i: u64) -> (String, BenchUser) {
    let n = i % IDS_PER_TASK;
    let user = BenchUser::numbered(task as u64 * IDS_PER_TASK + n);
    (format!("{task}-{n}"), user)
}

/// The age task `task` asks for in its `i`-th query.
pub(crate) fn query_of(task: usize, i: u64) -> u32 {
    ((i + task as u64) % u64::from(AGES)) as u32
}

/// The entities the `find_by` cases read: `MATCHES` of every age.
pub(crate) fn population() -> impl Iterator<Item = (String, BenchUser)> {
    (0..AGES * MATCHES).map(|n| (format!("u{n}"), BenchUser::aged(n % AGES)))
}

/// The hand-written way to keep one equality index, as lean as it gets, in typedkv's slots
/// (its keyspace places every key, so on a cluster both spread alike): per partition tag a
/// Redis set of ids per age, and per entity its value (bincode, no envelope) and a record
/// of its age. A write is one script (`GET` the record, `SREM` + `SADD` when the age moves,
/// `SET` value and record); `find_by` is one `SMEMBERS` per partition, then one `MGET` per
/// partition with matches, and decoding. [`Lean::one_sorted_set`] keeps typedkv's layout
/// instead (one sorted set per index, members `age:id`), for writes only: the difference
/// is what the layout costs.
#[derive(Clone)]
pub(crate) struct Lean<C> {
    conn: C,
    keyspace: Arc<Keyspace>,
    /// `{...}` of every partition.
    tags: Arc<Vec<String>>,
    script: Arc<redis::Script>,
    sorted: bool,
}

/// [`Lean`]'s write.
const LEAN_WRITE: &str = r"
local old = redis.call('GET', KEYS[2])
if old ~= ARGV[2] then
  if old then redis.call('SREM', ARGV[4] .. old, ARGV[3]) end
  redis.call('SADD', KEYS[3], ARGV[3])
  redis.call('SET', KEYS[2], ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// [`LEAN_WRITE`] with typedkv's layout: one sorted set of `age:id` members.
const LEAN_WRITE_SORTED: &str = r"
local old = redis.call('GET', KEYS[2])
if old ~= ARGV[2] then
  if old then redis.call('ZREM', KEYS[3], old .. ':' .. ARGV[3]) end
  redis.call('ZADD', KEYS[3], 0, ARGV[2] .. ':' .. ARGV[3])
  redis.call('SET', KEYS[2], ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

impl<C: ConnectionLike + Clone + Send + Sync + 'static> Lean<C> {
    /// The lean code on `conn`, with keys of `keyspace` (which must be tagged).
    pub(crate) fn new(conn: C, keyspace: Keyspace) -> BenchResult<Lean<C>> {
        let mut tags = BTreeSet::new();
        for n in 0.. {
            if tags.len() == keyspace.partitions() {
                break;
            }
            tags.insert(tag(&keyspace.key(&n.to_string())?).to_owned());
        }
        Ok(Lean {
            conn,
            keyspace: Arc::new(keyspace),
            tags: Arc::new(tags.into_iter().collect()),
            script: Arc::new(redis::Script::new(LEAN_WRITE)),
            sorted: false,
        })
    }

    /// The same writes on one sorted set per index, as typedkv keeps them.
    pub(crate) fn one_sorted_set(mut self) -> Lean<C> {
        self.script = Arc::new(redis::Script::new(LEAN_WRITE_SORTED));
        self.sorted = true;
        self
    }

    pub(crate) async fn set(&self, id: &str, user: &BenchUser) -> BenchResult<()> {
        let key = self.keyspace.key(id)?;
        let tag = tag(&key);
        let age = user.age();
        let index = match self.sorted {
            true => format!("{tag}:ages"),
            false => format!("{tag}:age:{age}"),
        };
        let () = self
            .script
            .key(&key)
            .key(format!("{tag}:age-of:{id}"))
            .key(index)
            .arg(raw_encode(user)?)
            .arg(age)
            .arg(id)
            .arg(format!("{tag}:age:"))
            .invoke_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    async fn find_by(&self, age: u32) -> BenchResult<Vec<(String, BenchUser)>> {
        if self.sorted {
            return Err("the sorted-set lean code measures writes only".into());
        }
        let members = self.tags.iter().map(|tag| async move {
            let ids: Vec<String> = self
                .conn
                .clone()
                .smembers(format!("{tag}:age:{age}"))
                .await?;
            let keys: Vec<String> = ids.iter().map(|id| format!("{tag}:{id}")).collect();
            let values: Vec<Option<Vec<u8>>> = match keys.is_empty() {
                true => Vec::new(),
                false => self.conn.clone().mget(&keys).await?,
            };
            BenchResult::Ok(ids.into_iter().zip(values))
        });
        let mut found = Vec::new();
        for (id, value) in try_join_all(members).await?.into_iter().flatten() {
            if let Some(bytes) = value {
                found.push((id, raw_decode(&bytes)?));
            }
        }
        Ok(found)
    }
}

/// The leanest write of an entity with one unique value, hand-written: a claim key per
/// value holding its entity's id, a record of each entity's value, and the entity's bytes.
/// Only a change of value touches the claims: the one it takes is refused (`0`) if another
/// entity holds it, and the old one is freed. No ordered entries (typedkv's keep `find_by`
/// pages in id order), no repair of claims left by writes made around the script: the floor
/// of what a unique write costs, not a replacement for one.
const LEAN_UNIQUE: &str = r"
local old = redis.call('GET', KEYS[2])
if old ~= ARGV[2] then
  local holder = redis.call('GET', KEYS[3])
  if holder and holder ~= ARGV[3] then return 0 end
  redis.call('SET', KEYS[3], ARGV[3])
  if old then redis.call('DEL', ARGV[4] .. old) end
  redis.call('SET', KEYS[2], ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[1])
return 1
";

/// [`LEAN_UNIQUE`] on `conn`, under a namespace of its own (untagged: one server).
#[derive(Clone)]
pub(crate) struct LeanUnique<C> {
    conn: C,
    script: Arc<redis::Script>,
    namespace: Arc<str>,
    /// `namespace#uq:`, formatted once rather than per write.
    claims: Arc<str>,
}

impl<C: ConnectionLike + Clone + Send + Sync + 'static> LeanUnique<C> {
    pub(crate) fn new(conn: C, namespace: &str) -> LeanUnique<C> {
        LeanUnique {
            conn,
            script: Arc::new(redis::Script::new(LEAN_UNIQUE)),
            namespace: namespace.into(),
            claims: format!("{namespace}#uq:").into(),
        }
    }

    /// Writes `user` as `id`, claiming its numeric id; a claim held is an error.
    pub(crate) async fn set(&self, id: &str, user: &BenchUser) -> BenchResult<()> {
        let (ns, uid) = (&self.namespace, user.id().to_string());
        let done: i64 = self
            .script
            .key(format!("{ns}:{id}"))
            .key(format!("{ns}#of:{id}"))
            .key(format!("{}{uid}", self.claims))
            .arg(raw_encode(user)?)
            .arg(&uid)
            .arg(id)
            .arg(&*self.claims)
            .invoke_async(&mut self.conn.clone())
            .await?;
        match done {
            1 => Ok(()),
            _ => Err(format!("the lean unique write of {id} found its value held").into()),
        }
    }
}

/// `{...}` of a tagged key.
fn tag(key: &str) -> &str {
    key.find('}').map_or(key, |end| &key[..=end])
}

/// The writes ([`write_of`]), or the queries, of a typed store.
pub(crate) fn typed<B: Backend>(
    name: &'static str,
    store: TypedStore<BenchUser, B>,
    write: bool,
) -> Contender {
    if write {
        return typed_writes(name, store, write_of);
    }
    contender(name, move |task, deadline| {
        let store = store.clone();
        async move {
            timed_until!(deadline, |i| async {
                let age = query_of(task, i).to_string();
                let found: Vec<_> = store.find_by("age", age.as_bytes()).try_collect().await?;
                expect_matches(found.len())
            })
        }
    })
}

/// The writes of a typed store, task `t`'s `i`-th being `writes(t, i)`.
pub(crate) fn typed_writes<B: Backend>(
    name: &'static str,
    store: TypedStore<BenchUser, B>,
    writes: fn(usize, u64) -> (String, BenchUser),
) -> Contender {
    contender(name, move |task, deadline| {
        let store = store.clone();
        async move {
            timed_until!(deadline, |i| async {
                let (id, user) = writes(task, i);
                Ok(store.set(&id, &user).await?)
            })
        }
    })
}

/// The writes of [`LeanUnique`]: [`unique_write_of`].
pub(crate) fn lean_unique<C: ConnectionLike + Clone + Send + Sync + 'static>(
    name: &'static str,
    lean: LeanUnique<C>,
) -> Contender {
    contender(name, move |task, deadline| {
        let lean = lean.clone();
        async move {
            timed_until!(deadline, |i| async {
                let (id, user) = unique_write_of(task, i);
                lean.set(&id, &user).await
            })
        }
    })
}

/// The writes, or the queries, of [`Lean`].
pub(crate) fn lean<C: ConnectionLike + Clone + Send + Sync + 'static>(
    name: &'static str,
    lean: Lean<C>,
    write: bool,
) -> Contender {
    contender(name, move |task, deadline| {
        let lean = lean.clone();
        async move {
            timed_until!(deadline, |i| async {
                if write {
                    let (id, user) = write_of(task, i);
                    return lean.set(&id, &user).await;
                }
                expect_matches(lean.find_by(query_of(task, i)).await?.len())
            })
        }
    })
}

fn expect_matches(found: usize) -> BenchResult<()> {
    match found == MATCHES as usize {
        true => Ok(()),
        false => Err(format!("find_by found {found}, not {MATCHES}").into()),
    }
}
