//! The axum example service over HTTP, on a real redis-server: `PUT`, `GET`, `DELETE` of
//! `/users/{id}`, 404 for missing users, 503 once Redis is gone.

// Tests report failures by panicking.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::net::TcpListener;
use typedkv::RedisStore;
use typedkv::redis::RedisPool;
use typedkv_examples::users_api::{User, router};
use typedkv_testkit::TestRedis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_stores_users_in_redis() {
    let mut server = TestRedis::start().await;
    let pool = RedisPool::builder(server.url())
        .connect_timeout(Duration::from_millis(300))
        .response_timeout(Some(Duration::from_millis(300)))
        .build()
        .unwrap();
    let users = RedisStore::<User>::builder(pool, "user").build().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let service = tokio::spawn(async move { axum::serve(listener, router(Arc::new(users))).await });
    let http = reqwest::Client::new();
    let url = |id: &str| format!("{base}/users/{id}");

    let alice = User {
        name: "Alice".into(),
        email: "alice@example.com".into(),
    };
    let put = http.put(url("42")).json(&alice).send().await.unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);
    let got = http.get(url("42")).send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    assert_eq!(got.json::<User>().await.unwrap(), alice);
    assert_eq!(
        http.get(url("43")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // What the service wrote is in Redis under user:42.
    let mut raw = server.raw_connection().await;
    let exists: bool = redis::cmd("EXISTS")
        .arg("user:42")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(exists);

    let bad = http.put(url("42")).body("not json").send().await.unwrap();
    assert!(bad.status().is_client_error(), "{}", bad.status());
    assert_eq!(
        http.delete(url("42")).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get(url("42")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        http.delete(url("42")).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    server.stop();
    let down = http.get(url("42")).send().await.unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.text().await.unwrap(), "storage unavailable");
    service.abort();
}
