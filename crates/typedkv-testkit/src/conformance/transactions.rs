//! Transactions over several entities: every write or none, only if nothing read changed;
//! retries on fresh reads; aborts, panics and refusals write nothing.
//!
//! Stores here are hash-tagged on one namespace, so that their keys share one Redis Cluster
//! slot and the same cases run on a cluster (a commit spanning slots is refused: see the
//! cluster's own tests).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use typedkv::backend::{Check, CommitWrite, Committed};
use typedkv::{
    Backend, Compression, EncryptionKey, Error, Expiry, Guard, Index, Keyring, SetOptions, Store,
    StoreExt, Transaction, TransactionOptions, Transactions, TypedStore, Version, WriteExpiry,
    transaction, transaction_with,
};

use super::indexes::{Account, account, accounts, ids_by};

use crate::Fixture;

/// A store of `T` in the namespace all these cases share, hash-tagged.
fn bank<T, B>(backend: &B) -> TypedStore<T, B>
where
    T: Serialize + serde::de::DeserializeOwned + Send + Sync + 'static,
    B: Backend,
{
    TypedStore::builder(backend.clone(), "bank")
        .hash_tag(true)
        .build()
        .unwrap()
}

/// What a closure of these cases aborts with: its own error, or typedkv's.
#[derive(Debug)]
enum Abort {
    Refused(&'static str),
    Store(Error),
}

impl From<Error> for Abort {
    fn from(error: Error) -> Self {
        Abort::Store(error)
    }
}

/// Moves `amount` from `from` to `to` unless `from` cannot pay (then `Ok(false)`). The
/// payee is read after the payer's write, so a transfer to oneself changes nothing.
pub(crate) async fn transfer<B: Backend>(
    tx: Transaction,
    accounts: &TypedStore<i64, B>,
    from: &str,
    to: &str,
    amount: i64,
) -> Result<bool, Error> {
    let payer = tx.get(accounts, from).await?.unwrap_or(0);
    if payer < amount {
        return Ok(false);
    }
    tx.set(accounts, from, &(payer - amount))?;
    let payee = tx.get(accounts, to).await?.unwrap_or(0);
    tx.set(accounts, to, &(payee + amount))?;
    Ok(true)
}

/// A transfer writes both accounts; stores of other value types commit in the same step;
/// the closure reads its own writes; an abort, a refused write and an empty transaction
/// write nothing; TTLs follow the write's options.
pub async fn transactions_commit_all_or_nothing<B: Backend>(backend: B) {
    let accounts = &bank::<i64, B>(&backend);
    let notes = &bank::<String, B>(&backend);
    accounts.set("alice", &100).await.unwrap();
    accounts.set("bob", &0).await.unwrap();

    let paid = transaction(&backend, |tx| async move {
        let paid = transfer(tx.clone(), accounts, "alice", "bob", 30).await?;
        tx.set(notes, "note-1", &"alice paid bob 30".to_owned())?;
        Ok::<_, Error>(paid)
    })
    .await
    .unwrap();
    assert!(paid);
    assert_eq!(accounts.get("alice").await.unwrap(), Some(70));
    assert_eq!(accounts.get("bob").await.unwrap(), Some(30));
    assert_eq!(
        notes.get("note-1").await.unwrap().as_deref(),
        Some("alice paid bob 30")
    );

    // Reads see the transaction's own writes and deletes, one by one or together.
    transaction(&backend, |tx| async move {
        tx.set(accounts, "carol", &5)?;
        assert_eq!(tx.get(accounts, "carol").await?, Some(5));
        tx.delete(accounts, "bob")?;
        assert_eq!(tx.get(accounts, "bob").await?, None);
        let all = tx
            .get_many(accounts, &["alice", "bob", "carol", "nobody", "alice"])
            .await?;
        assert_eq!(all, [Some(70), None, Some(5), None, Some(70)]);
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    assert_eq!(accounts.get("carol").await.unwrap(), Some(5));
    assert_eq!(accounts.get("bob").await.unwrap(), None);

    // The closure's own error aborts: nothing written, the error handed back as it was.
    let aborted = transaction(&backend, |tx| async move {
        tx.set(accounts, "alice", &0)?;
        tx.set(accounts, "dave", &1)?;
        Err::<(), _>(Abort::Refused("changed my mind"))
    })
    .await;
    match aborted {
        Err(Abort::Refused(why)) => assert_eq!(why, "changed my mind"),
        Err(Abort::Store(error)) => panic!("the abort became a store error: {error}"),
        Ok(()) => panic!("the aborted transaction succeeded"),
    }
    assert_eq!(accounts.get("alice").await.unwrap(), Some(70));
    assert_eq!(accounts.get("dave").await.unwrap(), None);

    // A conditional write is refused at once, and its transaction writes nothing.
    let conditional = transaction(&backend, |tx| async move {
        tx.set(accounts, "alice", &1)?;
        tx.set_opts(accounts, "erin", &1, SetOptions::new().if_absent())?;
        Ok::<_, Error>(())
    })
    .await;
    assert!(matches!(conditional, Err(Error::Transaction { .. })));
    assert_eq!(accounts.get("alice").await.unwrap(), Some(70));

    // TTLs: the write's own, and a kept one.
    let ttl = SetOptions::new().ttl(Duration::from_secs(100));
    transaction(&backend, |tx| async move {
        tx.set_opts(accounts, "frank", &1, ttl)?;
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    let left = accounts.ttl("frank").await.unwrap();
    assert!(
        matches!(left, Some(Expiry::In(d)) if d > Duration::from_secs(90)),
        "{left:?}"
    );
    transaction(&backend, |tx| async move {
        tx.set_opts(accounts, "frank", &2, SetOptions::new().keep_ttl())?;
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    assert!(matches!(
        accounts.ttl("frank").await.unwrap(),
        Some(Expiry::In(_))
    ));
    assert_eq!(accounts.get("frank").await.unwrap(), Some(2));

    // Nothing read or written: nothing to commit.
    assert_eq!(
        transaction(&backend, |_tx| async { Ok::<_, Error>(7) })
            .await
            .unwrap(),
        7
    );
}

/// Values at rest, and a store with indexes beside others: a sealed, compressed store
/// commits its values sealed; a store with indexes commits its entries with another store's
/// writes in one step (a change to that store's key, read before, forces a retry; a unique
/// value another entity holds aborts everything); a second store with indexes is refused,
/// nothing written.
pub async fn transactions_seal_values_and_commit_indexed_stores_beside_others<B: Backend>(
    backend: B,
) {
    let keyring = Keyring::new(1, EncryptionKey::from_bytes([0x33; 32]));
    let sealed: &TypedStore<String, B> = &TypedStore::builder(backend.clone(), "bank")
        .hash_tag(true)
        .encryption(keyring)
        .compression(Compression::lz4())
        .build()
        .unwrap();
    let secret = "a secret note, long enough to be compressed: ".repeat(8);
    let written = secret.clone();
    transaction(&backend, |tx| {
        let written = written.clone();
        async move {
            tx.set(sealed, "sealed-1", &written)?;
            Ok::<_, Error>(())
        }
    })
    .await
    .unwrap();
    assert_eq!(sealed.get("sealed-1").await.unwrap(), Some(secret));
    let key = sealed.keyspace().key("sealed-1").unwrap();
    let stored = backend.get(&key).await.unwrap().unwrap();
    assert!(
        !stored.windows(8).any(|w| w == b"a secret"),
        "the committed value is not sealed"
    );

    // One namespace, so that on a cluster every key shares the slot of its hash tag.
    let users = &super::indexes::accounts_with(&backend, "bank", |b| b);
    let ledger = &bank::<i64, B>(&backend);
    ledger.set("ledger-ann", &10).await.unwrap();
    let attempts = &AtomicU32::new(0);
    transaction(&backend, |tx| async move {
        let credit = tx.get(ledger, "ledger-ann").await?.unwrap_or(0);
        if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            // Another client writes a key read: this attempt must not commit.
            ledger.set("ledger-ann", &20).await?;
        }
        tx.set(users, "u-ann", &account("ann@x", "ann", &["new"], credit))?;
        tx.set(ledger, "ledger-ann", &0)?;
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(ids_by(users, "handle", "ann").await, ["u-ann"]);
    assert_eq!(ids_by(users, "tag", "new").await, ["u-ann"]);
    assert_eq!(users.get("u-ann").await.unwrap().map(|a| a.score), Some(20));
    assert_eq!(ledger.get("ledger-ann").await.unwrap(), Some(0));

    // A unique value another entity holds aborts everything, the other store's write too.
    let taken = transaction(&backend, |tx| async move {
        tx.set(ledger, "ledger-bob", &5)?;
        tx.set(users, "u-bob", &account("bob@x", "ann", &[], 0))?;
        Ok::<_, Error>(())
    })
    .await;
    assert!(
        matches!(taken, Err(Error::UniqueViolation { .. })),
        "{taken:?}"
    );
    assert_eq!(ledger.get("ledger-bob").await.unwrap(), None);
    assert_eq!(users.get("u-bob").await.unwrap().map(|a| a.handle), None);

    // A second store with indexes: refused, nothing written.
    let notes: &TypedStore<String, B> = &TypedStore::builder(backend.clone(), "bank")
        .hash_tag(true)
        .index(Index::equality("text", |s: &String| [s.clone()]))
        .build()
        .unwrap();
    let refused = transaction(&backend, |tx| async move {
        tx.set(ledger, "ledger-cy", &1)?;
        tx.set(users, "u-cy", &account("cy@x", "cy", &[], 0))?;
        tx.set(notes, "note-1", &"x".to_owned())?;
        Ok::<_, Error>(())
    })
    .await;
    assert!(
        matches!(refused, Err(Error::Transaction { .. })),
        "{refused:?}"
    );
    assert_eq!(ledger.get("ledger-cy").await.unwrap(), None);
    assert_eq!(notes.get("note-1").await.unwrap(), None);
}

/// Stores behind `dyn Store<T>` (`Arc`, `Box`, `&`) take part as the stores they point to,
/// on transactions made from one of them ([`Transactions::of`]): a transfer commits, a
/// change by another client makes it run again, and a store of another backend is refused.
pub async fn transactions_take_dyn_stores<B: Backend>(backend: B) {
    let accounts: Arc<dyn Store<i64>> = Arc::new(bank::<i64, B>(&backend));
    let notes: Box<dyn Store<String>> = Box::new(bank::<String, B>(&backend));
    accounts.set("dyn-a", &50).await.unwrap();
    let transactions = Transactions::of(&*accounts).unwrap();
    let (accounts, notes) = (&accounts, &notes);
    let attempts = &AtomicU32::new(0);
    let paid = transactions
        .run(|tx| async move {
            let ab = tx.get_many(accounts, &["dyn-a", "dyn-b"]).await?;
            let (a, b) = (ab[0].unwrap_or(0), ab[1].unwrap_or(0));
            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                // Another write to a key read: this attempt must not commit.
                accounts.set("dyn-a", &40).await?;
            }
            tx.set(accounts, "dyn-a", &(a - 10))?;
            tx.set(accounts.as_ref(), "dyn-b", &(b + 10))?;
            tx.set(notes, "dyn-note", &format!("moved 10 of {a}"))?;
            Ok::<_, Error>(a)
        })
        .await
        .unwrap();
    assert_eq!(paid, 40);
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(accounts.get("dyn-a").await.unwrap(), Some(30));
    assert_eq!(accounts.get("dyn-b").await.unwrap(), Some(10));
    assert_eq!(
        notes.get("dyn-note").await.unwrap().as_deref(),
        Some("moved 10 of 40")
    );

    // A store of another backend, behind `dyn` as well: refused, nothing written.
    let elsewhere: Arc<dyn Store<i64>> = Arc::new(bank::<i64, typedkv::MemoryBackend>(
        &typedkv::MemoryBackend::new(),
    ));
    let elsewhere = &elsewhere;
    let refused = transactions
        .run(|tx| async move {
            tx.set(accounts, "dyn-a", &0)?;
            tx.set(elsewhere, "dyn-a", &0)
        })
        .await;
    assert!(
        matches!(refused, Err(Error::Transaction { .. })),
        "{refused:?}"
    );
    assert_eq!(accounts.get("dyn-a").await.unwrap(), Some(30));
    assert_eq!(elsewhere.get("dyn-a").await.unwrap(), None);
}

/// A panic in the closure reaches the caller as an error and writes nothing; a handle kept
/// past its attempt refuses every call; the next transaction runs as usual.
pub async fn a_panicking_transaction_writes_nothing<B: Backend>(backend: B) {
    let accounts = &bank::<i64, B>(&backend);
    let panicked = transaction(&backend, |tx| async move {
        tx.set(accounts, "grace", &1)?;
        if tx.get(accounts, "grace").await? == Some(1) {
            panic!("the closure gives up");
        }
        Ok::<_, Error>(())
    })
    .await;
    assert!(
        matches!(panicked, Err(Error::Transaction { .. })),
        "{panicked:?}"
    );
    assert_eq!(accounts.get("grace").await.unwrap(), None);

    let kept: Arc<Mutex<Option<Transaction>>> = Arc::default();
    let keep = &kept;
    transaction(&backend, |tx| async move {
        *keep.lock().unwrap() = Some(tx.clone());
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    let late = kept.lock().unwrap().take().unwrap();
    assert!(matches!(
        late.set(accounts, "heidi", &1),
        Err(Error::Transaction { .. })
    ));
    assert!(matches!(
        late.get(accounts, "heidi").await,
        Err(Error::Transaction { .. })
    ));

    accounts.set("grace", &2).await.unwrap();
    let read = transaction(
        &backend,
        |tx| async move { tx.get(accounts, "grace").await },
    )
    .await
    .unwrap();
    assert_eq!(read, Some(2));
}

/// 64 tasks each make 16 transfers of random amounts between 10 accounts, refusing
/// overdrafts: the total is exactly preserved and no account goes negative.
pub async fn transactions_keep_an_invariant_under_contention<B: Backend>(backend: B) {
    const ACCOUNTS: u64 = 10;
    const START: i64 = 1_000;
    let accounts = Arc::new(bank::<i64, B>(&backend));
    for a in 0..ACCOUNTS {
        accounts.set(&format!("acct-{a}"), &START).await.unwrap();
    }
    let tasks: Vec<_> = (0..64u64)
        .map(|task| {
            let accounts = Arc::clone(&accounts);
            let backend = backend.clone();
            tokio::spawn(async move {
                let mut next = crate::xorshift(task);
                let accounts = &*accounts;
                for _ in 0..16 {
                    let from = format!("acct-{}", next() % ACCOUNTS);
                    let to = format!("acct-{}", next() % ACCOUNTS);
                    let amount = i64::try_from(next() % 400).unwrap();
                    let (from, to) = (&from, &to);
                    transaction(&backend, |tx| transfer(tx, accounts, from, to, amount))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let mut total = 0;
    for a in 0..ACCOUNTS {
        let balance = accounts.get(&format!("acct-{a}")).await.unwrap().unwrap();
        assert!(balance >= 0, "acct-{a} went negative: {balance}");
        total += balance;
    }
    assert_eq!(total, START * i64::try_from(ACCOUNTS).unwrap());
}

/// A write by another client between a transaction's read and its commit (a `set`, a
/// delete, a key created) makes it run again on fresh reads; past its attempts it fails
/// with `Conflict` naming the key, having written nothing.
pub async fn transactions_retry_when_what_they_read_changes<B: Backend>(fixture: &Fixture<B>) {
    let backend = fixture.backend();
    let accounts = &bank::<i64, B>(&backend);
    let other = &bank::<i64, B>(&fixture.peer());
    accounts.set("a", &10).await.unwrap();
    accounts.set("b", &20).await.unwrap();

    /// What the other client does between the first attempt's reads and its commit.
    #[derive(Clone, Copy)]
    enum Meddle {
        SetA,
        DeleteB,
        CreateC,
    }
    /// Sums `a`, `b` and `c` into `sum` in a transaction; its attempts and the sum.
    async fn sum_into_c<B: Backend>(
        backend: &B,
        accounts: &TypedStore<i64, B>,
        other: &TypedStore<i64, B>,
        meddle: Meddle,
    ) -> (u32, i64) {
        let attempts = &AtomicU32::new(0);
        let sum = transaction(backend, |tx| async move {
            let a = tx.get(accounts, "a").await?.unwrap_or(0);
            // `b` and `c` read together: a change to either is seen as well.
            let bc = tx.get_many(accounts, &["b", "c"]).await?;
            let (b, c) = (bc[0].unwrap_or(0), bc[1].unwrap_or(0));
            if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                match meddle {
                    Meddle::SetA => other.set("a", &11).await?,
                    Meddle::DeleteB => assert!(other.delete("b").await?),
                    Meddle::CreateC => other.set("c", &100).await?,
                }
            }
            tx.set(accounts, "sum", &(a + b + c))?;
            Ok::<_, Error>(a + b + c)
        })
        .await
        .unwrap();
        (attempts.load(Ordering::SeqCst), sum)
    }

    assert_eq!(
        sum_into_c(&backend, accounts, other, Meddle::SetA).await,
        (2, 31)
    );
    assert_eq!(
        sum_into_c(&backend, accounts, other, Meddle::DeleteB).await,
        (2, 11)
    );
    assert_eq!(
        sum_into_c(&backend, accounts, other, Meddle::CreateC).await,
        (2, 111)
    );
    assert_eq!(accounts.get("sum").await.unwrap(), Some(111));

    // Changed under every attempt: Conflict, naming the key, and nothing written.
    let turn = &AtomicU32::new(0);
    let options = TransactionOptions::new().attempts(3);
    let gave_up = transaction_with(&backend, options, |tx| async move {
        let a = tx.get(accounts, "a").await?.unwrap_or(0);
        let n = turn.fetch_add(1, Ordering::SeqCst);
        other.set("a", &(1_000 + i64::from(n))).await?;
        tx.set(accounts, "copy", &a)?;
        Ok::<_, Error>(())
    })
    .await;
    match gave_up {
        Err(Error::Conflict { key, attempts }) => {
            assert_eq!(attempts, 3);
            assert!(key.ends_with(":a"), "{key}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(turn.load(Ordering::SeqCst), 3);
    assert_eq!(accounts.get("copy").await.unwrap(), None);
}

/// A store with indexes in a transaction: every write keeps its entries (renames, deletes,
/// two entities swapping unique values in one step); a unique value another entity holds
/// aborts everything with `UniqueViolation`; a key only read still makes the commit retry
/// when another write changed it; the indexes answer what a full scan finds afterwards.
pub async fn transactions_keep_indexes_and_unique_values<B: Backend>(backend: B) {
    let users = &accounts(&backend, "txusers");
    users
        .set("a", &account("a@x", "ann", &["red"], 1))
        .await
        .unwrap();
    users
        .set("b", &account("b@x", "bob", &["red"], 2))
        .await
        .unwrap();
    users
        .set("c", &account("c@x", "cid", &["blue"], 3))
        .await
        .unwrap();

    // Rename one and swap two handles, in one step: each claim is checked against the
    // batch, not against the values it rewrites.
    transaction(&backend, |tx| async move {
        let found = tx.get_many(users, &["a", "b"]).await?;
        let (Some(mut a), Some(mut b)) = (found[0].clone(), found[1].clone()) else {
            return Err(Error::Transaction {
                reason: "missing".into(),
            });
        };
        std::mem::swap(&mut a.handle, &mut b.handle);
        a.tags = vec!["green".into()];
        tx.set(users, "a", &a)?;
        tx.set(users, "b", &b)?;
        Ok(())
    })
    .await
    .unwrap();
    let handle_of = |id: &'static str| async move { users.get(id).await.unwrap().unwrap().handle };
    assert_eq!(
        (handle_of("a").await, handle_of("b").await),
        ("bob".to_owned(), "ann".to_owned())
    );
    assert_eq!(ids_by(users, "handle", "bob").await, ["a"]);
    assert_eq!(ids_by(users, "handle", "ann").await, ["b"]);
    assert_eq!(ids_by(users, "tag", "green").await, ["a"]);
    assert_eq!(ids_by(users, "tag", "red").await, ["b"]);

    // A unique value held outside the transaction: nothing of it is written.
    let taken = transaction(&backend, |tx| async move {
        tx.set(users, "d", &account("d@x", "dan", &["red"], 4))?;
        tx.set(users, "e", &account("e@x", "cid", &[], 5))?;
        Ok::<_, Error>(())
    })
    .await;
    assert!(
        matches!(&taken, Err(Error::UniqueViolation { index, .. }) if index == "handle"),
        "{taken:?}"
    );
    assert_eq!(users.get("d").await.unwrap(), None);
    assert_eq!(ids_by(users, "email", "d@x").await, Vec::<String>::new());

    // A key only read, changed by a write outside the transaction after it was read: the
    // commit notices and the closure runs again.
    let attempts = &AtomicU32::new(0);
    transaction(&backend, |tx| async move {
        let c = tx
            .get(users, "c")
            .await?
            .unwrap_or_else(|| account("", "", &[], 0));
        if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
            users
                .set("c", &account("c@x", "cid", &["blue"], 30))
                .await?;
        }
        tx.set(users, "f", &account("f@x", "fay", &["blue"], c.score))?;
        Ok::<_, Error>(())
    })
    .await
    .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(users.get("f").await.unwrap().map(|f| f.score), Some(30));

    // A delete leaves every index; then the indexes answer what a scan finds.
    transaction(&backend, |tx| async move { tx.delete(users, "b") })
        .await
        .unwrap();
    assert_eq!(ids_by(users, "handle", "ann").await, Vec::<String>::new());
    let all: Vec<(String, Account)> = futures::TryStreamExt::try_collect(users.scan())
        .await
        .unwrap();
    for tag in ["red", "green", "blue"] {
        let mut scanned: Vec<String> = all
            .iter()
            .filter(|(_, a)| a.tags.iter().any(|t| t == tag))
            .map(|(id, _)| id.clone())
            .collect();
        scanned.sort();
        assert_eq!(ids_by(users, "tag", tag).await, scanned, "{tag}");
    }
    assert_eq!(users.fetch("b").await.unwrap(), None);
}

/// `Backend::commit` honours every [`Guard`] of its checks (a key both checked and written
/// included), writes nothing when one fails and names it, and applies each write's expiry.
pub async fn backend_commit_honours_every_guard<B: Backend>(backend: B) {
    let (a, b, c) = ("{g}:a".to_owned(), "{g}:b".to_owned(), "{g}:c".to_owned());
    let write = |key: &str, value: Option<&[u8]>, expiry| {
        CommitWrite::new(key.to_owned(), value.map(<[u8]>::to_vec), expiry)
    };
    let setup = [
        write(&a, Some(b"1"), WriteExpiry::Never),
        write(&b, Some(b"2"), WriteExpiry::Never),
    ];
    assert_eq!(backend.commit(&[], &setup).await.unwrap(), Committed::Done);

    let holds = [
        Check::new(a.clone(), Guard::Bytes(b"1".to_vec())),
        Check::new(b.clone(), Guard::Version(Version::of(b"2"))),
        Check::new(c.clone(), Guard::Absent),
        Check::new(a.clone(), Guard::Present),
    ];
    for failing in 0..holds.len() {
        let mut checks = holds.to_vec();
        checks[failing].guard = match &checks[failing].guard {
            Guard::Bytes(_) => Guard::Bytes(b"other".to_vec()),
            Guard::Version(_) => Guard::Version(Version::of(b"other")),
            Guard::Absent => Guard::Present,
            _ => Guard::Absent,
        };
        let writes = [
            write(&c, Some(b"3"), WriteExpiry::Never),
            write(&a, None, WriteExpiry::Never),
        ];
        assert_eq!(
            backend.commit(&checks, &writes).await.unwrap(),
            Committed::Changed { check: failing },
            "check {failing}"
        );
        assert_eq!(backend.get(&a).await.unwrap().as_deref(), Some(&b"1"[..]));
        assert_eq!(backend.get(&c).await.unwrap(), None);
    }

    let writes = [
        write(&c, Some(b"3"), WriteExpiry::After(Duration::from_secs(100))),
        write(&a, None, WriteExpiry::Never),
        write(&b, Some(b"22"), WriteExpiry::Keep),
    ];
    assert_eq!(
        backend.commit(&holds, &writes).await.unwrap(),
        Committed::Done
    );
    assert_eq!(backend.get(&a).await.unwrap(), None);
    assert_eq!(backend.get(&b).await.unwrap().as_deref(), Some(&b"22"[..]));
    assert_eq!(backend.ttl(&b).await.unwrap(), Some(Expiry::Never));
    assert!(
        matches!(backend.ttl(&c).await.unwrap(), Some(Expiry::In(d)) if d > Duration::from_secs(90))
    );
}
