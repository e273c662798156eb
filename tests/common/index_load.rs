//! Indexes under load, for each topology's test binary: 64 tasks of random writes checked
//! against a full scan, 64 writers racing for one unique value, range pages read while
//! writers run, the same random writes on a partitioned store, and (on Redis) TTL'd
//! entities and their index keys leaving Redis. The
//! behaviour case by case is in the conformance suite.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use tokio::sync::Barrier;
use typedkv::{Backend, Error, Order, RangeQuery, SetOptions, Store, StoreExt, TypedStore, Update};
use typedkv_testkit::conformance::indexes::{
    Account, account, accounts_with, ids_by, ids_in_range,
};
use typedkv_testkit::conformance::partitions::{Member, members_with};

const TASKS: usize = 64;
const IDS: u64 = 300;
const EMAILS: [&str; 5] = ["a@x", "b@x", "c@x", "d@x", "e@x"];
const TAGS: [&str; 4] = ["red", "green", "blue", ""];
const HANDLES: u64 = 400;

/// A small xorshift generator: the tests need spread, not quality.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn member(&mut self) -> Member {
        let tags = TAGS.iter().filter(|_| self.below(2) == 0);
        let tags = tags.map(|t| t.to_string()).collect();
        Member {
            team: EMAILS[self.below(5) as usize].to_owned(),
            tags,
            score: self.below(101) as i64 - 50,
        }
    }

    fn account(&mut self) -> Account {
        let tags: Vec<&str> = TAGS
            .iter()
            .copied()
            .filter(|_| self.below(2) == 0)
            .collect();
        account(
            EMAILS[self.below(5) as usize],
            &format!("h{}", self.below(HANDLES)),
            &tags,
            self.below(101) as i64 - 50,
        )
    }
}

/// A store the load cases write to at random.
trait RandomWrites: Clone + Send + Sync + 'static {
    /// One random write; a failure the store's guarantees allow is fine, any other fails
    /// the test.
    fn random_write(&self, rng: &mut Rng) -> impl Future<Output = ()> + Send;
}

impl<B: Backend> RandomWrites for TypedStore<Account, B> {
    fn random_write(&self, rng: &mut Rng) -> impl Future<Output = ()> + Send {
        random_account_write(self, rng)
    }
}

impl<B: Backend> RandomWrites for TypedStore<Member, B> {
    fn random_write(&self, rng: &mut Rng) -> impl Future<Output = ()> + Send {
        random_member_write(self, rng, true)
    }
}

/// One task per seed writing to `store` at random, each from its own [`Rng`], until
/// `deadline` (for ever without one); each answers how many writes it made.
fn writers<S: RandomWrites>(
    store: &S,
    seeds: impl Iterator<Item = u64>,
    deadline: Option<Instant>,
) -> Vec<tokio::task::JoinHandle<u64>> {
    seeds
        .map(|seed| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut rng = Rng(seed);
                let mut writes = 0u64;
                while deadline.is_none_or(|deadline| Instant::now() < deadline) {
                    store.random_write(&mut rng).await;
                    writes += 1;
                }
                writes
            })
        })
        .collect()
}

/// One random write; unique conflicts are an expected answer, anything else fails the test.
async fn random_account_write<B: Backend>(users: &TypedStore<Account, B>, rng: &mut Rng) {
    let id = rng.below(IDS).to_string();
    let value = rng.account();
    let result = match rng.below(8) {
        0 | 1 => users.set(&id, &value).await,
        2 => {
            let ttl = Duration::from_millis(100 + rng.below(1400));
            users
                .set_opts(&id, &value, SetOptions::new().ttl(ttl))
                .await
                .map(drop)
        }
        3 => {
            let score = value.score;
            let f = |a: Option<Account>| match a {
                Some(a) => Update::Set(Account { score, ..a }),
                None => Update::Keep,
            };
            users.update_with(&id, f).await.map(drop)
        }
        4 => users.delete(&id).await.map(drop),
        5 => {
            let other = rng.below(IDS).to_string();
            let second = rng.account();
            users.set_many(&[(&id, &value), (&other, &second)]).await
        }
        6 => {
            let other = rng.below(IDS).to_string();
            users.delete_many(&[&id, &other]).await.map(drop)
        }
        _ => match users.get_versioned(&id).await {
            Ok(Some(v)) => users
                .set_if_version(&id, &value, &v.version)
                .await
                .map(drop),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) | Err(Error::UniqueViolation { .. }) => {}
        Err(e) => panic!("write of {id} failed: {e}"),
    }
}

/// 64 tasks write at random for `stress`; once every TTL has run out, each index answers
/// exactly what a full scan says, unique values have one holder, and a repair finds at most
/// the entries of expired entities to remove.
pub(crate) async fn indexes_agree_with_a_scan_after_random_writes<B: Backend>(
    backend: B,
    tagged: bool,
    stress: Duration,
) {
    let users = accounts_with(&backend, "stress", |b| b.hash_tag(tagged));
    let seeds = (0..TASKS as u64).map(|seed| seed * 7919 + 1);
    let tasks = writers(&users, seeds, Some(Instant::now() + stress));
    let mut writes = 0;
    for task in tasks {
        writes += task.await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(1600)).await; // every TTL has run out
    let scanned: BTreeMap<String, Account> = users.scan().try_collect().await.unwrap();
    eprintln!(
        "{} writes by {TASKS} tasks in {stress:?}; {} entities remain",
        writes,
        scanned.len()
    );
    assert!(writes > 1000, "{writes} writes");

    let expect = |keep: &dyn Fn(&Account) -> bool| -> Vec<String> {
        scanned
            .iter()
            .filter(|(_, a)| keep(a))
            .map(|(id, _)| id.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    for email in EMAILS {
        let mut found = ids_by(&users, "email", email).await;
        found.sort();
        assert_eq!(found, expect(&|a| a.email == email), "email {email}");
        assert_eq!(
            users.count_by("email", email.as_bytes()).await.unwrap(),
            found.len() as u64
        );
    }
    for tag in TAGS {
        let mut found = ids_by(&users, "tag", tag).await;
        found.sort();
        assert_eq!(
            found,
            expect(&|a| a.tags.iter().any(|t| t == tag)),
            "tag {tag:?}"
        );
    }
    let mut holders: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, a) in &scanned {
        holders.entry(a.handle.as_str()).or_default().push(id);
    }
    for h in 0..HANDLES {
        let handle = format!("h{h}");
        let want = holders.get(handle.as_str()).cloned().unwrap_or_default();
        assert!(want.len() <= 1, "handle {handle} held by {want:?}");
        let found = users
            .find_one_by("handle", handle.as_bytes())
            .await
            .unwrap();
        assert_eq!(
            found.map(|(id, _)| id),
            want.first().map(|id| id.to_string()),
            "{handle}"
        );
    }
    let mut by_score: Vec<(i64, &String)> = scanned.iter().map(|(id, a)| (a.score, id)).collect();
    by_score.sort();
    let ordered: Vec<String> = by_score.into_iter().map(|(_, id)| id.clone()).collect();
    assert_eq!(
        ids_in_range(&users, RangeQuery::all().limit(37)).await,
        ordered
    );
    let report = users.repair_indexes().await.unwrap();
    eprintln!("repair after the run: {report:?}");
    let entries: usize = scanned.values().map(|a| 3 + a.tags.len()).sum();
    assert_eq!(
        report.scanned - report.removed,
        entries as u64,
        "{report:?}"
    );
}

/// 64 writers claim one unique value at once: exactly one wins, the others get the typed
/// conflict; once the winner is deleted, or expires, the value can be claimed again.
pub(crate) async fn one_of_64_writers_wins_a_unique_value<B: Backend>(backend: B, tagged: bool) {
    let users = accounts_with(&backend, "race", |b| b.hash_tag(tagged));
    // Round 1's claims expire: long enough for 64 writes on a loaded machine, and checked
    // (a winner that expired mid-race frees the value for a second one, as it should).
    let ttl = Duration::from_secs(2);
    for round in 0..3 {
        let started = Instant::now();
        let gate = Arc::new(Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|n| {
                let (users, gate) = (users.clone(), Arc::clone(&gate));
                tokio::spawn(async move {
                    let claim = account("x@x", "the-one", &[], n as i64);
                    let options = match round {
                        1 => SetOptions::new().ttl(ttl),
                        _ => SetOptions::new(),
                    };
                    gate.wait().await;
                    (
                        n,
                        users
                            .set_opts(&format!("{round}-{n}"), &claim, options)
                            .await,
                    )
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                (n, Ok(true)) => winners.push(n),
                (_, Err(Error::UniqueViolation { index, .. })) => assert_eq!(index, "handle"),
                (n, other) => panic!("writer {n}: {other:?}"),
            }
        }
        if round == 1 && started.elapsed() >= ttl {
            assert!(!winners.is_empty(), "round 1: no winner");
            eprintln!("round 1 outlasted its TTL: {} winners", winners.len());
            tokio::time::sleep(ttl).await; // the last winner expires
        } else {
            assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
            let (holder, _) = users
                .find_one_by("handle", b"the-one")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(holder, format!("{round}-{}", winners[0]));
            match round {
                // It expires: its write ended before the race did.
                1 => tokio::time::sleep(ttl + Duration::from_millis(200)).await,
                _ => assert!(users.delete(&holder).await.unwrap()),
            }
        }
        assert_eq!(users.find_one_by("handle", b"the-one").await.unwrap(), None);
    }
}

/// Range pages read while writers move other entities: every entity that stays put is
/// answered exactly once, and entries come in strictly increasing (value, id) order across
/// pages (descending: decreasing); moved entities may be seen at either place or neither.
pub(crate) async fn range_pages_hold_while_writers_run<B: Backend>(backend: B, tagged: bool) {
    let users = accounts_with(&backend, "pages", |b| b.hash_tag(tagged));
    let stable: Vec<(String, Account)> = (0..150)
        .map(|i: i64| {
            (
                format!("s{i:03}"),
                account("s@x", &format!("s{i}"), &[], (i * 13) % 41 - 20),
            )
        })
        .collect();
    let refs: Vec<(&str, &Account)> = stable.iter().map(|(id, a)| (id.as_str(), a)).collect();
    users.set_many(&refs).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let writers: Vec<_> = (0..8u64)
        .map(|seed| {
            let users = users.clone();
            tokio::spawn(async move {
                let mut rng = Rng(seed + 99);
                while Instant::now() < deadline {
                    let id = format!("m{}", rng.below(60));
                    let moved = account("m@x", &id, &[], rng.below(61) as i64 - 30);
                    users.set(&id, &moved).await.unwrap();
                }
            })
        })
        .collect();
    let mut traversals = 0;
    while Instant::now() < deadline {
        for order in [Order::Ascending, Order::Descending] {
            let mut query = RangeQuery::all().limit(9).order(order);
            let mut seen: Vec<(i64, String)> = Vec::new();
            loop {
                let page = users.find_range("score", query.clone()).await.unwrap();
                seen.extend(page.items.into_iter().map(|(id, a)| (a.score, id)));
                match page.next {
                    Some(cursor) => query = query.after(cursor),
                    None => break,
                }
            }
            let increasing = seen.windows(2).all(|w| match order {
                Order::Ascending => w[0] < w[1],
                _ => w[0] > w[1],
            });
            assert!(increasing, "{order:?}: {seen:?}");
            let stable_seen: Vec<&String> = seen
                .iter()
                .map(|(_, id)| id)
                .filter(|id| id.starts_with('s'))
                .collect();
            assert_eq!(stable_seen.len(), 150, "{order:?}");
            assert_eq!(stable_seen.iter().collect::<BTreeSet<_>>().len(), 150);
            traversals += 1;
        }
    }
    for writer in writers {
        writer.await.unwrap();
    }
    assert!(traversals >= 2, "{traversals}");
}

/// `redis-cli` against the server on `port`.
pub(crate) fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs (it comes with redis-server)");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// An entity with a 2 s TTL is found before and not after; its index keys and record leave
/// Redis with it (seen with redis-cli), though nothing touched the store meanwhile.
pub(crate) async fn ttl_entities_leave_redis_with_their_index_entries<B: Backend>(
    backend: B,
    port_of: impl Fn(&str) -> u16,
    tagged: bool,
) {
    let ttl = Duration::from_secs(2);
    let users = accounts_with(&backend, "ttl", |b| b.ttl(ttl).hash_tag(tagged));
    let written = Instant::now();
    users
        .set("1", &account("a@x", "ann", &["t"], 1))
        .await
        .unwrap();
    let answered = Instant::now();
    assert_eq!(ids_by(&users, "email", "a@x").await, ["1"]);
    // Hash-tagged: every key in `{ttl}`'s slot; spread over a cluster: indexes and records
    // in `{ttl#ix}`'s.
    let base = if tagged { "{ttl}#ix:" } else { "{ttl#ix}:" };
    let record = if tagged {
        "{ttl}#rec:1"
    } else {
        "{ttl#ix}#rec:1"
    };
    let mut keys: Vec<String> = ["email", "email#exp", "handle", "tag", "score"]
        .iter()
        .map(|k| format!("{base}{k}"))
        .collect();
    keys.push(record.to_owned());
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    // PTTL: -2 for a missing key, -1 for one without expiry.
    let pttls: Vec<(&str, i64)> = keys
        .iter()
        .map(|key| (*key, cli(port_of(key), &["PTTL", key]).parse().unwrap()))
        .collect();
    // Present, with the entity's TTL, unless a loaded machine took the TTL to read them.
    if written.elapsed() < ttl {
        for (key, pttl) in pttls {
            assert!((1..=2000).contains(&pttl), "{key}: PTTL {pttl}");
        }
    }
    // Redis ran the write before answering: every key has expired by then.
    tokio::time::sleep_until((answered + ttl + Duration::from_millis(100)).into()).await;
    for key in keys.iter().copied() {
        assert_eq!(
            cli(port_of(key), &["EXISTS", key]),
            "0",
            "{key} after expiry"
        );
    }
    assert_eq!(ids_by(&users, "email", "a@x").await, Vec::<String>::new());
    assert_eq!(users.find_one_by("handle", b"ann").await.unwrap(), None);
}

/// 64 tasks write at random for `stress` to a store spread over 16 partitions (equality,
/// many-valued equality and range indexes; sets, TTLs, updates, deletes and batches that
/// span partitions), while 8 more are aborted mid-write; once every TTL has run out, each
/// index answers exactly what a full scan says, in the order one partition would, and a
/// repair finds at most the entries of expired entities to remove.
pub(crate) async fn partitioned_indexes_agree_with_a_scan<B: Backend>(
    backend: B,
    stress: Duration,
) {
    let store = members_with(&backend, "spread", |b| b.partitions(16));
    let seeds = (0..TASKS as u64).map(|seed| seed * 7919 + 1);
    let tasks = writers(&store, seeds, Some(Instant::now() + stress));
    // Writers killed mid-write: aborted wherever they are, between the partitions of a
    // batch or while a script runs. Each partition's step is whole or absent.
    let doomed = writers(&store, (0..8u64).map(|seed| seed * 104_729 + 3), None);
    let mut writes = 0;
    for task in tasks {
        writes += task.await.unwrap();
    }
    for task in doomed {
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
    }
    tokio::time::sleep(Duration::from_millis(1600)).await; // every TTL has run out
    let scanned = settled_scan(&store).await;
    eprintln!(
        "partitioned: {writes} writes by {TASKS} tasks in {stress:?}; {} entities remain",
        scanned.len()
    );
    assert!(writes > 1000, "{writes} writes");
    members_agree_with(&store, &scanned).await;
    let report = store.repair_indexes().await.unwrap();
    assert_eq!(
        report.scanned - report.removed,
        index_entries(&scanned),
        "{report:?}"
    );
}

/// Writes like [`partitioned_indexes_agree_with_a_scan`]'s from 64 tasks to a store of 16
/// partitions while `kill_a_master` kills one of its masters and waits for its replica's
/// promotion; writes may fail meanwhile. Once a write and a read succeed in every
/// partition (within `recovery`), the writers stop (aborted mid-write); after
/// `repair_indexes`, every index answers exactly what a full scan says, whatever the lost
/// writes were, and a second repair finds nothing to remove.
// Only the cluster's binary kills a master.
#[allow(dead_code)]
pub(crate) async fn partitioned_indexes_are_repaired_after_a_master_dies<B: Backend>(
    backend: B,
    kill_a_master: impl Future<Output = ()>,
    recovery: Duration,
) {
    const PARTITIONS: usize = 16;
    let store = members_with(&backend, "killed", |b| b.partitions(PARTITIONS as u16));
    let seeds = (0..TASKS as u64).map(|seed| seed * 6007 + 5);
    let tasks = writers(&MayFail(store.clone()), seeds, None);
    kill_a_master.await;
    // One probe id per partition, found by the partition its key's prefix names.
    let partition_of = |id: &str| {
        let key = store.keyspace().key(id).unwrap();
        store
            .index_spaces()
            .iter()
            .position(|space| key.starts_with(&space.entity_prefix))
            .unwrap()
    };
    let mut probes: BTreeMap<usize, String> = BTreeMap::new();
    for n in 0.. {
        if probes.len() == PARTITIONS {
            break;
        }
        let id = format!("probe-{n}");
        probes.entry(partition_of(&id)).or_insert(id);
    }
    // Every partition answers again: its probe written and read back.
    let probe = Member {
        team: "a@x".into(),
        tags: vec![],
        score: 0,
    };
    let deadline = Instant::now() + recovery;
    while let Some((&partition, id)) = probes.first_key_value() {
        let failure = match store.set(id, &probe).await {
            Ok(()) => store.get(id).await.err(),
            Err(e) => Some(e),
        };
        match failure {
            None => drop(probes.remove(&partition)),
            Some(e) => {
                assert!(
                    Instant::now() < deadline,
                    "partition {partition} ({id}) still fails {recovery:?} after the \
                     promotion: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    for task in tasks {
        task.abort();
        let _ = task.await;
    }
    tokio::time::sleep(Duration::from_millis(1600)).await; // every TTL has run out
    settled_scan(&store).await;
    let report = store.repair_indexes().await.unwrap();
    let scanned: BTreeMap<String, Member> = store.scan().try_collect().await.unwrap();
    eprintln!(
        "after a master died: {} entities, repair {report:?}",
        scanned.len()
    );
    members_agree_with(&store, &scanned).await;
    let again = store.repair_indexes().await.unwrap();
    assert_eq!(again.removed, 0, "{again:?}");
    assert_eq!(again.scanned, index_entries(&scanned), "{again:?}");
}

/// A full scan of `store` once writes stopped landing. An aborted writer's call that was
/// already in a batch is still sent after its caller left, and on a starved machine (a
/// loaded run of the whole suite: four clusters and two CPU hogs on two cores) such a
/// write landed after the scan that followed the abort, so the indexes counted an entity
/// the scan had not seen. Scans until two a moment apart agree; the indexes are then
/// checked against that, exactly.
async fn settled_scan<B: Backend>(store: &TypedStore<Member, B>) -> BTreeMap<String, Member> {
    let mut last: BTreeMap<String, Member> = store.scan().try_collect().await.unwrap();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let next: BTreeMap<String, Member> = store.scan().try_collect().await.unwrap();
        if next == last {
            return next;
        }
        eprintln!("writes still landing after the writers stopped: scanning again");
        last = next;
    }
    panic!("the store kept changing 10 s after its writers stopped");
}

/// How many index entries the members `scanned` hold: a team and a score each, and a tag
/// entry per tag.
fn index_entries(scanned: &BTreeMap<String, Member>) -> u64 {
    scanned.values().map(|m| 2 + m.tags.len() as u64).sum()
}

/// A store of members whose writes may fail (a master is dying). A failed writer waits a
/// little before its next write, as a real one would, so failing writers do not starve the
/// rest of the runtime.
#[allow(dead_code)]
#[derive(Clone)]
struct MayFail<B: Backend>(TypedStore<Member, B>);

impl<B: Backend> RandomWrites for MayFail<B> {
    async fn random_write(&self, rng: &mut Rng) {
        if member_write(&self.0, rng, true).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Every index of `store` answers exactly what `scanned` (a full scan) says, in the order
/// one partition would, pages and cursors included.
async fn members_agree_with<B: Backend>(
    store: &TypedStore<Member, B>,
    scanned: &BTreeMap<String, Member>,
) {
    teams_agree_with(store, scanned).await;
    for tag in TAGS {
        let mut found: Vec<String> = store
            .find_by("tag", tag.as_bytes())
            .map_ok(|(id, _)| id)
            .try_collect()
            .await
            .unwrap();
        found.sort();
        let want: Vec<&String> = scanned
            .iter()
            .filter(|(_, m)| m.tags.iter().any(|t| t == tag))
            .map(|(id, _)| id)
            .collect();
        assert_eq!(found.iter().collect::<Vec<_>>(), want, "tag {tag:?}");
    }
    let mut by_score: Vec<(i64, &String)> = scanned.iter().map(|(id, m)| (m.score, id)).collect();
    by_score.sort();
    let ordered: Vec<&String> = by_score.into_iter().map(|(_, id)| id).collect();
    let mut paged = Vec::new();
    let mut query = RangeQuery::all().limit(37);
    loop {
        let page = store.find_range("score", query.clone()).await.unwrap();
        paged.extend(page.items.into_iter().map(|(id, _)| id));
        match page.next {
            Some(cursor) => query = query.after(cursor),
            None => break,
        }
    }
    assert_eq!(paged.iter().collect::<Vec<_>>(), ordered);
}

/// `count_by` and `find_by` of every team answer what `scanned` says, ids in member order
/// (one partition's order, across all of them). Counted first: a query removes the stale
/// entries it finds, a count only counts, so a stale entry a write left shows there.
async fn teams_agree_with<B: Backend>(
    store: &TypedStore<Member, B>,
    scanned: &BTreeMap<String, Member>,
) {
    for team in EMAILS {
        let want: Vec<String> = scanned
            .iter()
            .filter(|(_, m)| m.team == team)
            .map(|(id, _)| id.clone())
            .collect();
        let count = store.count_by("team", team.as_bytes()).await.unwrap();
        let found: Vec<String> = store
            .find_by("team", team.as_bytes())
            .map_ok(|(id, _)| id)
            .try_collect()
            .await
            .unwrap();
        // The query (which drops stale entries) says which entity a wrong count came from.
        assert_eq!(
            count,
            want.len() as u64,
            "count of team {team}: the query found {found:?}, the scan {want:?}"
        );
        assert_eq!(found, want, "team {team}");
    }
}

/// 64 tasks write at random for `stress` to a store with one equality index, the shape
/// whose writes take the index script's shortest path (no TTL in play: before the TTL'd
/// writes, and after they expire, mixed with them meanwhile); once every TTL has run out,
/// the index answers what a full scan says and a repair finds at most the entries of
/// expired entities to remove.
pub(crate) async fn one_index_agrees_with_a_scan<B: Backend>(
    backend: B,
    tagged: bool,
    stress: Duration,
) {
    let store = TypedStore::<Member, B>::builder(backend.clone(), "one")
        .hash_tag(tagged)
        .index(typedkv::Index::equality("team", |m: &Member| {
            [m.team.clone()]
        }))
        .build()
        .unwrap();
    // Without TTLs first: the shortest path alone, checked at once (later TTL'd writes of
    // an id give any stale entry of its team an expiry, which would hide it).
    for round in [0u64, 1] {
        let seeds = (0..TASKS as u64).map(|seed| seed * 6007 + round);
        let deadline = Some(Instant::now() + stress / 2);
        let tasks = match round {
            0 => writers(&WithoutTtls(store.clone()), seeds, deadline),
            _ => writers(&store, seeds, deadline),
        };
        for task in tasks {
            task.await.unwrap();
        }
        if round == 0 {
            let scanned: BTreeMap<String, Member> = store.scan().try_collect().await.unwrap();
            teams_agree_with(&store, &scanned).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(1600)).await; // every TTL has run out
    let scanned: BTreeMap<String, Member> = store.scan().try_collect().await.unwrap();
    assert!(!scanned.is_empty());
    teams_agree_with(&store, &scanned).await;
    let report = store.repair_indexes().await.unwrap();
    assert_eq!(
        report.scanned - report.removed,
        scanned.len() as u64,
        "{report:?}"
    );
}

/// A store of members whose random writes never set a TTL.
#[derive(Clone)]
struct WithoutTtls<B: Backend>(TypedStore<Member, B>);

impl<B: Backend> RandomWrites for WithoutTtls<B> {
    fn random_write(&self, rng: &mut Rng) -> impl Future<Output = ()> + Send {
        random_member_write(&self.0, rng, false)
    }
}

/// One random write to a partitioned store; every write must succeed. Without `ttls`, no
/// write sets a TTL.
async fn random_member_write<B: Backend>(store: &TypedStore<Member, B>, rng: &mut Rng, ttls: bool) {
    if let Err((id, e)) = member_write(store, rng, ttls).await {
        panic!("write of {id} failed: {e}");
    }
}

/// One random write to a partitioned store (sets, updates, deletes, batches that span
/// partitions and, with `ttls`, TTLs); the id and the error of a failure.
async fn member_write<B: Backend>(
    store: &TypedStore<Member, B>,
    rng: &mut Rng,
    ttls: bool,
) -> Result<(), (String, Error)> {
    let id = rng.below(IDS).to_string();
    let value = rng.member();
    let result = match rng.below(if ttls { 7 } else { 6 }) {
        0 | 1 => store.set(&id, &value).await,
        2 => {
            let score = value.score;
            let f = |m: Option<Member>| match m {
                Some(m) => Update::Set(Member { score, ..m }),
                None => Update::Keep,
            };
            store.update_with(&id, f).await.map(drop)
        }
        3 => store.delete(&id).await.map(drop),
        4 => {
            let (other, second) = (rng.below(IDS).to_string(), rng.member());
            store.set_many(&[(&id, &value), (&other, &second)]).await
        }
        5 => {
            let other = rng.below(IDS).to_string();
            store.delete_many(&[&id, &other]).await.map(drop)
        }
        _ => {
            let ttl = Duration::from_millis(100 + rng.below(1400));
            let options = SetOptions::new().ttl(ttl);
            store.set_opts(&id, &value, options).await.map(drop)
        }
    };
    result.map_err(|e| (id, e))
}
