//! Transactions on a real server: stores of several namespaces in one commit, and a hung
//! server (SIGSTOP) that every transaction leaves by its deadline, writing nothing.

use std::time::{Duration, Instant};

use typedkv::redis::RedisPool;
use typedkv::{Error, RedisStore, Store, TransactionOptions, Waited, transaction_with};
use typedkv_testkit::TestRedis;

/// An order and the stock it reserves, in two namespaces of two value types, commit
/// together; an order that the stock cannot cover writes neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stores_of_several_namespaces_commit_together() {
    let server = TestRedis::start().await;
    let pool = server.pool();
    let stock = &RedisStore::<u32>::builder(pool.clone(), "stock")
        .build()
        .unwrap();
    let orders = &RedisStore::<Vec<String>>::builder(pool.clone(), "order")
        .build()
        .unwrap();
    stock.set("apple", &3).await.unwrap();

    let order = |id: &'static str, apples: u32| {
        typedkv::transaction(&pool, move |tx| async move {
            let left = tx.get(stock, "apple").await?.unwrap_or(0);
            if left < apples {
                return Ok::<_, Error>(false);
            }
            tx.set(stock, "apple", &(left - apples))?;
            tx.set(orders, id, &vec!["apple".to_owned(); apples as usize])?;
            Ok(true)
        })
    };
    assert!(order("o-1", 2).await.unwrap());
    assert!(!order("o-2", 2).await.unwrap());
    assert_eq!(stock.get("apple").await.unwrap(), Some(1));
    assert_eq!(orders.get("o-1").await.unwrap().map(|o| o.len()), Some(2));
    assert_eq!(orders.get("o-2").await.unwrap(), None);
}

/// Transactions started while the server hangs end by their own bound, each with a
/// timeout: the reply timeout of their first read (on a warm pool), the connection timeout
/// (on a pool made while the server hangs), or the transaction's deadline when it is
/// shorter. Nothing is written; once the server answers again they commit.
async fn a_hung_server_ends_every_transaction_by_its_bound(fresh_pool: bool) {
    const BOUND: Duration = Duration::from_millis(600);
    let server = TestRedis::start().await;
    let pool_of = || {
        RedisPool::builder(server.url())
            .response_timeout(Some(BOUND))
            .connect_timeout(BOUND)
            .create_timeout(BOUND)
            .build()
            .unwrap()
    };
    let warm = pool_of();
    let accounts_of = |pool: &RedisPool| {
        RedisStore::<i64>::builder(pool.clone(), "account")
            .build()
            .unwrap()
    };
    let accounts = accounts_of(&warm);
    accounts.set("a", &10).await.unwrap();
    accounts.set("b", &0).await.unwrap();

    let transfer = |pool: RedisPool, deadline: Duration| {
        let accounts = accounts_of(&pool);
        async move {
            let started = Instant::now();
            let accounts = &accounts;
            let options = TransactionOptions::new().deadline(deadline);
            let result = transaction_with(&pool, options, |tx| async move {
                let a = tx.get(accounts, "a").await?.unwrap_or(0);
                let b = tx.get(accounts, "b").await?.unwrap_or(0);
                tx.set(accounts, "a", &(a - 1))?;
                tx.set(accounts, "b", &(b + 1))?;
                Ok::<_, Error>(())
            })
            .await;
            (started.elapsed(), result)
        }
    };

    server.signal("-STOP");
    let pool = match fresh_pool {
        true => pool_of(),
        false => warm.clone(),
    };
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            // Half bounded by the pool's timeouts, half by a shorter deadline.
            let deadline = match i % 2 {
                0 => Duration::from_secs(5),
                _ => Duration::from_millis(200),
            };
            (deadline, tokio::spawn(transfer(pool.clone(), deadline)))
        })
        .collect();
    for (deadline, task) in tasks {
        let (took, result) = task.await.unwrap();
        let (bound, want) = match (deadline < BOUND, fresh_pool) {
            (true, _) => (deadline, Waited::Transaction),
            (false, true) => (BOUND, Waited::Connection),
            (false, false) => (BOUND, Waited::Reply),
        };
        match result {
            Err(Error::Timeout { waited, .. }) => assert_eq!(waited, want),
            other => panic!("expected a timeout, got {other:?}"),
        }
        // Ended at its bound: not before, and not after the server came back.
        assert!(took >= bound, "{took:?} before {bound:?}");
    }
    server.signal("-CONT");

    assert_eq!(accounts.get("a").await.unwrap(), Some(10));
    assert_eq!(accounts.get("b").await.unwrap(), Some(0));
    transfer(pool, Duration::from_secs(5)).await.1.unwrap();
    assert_eq!(accounts.get("a").await.unwrap(), Some(9));
    assert_eq!(accounts.get("b").await.unwrap(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_ends_every_transaction_of_a_warm_pool_by_its_bound() {
    a_hung_server_ends_every_transaction_by_its_bound(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_ends_every_transaction_of_a_fresh_pool_by_its_bound() {
    a_hung_server_ends_every_transaction_by_its_bound(true).await;
}
