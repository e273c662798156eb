//! Scaling out: the same `Store<T>` on Redis Cluster. Batches and scans span the cluster's
//! masters; a hash-tagged namespace keeps its keys in one slot, so its batches are atomic.
//!
//! ```text
//! cargo run -p typedkv-examples --example cluster                       # in memory
//! REDIS_CLUSTER_URLS=redis://127.0.0.1:7000,redis://127.0.0.1:7001 \
//!     cargo run -p typedkv-examples --example cluster                   # on a cluster
//! ```
//!
//! `scripts/local-cluster start` starts a throwaway 3-master, 3-replica cluster on loopback
//! and prints the `REDIS_CLUSTER_URLS` to use.

use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use typedkv_examples::{Backend, Failure};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    customer: String,
    cents: u64,
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let backend = Backend::from_env("cluster").await?;

    // Plain keys ("order:17") hash to slots all over the cluster: load spreads evenly, and
    // set_many/get_many/delete_many are split by slot (atomic per slot, not as a whole).
    let orders = backend.store::<Order>("order")?;
    let batch: Vec<(String, Order)> = (1..=100)
        .map(|n| {
            let order = Order {
                customer: format!("customer-{}", n % 7),
                cents: n * 250,
            };
            (n.to_string(), order)
        })
        .collect();
    let entries: Vec<(&str, &Order)> = batch.iter().map(|(id, o)| (id.as_str(), o)).collect();
    orders.set_many(&entries).await?;
    let some = orders.get_many(&["3", "nope", "42"]).await?;
    println!("get_many(3, nope, 42) -> {some:?}");

    // A scan visits every master; each order comes back once.
    let total: u64 = orders
        .scan()
        .try_fold(0, |sum, (_, order)| async move { Ok(sum + order.cents) })
        .await?;
    println!("{} orders, {total} cents in all", orders.count().await?);

    // A hash-tagged namespace ("{cart}:alice") lives in one slot: its batches are atomic
    // on a cluster too, at the price of one master carrying all of it.
    let carts = backend.store_with::<Vec<String>>("cart", true)?;
    let (alice, bob) = (
        vec!["book".to_owned()],
        vec!["pen".to_owned(), "ink".to_owned()],
    );
    carts.set_many(&[("alice", &alice), ("bob", &bob)]).await?;
    println!("carts -> {:?}", carts.get_many(&["alice", "bob"]).await?);

    // Clean up, so a run against a real cluster leaves nothing behind.
    let removed = orders.clear().await? + carts.clear().await?;
    println!("removed {removed} keys");
    Ok(())
}
