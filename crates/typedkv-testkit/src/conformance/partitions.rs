//! Partitioned stores (`StoreBuilder::partitions`): keys spread over partitions, indexes
//! that answer exactly what one partition would, and the layouts they refuse.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use typedkv::backend::{Lex, member_id};
use typedkv::{
    Backend, Condition, Error, Expiry, Index, IndexKind, MoveReport, Order, RangeQuery, SetOptions,
    Store, StoreExt, TypedStore, Update, Write, WriteExpiry,
};

/// An entity with an equality index `team`, a many-valued equality index `tag` and a range
/// index `score`: every kind a partitioned store keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// Equality index `team`.
    pub team: String,
    /// Equality index `tag`, one entry per tag.
    pub tags: Vec<String>,
    /// Range index `score`.
    pub score: i64,
}

type Builder<B> = typedkv::StoreBuilder<Member, B, typedkv::Bincode>;

/// The store of members with its three indexes, on `backend`, under `namespace`.
pub fn members_with<B: Backend>(
    backend: &B,
    namespace: &str,
    layout: impl FnOnce(Builder<B>) -> Builder<B>,
) -> TypedStore<Member, B> {
    let builder = TypedStore::builder(backend.clone(), namespace)
        .index(Index::equality("team", |m: &Member| [m.team.clone()]))
        .index(Index::equality("tag", |m: &Member| m.tags.clone()))
        .index(Index::range("score", |m: &Member| Some(m.score)));
    layout(builder).build().unwrap()
}

/// Member `i` of a deterministic population: 5 teams, tags, scores with ties.
fn member(i: u64) -> Member {
    Member {
        team: format!("team-{}", i % 5),
        tags: (0..i % 3).map(|t| format!("tag-{}", (i + t) % 4)).collect(),
        score: (i % 17) as i64 - 8,
    }
}

/// Everything the indexes answer, page by page: `find_by` and `count_by` of every team
/// and tag, and range pages of several sizes in both orders (ids per page, cursors taken
/// from the store's own pages).
async fn answers<B: Backend>(store: &TypedStore<Member, B>) -> Vec<String> {
    let mut answers = Vec::new();
    let terms = (0..5).map(|t| ("team", format!("team-{t}")));
    let terms = terms.chain((0..4).map(|t| ("tag", format!("tag-{t}"))));
    for (index, value) in terms {
        let found: Vec<(String, Member)> = store
            .find_by(index, value.as_bytes())
            .try_collect()
            .await
            .unwrap();
        let ids: Vec<&str> = found.iter().map(|(id, _)| id.as_str()).collect();
        let count = store.count_by(index, value.as_bytes()).await.unwrap();
        answers.push(format!("{index}={value}: {count} {ids:?}"));
    }
    for order in [Order::Ascending, Order::Descending] {
        for limit in [1, 7, 50, 1000] {
            let mut query = RangeQuery::new(-5i64..=6).order(order).limit(limit);
            loop {
                let page = store.find_range("score", query.clone()).await.unwrap();
                let ids: Vec<&str> = page.items.iter().map(|(id, _)| id.as_str()).collect();
                answers.push(format!("{order:?} {limit}: {ids:?}"));
                match page.next {
                    Some(cursor) => query = query.after(cursor),
                    None => break,
                }
            }
        }
    }
    answers
}

/// A partitioned store answers every query, page and cursor exactly as the same data in
/// one slot does, before and after every write path (overwrite, update, delete, batches);
/// its entities are spread over its partitions, each entity's index entries in its own.
pub async fn partitioned_indexes_answer_like_one_slot<B: Backend>(backend: B) {
    let one = members_with(&backend, "one", |b| b.hash_tag(true));
    let parts = members_with(&backend, "parts", |b| b.partitions(16));
    let ids: Vec<String> = (0..150).map(|i| format!("m{i}")).collect();
    for store in [&one, &parts] {
        for (i, id) in ids.iter().enumerate().take(100) {
            store.set(id, &member(i as u64)).await.unwrap();
        }
        let batch: Vec<(String, Member)> = (100..150)
            .map(|i| (ids[i].clone(), member(i as u64)))
            .collect();
        let entries: Vec<(&str, &Member)> = batch.iter().map(|(id, m)| (id.as_str(), m)).collect();
        store.set_many(&entries).await.unwrap();
    }
    let before = answers(&one).await;
    assert_eq!(answers(&parts).await, before);

    // Every write path, the same on both.
    for store in [&one, &parts] {
        for (i, id) in ids.iter().enumerate().step_by(7) {
            store.set(id, &member(i as u64 * 3 + 1)).await.unwrap();
        }
        for id in ids.iter().skip(3).step_by(11) {
            let bumped = store
                .update_with(id, |m| match m {
                    Some(mut m) => {
                        m.score += 3;
                        m.tags.push("tag-0".into());
                        Update::Set(m)
                    }
                    None => Update::Keep,
                })
                .await
                .unwrap();
            assert!(bumped.is_some());
        }
        assert!(store.delete(&ids[5]).await.unwrap());
        let gone: Vec<&str> = ids[20..40].iter().map(String::as_str).collect();
        assert_eq!(store.delete_many(&gone).await.unwrap(), 20);
        assert!(
            !store
                .set_opts(&ids[1], &member(99), SetOptions::new().if_absent())
                .await
                .unwrap()
        );
    }
    let after = answers(&one).await;
    assert_ne!(after, before, "the writes changed the answers");
    assert_eq!(answers(&parts).await, after);

    // Spread: the entities sit in many partitions, each with its own index keys.
    let spaces = parts.index_spaces();
    assert_eq!(spaces.len(), 16);
    let mut per_partition = BTreeMap::<&str, usize>::new();
    for space in spaces {
        let all = (&Lex::Min, &Lex::Max);
        let members = backend
            .index_members(space, 0, all, Order::Ascending, 10_000)
            .await
            .unwrap();
        for member in &members {
            let id = member_id(IndexKind::Equality, member).unwrap();
            let key = parts.keyspace().key(id).unwrap();
            assert!(key.starts_with(&space.entity_prefix), "{key} in {space:?}");
        }
        per_partition.insert(&space.entity_prefix, members.len());
    }
    assert!(
        per_partition.values().filter(|&&n| n > 0).count() >= 12,
        "{per_partition:?}"
    );
    assert_eq!(per_partition.values().sum::<usize>(), 129);
}

/// A partitioned store's keys: each id once in scans, counted and cleared; a key under its
/// prefix in the wrong partition is another program's, reported for itself; namespaces stay
/// apart from plain and hash-tagged ones; the layouts it refuses are refused at `build`.
pub async fn partitioned_keys_scan_count_and_clear<B: Backend>(backend: B) {
    let parts = members_with(&backend, "keys", |b| b.partitions(8));
    // Unindexed, as an untagged indexed store cannot be on a cluster.
    let plain = TypedStore::<Member, B>::builder(backend.clone(), "keys")
        .build()
        .unwrap();
    let tagged = members_with(&backend, "keys", |b| b.hash_tag(true));
    for i in 0..40 {
        parts.set(&format!("p{i}"), &member(i)).await.unwrap();
    }
    plain.set("p0", &member(1)).await.unwrap();
    tagged.set("p0", &member(2)).await.unwrap();
    assert_eq!(parts.get("p0").await.unwrap(), Some(member(0)));

    // A key under the prefix whose tag is not its id's partition's.
    let partition_of = |id: &str| {
        let key = parts.keyspace().key(id).unwrap();
        key[..key.len() - id.len()].to_owned()
    };
    let other = (0..40)
        .map(|i| partition_of(&format!("p{i}")))
        .find(|prefix| *prefix != partition_of("x"))
        .unwrap();
    let stray = format!("{other}x");
    backend
        .set(
            &stray,
            b"junk".to_vec(),
            Write::new(WriteExpiry::Never, Condition::Always),
        )
        .await
        .unwrap();

    let scanned: Vec<Result<String, Error>> = parts.scan_ids().collect().await;
    let mut ids: Vec<String> = scanned
        .iter()
        .filter_map(|r| r.as_ref().ok().cloned())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("p{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected);
    let refused: Vec<&Error> = scanned.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].to_string().contains("partition"),
        "{}",
        refused[0]
    );
    assert_eq!(parts.count().await.unwrap(), 41);
    assert_eq!(parts.clear().await.unwrap(), 41);
    assert_eq!(parts.count().await.unwrap(), 0);
    assert_eq!(plain.get("p0").await.unwrap(), Some(member(1)));
    assert_eq!(tagged.get("p0").await.unwrap(), Some(member(2)));

    // Layouts a partitioned store refuses.
    let unique = TypedStore::<Member, B>::builder(backend.clone(), "u")
        .partitions(4)
        .index(Index::unique("team", |m: &Member| [m.team.clone()]))
        .build();
    assert!(
        matches!(unique, Err(Error::InvalidIndex { .. })),
        "{unique:?}"
    );
    let one_partition = TypedStore::<Member, B>::builder(backend.clone(), "u")
        .partitions(1)
        .index(Index::unique("team", |m: &Member| [m.team.clone()]))
        .build();
    assert!(one_partition.is_ok());
    for count in [0, typedkv::MAX_PARTITIONS + 1] {
        let built = TypedStore::<Member, B>::builder(backend.clone(), "u")
            .partitions(count)
            .build();
        assert!(matches!(built, Err(Error::InvalidConfig { .. })), "{count}");
    }
    let both = TypedStore::<Member, B>::builder(backend.clone(), "u")
        .partitions(4)
        .hash_tag(true)
        .build();
    assert!(matches!(both, Err(Error::InvalidConfig { .. })));
}

/// Values written around a partitioned store's indexes (a store of the same layout without
/// them) are indexed by `rebuild_indexes`, queries never answer what a value no longer
/// gives, and `repair_indexes` removes the stale entries in every partition.
pub async fn partitioned_indexes_rebuild_and_repair<B: Backend>(backend: B) {
    let around = TypedStore::<Member, B>::builder(backend.clone(), "fix")
        .partitions(16)
        .build()
        .unwrap();
    let parts = members_with(&backend, "fix", |b| b.partitions(16));
    for i in 0..60 {
        around.set(&format!("e{i}"), &member(i)).await.unwrap();
    }
    assert_eq!(parts.count_by("team", b"team-0").await.unwrap(), 0);
    let report = parts.rebuild_indexes(&mut |_| {}).await.unwrap();
    assert_eq!((report.indexed, report.conflicts), (60, 0));
    assert_eq!(parts.count_by("team", b"team-0").await.unwrap(), 12);

    // Moved around the indexes: found by its new team only after a rebuild, never by
    // its old one.
    for i in (0..60).step_by(5) {
        let moved = Member {
            team: "moved".into(),
            ..member(i)
        };
        around.set(&format!("e{i}"), &moved).await.unwrap();
    }
    let old: Vec<(String, Member)> = parts
        .find_by("team", b"team-0")
        .try_collect()
        .await
        .unwrap();
    assert!(old.is_empty(), "{old:?}");
    let report = parts.repair_indexes().await.unwrap();
    assert_eq!(report.removed, 0, "queries removed what they found stale");
    for i in (0..60).step_by(5) {
        around.delete(&format!("e{i}")).await.unwrap();
    }
    let report = parts.repair_indexes().await.unwrap();
    assert!(report.removed > 0, "{report:?}");
    let again = parts.repair_indexes().await.unwrap();
    assert_eq!(again.removed, 0);
    assert_eq!(parts.count_by("team", b"team-1").await.unwrap(), 12);
}

/// `move_from` moves a hash-tagged store into 16 partitions and back: every entity with its
/// value and remaining TTL, answered by every index exactly as before; nothing of the old
/// layout left (keys, index entries, records); an entity written through the new store
/// first is kept; a value that does not decode stays where it is; a unique value taken in
/// the target leaves its entity in the old layout; two stores of one prefix are refused.
pub async fn stores_move_between_layouts<B: Backend>(backend: B) {
    let tagged = members_with(&backend, "mv", |b| b.hash_tag(true));
    let spread = members_with(&backend, "mv", |b| b.partitions(16));
    for i in 0..60 {
        tagged.set(&format!("e{i}"), &member(i)).await.unwrap();
    }
    let hour = Duration::from_secs(3600);
    let with_ttl = SetOptions::new().ttl(hour);
    tagged.set_opts("e60", &member(60), with_ttl).await.unwrap();
    let before = answers(&tagged).await;
    // Written through the new store already: newer than the old copy, so kept.
    let newer = Member {
        team: "newer".into(),
        ..member(3)
    };
    spread.set("e3", &newer).await.unwrap();
    // Bytes that are no member, under the old layout's prefix.
    let junk = Write::new(WriteExpiry::Never, Condition::Always);
    backend
        .set("{mv}:junk", b"junk".to_vec(), junk)
        .await
        .unwrap();

    let mut pages = 0;
    let report = spread
        .move_from(&tagged, &mut |_| pages += 1)
        .await
        .unwrap();
    assert!(pages >= 1);
    let counts = |r: MoveReport| (r.scanned, r.moved, r.superseded, r.skipped, r.changed);
    assert_eq!(counts(report), (62, 60, 1, 1, 0), "{report:?}");
    assert_eq!(report.conflicts, 0);
    assert_eq!(spread.get("e3").await.unwrap(), Some(newer));
    match spread.ttl("e60").await.unwrap() {
        Some(Expiry::In(left)) => assert!(left <= hour && left > hour / 2, "{left:?}"),
        other => panic!("e60's TTL: {other:?}"),
    }
    // The old layout holds the junk alone: no entity, index entry or record.
    assert_eq!(tagged.scan_ids().collect::<Vec<_>>().await.len(), 1);
    assert_eq!(tagged.count_by("team", b"team-0").await.unwrap(), 0);
    assert_eq!(tagged.repair_indexes().await.unwrap().scanned, 0);

    // And back, which gives every answer the tagged store gave (e3 made as it was first).
    spread.set("e3", &member(3)).await.unwrap();
    let report = tagged.move_from(&spread, &mut |_| {}).await.unwrap();
    assert_eq!((report.scanned, report.moved), (61, 61), "{report:?}");
    assert_eq!(answers(&tagged).await, before);
    assert_eq!(spread.count().await.unwrap(), 0);
    assert_eq!(spread.repair_indexes().await.unwrap().scanned, 0);

    // A unique index in the target: one entity per team moves, the others stay.
    let one_per_team = TypedStore::<Member, B>::builder(backend.clone(), "mv-unique")
        .hash_tag(true)
        .index(Index::unique("team", |m: &Member| [m.team.clone()]))
        .build()
        .unwrap();
    tagged.delete("junk").await.unwrap();
    let report = one_per_team.move_from(&tagged, &mut |_| {}).await.unwrap();
    assert_eq!((report.moved, report.conflicts), (5, 56), "{report:?}");
    assert_eq!(tagged.count().await.unwrap(), 56);
    assert_eq!(one_per_team.count().await.unwrap(), 5);

    let same = members_with(&backend, "mv", |b| b.partitions(8));
    let refused = same.move_from(&spread, &mut |_| {}).await;
    assert!(
        matches!(refused, Err(Error::InvalidConfig { .. })),
        "{refused:?}"
    );
}
