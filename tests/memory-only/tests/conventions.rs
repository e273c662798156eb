//! The conventions a Rust user expects of a store, as a consumer crate
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

/// `Error::is_transient` per variant: true where calling again unchanged
/// may succeed.
#[test]
fn transient_errors_are_the_ones_worth_retrying() {
    use std::time::Duration;
    use typedkv::{DecodeProblem, Error, Keys, Waited};

    let keys = || Keys::one("user:1");
    let refused = |code: &str| Error::Refused {
        backend: "redis",
        keys: keys(),
        code: code.into(),
        source: "refused".into(),
    };
    let transient = [
        Error::Timeout {
            backend: "redis",
            keys: keys(),
            timeout: Duration::from_secs(1),
            waited: Waited::Reply,
        },
        Error::Connection {
            backend: "redis",
            keys: keys(),
            source: "reset".into(),
        },
        Error::Pool {
            backend: "redis",
            keys: keys(),
            source: "busy".into(),
        },
        Error::Conflict {
            key: "user:1".into(),
            attempts: 100,
        },
        refused("LOADING"),
        refused("TRYAGAIN"),
        refused("CLUSTERDOWN"),
        refused("MASTERDOWN"),
        refused("BUSY"),
    ];
    for error in &transient {
        assert!(error.is_transient(), "{error:?}");
    }
    let lasting = [
        refused("NOPERM"),
        refused("WRONGTYPE"),
        refused("OOM"),
        Error::Protocol {
            backend: "redis",
            keys: keys(),
            reason: "a number where a string was due".into(),
        },
        Error::Decode {
            key: "user:1".into(),
            codec: "bincode",
            expected_schema: 1,
            problem: DecodeProblem::NotEnveloped,
            source: None,
        },
        Error::Encode {
            key: "user:1".into(),
            codec: "bincode",
            source: "no".into(),
        },
        Error::Load {
            key: "user:1".into(),
            source: "the loader failed".into(),
        },
        MemoryStore::<User>::new("bad:namespace").unwrap_err(),
        Error::InvalidId {
            namespace: "user".into(),
            reason: "the id is empty",
        },
        Error::InvalidConfig {
            reason: "a TTL must be greater than zero".into(),
            source: None,
        },
    ];
    for error in &lasting {
        assert!(!error.is_transient(), "{error:?}");
    }
}

/// Batch errors carry their first key and the batch size, not a made-up key.
#[test]
fn batch_errors_name_their_first_key_and_size() {
    let error = typedkv::Error::Connection {
        backend: "redis",
        keys: typedkv::Keys::batch("user:1", 100),
        source: "refused".into(),
    };
    assert_eq!(error.key(), Some("user:1"));
    assert_eq!(error.key_count(), 100);
    assert_eq!(
        error.to_string(),
        "connection to redis failed (keys user:1 and 99 more)"
    );
}

/// A version that does not parse is its own error (a client's bad `If-Match`), not a
/// configuration error.
#[test]
fn a_bad_version_is_a_parse_error() {
    let err = "W/\"abc\"".parse::<typedkv::Version>().unwrap_err();
    assert!(err.to_string().contains("40 hex digits"), "{err}");
}
