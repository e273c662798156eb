//! Sharing data with programs that are not typedkv: a store with the JSON codec writes plain
//! JSON under `namespace:id`, which `redis-cli` (standing in for any client, in any
//! language) reads, and reads plain JSON that `redis-cli` wrote.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use typedkv::codec::Json;
use typedkv::{RedisStore, Store};
use typedkv_testkit::TestRedis;
use typedkv_testkit::conformance::values::{Profile, Role, profile};

fn redis_cli(server: &TestRedis, args: &[&str]) -> Vec<u8> {
    let port = server.port().to_string();
    let out = Command::new("redis-cli")
        .args(["-p", &port, "--raw"])
        .args(args)
        .output()
        .expect("redis-cli runs (scripts/install-redis installs it)");
    assert!(out.status.success(), "{out:?}");
    out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_values_are_shared_with_other_clients() {
    let server = TestRedis::start().await;
    let users: RedisStore<Profile, Json> = RedisStore::builder(server.pool(), "user")
        .codec(Json::new())
        .build()
        .unwrap();

    // typedkv writes; another client reads plain JSON at the documented key.
    let mut alice = profile(42);
    alice.roles = vec![Role::Reader, Role::Admin { level: 3 }];
    users.set("42", &alice).await.unwrap();
    let raw = redis_cli(&server, &["GET", "user:42"]);
    let json: serde_json::Value = serde_json::from_slice(raw.trim_ascii_end()).unwrap();
    assert_eq!(json["name"], "user-42");
    assert_eq!(json["age"], 62);
    assert_eq!(json["roles"][0], "Reader");
    assert_eq!(json["roles"][1]["Admin"]["level"], 3);

    // Another client writes plain JSON; typedkv reads it.
    let written = r#"{"name":"from-cli","age":7,"address":{"street":"Main St","postcode":null},"roles":[{"Editor":["docs"]}],"scores":{"q1":[1,2]},"rating":4.5}"#;
    redis_cli(&server, &["SET", "user:cli", written]);
    let read = users.get("cli").await.unwrap().unwrap();
    assert_eq!(read.name, "from-cli");
    assert_eq!(read.address.unwrap().street, "Main St");
    assert_eq!(read.roles, vec![Role::Editor(vec!["docs".into()])]);
    assert_eq!(read.scores["q1"], vec![1, 2]);
    assert_eq!(read.rating, Some(4.5));
}
