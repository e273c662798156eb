//! Writes with a [`WriteConcern`]: the write and `WAIT` (or `WAITAOF`) in one pipeline, on
//! a connection checked out for them.
//!
//! `WAIT` counts the replicas that have every write *its connection* made, and blocks that
//! connection until they answer or its timeout ends. On a shared lane it would stall every
//! other call for as long as a replica is slow (and a stopped replica makes it the whole
//! timeout), so a write with a concern takes a connection of its own from the pool, kept
//! for the next one (`lanes.rs`: `Exclusive`, which spares the checkout's round trip): the
//! write and the wait go out in one round trip. Writes without a concern never come here
//! and send nothing more.
//!
//! On a cluster, the pipeline goes to the master of its first key (redis-rs routes a
//! pipeline by its first keyed command), so the wait is that master's; writes to several
//! slots are sent as one pipeline per slot by the cluster backend.

use std::sync::atomic::Ordering;

use ::redis::{Cmd, RedisError, Script, Value};
use deadpool::managed::{Manager, Object};

use super::commands::{
    COMMIT, COMPARE_AND_SWAP, commit_call, committed, on_key, set_command, set_commands, swapped,
};
use super::errors::unexpected;
use super::indexes;
use super::keys::{KeyBatch, ToKeys};
use super::lanes::Pooled;
use super::shared::Shared;
use crate::backend::{
    Applied, Bytes, Check, CommitWrite, Committed, Guard, IndexSpace, IndexedOp, Swap, Write,
    WriteExpiry,
};
use crate::concern::{Replicas, WriteConcern};
use crate::error::{Error, Result, Waited};

impl<M, W> Shared<M, W>
where
    M: Manager<Error = RedisError> + 'static,
    W: Pooled + From<Object<M>>,
{
    /// Sends `write` (commands on `keys`, routed by `first`, the first key) and then the
    /// concern's wait, on a connection of its own; the replies of `write`, once the concern
    /// is met. `script`: the script `write` calls by `EVALSHA`, loaded and the pipeline sent
    /// again where the server lacks it (nothing was written then).
    pub(crate) async fn acknowledged(
        &self,
        keys: &dyn ToKeys,
        first: &[u8],
        write: Vec<Cmd>,
        script: Option<&Script>,
        concern: &WriteConcern,
    ) -> Result<Vec<Value>> {
        let borrowed = self.borrow(keys).await?;
        let mut conn = borrowed.object.handle();
        // The reply waits for the replicas too: longer than a plain reply.
        if let Some(response) = self.limits().response {
            W::reply_within(&mut conn, response + concern.timeout);
        }
        let sent = self
            .exchange(&mut conn, first, write, script, concern)
            .await;
        let broke = match &sent {
            Err(Failure::Redis(error)) => Some(error),
            _ => None,
        };
        self.give_back(borrowed, broke);
        let (mut replies, required) = sent.map_err(|failure| match failure {
            Failure::Redis(error) => self.error(keys, error, Waited::Reply),
            Failure::NoWaitaof => Error::config(
                "a write concern on disk needs WAITAOF (Redis 7.2 or newer, or Valkey), \
                 which this server does not have; nothing was written",
            ),
            Failure::Role(role) => unexpected(
                keys,
                self.limits(),
                format!("ROLE answered {role:?}, not a master's role"),
            ),
        })?;
        let acknowledged = match (replies.pop(), concern.on_disk) {
            (Some(Value::Int(n)), false) => Some(n),
            (Some(Value::Array(counts)), true) => match counts.as_slice() {
                [Value::Int(local), Value::Int(n)] => Some(if *local < 1 { 0 } else { *n }),
                _ => None,
            },
            _ => None,
        };
        let Some(acknowledged) = acknowledged.and_then(|n| u32::try_from(n).ok()) else {
            return Err(unexpected(
                keys,
                self.limits(),
                "the write concern's wait answered something else".to_owned(),
            ));
        };
        if acknowledged < required {
            return Err(Error::Unacknowledged {
                backend: self.limits().backend,
                keys: keys.to_keys(),
                acknowledged,
                required,
                timeout: concern.timeout,
            });
        }
        Ok(replies)
    }

    /// What [`Shared::acknowledged`] sends on `conn`: every reply (the wait's last), and
    /// how many replicas the wait asked for.
    async fn exchange(
        &self,
        conn: &mut W::Conn,
        first: &[u8],
        write: Vec<Cmd>,
        script: Option<&Script>,
        concern: &WriteConcern,
    ) -> std::result::Result<(Vec<Value>, u32), Failure> {
        let required = self.required(conn, first, concern).await?;
        let millis = u64::try_from(concern.timeout.as_millis()).unwrap_or(u64::MAX);
        let mut wait = match concern.on_disk {
            false => ::redis::cmd("WAIT"),
            true => {
                let mut cmd = ::redis::cmd("WAITAOF");
                cmd.arg(1);
                cmd
            }
        };
        wait.arg(required).arg(millis);
        let mut pipe = ::redis::pipe();
        for cmd in write {
            pipe.add_command(cmd);
        }
        pipe.add_command(wait);
        let replies = match (pipe.query_async(conn).await, script) {
            (Err(e), Some(script)) if e.code() == Some("NOSCRIPT") => {
                script.prepare_invoke().load_async(conn).await?;
                pipe.query_async(conn).await?
            }
            (sent, _) => sent?,
        };
        Ok((replies, required))
    }

    /// How many replicas the concern asks of the master of `first`: its count, or every
    /// replica that master reports (`ROLE`). A concern on disk is refused before anything
    /// is written where the server has no `WAITAOF`.
    async fn required(
        &self,
        conn: &mut W::Conn,
        first: &[u8],
        concern: &WriteConcern,
    ) -> std::result::Result<u32, Failure> {
        // `None`: every replica the master reports, asked with `ROLE`.
        let count = match concern.replicas {
            Replicas::Count(n) => Some(n),
            Replicas::All => None,
        };
        let ask_role = count.is_none();
        let ask_waitaof = concern.on_disk && !self.has_waitaof.load(Ordering::Relaxed);
        if let (Some(n), false) = (count, ask_waitaof) {
            return Ok(n);
        }
        // `EXISTS first` routes the pipeline to the master of `first` on a cluster.
        let mut pipe = ::redis::pipe();
        pipe.cmd("EXISTS").arg(first).ignore();
        if ask_waitaof {
            pipe.cmd("COMMAND").arg("INFO").arg("WAITAOF");
        }
        if ask_role {
            pipe.cmd("ROLE");
        }
        let mut replies: Vec<Value> = pipe.query_async(conn).await?;
        let role = if ask_role { replies.pop() } else { None };
        if ask_waitaof {
            match replies.pop() {
                Some(Value::Array(info)) if matches!(info.first(), Some(Value::Array(_))) => {
                    self.has_waitaof.store(true, Ordering::Relaxed);
                }
                _ => return Err(Failure::NoWaitaof),
            }
        }
        match (count, role) {
            (Some(n), _) => Ok(n),
            (None, Some(role)) => replicas_of(&role).ok_or(Failure::Role(role)),
            // No reply to `ROLE`: never count it as no replica.
            (None, None) => Err(Failure::Role(Value::Nil)),
        }
    }
}

/// What went wrong in [`Shared::exchange`], before it becomes an [`Error`] naming the keys.
enum Failure {
    /// The connection or the server failed a command.
    Redis(RedisError),
    /// A concern on disk, and the server has no `WAITAOF`.
    NoWaitaof,
    /// `ROLE` answered something other than a master's role.
    Role(Value),
}

impl From<RedisError> for Failure {
    fn from(error: RedisError) -> Self {
        Failure::Redis(error)
    }
}

/// The [`Backend`](crate::Backend) writes with a concern: the commands `commands.rs` sends
/// without one, each sent by [`Shared::acknowledged`], their replies read the same way.
impl<M, W> Shared<M, W>
where
    M: Manager<Error = RedisError> + 'static,
    W: Pooled + From<Object<M>>,
{
    pub(crate) async fn set_acknowledged(
        &self,
        key: &str,
        value: Bytes,
        write: Write,
        concern: WriteConcern,
    ) -> Result<bool> {
        let cmd = set_command(key, &value, write);
        let replies = self.acknowledged(&key, key.as_bytes(), vec![cmd], None, &concern);
        // OK when written, nil when the NX/XX condition was not met.
        Ok(!matches!(replies.await?.as_slice(), [Value::Nil]))
    }

    pub(crate) async fn delete_acknowledged(
        &self,
        key: &str,
        concern: WriteConcern,
    ) -> Result<bool> {
        let cmd = on_key("UNLINK", key);
        let replies = self.acknowledged(&key, key.as_bytes(), vec![cmd], None, &concern);
        self.count(&key, replies.await?).map(|removed| removed > 0)
    }

    /// `UNLINK` of `keys`, all in one slot on a cluster (the cluster backend sends one call
    /// per slot).
    pub(crate) async fn delete_many_acknowledged(
        &self,
        keys: &[Bytes],
        concern: WriteConcern,
    ) -> Result<u64> {
        let batch = KeyBatch::new(keys);
        let first = keys.first().map_or(&[][..], Vec::as_slice);
        let mut cmd = ::redis::cmd("UNLINK");
        cmd.arg(keys);
        let replies = self.acknowledged(&batch, first, vec![cmd], None, &concern);
        self.count(&batch, replies.await?)
    }

    /// `entries` written atomically (`MSET`, or `SET ... PX` each in `MULTI`/`EXEC`), all in
    /// one slot on a cluster (the cluster backend sends one call per slot).
    pub(crate) async fn set_many_acknowledged(
        &self,
        entries: &[(String, Bytes)],
        expiry: WriteExpiry,
        concern: WriteConcern,
    ) -> Result<()> {
        let batch = KeyBatch::from_entries(entries);
        let first = entries.first().map_or(&[][..], |(key, _)| key.as_bytes());
        let cmds = match expiry {
            // MSET is atomic but cannot set a TTL.
            WriteExpiry::Never | WriteExpiry::Keep => {
                let mut mset = ::redis::cmd("MSET");
                mset.arg(entries);
                vec![mset]
            }
            WriteExpiry::After(_) => {
                let mut cmds = Vec::with_capacity(entries.len() + 2);
                cmds.push(::redis::cmd("MULTI"));
                cmds.extend(set_commands(entries, expiry));
                cmds.push(::redis::cmd("EXEC"));
                cmds
            }
        };
        self.acknowledged(&batch, first, cmds, None, &concern)
            .await
            .map(drop)
    }

    pub(crate) async fn compare_and_swap_acknowledged(
        &self,
        key: &str,
        guard: &Guard,
        new: Option<Bytes>,
        expiry: WriteExpiry,
        concern: WriteConcern,
    ) -> Result<Swap> {
        let mut cmd = ::redis::cmd("EVALSHA");
        cmd.arg(COMPARE_AND_SWAP.get_hash()).arg(1).arg(key);
        indexes::write_args(&mut cmd, guard, new.as_deref(), expiry);
        let replies = self.acknowledged(
            &key,
            key.as_bytes(),
            vec![cmd],
            Some(&COMPARE_AND_SWAP),
            &concern,
        );
        let reply = self.script_reply(&key, replies.await?)?;
        swapped(reply).map_err(|other| {
            unexpected(
                &key,
                self.limits(),
                format!("the compare-and-swap script answered {other}"),
            )
        })
    }

    pub(crate) async fn commit_acknowledged(
        &self,
        checks: &[Check],
        writes: &[CommitWrite],
        concern: WriteConcern,
    ) -> Result<Committed> {
        let (entries, cmd) = commit_call(checks, writes);
        let first = entries.first().map_or("", |(key, _, _)| *key);
        let batch = KeyBatch::starting(Some(first), entries.len());
        let replies =
            self.acknowledged(&batch, first.as_bytes(), vec![cmd], Some(&COMMIT), &concern);
        let reply = self.script_reply(&batch, replies.await?)?;
        committed(&reply, checks.len()).ok_or_else(|| {
            unexpected(
                &batch,
                self.limits(),
                format!("the commit script answered {reply:?}"),
            )
        })
    }

    pub(crate) async fn apply_indexed_acknowledged(
        &self,
        space: &IndexSpace,
        ops: &[IndexedOp],
        concern: WriteConcern,
    ) -> Result<Applied> {
        let keys: Vec<&str> = ops.iter().map(|op| op.key.as_str()).collect();
        let batch = KeyBatch::new(&keys);
        let first = keys.first().map_or(&[][..], |key| key.as_bytes());
        let cmd = indexes::apply_cmd(space, ops);
        let replies = self.acknowledged(
            &batch,
            first,
            vec![cmd],
            Some(indexes::apply_script()),
            &concern,
        );
        let reply = replies.await?.pop().unwrap_or(Value::Nil);
        indexes::applied(reply, space, ops).ok_or_else(|| {
            unexpected(
                &batch,
                self.limits(),
                "the indexed-write script answered something else".to_owned(),
            )
        })
    }

    /// The count one command answered.
    fn count(&self, keys: &dyn ToKeys, replies: Vec<Value>) -> Result<u64> {
        match replies.as_slice() {
            [Value::Int(n)] => u64::try_from(*n).ok(),
            _ => None,
        }
        .ok_or_else(|| unexpected(keys, self.limits(), format!("UNLINK answered {replies:?}")))
    }

    /// The array one script call answered.
    fn script_reply(&self, keys: &dyn ToKeys, mut replies: Vec<Value>) -> Result<Vec<Value>> {
        match (replies.pop(), replies.is_empty()) {
            (Some(Value::Array(reply)), true) => Ok(reply),
            (other, _) => Err(unexpected(
                keys,
                self.limits(),
                format!("a script answered {other:?}"),
            )),
        }
    }
}

/// How many replicas a master's `ROLE` reply lists (`["master", offset, [replica, ...]]`).
fn replicas_of(role: &Value) -> Option<u32> {
    let Value::Array(parts) = role else {
        return None;
    };
    match parts.as_slice() {
        [Value::BulkString(kind), _, Value::Array(replicas)] if kind == b"master" => {
            u32::try_from(replicas.len()).ok()
        }
        [Value::SimpleString(kind), _, Value::Array(replicas)] if kind == "master" => {
            u32::try_from(replicas.len()).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masters_role_counts_its_replicas() {
        let replica = Value::Array(vec![
            Value::BulkString(b"127.0.0.1".to_vec()),
            Value::BulkString(b"7001".to_vec()),
            Value::BulkString(b"42".to_vec()),
        ]);
        let master = |replicas: Vec<Value>| {
            Value::Array(vec![
                Value::BulkString(b"master".to_vec()),
                Value::Int(42),
                Value::Array(replicas),
            ])
        };
        assert_eq!(replicas_of(&master(vec![])), Some(0));
        assert_eq!(
            replicas_of(&master(vec![replica.clone(), replica.clone()])),
            Some(2)
        );
        let slave = Value::Array(vec![Value::BulkString(b"slave".to_vec()), Value::Int(1)]);
        assert_eq!(replicas_of(&slave), None);
        assert_eq!(replicas_of(&Value::Nil), None);
    }
}
