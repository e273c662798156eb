//! Only-if-absent and only-if-present writes.

use std::time::Duration;

use typedkv::{Backend, Guard, SetOptions, Store, Swap, Version, WriteExpiry};

use super::store;

/// `if_absent` writes a new key once; later attempts report `false` and change nothing. An
/// expired key counts as absent.
pub async fn only_if_absent<B: Backend>(backend: B) {
    let s = store::<String, B>(&backend, "lock");
    assert!(
        s.set_opts("a", &"first".into(), SetOptions::new().if_absent())
            .await
            .unwrap()
    );
    assert!(
        !s.set_opts("a", &"second".into(), SetOptions::new().if_absent())
            .await
            .unwrap()
    );
    assert_eq!(s.get("a").await.unwrap().as_deref(), Some("first"));

    let short = SetOptions::new()
        .if_absent()
        .ttl(Duration::from_millis(300));
    assert!(s.set_opts("b", &"old".into(), short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        s.set_opts("b", &"new".into(), SetOptions::new().if_absent())
            .await
            .unwrap()
    );
    assert_eq!(s.get("b").await.unwrap().as_deref(), Some("new"));
}

/// `if_present` never creates a key, and overwrites an existing one.
pub async fn only_if_present<B: Backend>(backend: B) {
    let s = store::<String, B>(&backend, "cfg");
    assert!(
        !s.set_opts("a", &"x".into(), SetOptions::new().if_present())
            .await
            .unwrap()
    );
    assert!(!s.exists("a").await.unwrap());
    s.set("a", &"old".into()).await.unwrap();
    assert!(
        s.set_opts("a", &"new".into(), SetOptions::new().if_present())
            .await
            .unwrap()
    );
    assert_eq!(s.get("a").await.unwrap().as_deref(), Some("new"));
}

/// `Backend::compare_and_swap` honours every [`Guard`]: `Always` swaps whatever is there,
/// `Absent` and `Present` look only at existence, `Bytes` and `Version` at the value; a
/// guard not met writes nothing and hands back what it found.
pub async fn compare_and_swap_honours_every_guard<B: Backend>(backend: B) {
    let key = "guard:k";
    let swap = |guard: Guard, new: &'static [u8]| {
        let backend = backend.clone();
        async move {
            backend
                .compare_and_swap(key, &guard, Some(new.to_vec()), WriteExpiry::Never)
                .await
                .unwrap()
        }
    };
    assert_eq!(swap(Guard::Present, b"x").await, Swap::Changed(None));
    assert_eq!(
        backend.get(key).await.unwrap(),
        None,
        "a guard not met writes nothing"
    );
    assert_eq!(swap(Guard::Absent, b"a").await, Swap::Done);
    assert_eq!(
        swap(Guard::Absent, b"x").await,
        Swap::Changed(Some(b"a".to_vec()))
    );
    assert_eq!(swap(Guard::Present, b"b").await, Swap::Done);
    assert_eq!(
        swap(Guard::Bytes(b"a".to_vec()), b"x").await,
        Swap::Changed(Some(b"b".to_vec()))
    );
    assert_eq!(swap(Guard::Bytes(b"b".to_vec()), b"c").await, Swap::Done);
    assert_eq!(
        swap(Guard::Version(Version::of(b"b")), b"x").await,
        Swap::Changed(Some(b"c".to_vec()))
    );
    assert_eq!(
        swap(Guard::Version(Version::of(b"c")), b"d").await,
        Swap::Done
    );
    assert_eq!(swap(Guard::Always, b"e").await, Swap::Done);
    assert_eq!(backend.get(key).await.unwrap(), Some(b"e".to_vec()));
    let deleted = backend
        .compare_and_swap(key, &Guard::Always, None, WriteExpiry::Never)
        .await
        .unwrap();
    assert_eq!(deleted, Swap::Done);
    assert_eq!(backend.get(key).await.unwrap(), None);
    assert_eq!(
        swap(Guard::Always, b"f").await,
        Swap::Done,
        "Always also creates"
    );
}
