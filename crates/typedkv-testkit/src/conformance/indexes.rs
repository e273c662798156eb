//! Find by field: equality, unique and range indexes, kept right by every write path.
//!
//! Stores here are hash-tagged, as an indexed store on a cluster must be (one slot, so every
//! write is atomic); on other backends the tag only changes key names.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::time::Duration;

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use typedkv::backend::{Lex, member_id};
use typedkv::{
    Backend, Condition, Error, Index, IndexKind, Loaded, Order, RangeQuery, SetOptions, Store,
    StoreExt, TypedStore, Update, Write, WriteExpiry,
};

/// An entity with one field per kind of index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// Equality index `email`, lower-cased by the extractor.
    pub email: String,
    /// Unique index `handle`.
    pub handle: String,
    /// Equality index `tag`: one entry per tag.
    pub tags: Vec<String>,
    /// Range index `score`.
    pub score: i64,
}

/// An account with these fields.
pub fn account(email: &str, handle: &str, tags: &[&str], score: i64) -> Account {
    Account {
        email: email.into(),
        handle: handle.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        score,
    }
}

/// The store of accounts with all four indexes, on `backend`, under `namespace`.
pub fn accounts<B: Backend>(backend: &B, namespace: &str) -> TypedStore<Account, B> {
    accounts_with(backend, namespace, |b| b)
}

/// [`accounts`] with more builder settings.
pub fn accounts_with<B: Backend>(
    backend: &B,
    namespace: &str,
    more: impl FnOnce(
        typedkv::StoreBuilder<Account, B, typedkv::Bincode>,
    ) -> typedkv::StoreBuilder<Account, B, typedkv::Bincode>,
) -> TypedStore<Account, B> {
    let builder = TypedStore::builder(backend.clone(), namespace)
        .hash_tag(true)
        .index(Index::equality("email", |a: &Account| {
            [a.email.to_lowercase()]
        }))
        .index(Index::unique("handle", |a: &Account| [a.handle.clone()]))
        .index(Index::equality("tag", |a: &Account| a.tags.clone()))
        .index(Index::range("score", |a: &Account| Some(a.score)));
    more(builder).build().unwrap()
}

/// The ids `find_by` answers, sorted.
pub async fn ids_by<S: Store<Account> + ?Sized>(
    store: &S,
    index: &str,
    value: &str,
) -> Vec<String> {
    let found: Vec<(String, Account)> = store
        .find_by(index, value.as_bytes())
        .try_collect()
        .await
        .unwrap();
    found.into_iter().map(|(id, _)| id).collect()
}

/// Every id of a range query, page by page of `limit`.
pub async fn ids_in_range<S: Store<Account> + ?Sized>(store: &S, query: RangeQuery) -> Vec<String> {
    let mut ids = Vec::new();
    let mut query = query;
    loop {
        let page = store.find_range("score", query.clone()).await.unwrap();
        ids.extend(page.items.into_iter().map(|(id, _)| id));
        match page.next {
            Some(cursor) => query = query.after(cursor),
            None => return ids,
        }
    }
}

/// Equality (one value or many per entity), unique and range indexes answer what was
/// written; values of any bytes are literal; counts match; unknown and mismatched index
/// names are typed errors.
pub async fn indexes_find_by_field<B: Backend>(backend: B) {
    let users = accounts(&backend, "acct");
    users
        .set("1", &account("Ann@Example.com", "ann", &["a", "b"], 10))
        .await
        .unwrap();
    users
        .set("2", &account("bob@example.com", "bob", &["b"], 20))
        .await
        .unwrap();
    users
        .set("3", &account("*?[x]\\", "c*", &["b", "b", ""], -5))
        .await
        .unwrap();

    assert_eq!(ids_by(&users, "email", "ann@example.com").await, ["1"]);
    assert_eq!(
        ids_by(&users, "email", "Ann@Example.com").await,
        Vec::<String>::new()
    );
    assert_eq!(ids_by(&users, "tag", "b").await, ["1", "2", "3"]);
    assert_eq!(ids_by(&users, "tag", "").await, ["3"]);
    assert_eq!(
        ids_by(&users, "email", "*?[x]\\").await,
        ["3"],
        "values are literal, never globs"
    );
    assert_eq!(ids_by(&users, "email", "*").await, Vec::<String>::new());
    assert_eq!(users.count_by("tag", b"b").await.unwrap(), 3);
    assert_eq!(users.count_by("tag", b"zzz").await.unwrap(), 0);
    let (id, bob) = users.find_one_by("handle", b"bob").await.unwrap().unwrap();
    assert_eq!((id.as_str(), bob.score), ("2", 20));
    assert_eq!(users.find_one_by("handle", b"nobody").await.unwrap(), None);
    assert_eq!(
        ids_in_range(&users, RangeQuery::all()).await,
        ["3", "1", "2"]
    );

    let dyn_users: &dyn Store<Account> = &users;
    assert_eq!(ids_by(dyn_users, "tag", "a").await, ["1"]);
    assert!(matches!(
        users.count_by("nope", b"x").await,
        Err(Error::UnknownIndex { index, .. }) if index == "nope"
    ));
    assert!(matches!(
        users.find_by("score", b"x").try_next().await,
        Err(Error::InvalidIndex { .. })
    ));
    assert!(matches!(
        users.find_range("email", RangeQuery::all()).await,
        Err(Error::InvalidIndex { .. })
    ));
    assert!(matches!(
        users
            .find_range("score", RangeQuery::new(0i64..).limit(0))
            .await,
        Err(Error::InvalidIndex { .. })
    ));
    let plain = TypedStore::<Account, B>::builder(backend.clone(), "plain")
        .build()
        .unwrap();
    assert!(matches!(
        plain.count_by("email", b"x").await,
        Err(Error::UnknownIndex { .. })
    ));
    assert!(matches!(
        plain.find_by("email", b"x").try_next().await,
        Err(Error::UnknownIndex { .. })
    ));

    for bad in ["", "a:b", "a*", "a b", "ü", &"x".repeat(65)] {
        let built = TypedStore::<Account, B>::builder(backend.clone(), "bad")
            .hash_tag(true)
            .index(Index::equality(bad, |a: &Account| [a.email.clone()]))
            .build();
        assert!(matches!(built, Err(Error::InvalidIndex { .. })), "{bad:?}");
    }
    let twice = TypedStore::<Account, B>::builder(backend.clone(), "bad")
        .hash_tag(true)
        .index(Index::equality("e", |a: &Account| [a.email.clone()]))
        .index(Index::unique("e", |a: &Account| [a.handle.clone()]))
        .build();
    assert!(matches!(twice, Err(Error::InvalidIndex { .. })));
    let untagged = TypedStore::<Account, B>::builder(backend.clone(), "untagged")
        .index(Index::equality("e", |a: &Account| [a.email.clone()]))
        .build();
    match backend.index_support() {
        typedkv::backend::IndexSupport::SameSlot => {
            assert!(matches!(untagged, Err(Error::InvalidIndex { .. })))
        }
        _ => assert!(untagged.is_ok()),
    }
    assert_eq!(
        Index::range("r", |a: &Account| Some(a.score)).kind(),
        IndexKind::Range
    );
}

/// Every write path moves an entity's index entries with its value: set, conditional sets,
/// set_many, update (change and delete), set_if_version, get_or_insert_with, delete,
/// delete_many and clear; a refused condition leaves them as they were.
pub async fn indexes_follow_every_write_path<B: Backend>(backend: B) {
    let users = accounts(&backend, "acct");
    users
        .set("1", &account("a@x", "one", &["t"], 1))
        .await
        .unwrap();
    // A changed field moves; the old value no longer finds the entity.
    users
        .set("1", &account("b@x", "one", &["t"], 1))
        .await
        .unwrap();
    assert_eq!(ids_by(&users, "email", "a@x").await, Vec::<String>::new());
    assert_eq!(ids_by(&users, "email", "b@x").await, ["1"]);
    // Refused conditions change nothing.
    let absent_only = SetOptions::new().if_absent();
    assert!(
        !users
            .set_opts("1", &account("c@x", "one", &[], 1), absent_only)
            .await
            .unwrap()
    );
    let present_only = SetOptions::new().if_present();
    assert!(
        !users
            .set_opts("9", &account("c@x", "nine", &[], 9), present_only)
            .await
            .unwrap()
    );
    assert_eq!(ids_by(&users, "email", "b@x").await, ["1"]);
    assert_eq!(ids_by(&users, "email", "c@x").await, Vec::<String>::new());
    // set_many.
    let (a2, a3) = (
        account("m@x", "two", &["t"], 2),
        account("m@x", "three", &[], 3),
    );
    users.set_many(&[("2", &a2), ("3", &a3)]).await.unwrap();
    assert_eq!(ids_by(&users, "email", "m@x").await, ["2", "3"]);
    // update: change, then delete.
    users
        .update_with("2", |a| {
            Update::Set(Account {
                score: 22,
                ..a.unwrap()
            })
        })
        .await
        .unwrap();
    assert_eq!(
        ids_in_range(&users, RangeQuery::new(20i64..30)).await,
        ["2"]
    );
    users.update_with("3", |_| Update::Delete).await.unwrap();
    assert_eq!(ids_by(&users, "email", "m@x").await, ["2"]);
    assert_eq!(users.find_one_by("handle", b"three").await.unwrap(), None);
    // set_if_version.
    let versioned = users.get_versioned("2").await.unwrap().unwrap();
    let moved = account("v@x", "two", &[], 2);
    assert!(
        users
            .set_if_version("2", &moved, &versioned.version)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        users
            .set_if_version("2", &a2, &versioned.version)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(ids_by(&users, "email", "v@x").await, ["2"]);
    assert_eq!(ids_by(&users, "email", "m@x").await, Vec::<String>::new());
    // get_or_insert_with stores what it loads, indexed.
    let loaded = users
        .get_or_insert_with("4", || async {
            Ok::<_, std::io::Error>(Loaded::new(account("l@x", "four", &[], 4)))
        })
        .await
        .unwrap();
    assert_eq!(loaded.handle, "four");
    assert_eq!(ids_by(&users, "email", "l@x").await, ["4"]);
    // Deletes.
    assert!(users.delete("4").await.unwrap());
    assert_eq!(ids_by(&users, "email", "l@x").await, Vec::<String>::new());
    assert_eq!(users.delete_many(&["1", "2", "missing"]).await.unwrap(), 2);
    assert_eq!(users.count_by("tag", b"t").await.unwrap(), 0);
    users
        .set("5", &account("z@x", "five", &["t"], 5))
        .await
        .unwrap();
    assert_eq!(users.clear().await.unwrap(), 1);
    assert_eq!(users.count_by("email", b"z@x").await.unwrap(), 0);
    assert_eq!(
        ids_in_range(&users, RangeQuery::all()).await,
        Vec::<String>::new()
    );
    // The handles are free again.
    users
        .set("6", &account("q@x", "one", &[], 6))
        .await
        .unwrap();
    users
        .set("7", &account("q@x", "five", &[], 7))
        .await
        .unwrap();
}

/// A unique value another live entity holds is refused with a typed error naming the index
/// and value, and nothing is written; the value is free again once its holder is deleted,
/// changed or expired. A batch is refused whole; two entities may swap values in one batch.
pub async fn unique_indexes_refuse_taken_values<B: Backend>(backend: B) {
    let users = accounts(&backend, "acct");
    users
        .set("1", &account("a@x", "ann", &[], 1))
        .await
        .unwrap();
    users
        .set("1", &account("a@x", "ann", &[], 2))
        .await
        .unwrap(); // its own value: fine
    let taken = users.set("2", &account("b@x", "ann", &["t"], 3)).await;
    match taken {
        Err(Error::UniqueViolation { key, index, value }) => {
            assert!(key.ends_with(":2"), "{key}");
            assert_eq!((index.as_str(), value.as_str()), ("handle", "ann"));
        }
        other => panic!("expected a unique violation, got {other:?}"),
    }
    assert_eq!(users.get("2").await.unwrap(), None, "nothing written");
    assert_eq!(ids_by(&users, "tag", "t").await, Vec::<String>::new());
    // A batch with one taken value writes nothing.
    let (fresh, clash) = (account("c@x", "cat", &[], 4), account("d@x", "ann", &[], 5));
    assert!(matches!(
        users.set_many(&[("3", &fresh), ("4", &clash)]).await,
        Err(Error::UniqueViolation { .. })
    ));
    assert_eq!(users.get("3").await.unwrap(), None);
    let (twin_a, twin_b) = (
        account("e@x", "twin", &[], 6),
        account("f@x", "twin", &[], 7),
    );
    assert!(matches!(
        users.set_many(&[("5", &twin_a), ("6", &twin_b)]).await,
        Err(Error::UniqueViolation { .. })
    ));
    // Update to a taken value: refused, the old value stays.
    users
        .set("7", &account("g@x", "gus", &[], 8))
        .await
        .unwrap();
    let moved = users
        .update_with("7", |a| {
            Update::Set(Account {
                handle: "ann".into(),
                ..a.unwrap()
            })
        })
        .await;
    assert!(matches!(moved, Err(Error::UniqueViolation { .. })));
    assert_eq!(users.get("7").await.unwrap().unwrap().handle, "gus");
    // Two entities swap their values in one batch.
    let (ann_now_gus, gus_now_ann) = (account("a@x", "gus", &[], 1), account("g@x", "ann", &[], 8));
    users
        .set_many(&[("1", &ann_now_gus), ("7", &gus_now_ann)])
        .await
        .unwrap();
    assert_eq!(
        users
            .find_one_by("handle", b"ann")
            .await
            .unwrap()
            .unwrap()
            .0,
        "7"
    );
    assert_eq!(
        users
            .find_one_by("handle", b"gus")
            .await
            .unwrap()
            .unwrap()
            .0,
        "1"
    );
    // Freed by a change, a delete, an expiry.
    users
        .set("1", &account("a@x", "newname", &[], 1))
        .await
        .unwrap();
    users
        .set("2", &account("b@x", "gus", &[], 3))
        .await
        .unwrap();
    users.delete("2").await.unwrap();
    // Taken until the TTL runs out (a loaded machine may get there first), free after.
    let ttl = Duration::from_millis(800);
    let written = tokio::time::Instant::now();
    users
        .set_opts(
            "3",
            &account("c@x", "gus", &[], 4),
            SetOptions::new().ttl(ttl),
        )
        .await
        .unwrap();
    let answered = tokio::time::Instant::now();
    let taken = users.set("4", &account("d@x", "gus", &[], 5)).await;
    if written.elapsed() < ttl {
        assert!(
            matches!(taken, Err(Error::UniqueViolation { .. })),
            "{taken:?}"
        );
    }
    // Redis ran the write before answering: it has expired by then.
    tokio::time::sleep_until(answered + ttl + Duration::from_millis(100)).await;
    users
        .set("4", &account("d@x", "gus", &[], 5))
        .await
        .unwrap();
    assert_eq!(
        users
            .find_one_by("handle", b"gus")
            .await
            .unwrap()
            .unwrap()
            .0,
        "4"
    );
}

/// An entity with a TTL is found until it expires and never after; its index entries keep
/// its TTL (a write with `Keep` keeps them expiring), and a TTL'd index is gone once all of
/// its entities are.
pub async fn indexed_entities_expire<B: Backend>(backend: B) {
    let ttl = Duration::from_millis(800);
    let users = accounts_with(&backend, "acct", |b| b.ttl(ttl));
    let written = tokio::time::Instant::now();
    users
        .set("1", &account("a@x", "ann", &["t"], 1))
        .await
        .unwrap();
    let answered = tokio::time::Instant::now();
    users
        .set_opts(
            "2",
            &account("a@x", "bob", &["t"], 2),
            SetOptions::new().never_expire(),
        )
        .await
        .unwrap();
    // update keeps the TTL, and so do its index entries.
    users
        .update_with("1", |a| match a {
            Some(a) => Update::Set(Account { score: 5, ..a }),
            None => Update::Keep, // expired already: nothing to update
        })
        .await
        .unwrap();
    let (found, counted) = (
        ids_by(&users, "email", "a@x").await,
        users.count_by("tag", b"t").await.unwrap(),
    );
    // Found until the TTL runs out; a loaded machine may get there first.
    if written.elapsed() < ttl {
        assert_eq!(
            (found, counted),
            (vec!["1".to_string(), "2".to_string()], 2)
        );
    }
    // Entity 1's TTL (kept by the update) ran from before its write's answer.
    tokio::time::sleep_until(answered + ttl + Duration::from_millis(200)).await;
    assert_eq!(ids_by(&users, "email", "a@x").await, ["2"]);
    assert_eq!(users.count_by("tag", b"t").await.unwrap(), 1);
    assert_eq!(ids_in_range(&users, RangeQuery::all()).await, ["2"]);
    assert_eq!(users.find_one_by("handle", b"ann").await.unwrap(), None);
    // Expired entries are gone by the next write (memory: also by the next query), or by
    // a repair: entity 1 had one per index.
    let report = users.repair_indexes().await.unwrap();
    assert!(report.removed <= 4, "{report:?}");
    users.set("3", &account("c@x", "cy", &[], 3)).await.unwrap();
    assert_eq!(users.repair_indexes().await.unwrap().removed, 0);
}

/// Range pages are ordered (ties by id), bounded as asked, and together hold every entity
/// exactly once, in both directions.
pub async fn range_pages_are_ordered_and_complete<B: Backend>(backend: B) {
    let users = accounts(&backend, "acct");
    let all: Vec<(String, Account)> = (0..60)
        .map(|i: i64| {
            let id = format!("{i:02}");
            let a = account("x@x", &format!("h{i}"), &[], (i * 7) % 23 - 11);
            (id, a)
        })
        .collect();
    let refs: Vec<(&str, &Account)> = all.iter().map(|(id, a)| (id.as_str(), a)).collect();
    users.set_many(&refs).await.unwrap();
    let mut want: Vec<(i64, String)> = all.iter().map(|(id, a)| (a.score, id.clone())).collect();
    want.sort();
    let expect = |lo: i64, hi: i64| -> Vec<String> {
        want.iter()
            .filter(|(s, _)| (lo..=hi).contains(s))
            .map(|(_, id)| id.clone())
            .collect()
    };
    for limit in [1, 7, 60, 100] {
        let asc = ids_in_range(&users, RangeQuery::all().limit(limit)).await;
        assert_eq!(asc, expect(i64::MIN, i64::MAX), "limit {limit}");
        let desc = ids_in_range(
            &users,
            RangeQuery::all().limit(limit).order(Order::Descending),
        )
        .await;
        let mut reversed = expect(i64::MIN, i64::MAX);
        reversed.reverse();
        assert_eq!(desc, reversed, "limit {limit}, descending");
    }
    assert_eq!(
        ids_in_range(&users, RangeQuery::new(-3i64..=4).limit(5)).await,
        expect(-3, 4)
    );
    assert_eq!(
        ids_in_range(&users, RangeQuery::new(-3i64..4).limit(5)).await,
        expect(-3, 3)
    );
    assert_eq!(
        ids_in_range(&users, RangeQuery::new(5i64..).limit(4)).await,
        expect(5, i64::MAX)
    );
    assert_eq!(
        ids_in_range(&users, RangeQuery::new(3i64..3)).await,
        Vec::<String>::new()
    );
    assert_eq!(
        ids_in_range(
            &users,
            RangeQuery::new((Bound::Included(9i64), Bound::Included(2i64)))
        )
        .await,
        Vec::<String>::new()
    );
    let seen: BTreeSet<String> = ids_in_range(&users, RangeQuery::all().limit(3))
        .await
        .into_iter()
        .collect();
    assert_eq!(seen.len(), 60);
}

/// Adding indexes to a namespace that holds data: `rebuild_indexes` indexes it, reports
/// progress, skips undecodable values and counts unique conflicts; values changed around the
/// indexes (by a store without them) are never answered wrongly, and `repair_indexes`
/// removes the entries they left.
pub async fn rebuild_and_repair_indexes<B: Backend>(backend: B) {
    let plain: TypedStore<Account, B> = TypedStore::builder(backend.clone(), "acct")
        .hash_tag(true)
        .build()
        .unwrap();
    for i in 0..300 {
        let handle = if i == 297 {
            "h0".to_owned()
        } else {
            format!("h{i}")
        };
        plain
            .set(
                &i.to_string(),
                &account(&format!("{}@x", i % 3), &handle, &[], i),
            )
            .await
            .unwrap();
    }
    let junk: TypedStore<String, B> = TypedStore::builder(backend.clone(), "acct")
        .hash_tag(true)
        .build()
        .unwrap();
    junk.set("junk", &"not an account".to_owned())
        .await
        .unwrap();
    let users = accounts(&backend, "acct");
    assert_eq!(
        users.count_by("email", b"0@x").await.unwrap(),
        0,
        "not built yet"
    );
    let mut calls = 0;
    let report = users.rebuild_indexes(&mut |_| calls += 1).await.unwrap();
    assert!(calls >= 1);
    assert_eq!(report.scanned, 301, "{report:?}");
    assert_eq!(report.skipped, 1, "{report:?}");
    assert_eq!(report.indexed + report.conflicts, 300, "{report:?}");
    assert_eq!(report.conflicts, 1, "{report:?}: h0 is held twice");
    assert_eq!(users.count_by("email", b"1@x").await.unwrap(), 100);
    assert_eq!(
        ids_in_range(&users, RangeQuery::new(10i64..13)).await,
        ["10", "11", "12"]
    );

    // Writes around the indexes: a plain store changes one entity and deletes another.
    plain
        .set("1", &account("moved@x", "h1", &[], 1))
        .await
        .unwrap();
    plain.delete("2").await.unwrap();
    assert!(
        !ids_by(&users, "email", "1@x")
            .await
            .contains(&"1".to_owned())
    );
    assert!(
        !ids_by(&users, "email", "2@x")
            .await
            .contains(&"2".to_owned())
    );
    let repaired = users.repair_indexes().await.unwrap();
    assert!(repaired.scanned >= 3 * 298, "{repaired:?}");
    // The queries above met the old email entries of 1 (changed) and 2 (deleted) and
    // cleaned them on read; the repair removes 2's two others (it has no tags).
    assert_eq!(repaired.removed, 2, "{repaired:?}");
    // 100 held it and 2 is gone (0 and 297, whose handles clash, are both 0@x).
    let twos = ids_by(&users, "email", "2@x").await;
    assert_eq!(twos.len(), 99);
    let counted = users.count_by("email", b"2@x").await.unwrap();
    assert_eq!(counted, 99, "{twos:?}");
    let again = users.rebuild_indexes(&mut |_| {}).await.unwrap();
    assert_eq!(again.conflicts, 1);
    assert_eq!(ids_by(&users, "email", "moved@x").await, ["1"]);
    assert_eq!(users.repair_indexes().await.unwrap().removed, 0);
}

/// Every member of every index of `store`, per index, as the backend keeps them.
pub async fn all_members<B: Backend>(store: &TypedStore<Account, B>) -> Vec<Vec<Vec<u8>>> {
    let spaces = store.index_spaces();
    let mut all = Vec::new();
    for n in 0..spaces[0].indexes.len() {
        let range = (&Lex::Min, &Lex::Max);
        let mut members = Vec::new();
        for space in spaces {
            let page = store
                .backend()
                .index_members(space, n, range, Order::Ascending, 100_000)
                .await
                .unwrap();
            members.extend(page);
        }
        members.sort();
        all.push(members);
    }
    all
}

/// Writes around the indexes, made the three ways other programs make them (a store of the
/// same type without indexes, the raw bytes of another entity, a raw delete), leave entries
/// that no current value gives. Unique values those entries name are free at once (a claim
/// checks the holder's current value and cleans its stale entry), before and after a
/// repair; a value another entity's current value gives stays taken; and `repair_indexes`
/// removes every stale entry, and nothing else.
pub async fn writes_around_the_indexes_are_repaired<B: Backend>(backend: B) {
    let users = accounts(&backend, "acct");
    let plain: TypedStore<Account, B> = TypedStore::builder(backend.clone(), "acct")
        .hash_tag(true)
        .build()
        .unwrap();
    users
        .set("a", &account("a@x", "ha", &["t1"], 1))
        .await
        .unwrap();
    users
        .set("b", &account("b@x", "hb", &["t2"], 2))
        .await
        .unwrap();
    users.set("c", &account("c@x", "hc", &[], 3)).await.unwrap();
    users
        .set("keep", &account("k@x", "hk", &["t1"], 4))
        .await
        .unwrap();

    // a: through a store without indexes, new email and handle (same tag and score).
    plain
        .set("a", &account("a2@x", "ha2", &["t1"], 1))
        .await
        .unwrap();
    // b: the raw bytes of another entity (so b now gives keep's values, clashing handle
    // included); c: deleted raw.
    let keep_key = users.keyspace().key("keep").unwrap();
    let keep_bytes = backend.get(&keep_key).await.unwrap().unwrap();
    let b_key = users.keyspace().key("b").unwrap();
    let always = Write::new(WriteExpiry::Never, Condition::Always);
    backend.set(&b_key, keep_bytes, always).await.unwrap();
    let c_key = users.keyspace().key("c").unwrap();
    assert!(backend.delete(&c_key).await.unwrap());

    // Their old handles are free now, before any repair: the claims clean their entries.
    let claim = |handle: &str| account("claim@x", handle, &[], 10);
    users.set("claim-ha", &claim("ha")).await.unwrap();
    users.set("claim-hb", &claim("hb")).await.unwrap();
    assert_eq!(
        users
            .find_one_by("handle", b"ha")
            .await
            .unwrap()
            .map(|(id, _)| id),
        Some("claim-ha".to_owned())
    );
    // keep's handle is still keep's (b gives it too, but never through the indexes).
    assert!(matches!(
        users.set("claim-hk", &claim("hk")).await,
        Err(Error::UniqueViolation { .. })
    ));

    let before: usize = all_members(&users).await.iter().map(Vec::len).sum();
    assert_eq!(before, 19);
    let report = users.repair_indexes().await.unwrap();
    // a's old email; b's old email, tag and score; c's email, handle and score.
    assert_eq!((report.scanned, report.removed), (19, 7), "{report:?}");
    assert_eq!(users.repair_indexes().await.unwrap().removed, 0);
    let after = all_members(&users).await;
    let sizes: Vec<usize> = after.iter().map(Vec::len).collect();
    // email: keep and the two claims; handle: the same three; tag: keep's and a's t1;
    // score: keep, a and the two claims.
    assert_eq!(sizes, [3, 3, 2, 4], "{after:?}");
    assert_no_entries_of(&users, &["b", "c"]).await;
    // c's handle, freed by the repair, can be claimed after it.
    users.set("claim-hc", &claim("hc")).await.unwrap();
    assert_eq!(ids_by(&users, "tag", "t1").await, ["a", "keep"]);
    assert_eq!(
        ids_by(&users, "email", "claim@x").await,
        ["claim-ha", "claim-hb", "claim-hc"]
    );

    // A rebuild indexes what was written around the indexes; an entity whose new value
    // takes a unique value another holds is left out of every index, old entries included.
    users
        .set("x", &account("x@x", "hx", &["t3"], 20))
        .await
        .unwrap();
    plain
        .set("x", &account("x2@x", "hk", &["t3"], 20))
        .await
        .unwrap();
    let rebuilt = users.rebuild_indexes(&mut |_| {}).await.unwrap();
    assert_eq!(
        rebuilt.conflicts, 2,
        "b and x take keep's handle: {rebuilt:?}"
    );
    assert_eq!(ids_by(&users, "email", "a2@x").await, ["a"]);
    users.set("claim-hx", &claim("hx")).await.unwrap();
    assert_no_entries_of(&users, &["b", "x"]).await;
}

/// An entity deleted around the indexes leaves its record behind; another entity then
/// claims its unique value (removing the dead holder's entry) and lets it go. Written again
/// with the value, the first entity is indexed anew, though its old record names every
/// entry it gets: the value finds it and stays taken, and nothing is stale.
pub async fn a_unique_value_taken_back_is_indexed_again<B: Backend>(backend: B) {
    let users = accounts(&backend, "back");
    let a = account("a@x", "ha", &["t"], 1);
    users.set("a", &a).await.unwrap();
    let a_key = users.keyspace().key("a").unwrap();
    assert!(backend.delete(&a_key).await.unwrap());
    users.set("b", &account("b@x", "ha", &[], 2)).await.unwrap();
    assert!(users.delete("b").await.unwrap());

    users.set("a", &a).await.unwrap();
    assert_eq!(ids_by(&users, "handle", "ha").await, ["a"]);
    assert_eq!(ids_by(&users, "email", "a@x").await, ["a"]);
    assert!(matches!(
        users.set("c", &account("c@x", "ha", &[], 3)).await,
        Err(Error::UniqueViolation { .. })
    ));
    assert_eq!(users.repair_indexes().await.unwrap().removed, 0);
}

/// No entry of any index of `users` names one of `ids`.
async fn assert_no_entries_of<B: Backend>(users: &TypedStore<Account, B>, ids: &[&str]) {
    let space = &users.index_spaces()[0];
    for (index, members) in space.indexes.iter().zip(all_members(users).await) {
        for member in &members {
            let id = member_id(index.kind, member).unwrap();
            assert!(!ids.contains(&id), "{}: {member:?}", index.name);
        }
    }
}

/// An extractor that panics is an error for that write, naming key and index; nothing is
/// written, and other values are written as usual.
pub async fn panicking_extractors_are_errors<B: Backend>(backend: B) {
    let users: TypedStore<Account, B> = TypedStore::builder(backend.clone(), "acct")
        .hash_tag(true)
        .index(Index::equality("email", |a: &Account| {
            assert!(a.score >= 0, "negative scores are a bug");
            [a.email.clone()]
        }))
        .build()
        .unwrap();
    let failed = users.set("1", &account("a@x", "a", &[], -1)).await;
    assert!(
        matches!(&failed, Err(Error::IndexValue { index, key }) if index == "email" && key.ends_with(":1")),
        "{failed:?}"
    );
    assert_eq!(users.get("1").await.unwrap(), None);
    users.set("1", &account("a@x", "a", &[], 1)).await.unwrap();
    assert_eq!(ids_by(&users, "email", "a@x").await, ["1"]);
}

/// The old shape of [`Account`], for the migration case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountV1 {
    /// The email.
    pub email: String,
}

/// A value migrated from an older schema and written back on read is indexed by that write.
pub async fn migrated_values_are_indexed_on_write_back<B: Backend>(backend: B) {
    let v1: TypedStore<AccountV1, B> = TypedStore::builder(backend.clone(), "acct")
        .hash_tag(true)
        .build()
        .unwrap();
    v1.set(
        "1",
        &AccountV1 {
            email: "old@x".into(),
        },
    )
    .await
    .unwrap();
    let users = accounts_with(&backend, "acct", |b| {
        b.schema_version(2)
            .migrate_from(1, |old: AccountV1| account(&old.email, "h1", &[], 1))
            .write_back_migrated(true)
    });
    assert_eq!(ids_by(&users, "email", "old@x").await, Vec::<String>::new());
    assert_eq!(users.get("1").await.unwrap().unwrap().email, "old@x");
    assert_eq!(ids_by(&users, "email", "old@x").await, ["1"]);
    assert_eq!(
        users.find_one_by("handle", b"h1").await.unwrap().unwrap().0,
        "1"
    );
}
