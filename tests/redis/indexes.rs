//! Indexes under load on a real redis-server (the shared load cases of
//! `tests/common/index_load.rs`), writes around the indexes made with `redis-cli`, and a
//! rebuild of 100k entities.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::TryStreamExt;

use typedkv::{Backend, Error, Store, TypedStore};
use typedkv_testkit::TestRedis;
use typedkv_testkit::conformance::indexes::{Account, account, accounts};

use crate::index_load::*;

/// The store of the report that found repair and unique claims trusting records: equality
/// `group`, unique `handle`, range `score`, untagged, on one server.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Item {
    group: String,
    handle: String,
    score: i64,
}

/// A store of [`Item`]s under `namespace` with the report's three indexes.
fn item_store(redis: &TestRedis, namespace: &str) -> TypedStore<Item, typedkv::redis::RedisPool> {
    TypedStore::builder(redis.pool(), namespace)
        .index(typedkv::Index::equality("group", |i: &Item| {
            [i.group.clone()]
        }))
        .index(typedkv::Index::unique("handle", |i: &Item| {
            [i.handle.clone()]
        }))
        .index(typedkv::Index::range("score", |i: &Item| Some(i.score)))
        .build()
        .unwrap()
}

/// A store of [`Item`]s under `namespace` with the unique `handle` index alone.
fn handle_store(redis: &TestRedis, namespace: &str) -> TypedStore<Item, typedkv::redis::RedisPool> {
    TypedStore::builder(redis.pool(), namespace)
        .index(typedkv::Index::unique("handle", |i: &Item| {
            [i.handle.clone()]
        }))
        .build()
        .unwrap()
}

/// An [`Item`].
fn item(group: &str, handle: &str, score: i64) -> Item {
    Item {
        group: group.into(),
        handle: handle.into(),
        score,
    }
}

/// Writes around the indexes made with `redis-cli` (`SET` of another entity's bytes, `DEL`):
/// the stale entries' unique values are free at once, `repair_indexes` removes every stale
/// entry (seen with `ZRANGE` on the index keys), and the entities' current values are what
/// queries answer.
async fn writes_made_with_redis_cli_are_repaired(redis: &TestRedis) {
    let items = item_store(redis, "e3");
    items.set("raw3", &item("graw", "hraw3", 3)).await.unwrap();
    items
        .set("donor", &item("gdonor", "hdonor", 5))
        .await
        .unwrap();
    items.set("gone", &item("ggone", "hgone", 7)).await.unwrap();
    let port = redis.port();
    let donor_bytes = redis.pool().get("e3:donor").await.unwrap().unwrap();
    let mut set = Command::new("redis-cli")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-x",
            "SET",
            "e3:raw3",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut set.stdin.take().unwrap(), &donor_bytes).unwrap();
    assert!(set.wait().unwrap().success());
    assert_eq!(cli(port, &["DEL", "e3:gone"]), "1");
    let zrange = |key: &str| cli(port, &["ZRANGE", key, "0", "-1"]);
    assert!(zrange("e3#ix:group").contains("grawraw3"));

    // hraw3 is free though raw3 still exists: its value no longer gives it.
    let claimer = item("gclaim", "hraw3", 9);
    items.set("claimer-hraw3", &claimer).await.unwrap();
    let found = items.find_one_by("handle", b"hraw3").await.unwrap();
    assert_eq!(found, Some(("claimer-hraw3".to_owned(), claimer)));
    // hdonor is taken: donor holds it (raw3 gives it too, but never through the indexes).
    assert!(matches!(
        items.set("claimer-hdonor", &item("g", "hdonor", 1)).await,
        Err(Error::UniqueViolation { .. })
    ));

    let report = items.repair_indexes().await.unwrap();
    // raw3's group and score, gone's three entries (raw3's handle went with the claim).
    assert_eq!(report.removed, 5, "{report:?}");
    let (groups, handles) = (zrange("e3#ix:group"), zrange("e3#ix:handle"));
    for stale in ["grawraw3", "ggonegone"] {
        assert!(!groups.contains(stale), "{groups}");
    }
    for stale in ["hgonegone", "hraw3raw3", "hdonorraw3"] {
        assert!(!handles.contains(stale), "{handles}");
    }
    assert_eq!(cli(port, &["EXISTS", "e3#rec:gone"]), "0");
    assert_eq!(items.repair_indexes().await.unwrap().removed, 0);
    items
        .set("after-repair", &item("g", "hgone", 1))
        .await
        .unwrap();
}

/// The moment a write script starts just before its entity's TTL runs out: Redis judges the
/// entity and its record alive by the script's start, while the script's clock, read later,
/// already says its index members expired, so they leave the index. A rewrite keeping those
/// entries must put them back (found once by the partitioned load case: an entity alive
/// with a tag its index had lost). Made deterministic here: the entity and its record are
/// kept alive with `PERSIST` while its members' expiry scores are moved into the past.
async fn a_rewrite_at_the_moment_of_expiry_keeps_the_entries(redis: &TestRedis) {
    let items: TypedStore<Item, _> = TypedStore::builder(redis.pool(), "e4")
        .index(typedkv::Index::equality("group", |i: &Item| {
            [i.group.clone()]
        }))
        .index(typedkv::Index::unique("handle", |i: &Item| {
            [i.handle.clone()]
        }))
        .build()
        .unwrap();
    let port = redis.port();
    let past = "local n = 0 \
        for _, key in ipairs(KEYS) do \
          for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do \
            n = n + redis.call('ZADD', key, 'XX', 'CH', 1, m) end end \
        return n";
    let items = &items;
    let ids = |name: &'static str, value: &'static str| async move {
        let found = items.find_by(name, value.as_bytes());
        let found: Vec<(String, Item)> = found.try_collect().await.unwrap();
        found.into_iter().map(|(id, _)| id).collect::<Vec<_>>()
    };
    // x is rewritten unchanged, y with another group; both keep their handle.
    for (id, group, rewritten) in [("x", "g1", "g1"), ("y", "g2", "g3")] {
        let mut item = Item {
            group: group.into(),
            handle: format!("h{id}"),
            score: 1,
        };
        let ttl = typedkv::SetOptions::new().ttl(Duration::from_secs(60));
        items.set_opts(id, &item, ttl).await.unwrap();
        for key in [format!("e4:{id}"), format!("e4#rec:{id}")] {
            assert_eq!(cli(port, &["PERSIST", &key]), "1", "{key}");
        }
        let expiries = ["e4#ix:group#exp", "e4#ix:handle#exp"];
        let moved = cli(port, &["EVAL", past, "2", expiries[0], expiries[1]]);
        assert_eq!(moved, "2", "{id}");
        item.group = rewritten.into();
        items.set(id, &item).await.unwrap();
    }
    assert_eq!(ids("group", "g1").await, ["x"]);
    assert_eq!(ids("group", "g3").await, ["y"]);
    assert_eq!(ids("handle", "hx").await, ["x"]);
    assert_eq!(ids("handle", "hy").await, ["y"]);
    assert_eq!(items.repair_indexes().await.unwrap().removed, 0);
}

/// A unique value another entity claimed while its first holder was deleted around the
/// indexes stays the new holder's: the first holder, written again with it, is refused,
/// though its record (left behind by the `DEL`) still names the value. A write keeping its
/// own value is not refused.
async fn a_record_left_behind_claims_nothing(redis: &TestRedis) {
    let items = handle_store(redis, "e6");
    items.set("a", &item("1", "h", 0)).await.unwrap();
    items.set("a", &item("2", "h", 0)).await.unwrap();
    assert_eq!(cli(redis.port(), &["DEL", "e6:a"]), "1");
    assert_eq!(cli(redis.port(), &["EXISTS", "e6#rec:a"]), "1");
    items.set("b", &item("3", "h", 0)).await.unwrap();
    // Taking the value removed a's member and, with it, the record left behind: a record
    // names only members in the index (a write whose record is unchanged checks no claim).
    assert_eq!(cli(redis.port(), &["EXISTS", "e6#rec:a"]), "0");
    items.set("b", &item("4", "h", 0)).await.unwrap();
    assert!(matches!(
        items.set("a", &item("5", "h", 0)).await,
        Err(Error::UniqueViolation { .. })
    ));
    let found = items.find_one_by("handle", b"h").await.unwrap();
    assert_eq!(found, Some(("b".to_owned(), item("4", "h", 0))));
    // Once b lets the value go, a takes it again: its entry is written anew, though its old
    // record already names it.
    assert!(items.delete("b").await.unwrap());
    items.set("a", &item("6", "h", 0)).await.unwrap();
    let found = items.find_one_by("handle", b"h").await.unwrap();
    assert_eq!(found, Some(("a".to_owned(), item("6", "h", 0))));
    assert!(matches!(
        items.set("c", &item("7", "h", 0)).await,
        Err(Error::UniqueViolation { .. })
    ));
}

/// Removes `id`'s members from the index `KEYS[1]` and nothing else, as builds before
/// 2026-12-06 left a dead holder's record when a claim removed its member.
const REMOVE_MEMBERS_OF: &str = "local gone = 0 \
    for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do \
      if string.sub(m, -#ARGV[1]) == ARGV[1] then gone = gone + redis.call('ZREM', KEYS[1], m) end \
    end \
    return gone";

/// A record of an earlier build naming a unique member no longer in the index (the state
/// such a build left after a claim removed a dead holder's member): `rebuild_indexes`
/// restores the member, and so does a guarded write keeping the value (a write that checks
/// its claim); from then on the value is refused to others.
async fn a_record_naming_a_removed_member_is_mended(redis: &TestRedis) {
    let items = handle_store(redis, "e7");
    items.set("a", &item("1", "ha", 0)).await.unwrap();
    items.set("b", &item("1", "hb", 0)).await.unwrap();
    for id in ["a", "b"] {
        let removed = cli(
            redis.port(),
            &["EVAL", REMOVE_MEMBERS_OF, "1", "e7#ix:handle", id],
        );
        assert_eq!(removed, "1");
        assert_eq!(cli(redis.port(), &["EXISTS", &format!("e7#rec:{id}")]), "1");
    }
    assert_eq!(items.find_one_by("handle", b"ha").await.unwrap(), None);
    let report = items.rebuild_indexes(&mut |_| {}).await.unwrap();
    assert_eq!(report.conflicts, 0, "{report:?}");
    let found = items.find_one_by("handle", b"ha").await.unwrap();
    assert_eq!(found, Some(("a".to_owned(), item("1", "ha", 0))));

    // b again, mended by its own guarded write instead.
    cli(
        redis.port(),
        &["EVAL", REMOVE_MEMBERS_OF, "1", "e7#ix:handle", "b"],
    );
    assert_eq!(items.find_one_by("handle", b"hb").await.unwrap(), None);
    let if_present = typedkv::SetOptions::new().if_present();
    assert!(
        items
            .set_opts("b", &item("2", "hb", 0), if_present)
            .await
            .unwrap()
    );
    let found = items.find_one_by("handle", b"hb").await.unwrap();
    assert_eq!(found, Some(("b".to_owned(), item("2", "hb", 0))));
    for handle in ["ha", "hb"] {
        assert!(matches!(
            items.set("c", &item("3", handle, 0)).await,
            Err(Error::UniqueViolation { .. })
        ));
    }
}

/// Turns `id`'s record into what versions before string records wrote: a Redis set of
/// `name \0 member`, one per index entry of `id` (found in the index keys, not by parsing
/// the record).
const TO_SET_RECORD: &str = "local entries = {} \
    for i, name in ipairs(ARGV) do \
      if i > 1 then \
        for _, m in ipairs(redis.call('ZRANGE', KEYS[i], 0, -1)) do \
          if string.sub(m, -#ARGV[1]) == ARGV[1] then entries[#entries + 1] = name .. '\\0' .. m end \
        end \
      end \
    end \
    redis.call('DEL', KEYS[1]) \
    return redis.call('SADD', KEYS[1], unpack(entries))";

/// The multi-entry record of `id` in store `e5` with entries of `indexes`, built from the
/// index keys as DESIGN.md describes it: a zero byte, then per entry its length (4 bytes,
/// big-endian) and `name 0x00 member`.
async fn multi_entry_record(redis: &TestRedis, id: &str, indexes: &[&str]) -> Vec<u8> {
    let mut conn = redis.raw_connection().await;
    let mut out = vec![0];
    for name in indexes {
        let members: Vec<Vec<u8>> =
            redis::AsyncCommands::zrange(&mut conn, format!("e5#ix:{name}"), 0, -1)
                .await
                .unwrap();
        for member in members.iter().filter(|m| m.ends_with(id.as_bytes())) {
            let entry = [name.as_bytes(), &[0], member].concat();
            out.extend_from_slice(&(entry.len() as u32).to_be_bytes());
            out.extend_from_slice(&entry);
        }
    }
    out
}

/// Records of earlier versions (a Redis set of entries) keep working: a write moving a term
/// removes the old entry the set names and turns the record into a string, a delete removes
/// every entry, `repair_indexes` removes stale entries named by a set. Records of today: one
/// entry stored as it is, several in the multi-entry form (as the client writes them and as
/// a repair leaving two of three writes them: byte for byte what DESIGN.md describes), and
/// a repair leaving one entry of two stores it as a single entry again.
async fn records_of_earlier_versions_are_read_and_rewritten(redis: &TestRedis) {
    let items = item_store(redis, "e5");
    let port = redis.port();
    let record = |id: &str| format!("e5#rec:{id}");
    let to_set_record = |id: &str| {
        let key = record(id);
        cli(
            port,
            &[
                "EVAL",
                TO_SET_RECORD,
                "4",
                &key,
                "e5#ix:group",
                "e5#ix:handle",
                "e5#ix:score",
                id,
                "group",
                "handle",
                "score",
            ],
        )
    };
    let ids = |name: &'static str, value: &'static str| {
        let found = items.find_by(name, value.as_bytes());
        async move {
            let found: Vec<(String, Item)> = found.try_collect().await.unwrap();
            found.into_iter().map(|(id, _)| id).collect::<Vec<_>>()
        }
    };
    for (id, group, handle) in [("a", "ga", "ha"), ("b", "gb", "hb"), ("c", "gc", "hc")] {
        items.set(id, &item(group, handle, 0)).await.unwrap();
        let stored = redis.pool().get(&record(id)).await.unwrap().unwrap();
        let expected = multi_entry_record(redis, id, &["group", "handle", "score"]).await;
        assert_eq!(stored, expected, "{id}: {}", stored.escape_ascii());
        assert_eq!(to_set_record(id), "3", "{id}");
        assert_eq!(cli(port, &["TYPE", &record(id)]), "set");
    }

    // a moves to another group: the set's old entry leaves, the record becomes a string.
    items.set("a", &item("ga2", "ha", 0)).await.unwrap();
    assert!(ids("group", "ga").await.is_empty());
    assert_eq!(ids("group", "ga2").await, ["a"]);
    assert_eq!(ids("handle", "ha").await, ["a"]);
    assert_eq!(cli(port, &["TYPE", &record("a")]), "string");
    // b is deleted: every entry the set names leaves with it.
    assert!(items.delete("b").await.unwrap());
    assert!(ids("group", "gb").await.is_empty());
    assert_eq!(cli(port, &["EXISTS", &record("b")]), "0");
    items.set("b2", &item("g", "hb", 0)).await.unwrap();
    // c's value changes around the indexes (its group and handle, not its score): repair
    // removes those two entries, from the index and from the set.
    let donor = redis.pool().get("e5:b2").await.unwrap().unwrap();
    let mut conn = redis.raw_connection().await;
    let () = redis::AsyncCommands::set(&mut conn, "e5:c", donor)
        .await
        .unwrap();
    let report = items.repair_indexes().await.unwrap();
    assert_eq!(report.removed, 2, "{report:?}");
    assert_eq!(cli(port, &["SCARD", &record("c")]), "1");
    assert_eq!(items.repair_indexes().await.unwrap().removed, 0);

    // One entry of three goes stale (a changes its group around the indexes): the record
    // keeps the other two; then one of two (its handle too): it keeps one, as it is.
    let around = TypedStore::<Item, _>::builder(redis.pool(), "e5")
        .build()
        .unwrap();
    around.set("a", &item("ga3", "ha", 0)).await.unwrap();
    assert_eq!(items.repair_indexes().await.unwrap().removed, 1);
    let stored = redis.pool().get(&record("a")).await.unwrap().unwrap();
    let expected = multi_entry_record(redis, "a", &["handle", "score"]).await;
    assert_eq!(stored, expected, "{}", stored.escape_ascii());
    around.set("a", &item("ga3", "ha2", 0)).await.unwrap();
    assert_eq!(items.repair_indexes().await.unwrap().removed, 1);
    let stored = redis.pool().get(&record("a")).await.unwrap().unwrap();
    let single = stored.starts_with(b"score\0") && stored.ends_with(b"a");
    assert!(single, "{}", stored.escape_ascii());
    items.set("a", &item("ga3", "ha", 0)).await.unwrap();
    assert_eq!(ids("group", "ga3").await, ["a"]);
    assert_eq!(ids("handle", "ha").await, ["a"]);
    assert_eq!(items.repair_indexes().await.unwrap().removed, 0);
}

/// Builds the indexes of 100k entities written by a store without them, and says what it
/// cost (time, and Redis memory per entity for four indexes).
async fn rebuild_of_100k_entities(redis: &TestRedis) {
    let backend = redis.pool();
    let plain: TypedStore<Account, _> = TypedStore::builder(backend.clone(), "big")
        .hash_tag(true)
        .build()
        .unwrap();
    let all: Vec<(String, Account)> = (0..100_000)
        .map(|i: i64| {
            (
                i.to_string(),
                account(
                    &format!("{}@x", i % 1000),
                    &format!("h{i}"),
                    &["t"],
                    i % 5000,
                ),
            )
        })
        .collect();
    for chunk in all.chunks(1000) {
        let refs: Vec<(&str, &Account)> = chunk.iter().map(|(id, a)| (id.as_str(), a)).collect();
        plain.set_many(&refs).await.unwrap();
    }
    let used = || {
        cli(redis.port(), &["MEMORY", "STATS"])
            .lines()
            .skip_while(|l| *l != "total.allocated")
            .nth(1)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let before = used();
    let users = accounts(&backend, "big");
    let started = Instant::now();
    let mut pages = 0;
    let report = users.rebuild_indexes(&mut |_| pages += 1).await.unwrap();
    let took = started.elapsed();
    let per_entity = (used() - before) / 100_000;
    eprintln!(
        "rebuild of 100k entities: {took:.2?} ({:.0}/s, {pages} progress reports), {per_entity} bytes of Redis memory per entity for 4 indexes; {report:?}",
        100_000.0 / took.as_secs_f64()
    );
    assert_eq!(report.indexed, 100_000);
    assert_eq!(users.count_by("email", b"7@x").await.unwrap(), 100);
    assert_eq!(
        users
            .find_one_by("handle", b"h99999")
            .await
            .unwrap()
            .unwrap()
            .0,
        "99999"
    );
    assert_eq!(users.count_by("tag", b"t").await.unwrap(), 100_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_redis() {
    let redis = TestRedis::start().await;
    let stress = Duration::from_secs(3);
    indexes_agree_with_a_scan_after_random_writes(redis.pool(), false, stress).await;
    one_of_64_writers_wins_a_unique_value(redis.pool(), false).await;
    partitioned_indexes_agree_with_a_scan(redis.pool(), stress).await;
    one_index_agrees_with_a_scan(redis.pool(), false, stress).await;
    range_pages_hold_while_writers_run(redis.pool(), false).await;
    ttl_entities_leave_redis_with_their_index_entries(redis.pool(), |_| redis.port(), true).await;
    writes_made_with_redis_cli_are_repaired(&redis).await;
    records_of_earlier_versions_are_read_and_rewritten(&redis).await;
    a_record_left_behind_claims_nothing(&redis).await;
    a_record_naming_a_removed_member_is_mended(&redis).await;
    rebuild_of_100k_entities(&redis).await;
}

#[tokio::test]
async fn rewrite_at_the_moment_of_expiry() {
    let redis = TestRedis::start().await;
    a_rewrite_at_the_moment_of_expiry_keeps_the_entries(&redis).await;
}

/// One id twice in one `set_many`: the last value wins, and its entries only.
#[tokio::test]
async fn set_many_with_one_id_twice_keeps_the_last_entries() {
    let redis = TestRedis::start().await;
    let store: TypedStore<String, _> = TypedStore::builder(redis.pool(), "dup")
        .index(typedkv::Index::equality("v", |s: &String| [s.clone()]))
        .build()
        .unwrap();
    let (a, b) = ("a".to_owned(), "b".to_owned());
    store.set_many(&[("x", &a), ("x", &b)]).await.unwrap();
    assert_eq!(store.get("x").await.unwrap(), Some(b.clone()));
    assert_eq!(store.count_by("v", b"a").await.unwrap(), 0);
    assert_eq!(store.count_by("v", b"b").await.unwrap(), 1);
}
