//! Namespaces and ids: isolation, awkward characters, validation.

use typedkv::{Backend, Error, MAX_ID_LEN, Store, TypedStore};

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
