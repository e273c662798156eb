//! Only-if-absent and only-if-present writes.

use std::time::Duration;

use typedkv::{Backend, SetOptions, Store};

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
