//! Indexes on Redis: the scripts behind the `index_*` [`Backend`](crate::Backend)
//! methods, once for standalone and cluster pools. Each index is two sorted sets and each
//! entity a record set (see [`crate::index::ops`]); every write of an indexed store is one
//! script call, so on one server (or one cluster slot) value, record and index entries
//! change together or not at all.

use std::sync::LazyLock;

use ::redis::{RedisError, Script, ScriptInvocation, Value};
use deadpool::managed::{Manager, Object};

use super::errors::unexpected;
use super::keys::KeyBatch;
use super::lanes::Pooled;
use super::shared::{Resend, Shared};
use crate::backend::{Bytes, WriteExpiry, ceil_millis};
use crate::error::Result;
use crate::index::IndexKind;
use crate::index::Order;
use crate::index::ops::{Applied, Guard, IndexSpace, IndexedOp, Lex, StaleMember};

/// A script with the helpers of `common.lua` in front (Redis scripts cannot import).
macro_rules! with_common {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("common.lua"), include_str!($file))))
    };
}

static APPLY: LazyLock<Script> = with_common!("apply.lua");
static COUNT: LazyLock<Script> = with_common!("count.lua");
static FORGET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("forget.lua")));

pub(crate) fn kind_arg(kind: IndexKind) -> &'static str {
    match kind {
        IndexKind::Unique => "u",
        IndexKind::Range => "r",
        _ => "e",
    }
}

/// The script's arguments for `ops`: index keys, then each op's entity and record key.
fn apply_invocation<'a>(space: &IndexSpace, ops: &[IndexedOp]) -> ScriptInvocation<'a> {
    let mut invocation = APPLY.prepare_invoke();
    for index in &space.indexes {
        invocation.key(&index.members).key(&index.expiries);
    }
    for op in ops {
        invocation.key(&op.key).key(&op.record);
    }
    invocation
        .arg(space.indexes.len())
        .arg(&space.entity_prefix);
    for index in &space.indexes {
        invocation.arg(&index.name);
    }
    for index in &space.indexes {
        invocation.arg(kind_arg(index.kind));
    }
    invocation.arg(ops.len());
    for op in ops {
        write_args(&mut invocation, op);
        for members in &op.members {
            invocation.arg(members.len());
            for member in members {
                invocation.arg(member.as_slice());
            }
        }
    }
    invocation
}

/// An op's guard, value and expiry, as `apply.lua` and `value.lua` read them: guard kind
/// and its argument, `set` and the bytes or `del`, expiry kind and milliseconds.
pub(crate) fn write_args(invocation: &mut ScriptInvocation<'_>, op: &IndexedOp) {
    match &op.guard {
        Guard::Always => invocation.arg("always").arg(""),
        Guard::Absent => invocation.arg("absent").arg(""),
        Guard::Present => invocation.arg("present").arg(""),
        Guard::Bytes(bytes) => invocation.arg("bytes").arg(bytes.as_slice()),
        Guard::Version(version) => invocation.arg("sha1").arg(version.as_str()),
    };
    match &op.value {
        Some(bytes) => invocation.arg("set").arg(bytes.as_slice()),
        None => invocation.arg("del").arg(""),
    };
    match op.expiry {
        WriteExpiry::After(ttl) => invocation.arg("px").arg(ceil_millis(ttl)),
        WriteExpiry::Keep => invocation.arg("keep").arg(0),
        WriteExpiry::Never => invocation.arg("none").arg(0),
    };
}

/// A 1-based position from a script reply as an index into a batch of `len`.
fn position(value: Option<Value>, len: usize) -> Option<usize> {
    match value {
        Some(Value::Int(n)) => usize::try_from(n).ok().filter(|n| (1..=len).contains(n)),
        _ => None,
    }
    .map(|n| n - 1)
}

impl<M, W> Shared<M, W>
where
    M: Manager<Error = RedisError>,
    W: Pooled + From<Object<M>>,
{
    pub(crate) async fn apply_indexed(
        &self,
        space: &IndexSpace,
        ops: &[IndexedOp],
    ) -> Result<Applied> {
        let keys: Vec<&str> = ops.iter().map(|op| op.key.as_str()).collect();
        let batch = KeyBatch::new(&keys);
        let invocation = apply_invocation(space, ops);
        let reply: Vec<Value> = self.invoke(&batch, &invocation).await?;
        let mut reply = reply.into_iter();
        let outcome = match reply.next() {
            Some(Value::Int(1)) => match reply.next() {
                Some(Value::Int(existed)) => u64::try_from(existed)
                    .ok()
                    .map(|existed| Applied::Done { existed }),
                _ => None,
            },
            Some(Value::Int(0)) => position(reply.next(), ops.len()).and_then(|op| {
                match reply.next() {
                    Some(Value::BulkString(found)) => Some(Applied::Unmet {
                        op,
                        found: Some(found),
                    }),
                    // Lua's false (absent key) is nil in RESP2 and a boolean in RESP3.
                    None | Some(Value::Nil) | Some(Value::Boolean(false)) => {
                        Some(Applied::Unmet { op, found: None })
                    }
                    _ => None,
                }
            }),
            Some(Value::Int(2)) => {
                let op = position(reply.next(), ops.len());
                let index = position(reply.next(), space.indexes.len());
                match (op, index, reply.next()) {
                    (Some(op), Some(index), Some(Value::BulkString(prefix))) => {
                        Some(Applied::Taken {
                            op,
                            key: ops[op].key.clone(),
                            index,
                            value: prefix,
                        })
                    }
                    _ => None,
                }
            }
            Some(Value::Int(3)) => {
                let op = position(reply.next(), ops.len());
                let index = position(reply.next(), space.indexes.len());
                let mut bulk = || match reply.next() {
                    Some(Value::BulkString(bytes)) => Some(bytes),
                    _ => None,
                };
                match (op, index, bulk(), bulk(), bulk(), bulk()) {
                    (
                        Some(op),
                        Some(index),
                        Some(value),
                        Some(member),
                        Some(holder),
                        Some(found),
                    ) => String::from_utf8(holder).ok().map(|holder| Applied::Held {
                        op,
                        key: ops[op].key.clone(),
                        index,
                        value,
                        member,
                        holder,
                        found,
                    }),
                    _ => None,
                }
            }
            _ => None,
        };
        outcome.ok_or_else(|| {
            unexpected(
                &batch,
                self.limits(),
                "the indexed-write script answered something else".to_owned(),
            )
        })
    }

    pub(crate) async fn index_members(
        &self,
        space: &IndexSpace,
        index: usize,
        (lo, hi): (&Lex, &Lex),
        order: Order,
        limit: usize,
    ) -> Result<Vec<Bytes>> {
        let Some(keys) = space.indexes.get(index) else {
            return Ok(Vec::new());
        };
        let mut cmd = match order {
            Order::Ascending => {
                let mut cmd = ::redis::cmd("ZRANGEBYLEX");
                cmd.arg(&keys.members).arg(lo.to_arg()).arg(hi.to_arg());
                cmd
            }
            Order::Descending => {
                let mut cmd = ::redis::cmd("ZREVRANGEBYLEX");
                cmd.arg(&keys.members).arg(hi.to_arg()).arg(lo.to_arg());
                cmd
            }
        };
        cmd.arg("LIMIT").arg(0).arg(limit);
        self.query(&keys.members, &cmd, Resend::Safe).await
    }

    pub(crate) async fn index_count(
        &self,
        space: &IndexSpace,
        index: usize,
        (lo, hi): (&Lex, &Lex),
    ) -> Result<u64> {
        let Some(keys) = space.indexes.get(index) else {
            return Ok(0);
        };
        let mut invocation = COUNT.key(&keys.members);
        invocation
            .key(&keys.expiries)
            .arg(lo.to_arg())
            .arg(hi.to_arg());
        self.invoke(&keys.members, &invocation).await
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
        let mut invocation = FORGET.key(&keys.members);
        invocation
            .key(&keys.expiries)
            .arg(&keys.name)
            .arg(&space.entity_prefix)
            .arg(&space.record_prefix);
        for stale in stale {
            let seen = stale.seen.as_ref().map_or("", |version| version.as_str());
            invocation
                .arg(stale.member.as_slice())
                .arg(&stale.id)
                .arg(seen);
        }
        self.invoke(&keys.members, &invocation).await
    }
}
