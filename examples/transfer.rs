//! Several entities changed together, all or nothing: ten concurrent transfers of 30 from
//! an account holding 100. Each reads both balances, refuses an overdraft, and commits both
//! writes only if neither balance changed meanwhile (otherwise it runs again on fresh
//! reads), so exactly three are paid and no money appears or disappears.
//!
//! ```text
//! cargo run -p typedkv-examples --example transfer                                # in memory
//! REDIS_URL=redis://127.0.0.1:6379 cargo run -p typedkv-examples --example transfer  # Redis
//! ```

use typedkv::{Error, Store, TypedStore};
use typedkv_examples::{Backend, Failure};

/// Moves `amount` from `from` to `to` in one transaction; whether it was paid.
async fn transfer<B: typedkv::Backend>(
    backend: &B,
    accounts: &TypedStore<i64, B>,
    (from, to): (&str, &str),
    amount: i64,
) -> Result<bool, Error> {
    typedkv::transaction(backend, |tx| async move {
        let balances = tx.get_many(accounts, &[from, to]).await?;
        let (payer, payee) = (balances[0].unwrap_or(0), balances[1].unwrap_or(0));
        if payer < amount {
            return Ok(false); // refused: nothing is written
        }
        tx.set(accounts, from, &(payer - amount))?;
        tx.set(accounts, to, &(payee + amount))?;
        Ok(true)
    })
    .await
}

/// The example on any backend: the code is the same for memory, Redis and a cluster.
async fn run<B: typedkv::Backend>(backend: B, hash_tag: bool) -> Result<(), Failure> {
    // On a cluster, one transaction's keys must share a slot: a hash-tagged store.
    let accounts = TypedStore::<i64, B>::builder(backend.clone(), "example-account")
        .hash_tag(hash_tag)
        .build()?;
    accounts.set("alice", &100).await?;
    accounts.set("bob", &0).await?;

    let accounts = &accounts;
    let backend = &backend;
    let attempts = (0..10).map(|_| transfer(backend, accounts, ("alice", "bob"), 30));
    let paid = futures::future::try_join_all(attempts).await?;
    let paid = paid.into_iter().filter(|&paid| paid).count();
    let (alice, bob) = (accounts.get("alice").await?, accounts.get("bob").await?);
    println!("transfers paid: {paid} of 10");
    println!("alice: {alice:?}, bob: {bob:?}");
    let kept = alice.unwrap_or(0) + bob.unwrap_or(0) == 100;
    println!("money kept: {kept}");
    if !kept || paid != 3 {
        return Err("a transfer was lost or doubled".into());
    }

    // Clean up, so a run against a real Redis leaves nothing behind.
    accounts.delete_many(&["alice", "bob"]).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    match Backend::from_env("transfer").await? {
        Backend::Memory(memory) => run(memory, false).await,
        Backend::Redis(pool) => run(pool, false).await,
        Backend::Cluster(pool) => run(pool, true).await,
    }
}
