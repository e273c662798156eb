//! Indexes on Redis: what the index commands are (the scripts, their arguments, and what
//! their replies mean); `commands.rs` sends them on a pool's core, once for standalone,
//! Sentinel and cluster pools. Each index is two sorted sets and each entity a record set
//! (see [the layout](crate::backend#indexes)); every write of an indexed store is one script
//! call, so on one server (or one cluster slot) value, record and index entries change
//! together or not at all.

use std::sync::LazyLock;

use ::redis::{Cmd, Script, ScriptInvocation, Value};

use crate::backend::WriteExpiry;
use crate::backend::{Applied, Guard, IndexKeys, IndexSpace, IndexedOp, Lex, StaleMember};
use crate::index::IndexKind;
use crate::index::Order;
use crate::options::ceil_millis;

/// `body` with the helpers of `common.lua` in front (Redis scripts cannot import).
fn with_common(body: &str) -> Script {
    Script::new(&[include_str!("common.lua"), body].concat())
}

static APPLY: LazyLock<Script> = LazyLock::new(|| with_common(include_str!("apply.lua")));
static COUNT: LazyLock<Script> = LazyLock::new(|| with_common(include_str!("count.lua")));
static FORGET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("forget.lua")));

/// A bound of a lexicographic range as `ZRANGEBYLEX` and `ZLEXCOUNT` take it: `-`, `+`,
/// `[member` or `(member`.
fn lex_arg(bound: &Lex) -> Vec<u8> {
    match bound {
        Lex::Min => b"-".to_vec(),
        Lex::Max => b"+".to_vec(),
        Lex::Incl(member) => [b"[".as_slice(), member].concat(),
        Lex::Excl(member) => [b"(".as_slice(), member].concat(),
    }
}

pub(crate) fn kind_arg(kind: IndexKind) -> &'static str {
    match kind {
        IndexKind::Unique => "u",
        IndexKind::Range => "r",
        _ => "e",
    }
}

/// The script's arguments for `ops`: index keys, then each op's entity and record key.
pub(super) fn apply_invocation<'a>(space: &IndexSpace, ops: &[IndexedOp]) -> ScriptInvocation<'a> {
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
        write_args(&mut invocation, &op.guard, op.value.as_deref(), op.expiry);
        for members in &op.members {
            invocation.arg(members.len());
            for member in members {
                invocation.arg(member.as_slice());
            }
        }
    }
    invocation
}

/// A write's guard, value and expiry as `apply.lua` (per op) and `compare_and_swap.lua` read
/// them: guard kind and its argument, `set` and the bytes or `del` and nothing, expiry kind
/// and milliseconds.
pub(crate) fn write_args(
    invocation: &mut ScriptInvocation<'_>,
    guard: &Guard,
    value: Option<&[u8]>,
    expiry: WriteExpiry,
) {
    match guard {
        Guard::Always => invocation.arg("always").arg(""),
        Guard::Absent => invocation.arg("absent").arg(""),
        Guard::Present => invocation.arg("present").arg(""),
        Guard::Bytes(bytes) => invocation.arg("bytes").arg(bytes.as_slice()),
        Guard::Version(version) => invocation.arg("sha1").arg(version.as_str()),
    };
    match value {
        Some(bytes) => invocation.arg("set").arg(bytes),
        None => invocation.arg("del").arg(""),
    };
    match expiry {
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

/// What the indexed-write script's `reply` to `ops` says (`None`: a reply it cannot give).
pub(super) fn applied(reply: Value, space: &IndexSpace, ops: &[IndexedOp]) -> Option<Applied> {
    // Done is a bare count: a reply table costs the script more than a command.
    let reply = match reply {
        Value::Int(existed) => {
            return u64::try_from(existed)
                .ok()
                .map(|existed| Applied::Done { existed });
        }
        Value::Array(reply) => reply,
        _ => return None,
    };
    let mut reply = reply.into_iter();
    match reply.next() {
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
                (Some(op), Some(index), Some(Value::BulkString(prefix))) => Some(Applied::Taken {
                    op,
                    key: ops[op].key.clone(),
                    index,
                    value: prefix,
                }),
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
                (Some(op), Some(index), Some(value), Some(member), Some(holder), Some(found)) => {
                    String::from_utf8(holder).ok().map(|holder| Applied::Held {
                        op,
                        key: ops[op].key.clone(),
                        index,
                        value,
                        member,
                        holder,
                        found,
                    })
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// `ZRANGEBYLEX` (or `ZREVRANGEBYLEX`) of the index `keys` between `lo` and `hi`, at most
/// `limit` members.
pub(super) fn members_cmd(
    keys: &IndexKeys,
    (lo, hi): (&Lex, &Lex),
    order: Order,
    limit: usize,
) -> Cmd {
    let mut cmd = match order {
        Order::Ascending => {
            let mut cmd = ::redis::cmd("ZRANGEBYLEX");
            cmd.arg(&keys.members).arg(lex_arg(lo)).arg(lex_arg(hi));
            cmd
        }
        Order::Descending => {
            let mut cmd = ::redis::cmd("ZREVRANGEBYLEX");
            cmd.arg(&keys.members).arg(lex_arg(hi)).arg(lex_arg(lo));
            cmd
        }
    };
    cmd.arg("LIMIT").arg(0).arg(limit);
    cmd
}

/// The script counting the live members of the index `keys` between `lo` and `hi`.
pub(super) fn count_invocation<'a>(
    keys: &IndexKeys,
    (lo, hi): (&Lex, &Lex),
) -> ScriptInvocation<'a> {
    let mut invocation = COUNT.key(&keys.members);
    invocation
        .key(&keys.expiries)
        .arg(lex_arg(lo))
        .arg(lex_arg(hi));
    invocation
}

/// The script removing the `stale` members of the index `keys` of `space`, each only if its
/// entity still holds what was seen.
pub(super) fn forget_invocation<'a>(
    space: &IndexSpace,
    keys: &IndexKeys,
    stale: &[StaleMember],
) -> ScriptInvocation<'a> {
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
    invocation
}
