//! Indexes on Redis: what the index commands are (the scripts, their arguments, and what
//! their replies mean); `commands.rs` sends them on a pool's core, once for standalone,
//! Sentinel and cluster pools. Each index is two sorted sets and each entity a record string
//! (see [the layout](crate::backend#indexes) and `common.lua`); every write of an indexed
//! store is one script call, so on one server (or one cluster slot) value, record and index
//! entries change together or not at all.

use std::io::Write as _;
use std::sync::LazyLock;

use ::redis::{Cmd, RedisWrite, Script, ScriptInvocation, ToRedisArgs, Value};

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
/// A transaction's commit of a store's indexed writes beside other stores' keys: `apply.lua`
/// as a function, between the commit's steps on the other keys (`commit_beside.lua`).
static COMMIT_BESIDE: LazyLock<Script> = LazyLock::new(|| {
    with_common(
        &[
            include_str!("../commit_steps.lua"),
            "local function apply(KEYS, ARGV)\n",
            include_str!("apply.lua"),
            "\nend\n",
            include_str!("commit_beside.lua"),
        ]
        .concat(),
    )
});
static COUNT: LazyLock<Script> = LazyLock::new(|| with_common(include_str!("count.lua")));
static FORGET: LazyLock<Script> = LazyLock::new(|| with_common(include_str!("forget.lua")));

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

/// Where a script's keys and arguments are written: a [`ScriptInvocation`] (sent with
/// `invoke`, which loads the script where the server lacks it) or an `EVALSHA` [`Cmd`] (sent
/// in a batch's pipeline), which needs every key written before the first argument.
pub(crate) trait ScriptArgs {
    fn key<T: ToRedisArgs>(&mut self, key: T);
    fn arg<T: ToRedisArgs>(&mut self, arg: T);
}

impl ScriptArgs for ScriptInvocation<'_> {
    fn key<T: ToRedisArgs>(&mut self, key: T) {
        ScriptInvocation::key(self, key);
    }

    fn arg<T: ToRedisArgs>(&mut self, arg: T) {
        ScriptInvocation::arg(self, arg);
    }
}

/// The keys only of what is written through it: to lay out the keys of several parts of a
/// script call before any of their arguments, as an `EVALSHA` [`Cmd`] needs.
pub(crate) struct KeysOf<'a, O>(pub(crate) &'a mut O);

impl<O: ScriptArgs> ScriptArgs for KeysOf<'_, O> {
    fn key<T: ToRedisArgs>(&mut self, key: T) {
        self.0.key(key);
    }

    fn arg<T: ToRedisArgs>(&mut self, _: T) {}
}

/// The arguments only of what is written through it (see [`KeysOf`]).
pub(crate) struct ArgsOf<'a, O>(pub(crate) &'a mut O);

impl<O: ScriptArgs> ScriptArgs for ArgsOf<'_, O> {
    fn key<T: ToRedisArgs>(&mut self, _: T) {}

    fn arg<T: ToRedisArgs>(&mut self, arg: T) {
        self.0.arg(arg);
    }
}

/// How many arguments are written through it.
#[derive(Default)]
pub(crate) struct Counted {
    pub(crate) args: usize,
}

impl ScriptArgs for Counted {
    fn key<T: ToRedisArgs>(&mut self, _: T) {}

    fn arg<T: ToRedisArgs>(&mut self, arg: T) {
        self.args += arg.num_of_args();
    }
}

impl ScriptArgs for Cmd {
    fn key<T: ToRedisArgs>(&mut self, key: T) {
        Cmd::arg(self, key);
    }

    fn arg<T: ToRedisArgs>(&mut self, arg: T) {
        Cmd::arg(self, arg);
    }
}

/// Whether `op` may share a script call with other callers' writes of its store (see
/// `apply.lua`): a `set` without a guard. Such an op can only be refused for a unique value
/// another entity holds, which the script checks when the op's turn comes; it then leaves
/// the op out for its caller to send again alone.
pub(crate) fn coalescable(op: &IndexedOp) -> bool {
    op.guard == Guard::Always && op.value.is_some()
}

/// The script call applying `ops` as one batch: all or nothing.
pub(super) fn apply_invocation<'a>(space: &IndexSpace, ops: &[IndexedOp]) -> ScriptInvocation<'a> {
    let mut invocation = APPLY.prepare_invoke();
    apply_args(&mut invocation, space, ops.iter(), false);
    invocation
}

/// `EVALSHA` of the script applying `ops` as one batch, all or nothing, for a pipeline
/// (see [`apply_script`] to load it where the server lacks it).
pub(crate) fn apply_cmd(space: &IndexSpace, ops: &[IndexedOp]) -> Cmd {
    apply_call(space, ops.iter(), false)
}

/// The script [`apply_cmd`] calls.
pub(crate) fn apply_script() -> &'static Script {
    &APPLY
}

/// The script of a transaction's indexed writes beside other stores' keys
/// (`commit_beside.lua`; its arguments: `commands.rs`).
pub(crate) fn commit_beside_script() -> &'static Script {
    &COMMIT_BESIDE
}

/// `EVALSHA` of the script applying the [`coalescable`] `ops` of separate callers, each on
/// its own: its reply is the count of a batch (0), or `{4, op, ...}` naming the ops left out
/// (a unique value held, a record of another Redis type), whose callers send them again
/// alone.
pub(crate) fn coalesced_apply<'o>(
    space: &IndexSpace,
    ops: impl Iterator<Item = &'o IndexedOp> + Clone,
) -> Cmd {
    apply_call(space, ops, true)
}

/// `EVALSHA` of `apply.lua` on `ops`, as one batch or each on its own (`independent`).
fn apply_call<'o>(
    space: &IndexSpace,
    ops: impl Iterator<Item = &'o IndexedOp> + Clone,
    independent: bool,
) -> Cmd {
    let (args, bytes) = apply_size(space, ops.clone());
    let mut cmd = Cmd::with_capacity(args, bytes);
    cmd.arg("EVALSHA")
        .arg(APPLY.get_hash())
        .arg(apply_key_count(space, ops.clone().count()));
    apply_args(&mut cmd, space, ops, independent);
    cmd
}

/// How many keys `apply.lua` takes for `ops` ops in `space`: each index's two, each op's
/// entity and record.
pub(crate) fn apply_key_count(space: &IndexSpace, ops: usize) -> usize {
    2 * space.indexes.len() + 2 * ops
}

/// `apply.lua`'s keys and arguments for `ops`: index keys, each op's entity and record key,
/// then the indexes, whether the ops are `independent`, and each op.
pub(crate) fn apply_args<'o>(
    out: &mut impl ScriptArgs,
    space: &IndexSpace,
    ops: impl Iterator<Item = &'o IndexedOp> + Clone,
    independent: bool,
) {
    for index in &space.indexes {
        out.key(&index.members);
        out.key(&index.expiries);
    }
    for op in ops.clone() {
        out.key(&op.key);
        out.key(&op.record);
    }
    out.arg(space.indexes.len());
    out.arg(&space.entity_prefix);
    for index in &space.indexes {
        out.arg(&index.name);
    }
    for index in &space.indexes {
        out.arg(kind_arg(index.kind));
    }
    out.arg(ops.clone().count());
    out.arg(if independent { "1" } else { "0" });
    for op in ops {
        write_args(out, &op.guard, op.value.as_deref(), op.expiry);
        out.arg(Record { space, op });
        for members in &op.members {
            out.arg(members.len());
            for member in members {
                out.arg(member.as_slice());
            }
        }
    }
}

/// The record `apply.lua` stores for an op (the format is `common.lua`'s): empty when it has
/// no entry (a delete), its one entry `name 0x00 member` as it is, or 0x00 and each entry
/// after its length (4 bytes, big-endian). Written straight into the command.
struct Record<'a> {
    space: &'a IndexSpace,
    op: &'a IndexedOp,
}

impl Record<'_> {
    /// The op's entries: index name and member.
    fn entries(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let named = self.space.indexes.iter().zip(&self.op.members);
        named.flat_map(|(index, members)| {
            members.iter().map(|m| (index.name.as_str(), m.as_slice()))
        })
    }

    /// The record's length in bytes.
    fn len(&self) -> usize {
        let entries = self
            .entries()
            .map(|(name, member)| name.len() + 1 + member.len());
        let (count, bytes) = entries.fold((0, 0), |(c, b), len| (c + 1, b + len));
        if count > 1 {
            1 + 4 * count + bytes
        } else {
            bytes
        }
    }
}

impl ToRedisArgs for Record<'_> {
    fn write_redis_args<W: ?Sized + RedisWrite>(&self, out: &mut W) {
        let several = self.entries().nth(1).is_some();
        let mut out = out.writer_for_next_arg();
        // Writing to a command's buffer cannot fail.
        if several {
            let _ = out.write_all(&[0]);
        }
        for (name, member) in self.entries() {
            if several {
                // An entry is shorter than a Redis string's 512 MiB.
                let len = u32::try_from(name.len() + 1 + member.len()).unwrap_or(u32::MAX);
                let _ = out.write_all(&len.to_be_bytes());
            }
            let _ = out.write_all(name.as_bytes());
            let _ = out.write_all(&[0]);
            let _ = out.write_all(member);
        }
    }
}

/// How many arguments and bytes of them `apply_args` writes for `ops` (the bytes an upper
/// bound: short fields and counts at most 32 bytes per op and 24 per index), so that the
/// command is allocated once.
fn apply_size<'o>(space: &IndexSpace, ops: impl Iterator<Item = &'o IndexedOp>) -> (usize, usize) {
    let per_index = space.indexes.iter();
    let header: usize = per_index
        .map(|i| i.name.len() + i.members.len() + i.expiries.len())
        .sum();
    let (mut args, mut bytes) = (
        8 + 4 * space.indexes.len(),
        64 + space.entity_prefix.len() + header,
    );
    for op in ops {
        let members = op.members.iter().flatten();
        let (count, member_bytes) = members.fold((0, 0), |(c, b), m| (c + 1, b + m.len()));
        let expected = match &op.guard {
            Guard::Bytes(expected) => expected.len(),
            _ => 0,
        };
        args += 9 + space.indexes.len() + count;
        bytes += op.key.len() + op.record.len() + expected + 32 + 24 * space.indexes.len();
        bytes += op.value.as_ref().map_or(0, Vec::len) + member_bytes;
        bytes += Record { space, op }.len();
    }
    (args, bytes)
}

/// A write's guard, value and expiry as `apply.lua` (per op) and `compare_and_swap.lua` read
/// them: guard kind and its argument, `set` and the bytes or `del` and nothing, expiry kind
/// and milliseconds.
pub(crate) fn write_args(
    out: &mut impl ScriptArgs,
    guard: &Guard,
    value: Option<&[u8]>,
    expiry: WriteExpiry,
) {
    guard_args(out, guard);
    value_args(out, value, expiry);
}

/// A guard as the scripts read it: its kind and its argument.
fn guard_args(out: &mut impl ScriptArgs, guard: &Guard) {
    let (guard, expected): (&str, &[u8]) = match guard {
        Guard::Always => ("always", b""),
        Guard::Absent => ("absent", b""),
        Guard::Present => ("present", b""),
        Guard::Bytes(bytes) => ("bytes", bytes),
        Guard::Version(version) => ("sha1", version.as_str().as_bytes()),
    };
    out.arg(guard);
    out.arg(expected);
}

/// A write's value and expiry as the scripts read them: `set` and the bytes or `del` and
/// nothing, then the expiry's kind and milliseconds.
fn value_args(out: &mut impl ScriptArgs, value: Option<&[u8]>, expiry: WriteExpiry) {
    match value {
        Some(bytes) => {
            out.arg("set");
            out.arg(bytes);
        }
        None => {
            out.arg("del");
            out.arg("");
        }
    }
    match expiry {
        WriteExpiry::After(ttl) => {
            out.arg("px");
            out.arg(ceil_millis(ttl));
        }
        WriteExpiry::Keep => {
            out.arg("keep");
            out.arg(0);
        }
        WriteExpiry::Never => {
            out.arg("none");
            out.arg(0);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A coalesced script call is allocated once: `apply_size` bounds what `apply_args`
    /// writes, in arguments and bytes, for ops of every shape (guards with bytes, several
    /// indexes and members, deletes, expiries).
    #[test]
    fn coalesced_calls_do_not_grow() {
        let index = |name: &str, kind| IndexKeys {
            name: name.to_owned(),
            kind,
            members: format!("users#ix:{name}"),
            expiries: format!("users#ix:{name}#exp"),
        };
        let space = IndexSpace {
            entity_prefix: "users:".to_owned(),
            record_prefix: "users#rec:".to_owned(),
            indexes: vec![
                index("email", IndexKind::Unique),
                index("tag", IndexKind::Equality),
            ],
        };
        let op = |id: &str, guard, value: Option<&[u8]>, members: Vec<Vec<Vec<u8>>>| {
            let expiry = WriteExpiry::After(std::time::Duration::from_secs(86_400 * 365));
            IndexedOp::new(
                format!("users:{id}"),
                format!("users#rec:{id}"),
                guard,
                value.map(<[u8]>::to_vec),
                expiry,
                members,
            )
        };
        let long = vec![7; 3000];
        let ops = [
            op(
                "1",
                Guard::Always,
                Some(b"v"),
                vec![vec![b"a".to_vec()], vec![]],
            ),
            op(
                "2",
                Guard::Bytes(long.clone()),
                Some(&long),
                vec![
                    vec![long.clone()],
                    vec![b"x".to_vec(), b"y".to_vec(), long.clone()],
                ],
            ),
            op("3", Guard::Absent, None, vec![vec![], vec![]]),
        ];
        for n in 1..=ops.len() {
            let (args, bytes) = apply_size(&space, ops[..n].iter());
            let cmd = coalesced_apply(&space, ops[..n].iter());
            let written: Vec<usize> = cmd
                .args_iter()
                .map(|arg| match arg {
                    ::redis::Arg::Simple(bytes) => bytes.len(),
                    _ => 0,
                })
                .collect();
            assert!(written.len() <= args, "{n} ops: {} args", written.len());
            let total: usize = written.iter().sum();
            assert!(total <= bytes, "{n} ops: {total} bytes, {bytes} bounded");
        }
    }
}
