//! The conventions a Rust user expects of a store (issue 14, part 2), as a consumer crate
//! would use them: stores behind `Arc`, `Box` and `&` are stores, `dyn Store` is `Debug`,
//! scans can move into spawned tasks, names follow std (`_with` takes a closure).

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use typedkv::{Loaded, MemoryStore, SetOptions, Store, StoreExt};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    name: String,
}

fn user(name: &str) -> User {
    User { name: name.into() }
}

/// Generic code over any store.
async fn rename<S: Store<User>>(users: &S, id: &str, name: &str) -> typedkv::Result<()> {
    users.set(id, &user(name)).await
}

#[tokio::test]
async fn pointers_to_stores_are_stores() {
    let shared: Arc<dyn Store<User>> = Arc::new(MemoryStore::new("user").unwrap());
    rename(&shared, "1", "via arc").await.unwrap();
    let boxed: Box<dyn Store<User>> = Box::new(MemoryStore::new("user").unwrap());
    rename(&boxed, "1", "via box").await.unwrap();
    let concrete = MemoryStore::<User>::new("user").unwrap();
    rename(&&concrete, "1", "via ref").await.unwrap();
    assert_eq!(shared.get("1").await.unwrap(), Some(user("via arc")));
    assert_eq!(boxed.get("1").await.unwrap(), Some(user("via box")));
    assert_eq!(concrete.get("1").await.unwrap(), Some(user("via ref")));
    // StoreExt comes along for every one of them.
    assert_eq!(shared.fetch(1).await.unwrap(), Some(user("via arc")));
}

#[tokio::test]
async fn stores_are_debug_without_their_values() {
    let users: Arc<dyn Store<User>> = Arc::new(MemoryStore::new("user").unwrap());
    users.set("1", &user("Alice")).await.unwrap();
    let shown = format!("{users:?}");
    assert!(
        shown.contains("user") && shown.contains("memory"),
        "{shown}"
    );
    assert!(!shown.contains("Alice"), "{shown}");
    let builder = MemoryStore::<User>::builder(typedkv::MemoryBackend::new(), "user");
    assert!(format!("{builder:?}").contains("user"));
}

#[tokio::test]
async fn scans_move_into_spawned_tasks() {
    let users = MemoryStore::<User>::new("user").unwrap();
    for i in 0..10 {
        users.set(&i.to_string(), &user("x")).await.unwrap();
    }
    let scan = users.scan();
    let ids = users.scan_ids();
    drop(users); // the streams own what they need
    let counted = tokio::spawn(async move {
        let all: Vec<(String, User)> = scan.try_collect().await.unwrap();
        let ids: Vec<String> = ids.try_collect().await.unwrap();
        (all.len(), ids.len())
    });
    assert_eq!(counted.await.unwrap(), (10, 10));
}

#[tokio::test]
async fn with_takes_a_closure_and_opts_take_options() {
    let users = MemoryStore::<User>::new("user").unwrap();
    let loaded = users
        .get_or_insert_with("1", || async {
            Ok::<_, std::io::Error>(Loaded::new(user("loaded")))
        })
        .await
        .unwrap();
    assert_eq!(loaded, user("loaded"));
    let written = users
        .set_opts("1", &user("other"), SetOptions::new().if_absent())
        .await
        .unwrap();
    assert!(!written);
    let updated = users.update_with("1", |u| {
        typedkv::Update::Set(user(&format!("{}!", u.unwrap().name)))
    });
    assert_eq!(updated.await.unwrap(), Some(user("loaded!")));
}
