//! `--only transfer`: a transfer of 1 between two of [`ACCOUNTS`] accounts in one
//! transaction, by typedkv's [`transaction`](typedkv::transaction) against the two ways
//! people write it by hand with redis-rs: `WATCH` + `MGET` + `MULTI`/`EXEC`, retried when
//! `EXEC` aborts, each task on a connection of its own (a watch belongs to its
//! connection); and one Lua script, which needs no retry. Beside them, the leanest code of
//! typedkv's own design (the client decides: `MGET`, then a script that writes only if both
//! balances are as read), in redis-rs and in fred. At 1 and 64 tasks, with CPU per call;
//! after each contender's rounds its accounts must still hold the total they started with,
//! or the case fails.

use std::sync::Arc;
use std::time::Instant;

use fred::prelude::{Builder, Client, ClientLike, Config, KeysInterface, LuaInterface};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use typedkv::{BoxError, RedisStore, Store};

use crate::cases::{Bench, PREFIX};
use crate::measure::BenchResult;
use crate::peer_cases::{Contender, contender, measure, timed_until};
use crate::probe::Probe;
use crate::report::Row;

/// Accounts the transfers pick from: enough that 64 tasks seldom collide, so the case
/// measures what a transfer costs rather than how contention is settled.
const ACCOUNTS: u64 = 1_000;
/// Each account's balance before the rounds.
const START: i64 = 1_000_000;

/// The hand-written script: both balances read, the payer checked, both written.
const LUA_TRANSFER: &str = r"
local from = tonumber(redis.call('GET', KEYS[1]) or '0')
local to = tonumber(redis.call('GET', KEYS[2]) or '0')
local amount = tonumber(ARGV[1])
if from < amount then return 0 end
redis.call('SET', KEYS[1], from - amount)
redis.call('SET', KEYS[2], to + amount)
return 1
";

/// The commit of the lean optimistic transfer: both balances still as read, then both
/// written.
const LUA_COMMIT: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[4])
return 1
";

/// The two accounts of task `task`'s `i`-th transfer: different, spread over all.
fn pair(task: usize, i: u64) -> (u64, u64) {
    let from = (task as u64 * 7_919 + i * 31) % ACCOUNTS;
    let to = (from + 1 + (i * 17 + task as u64) % (ACCOUNTS - 1)) % ACCOUNTS;
    (from, to)
}

/// The Redis key of account `n` of the hand-written contender `name`.
fn raw_account(name: &str, n: u64) -> String {
    format!("{PREFIX}-{name}:{n}")
}

impl Bench {
    /// The transfer case at 1 and 64 tasks (rows `transfer ...`, ratios to the `WATCH`
    /// contender).
    pub(crate) async fn transfers(&self, url: &str, probe: &Probe) -> BenchResult<Vec<Row>> {
        let accounts =
            RedisStore::<i64>::builder(self.store.backend().clone(), format!("{PREFIX}-acct"))
                .build()?;
        let mut raw = self.raw.clone();
        for n in 0..ACCOUNTS {
            accounts.set(&n.to_string(), &START).await?;
            let () = raw.set(raw_account("watch", n), START).await?;
            let () = raw.set(raw_account("lua", n), START).await?;
            let () = raw.set(raw_account("lean", n), START).await?;
            let () = raw.set(raw_account("fred", n), START).await?;
        }
        // A connection per task for the WATCH contender, opened before the rounds.
        let client = redis::Client::open(url)?;
        let mut dedicated = Vec::new();
        for _ in 0..64 {
            dedicated.push(client.get_multiplexed_async_connection().await?);
        }
        // fred, one client (one multiplexed connection, as the shared redis-rs one).
        let fred = Builder::from_config(Config::from_url(url)?).build()?;
        fred.init().await?;
        let commit: String = fred.script_load(LUA_COMMIT).await?;
        let contenders = [
            watch_transfers(Arc::new(dedicated)),
            lua_transfers(self.raw.clone()),
            lean_transfers(self.raw.clone()),
            fred_lean_transfers(fred.clone(), Arc::from(commit)),
            typed_transfers(accounts.clone()),
        ];
        let rows = measure(
            "transfer",
            "2 accounts",
            &contenders,
            &[1, 64],
            &self.args,
            Some(probe),
        )
        .await?;

        // Every transfer kept the total, whoever ran it.
        let mut totals = [0i64; 5];
        for n in 0..ACCOUNTS {
            let (watch, lua, lean, fred): (i64, i64, i64, i64) = (
                raw.get(raw_account("watch", n)).await?,
                raw.get(raw_account("lua", n)).await?,
                raw.get(raw_account("lean", n)).await?,
                raw.get(raw_account("fred", n)).await?,
            );
            let typed = accounts.get(&n.to_string()).await?.unwrap_or(0);
            for (total, balance) in totals.iter_mut().zip([watch, lua, lean, fred, typed]) {
                *total += balance;
            }
        }
        let want = START * ACCOUNTS as i64;
        if totals != [want; 5] {
            return Err(format!("transfers lost money: totals {totals:?}, want {want}").into());
        }
        Ok(rows)
    }
}

/// `WATCH` both accounts, read them, `MULTI`/`EXEC` both writes; again while `EXEC` aborts.
fn watch_transfers(connections: Arc<Vec<MultiplexedConnection>>) -> Contender {
    contender("redis-rs WATCH", move |task, deadline| {
        let mut conn = connections[task % connections.len()].clone();
        async move {
            timed_until!(deadline, |i| async {
                let (from, to) = pair(task, i);
                let (from, to) = (raw_account("watch", from), raw_account("watch", to));
                loop {
                    let () = redis::cmd("WATCH")
                        .arg(&from)
                        .arg(&to)
                        .query_async(&mut conn)
                        .await?;
                    let (payer, payee): (i64, i64) = conn.mget(&[&from, &to]).await?;
                    if payer < 1 {
                        let () = redis::cmd("UNWATCH").query_async(&mut conn).await?;
                        break;
                    }
                    let applied: Option<()> = redis::pipe()
                        .atomic()
                        .set(&from, payer - 1)
                        .ignore()
                        .set(&to, payee + 1)
                        .ignore()
                        .query_async(&mut conn)
                        .await?;
                    if applied.is_some() {
                        break;
                    }
                }
                Ok(())
            })
        }
    })
}

/// One `EVALSHA` of [`LUA_TRANSFER`] on the shared connection.
fn lua_transfers(conn: MultiplexedConnection) -> Contender {
    let script = Arc::new(redis::Script::new(LUA_TRANSFER));
    contender("redis-rs Lua", move |task, deadline| {
        let (mut conn, script) = (conn.clone(), Arc::clone(&script));
        async move {
            timed_until!(deadline, |i| async {
                let (from, to) = pair(task, i);
                let _paid: i64 = script
                    .key(raw_account("lua", from))
                    .key(raw_account("lua", to))
                    .arg(1)
                    .invoke_async(&mut conn)
                    .await?;
                Ok(())
            })
        }
    })
}

/// The client decides, as typedkv does: one `MGET` of both balances, then [`LUA_COMMIT`],
/// again on fresh reads while a balance changed in between.
fn lean_transfers(conn: MultiplexedConnection) -> Contender {
    let script = Arc::new(redis::Script::new(LUA_COMMIT));
    contender("lean optimistic", move |task, deadline| {
        let (mut conn, script) = (conn.clone(), Arc::clone(&script));
        async move {
            timed_until!(deadline, |i| async {
                let (from, to) = pair(task, i);
                let (from, to) = (raw_account("lean", from), raw_account("lean", to));
                loop {
                    let (payer, payee): (i64, i64) = conn.mget(&[&from, &to]).await?;
                    if payer < 1 {
                        break;
                    }
                    let applied: i64 = script
                        .key(&from)
                        .key(&to)
                        .arg(payer)
                        .arg(payee)
                        .arg(payer - 1)
                        .arg(payee + 1)
                        .invoke_async(&mut conn)
                        .await?;
                    if applied == 1 {
                        break;
                    }
                }
                Ok(())
            })
        }
    })
}

/// [`lean_transfers`] written with fred: `MGET`, then the commit script by its hash.
fn fred_lean_transfers(client: Client, commit: Arc<str>) -> Contender {
    contender("fred lean optimistic", move |task, deadline| {
        let (client, commit) = (client.clone(), Arc::clone(&commit));
        async move {
            timed_until!(deadline, |i| async {
                let (from, to) = pair(task, i);
                let (from, to) = (raw_account("fred", from), raw_account("fred", to));
                loop {
                    let both: Vec<i64> = client.mget(vec![from.clone(), to.clone()]).await?;
                    let [payer, payee] = both[..] else {
                        return Err("fred's MGET answered other than two balances".into());
                    };
                    if payer < 1 {
                        break;
                    }
                    let args = vec![payer, payee, payer - 1, payee + 1];
                    let keys = vec![from.clone(), to.clone()];
                    let applied: i64 = client.evalsha(&*commit, keys, args).await?;
                    if applied == 1 {
                        break;
                    }
                }
                Ok(())
            })
        }
    })
}

/// [`typedkv::transaction`]: both balances read in one `get_many`, two writes, one commit.
fn typed_transfers(accounts: RedisStore<i64>) -> Contender {
    contender("typed", move |task, deadline| {
        let accounts = accounts.clone();
        async move {
            let accounts = &accounts;
            let pool = accounts.backend().clone();
            timed_until!(deadline, |i| async {
                let (from, to) = pair(task, i);
                let (from, to) = (&from.to_string(), &to.to_string());
                typedkv::transaction(&pool, |tx| async move {
                    let both = tx.get_many(accounts, &[from, to]).await?;
                    let (payer, payee) = match both[..] {
                        [Some(payer), Some(payee)] => (payer, payee),
                        _ => return Err("an account is missing".into()),
                    };
                    if payer < 1 {
                        return Ok(());
                    }
                    tx.set(accounts, from, &(payer - 1))?;
                    tx.set(accounts, to, &(payee + 1))?;
                    Ok::<_, BoxError>(())
                })
                .await?;
                Ok(())
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_two_accounts() {
        for task in 0..64 {
            for i in 0..2_000 {
                let (from, to) = pair(task, i);
                assert!(from != to && from < ACCOUNTS && to < ACCOUNTS);
            }
        }
    }
}
