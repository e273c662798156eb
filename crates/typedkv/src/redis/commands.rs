//! The Redis commands behind the byte-level [`Backend`](crate::Backend) trait, once for
//! standalone and cluster pools: both are a [`Shared`] and send the same commands (on a
//! cluster, redis-rs routes single-key commands by slot and splits `MGET`/`MSET`/`UNLINK`
//! per slot). What differs on a cluster (scan, atomic batches) is in `cluster/`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use ::redis::{Cmd, Pipeline, RedisError, Script, Value};
use deadpool::managed::{Manager, Object};
use futures::FutureExt;
use futures::future::Either;

use super::batching::Plain;
use super::errors::unexpected;
use super::indexes;
use super::lanes::Pooled;
use super::shared::{Resend, Shared};
use crate::backend::{
    Applied, Bytes, Check, CommitWrite, Committed, Guard, IndexSpace, IndexedOp, Lex, Order,
    StaleMember, Swap, Write, WriteExpiry,
};
use crate::concern::WriteConcern;
use crate::error::{Error, Result};
use crate::options::ceil_millis;
use crate::options::{Condition, Expiry};
use crate::redis::keys::KeyBatch;

/// Compare-and-swap of one key, in Lua so that the comparison and the write are one atomic
/// step on the server (WATCH would need a connection of its own; cluster nodes run a
/// single-key script just as well).
pub(super) static COMPARE_AND_SWAP: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("compare_and_swap.lua")));

/// A transaction's commit: its checks and writes in one script (see `commit.lua`).
pub(super) static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&[include_str!("commit_steps.lua"), include_str!("commit.lua")].concat())
});

/// One key of a commit: what it must hold (if it was read) and what it becomes (if
/// written).
pub(super) type CommitEntry<'a> = (&'a str, Option<&'a Guard>, Option<&'a CommitWrite>);

/// The keys of a commit, each once: those of the checks, in order, then those only written.
pub(super) fn commit_entries<'a>(
    checks: &'a [Check],
    writes: &'a [CommitWrite],
) -> Vec<CommitEntry<'a>> {
    let mut entries: Vec<CommitEntry<'a>> = checks
        .iter()
        .map(|check| (check.key.as_str(), Some(&check.guard), None))
        .collect();
    let checked: HashMap<&str, usize> = checks
        .iter()
        .enumerate()
        .map(|(at, check)| (check.key.as_str(), at))
        .collect();
    for write in writes {
        match checked.get(write.key.as_str()) {
            Some(&at) => entries[at].2 = Some(write),
            None => entries.push((write.key.as_str(), None, Some(write))),
        }
    }
    entries
}

/// The entries of a commit of `checks` and `writes`, and its `EVALSHA` of `commit.lua`.
pub(super) fn commit_call<'a>(
    checks: &'a [Check],
    writes: &'a [CommitWrite],
) -> (Vec<CommitEntry<'a>>, Cmd) {
    let entries = commit_entries(checks, writes);
    let mut cmd = ::redis::cmd("EVALSHA");
    cmd.arg(COMMIT.get_hash()).arg(entries.len());
    commit_args(&mut cmd, &entries);
    (entries, cmd)
}

/// `commit.lua`'s keys and arguments for `entries`: four per key, what it must hold and
/// what it becomes.
pub(super) fn commit_args(out: &mut impl indexes::ScriptArgs, entries: &[CommitEntry<'_>]) {
    for (key, _, _) in entries {
        out.key(key);
    }
    for (_, guard, write) in entries {
        let (want, expected): (&str, &[u8]) = match guard {
            None | Some(Guard::Always) => ("", b""),
            Some(Guard::Absent) => ("a", b""),
            Some(Guard::Present) => ("p", b""),
            Some(Guard::Bytes(bytes)) => ("b", bytes),
            Some(Guard::Version(version)) => ("s", version.as_str().as_bytes()),
        };
        out.arg(want);
        out.arg(expected);
        match write.map(|write| (&write.value, write.expiry)) {
            None => {
                out.arg("");
                out.arg("");
            }
            Some((None, _)) => {
                out.arg("d");
                out.arg("");
            }
            Some((Some(value), expiry)) => {
                match expiry {
                    WriteExpiry::Never => out.arg("n"),
                    WriteExpiry::Keep => out.arg("k"),
                    WriteExpiry::After(ttl) => out.arg(format!("x{}", ceil_millis(ttl))),
                }
                out.arg(value.as_slice());
            }
        }
    }
}

/// What the compare-and-swap script's reply says, or the reply as text if it is none of
/// its answers.
pub(super) fn swapped(reply: Vec<Value>) -> std::result::Result<Swap, String> {
    let mut reply = reply.into_iter();
    match (reply.next(), reply.next()) {
        (Some(Value::Int(1)), None) => Ok(Swap::Done),
        (Some(Value::Int(0)), Some(Value::BulkString(found))) => Ok(Swap::Changed(Some(found))),
        // Lua's false (absent key) is nil in RESP2 and a boolean in RESP3.
        (Some(Value::Int(0)), None | Some(Value::Nil) | Some(Value::Boolean(false))) => {
            Ok(Swap::Changed(None))
        }
        other => Err(format!("{other:?}")),
    }
}

/// What the commit script's reply says about a commit with `checks` checks, if it is one
/// of its answers.
pub(super) fn committed(reply: &[Value], checks: usize) -> Option<Committed> {
    match reply {
        [Value::Int(1)] => Some(Committed::Done),
        [Value::Int(0), Value::Int(n)] => {
            check_at(*n, checks).map(|check| Committed::Changed { check })
        }
        _ => None,
    }
}

/// The position of the check a script names by its 1-based number `n`, if it is one of
/// `checks`.
fn check_at(n: i64, checks: usize) -> Option<usize> {
    let n = usize::try_from(n).ok()?;
    (1..=checks).contains(&n).then(|| n - 1)
}

/// `commit_beside.lua`'s keys and arguments for `ops` in `space` beside `entries` (other
/// stores' keys): every key, then the counts of the indexed writes' keys and arguments,
/// their arguments, and four per other key.
pub(super) fn commit_beside_args(
    out: &mut impl indexes::ScriptArgs,
    space: &IndexSpace,
    ops: &[IndexedOp],
    entries: &[CommitEntry<'_>],
) {
    let mut counted = indexes::Counted::default();
    indexes::apply_args(&mut counted, space, ops.iter(), false);
    indexes::apply_args(&mut indexes::KeysOf(out), space, ops.iter(), false);
    commit_args(&mut indexes::KeysOf(out), entries);
    out.arg(indexes::apply_key_count(space, ops.len()));
    out.arg(counted.args);
    indexes::apply_args(&mut indexes::ArgsOf(out), space, ops.iter(), false);
    commit_args(&mut indexes::ArgsOf(out), entries);
}

/// `text` with Redis glob characters (`* ? [ ] \\`) escaped, so it matches only itself in a
/// SCAN pattern.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// What a `PTTL` reply means: -2 no key, -1 no expiry, else milliseconds left.
fn expiry_of_pttl(ms: i64) -> Option<Expiry> {
    match ms {
        -2 => None,
        ms if ms < 0 => Some(Expiry::Never),
        ms => Some(Expiry::In(std::time::Duration::from_millis(
            ms.unsigned_abs(),
        ))),
    }
}

/// `SCAN cursor MATCH prefix* COUNT count TYPE string`, and the pattern (which names the
/// scan in errors).
pub(crate) fn scan_command(prefix: &str, cursor: u64, count: usize) -> (String, Cmd) {
    let pattern = format!("{}*", escape_glob(prefix));
    let mut cmd = ::redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(&pattern)
        .arg("COUNT")
        .arg(count)
        .arg("TYPE")
        .arg("string");
    (pattern, cmd)
}

/// Appends the expiry arguments of `SET`.
pub(super) fn expiry_args(cmd: &mut Cmd, expiry: WriteExpiry) {
    match expiry {
        WriteExpiry::Never => {}
        WriteExpiry::After(ttl) => {
            cmd.arg("PX").arg(ceil_millis(ttl));
        }
        WriteExpiry::Keep => {
            cmd.arg("KEEPTTL");
        }
    }
}

/// `SET key value [NX|XX] [PX ttl|KEEPTTL]`.
pub(super) fn set_command(key: &str, value: &[u8], write: Write) -> Cmd {
    let mut cmd = ::redis::cmd("SET");
    cmd.arg(key).arg(value);
    match write.condition {
        Condition::Always => {}
        Condition::IfAbsent => {
            cmd.arg("NX");
        }
        Condition::IfPresent => {
            cmd.arg("XX");
        }
    }
    expiry_args(&mut cmd, write.expiry);
    cmd
}

/// `command key`.
pub(super) fn on_key(command: &str, key: &str) -> Cmd {
    let mut cmd = ::redis::cmd(command);
    cmd.arg(key);
    cmd
}

/// What a pool's core sends for each [`Backend`](crate::Backend) method. The plain
/// single-key commands come first: batched with others in flight where the pool batches
/// (`batching/`), hence on the pool's `Arc`.
impl<M, W> Shared<M, W>
where
    M: Manager<Error = RedisError> + 'static,
    W: Pooled + From<Object<M>>,
{
    // `get`, `set`, `delete` and `exists` hand back `single`'s future (mapped) rather than
    // wrap it in an `async fn`, which would store the arguments again in every call's future.
    pub(crate) fn get(
        self: &Arc<Self>,
        key: &str,
    ) -> impl Future<Output = Result<Option<Bytes>>> + Send {
        self.single(key, Plain::Get(key), Resend::Safe)
    }

    pub(crate) fn set(
        self: &Arc<Self>,
        key: &str,
        value: Bytes,
        write: Write,
        concern: Option<WriteConcern>,
    ) -> impl Future<Output = Result<bool>> + Send {
        if let Some(concern) = concern {
            // Boxed: inlined, it would enlarge every `set`'s future.
            return Either::Left(Box::pin(self.set_acknowledged(key, value, write, concern)));
        }
        let plain = if write.condition == Condition::Always && write.expiry == WriteExpiry::Never {
            // What `MSET` does, so a batch can carry it in one.
            Plain::Set(key, value)
        } else {
            Plain::Cmd(set_command(key, &value, write))
        };
        // OK when written, nil when the NX/XX condition was not met.
        Either::Right(
            self.single(key, plain, Resend::Never)
                .map(|reply: Result<Value>| Ok(!matches!(reply?, Value::Nil))),
        )
    }

    pub(crate) fn delete(
        self: &Arc<Self>,
        key: &str,
        concern: Option<WriteConcern>,
    ) -> impl Future<Output = Result<bool>> + Send {
        if let Some(concern) = concern {
            return Either::Left(Box::pin(self.delete_acknowledged(key, concern)));
        }
        // UNLINK frees large values off Redis' main thread.
        Either::Right(
            self.single(key, Plain::Cmd(on_key("UNLINK", key)), Resend::Never)
                .map(|removed: Result<u64>| Ok(removed? > 0)),
        )
    }

    pub(crate) fn exists(self: &Arc<Self>, key: &str) -> impl Future<Output = Result<bool>> + Send {
        self.single(key, Plain::Cmd(on_key("EXISTS", key)), Resend::Safe)
            .map(|found: Result<u64>| Ok(found? > 0))
    }

    pub(crate) async fn ttl(self: &Arc<Self>, key: &str) -> Result<Option<Expiry>> {
        let ms: i64 = self
            .single(key, Plain::Cmd(on_key("PTTL", key)), Resend::Safe)
            .await?;
        Ok(expiry_of_pttl(ms))
    }

    // Everything else goes out on its own.

    /// `GET` and `PTTL` in one pipeline (one round trip; both on the key's slot).
    pub(crate) async fn get_with_ttl(&self, key: &str) -> Result<Option<(Bytes, Expiry)>> {
        let mut pipe = ::redis::pipe();
        pipe.cmd("GET").arg(key).cmd("PTTL").arg(key);
        let (bytes, ms): (Option<Bytes>, i64) = self.query_pipeline(&key, &pipe).await?;
        Ok(bytes.zip(expiry_of_pttl(ms)))
    }

    pub(crate) async fn compare_and_swap(
        &self,
        key: &str,
        guard: &Guard,
        new: Option<Bytes>,
        expiry: WriteExpiry,
        concern: Option<WriteConcern>,
    ) -> Result<Swap> {
        if let Some(concern) = concern {
            return Box::pin(self.compare_and_swap_acknowledged(key, guard, new, expiry, concern))
                .await;
        }
        let mut invocation = COMPARE_AND_SWAP.key(key);
        indexes::write_args(&mut invocation, guard, new.as_deref(), expiry);
        let reply: Vec<Value> = self.invoke(&key, &invocation).await?;
        swapped(reply).map_err(|other| {
            unexpected(
                &key,
                self.limits(),
                format!("the compare-and-swap script answered {other}"),
            )
        })
    }

    /// One `EVALSHA` of `commit.lua`, about its first key (on a cluster, the caller has
    /// checked that every key shares its slot). Sent as a plain call, so that under load it
    /// shares a batch's round trip with other calls; where the server lacks the script, sent
    /// again through `invoke`, which loads it.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        checks: &[Check],
        writes: &[CommitWrite],
        concern: Option<WriteConcern>,
    ) -> Result<Committed> {
        if let Some(concern) = concern {
            // Boxed: the checkout would enlarge every call's future.
            return Box::pin(self.commit_acknowledged(checks, writes, concern)).await;
        }
        let (entries, cmd) = commit_call(checks, writes);
        let first = entries.first().map_or("", |(key, _, _)| *key);
        let batch = KeyBatch::starting(Some(first), entries.len());
        let reply: Vec<Value> = match self.single(first, Plain::Cmd(cmd), Resend::Never).await {
            Err(Error::Refused { code, .. }) if code == "NOSCRIPT" => {
                let mut invocation = COMMIT.prepare_invoke();
                commit_args(&mut invocation, &entries);
                self.invoke(&batch, &invocation).await?
            }
            reply => reply?,
        };
        committed(&reply, checks.len()).ok_or_else(|| {
            unexpected(
                &batch,
                self.limits(),
                format!("the commit script answered {reply:?}"),
            )
        })
    }

    pub(crate) async fn scan_page(
        &self,
        prefix: &str,
        cursor: u64,
        count: usize,
    ) -> Result<(u64, Vec<Bytes>)> {
        let (pattern, cmd) = scan_command(prefix, cursor, count);
        self.query(&pattern, &cmd, Resend::Safe).await
    }

    pub(crate) async fn delete_many(
        &self,
        keys: &[Bytes],
        concern: Option<WriteConcern>,
    ) -> Result<u64> {
        if let Some(concern) = concern {
            // Boxed: the checkout would enlarge every call's future.
            return Box::pin(self.delete_many_acknowledged(keys, concern)).await;
        }
        let batch = KeyBatch::new(keys);
        self.query(&batch, ::redis::cmd("UNLINK").arg(keys), Resend::Never)
            .await
    }

    pub(crate) async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let batch = KeyBatch::new(keys);
        self.query(&batch, ::redis::cmd("MGET").arg(keys), Resend::Safe)
            .await
    }

    pub(crate) async fn set_many(
        &self,
        entries: Vec<(String, Bytes)>,
        expiry: WriteExpiry,
        concern: Option<WriteConcern>,
    ) -> Result<()> {
        if let Some(concern) = concern {
            // Boxed: the checkout would enlarge every call's future.
            return Box::pin(self.set_many_acknowledged(&entries, expiry, concern)).await;
        }
        let batch = KeyBatch::from_entries(&entries);
        match expiry {
            // MSET is atomic but cannot set a TTL.
            WriteExpiry::Never | WriteExpiry::Keep => {
                self.query(&batch, ::redis::cmd("MSET").arg(&entries), Resend::Never)
                    .await
            }
            WriteExpiry::After(_) => {
                self.query_pipeline(&batch, &set_each(&entries, expiry))
                    .await
            }
        }
    }

    // The index commands (`indexes/`: the scripts, their arguments and their replies).
    pub(crate) async fn apply_indexed(
        self: &Arc<Self>,
        space: &IndexSpace,
        ops: &[IndexedOp],
        concern: Option<WriteConcern>,
    ) -> Result<Applied> {
        if let Some(concern) = concern {
            // Boxed: the checkout would enlarge every call's future.
            return Box::pin(self.apply_indexed_acknowledged(space, ops, concern)).await;
        }
        // An unguarded `set` goes as a plain call: with others in flight, the queued ones of
        // a store share one script call, which the server enters once for all of them.
        if let [op] = ops
            && indexes::coalescable(op)
        {
            match self
                .single(&op.key, Plain::Apply(space, op), Resend::Never)
                .await
            {
                Ok(Value::Int(_)) => return Ok(Applied::Done { existed: 0 }),
                // Not applied: the script left it out (a unique value it claims is held, or
                // its record is of another Redis type) or the server lacks the script. The
                // call below loads it, and says what became of the write.
                Ok(_) => {}
                Err(Error::Refused { code, .. }) if code == "NOSCRIPT" => {}
                Err(error) => return Err(error),
            }
        }
        let keys: Vec<&str> = ops.iter().map(|op| op.key.as_str()).collect();
        let batch = KeyBatch::new(&keys);
        let reply: Value = self
            .invoke(&batch, &indexes::apply_invocation(space, ops))
            .await?;
        indexes::applied(reply, space, ops).ok_or_else(|| {
            unexpected(
                &batch,
                self.limits(),
                "the indexed-write script answered something else".to_owned(),
            )
        })
    }

    /// `commit_beside.lua`: `ops`, with the checks and writes of other stores' keys, in one
    /// script.
    pub(crate) async fn apply_indexed_with(
        self: &Arc<Self>,
        space: &IndexSpace,
        ops: &[IndexedOp],
        (checks, writes): (&[Check], &[CommitWrite]),
        concern: Option<WriteConcern>,
    ) -> Result<Applied> {
        let entries = commit_entries(checks, writes);
        let keys: Vec<&str> = ops
            .iter()
            .map(|op| op.key.as_str())
            .chain(entries.iter().map(|(key, _, _)| *key))
            .collect();
        let batch = KeyBatch::new(&keys);
        let script = indexes::commit_beside_script();
        let reply = match concern {
            None => {
                let mut invocation = script.prepare_invoke();
                commit_beside_args(&mut invocation, space, ops, &entries);
                self.invoke(&batch, &invocation).await?
            }
            Some(concern) => {
                let mut cmd = ::redis::cmd("EVALSHA");
                let key_count = indexes::apply_key_count(space, ops.len()) + entries.len();
                cmd.arg(script.get_hash()).arg(key_count);
                commit_beside_args(&mut cmd, space, ops, &entries);
                let first = keys.first().map_or(&[][..], |key| key.as_bytes());
                let sent = self.acknowledged(&batch, first, vec![cmd], Some(script), &concern);
                Box::pin(sent).await?.pop().unwrap_or(Value::Nil)
            }
        };
        // {5, i}: the i-th other key did not hold what was read.
        if let Value::Array(parts) = &reply
            && let [Value::Int(5), Value::Int(i)] = parts.as_slice()
            && let Some(check) = check_at(*i, checks.len())
        {
            return Ok(Applied::Changed { check });
        }
        indexes::applied(reply, space, ops).ok_or_else(|| {
            unexpected(
                &batch,
                self.limits(),
                "the transaction's indexed commit answered something else".to_owned(),
            )
        })
    }

    pub(crate) async fn index_members(
        &self,
        space: &IndexSpace,
        index: usize,
        range: (&Lex, &Lex),
        order: Order,
        limit: usize,
    ) -> Result<Vec<Bytes>> {
        let Some(keys) = space.indexes.get(index) else {
            return Ok(Vec::new());
        };
        let cmd = indexes::members_cmd(keys, range, order, limit);
        self.query(&keys.members, &cmd, Resend::Safe).await
    }

    pub(crate) async fn index_count(
        &self,
        space: &IndexSpace,
        index: usize,
        range: (&Lex, &Lex),
    ) -> Result<u64> {
        let Some(keys) = space.indexes.get(index) else {
            return Ok(0);
        };
        self.invoke(&keys.members, &indexes::count_invocation(keys, range))
            .await
    }

    pub(crate) async fn index_forget(
        &self,
        space: &IndexSpace,
        index: usize,
        stale: &[StaleMember],
    ) -> Result<u64> {
        let Some(keys) = space.indexes.get(index) else {
            return Ok(0);
        };
        if stale.is_empty() {
            return Ok(0);
        }
        self.invoke(
            &keys.members,
            &indexes::forget_invocation(space, keys, stale),
        )
        .await
    }
}

/// `SET key value PX ttl` for each entry, in one MULTI/EXEC so the batch is atomic. The
/// pipeline is written to the multiplexed connection in one piece, so other commands on the
/// shared connection cannot interleave with it. (On a cluster, all keys must share a slot.)
pub(crate) fn set_each(entries: &[(String, Bytes)], expiry: WriteExpiry) -> Pipeline {
    let mut pipe = ::redis::pipe();
    pipe.atomic();
    for cmd in set_commands(entries, expiry) {
        pipe.add_command(cmd).ignore();
    }
    pipe
}

/// `SET key value` with `expiry`'s arguments, for each entry.
pub(super) fn set_commands(
    entries: &[(String, Bytes)],
    expiry: WriteExpiry,
) -> impl Iterator<Item = Cmd> + '_ {
    let write = Write::new(expiry, Condition::Always);
    entries
        .iter()
        .map(move |(key, bytes)| set_command(key, bytes, write))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(escape_glob("user:"), "user:");
        assert_eq!(escape_glob(r"a*b?c[d]e\f"), r"a\*b\?c\[d\]e\\f");
    }
}
