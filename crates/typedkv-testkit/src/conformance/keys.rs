//! Namespaces and ids: isolation, awkward characters, validation.

use std::collections::HashSet;
use std::time::Duration;

use futures::TryStreamExt;
use typedkv::{Backend, Error, Expiry, MAX_ID_LEN, Store, StoreExt, TypedStore, Update};

use super::store;

/// Two namespaces on one backend never see each other's values, even for equal ids or
/// namespaces that are prefixes of each other.
pub async fn namespaces_are_isolated<B: Backend>(backend: B) {
    let a = store::<String, B>(&backend, "a");
    let ab = store::<String, B>(&backend, "ab");
    a.set("1", &"from a".into()).await.unwrap();
    ab.set("1", &"from ab".into()).await.unwrap();
    assert_eq!(a.get("1").await.unwrap().as_deref(), Some("from a"));
    assert_eq!(ab.get("1").await.unwrap().as_deref(), Some("from ab"));
    assert!(a.delete("1").await.unwrap());
    assert_eq!(ab.get("1").await.unwrap().as_deref(), Some("from ab"));
    // "b:1" in namespace "a" is key "a:b:1", which no other valid namespace can produce.
    a.set("b:1", &"nested".into()).await.unwrap();
    assert_eq!(ab.get(":1").await.unwrap(), None);
}

/// Ids with `:`, glob characters, spaces, CR/LF, NUL, unicode, and 1 KiB length all work.
pub async fn awkward_ids_round_trip<B: Backend>(backend: B) {
    let s = store::<String, B>(&backend, "id");
    let long = "x".repeat(1024);
    let ids = [
        "with:colon",
        "star*",
        "glob?[a-z]\\",
        "with space",
        "line\r\nbreak",
        "nul\0byte",
        "ünïcødé 🦀",
        long.as_str(),
    ];
    for id in ids {
        s.set(id, &format!("value of {id}")).await.unwrap();
    }
    for id in ids {
        assert_eq!(
            s.get(id).await.unwrap(),
            Some(format!("value of {id}")),
            "{id:?}"
        );
    }
    let all = s.get_many(&ids).await.unwrap();
    assert!(
        all.iter()
            .zip(ids)
            .all(|(v, id)| v.as_deref() == Some(&*format!("value of {id}")))
    );
    for id in ids {
        assert!(s.delete(id).await.unwrap(), "{id:?}");
    }
}

/// Empty ids and ids over [`MAX_ID_LEN`] are refused with [`Error::InvalidId`]; bad
/// namespaces with [`Error::InvalidNamespace`].
pub async fn invalid_ids_and_namespaces_are_refused<B: Backend>(backend: B) {
    let s = store::<u8, B>(&backend, "v");
    let too_long = "x".repeat(MAX_ID_LEN + 1);
    for id in ["", too_long.as_str()] {
        assert!(matches!(s.get(id).await, Err(Error::InvalidId { .. })));
        assert!(matches!(s.set(id, &1).await, Err(Error::InvalidId { .. })));
        assert!(matches!(
            s.get_many(&["ok", id]).await,
            Err(Error::InvalidId { .. })
        ));
    }
    assert!(s.set(&"x".repeat(MAX_ID_LEN), &1).await.is_ok());
    for ns in ["", "a:b", "a*", "{tag}", "with space"] {
        let built: typedkv::Result<TypedStore<u8, B>> =
            TypedStore::builder(backend.clone(), ns).build();
        assert!(
            matches!(built, Err(Error::InvalidNamespace { .. })),
            "{ns:?}"
        );
    }
}

/// A hash-tagged store (`{tag}:id`) works like a plain one (batches with a TTL, update,
/// scan, count, clear) and never sees the plain store of the same namespace. On a cluster
/// the tagged batch is one slot and the plain one spans many.
pub async fn hash_tagged_keys_work_like_plain_ones<B: Backend>(backend: B) {
    let build = |hash_tag| -> TypedStore<u64, B> {
        TypedStore::builder(backend.clone(), "tag")
            .hash_tag(hash_tag)
            .ttl(Duration::from_secs(3600))
            .build()
            .unwrap()
    };
    let (tagged, plain) = (build(true), build(false));
    let ids: Vec<String> = (0..50).map(|i| i.to_string()).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let values: Vec<u64> = (0..50).collect();
    let entries: Vec<(&str, &u64)> = ids.iter().copied().zip(&values).collect();
    tagged.set_many(&entries).await.unwrap();
    plain.set_many(&entries[..10]).await.unwrap();
    let want: Vec<Option<u64>> = values.iter().copied().map(Some).collect();
    assert_eq!(tagged.get_many(&ids).await.unwrap(), want);
    assert_eq!(plain.get_many(&ids[..10]).await.unwrap(), want[..10]);
    for store in [&tagged, &plain] {
        assert!(matches!(store.ttl("7").await.unwrap(), Some(Expiry::In(_))));
    }
    let bumped = tagged
        .update_with("0", |v| Update::Set(v.unwrap_or(0) + 100))
        .await
        .unwrap();
    assert_eq!(bumped, Some(100));
    assert_eq!(plain.get("0").await.unwrap(), Some(0));
    let scanned: HashSet<String> = tagged.scan_ids().try_collect().await.unwrap();
    assert_eq!(scanned.len(), 50);
    assert_eq!(plain.count().await.unwrap(), 10);
    assert_eq!(tagged.clear().await.unwrap(), 50);
    assert_eq!(plain.count().await.unwrap(), 10);
}
