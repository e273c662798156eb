//! What a batch carries and what each call gets back, how the calls of a batch are coalesced
//! (a [`Group`]: its `GET`s as one `MGET`, its plain `SET`s as one `MSET`, the unguarded
//! indexed `set`s of each store as one script call, everything else as commands of the same
//! pipeline), and how one server's connection sends a batch.

use std::future::Future;
use std::sync::Arc;

use ::redis::{Cmd, Pipeline, RedisError, RedisResult, Value};
use arc_swap::ArcSwap;
use smallvec::SmallVec;

use crate::backend::{Bytes, IndexSpace, IndexedOp};
use crate::redis::indexes;

/// A plain single-key call as its caller makes it, before it is known whether it goes out
/// alone (as a [`Cmd`]) or in a batch (as a [`Call`]): only a queued call copies its key.
pub(crate) enum Plain<'a> {
    /// `GET key`.
    Get(&'a str),
    /// `SET key value`, without a condition or an expiry: what `MSET` does.
    Set(&'a str, Bytes),
    /// Any other single-key command (`SET` with options, `UNLINK`, `EXISTS`, `PTTL`).
    Cmd(Cmd),
    /// An indexed write that may share a script call with others of its store
    /// ([`indexes::coalescable`]).
    Apply(&'a IndexSpace, &'a IndexedOp),
}

impl Plain<'_> {
    /// The command to send alone.
    pub(crate) fn cmd(self) -> Cmd {
        match self {
            Plain::Get(key) => get_cmd(key.as_bytes()),
            Plain::Set(key, value) => set_cmd(key.as_bytes(), &value),
            Plain::Cmd(cmd) => cmd,
            Plain::Apply(space, op) => indexes::coalesced_apply(space, [op].into_iter()),
        }
    }

    /// The call to queue; an indexed write takes its store's space from `spaces`.
    pub(crate) fn call(self, spaces: &Spaces) -> Call {
        match self {
            Plain::Get(key) => Call::Get(key.into()),
            Plain::Set(key, value) => Call::Set(key.into(), value),
            Plain::Cmd(cmd) => Call::Cmd(cmd),
            Plain::Apply(space, op) => Call::Apply(Box::new(IndexedWrite {
                space: spaces.get(space),
                op: op.clone(),
            })),
        }
    }
}

/// The index spaces of a pool's queued indexed writes, each kept once: a queued write holds
/// its store's space by `Arc` instead of a copy of its strings (half a dozen allocations per
/// write), and the writes of one store mostly find each other by pointer. Read without a lock;
/// added to once per store (and partition).
#[derive(Default)]
pub(crate) struct Spaces(ArcSwap<Vec<Arc<IndexSpace>>>);

impl Spaces {
    /// Spaces kept at most: beyond, a space is copied per write (as many stores or
    /// partitions as that are not one pool's usual work).
    const MAX: usize = 4096;

    /// `space`, shared.
    pub(crate) fn get(&self, space: &IndexSpace) -> Arc<IndexSpace> {
        let find = |spaces: &[Arc<IndexSpace>]| spaces.iter().find(|s| ***s == *space).cloned();
        if let Some(found) = find(&self.0.load()) {
            return found;
        }
        let new = Arc::new(space.clone());
        let before = self.0.rcu(|spaces| {
            let mut spaces = Vec::clone(spaces);
            if spaces.len() < Self::MAX && find(&spaces).is_none() {
                spaces.push(Arc::clone(&new));
            }
            spaces
        });
        find(&before).unwrap_or(new)
    }
}

/// A queued call's key, in place up to 64 bytes (most keys): a copy on the heap was one
/// more allocation per queued `GET` or `SET`, made on the caller's thread and freed on the
/// dispatcher's. It makes a [`Call`] 104 bytes instead of 80, copied once into the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key(SmallVec<[u8; 64]>);

impl From<&str> for Key {
    fn from(key: &str) -> Key {
        Key(SmallVec::from_slice(key.as_bytes()))
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// A queued call (see [`Plain`]).
pub(crate) enum Call {
    Get(Key),
    Set(Key, Bytes),
    Cmd(Cmd),
    /// Boxed: rarer and larger than the others, which it would otherwise make as large.
    Apply(Box<IndexedWrite>),
}

/// A queued indexed write and the indexes of its store.
pub(crate) struct IndexedWrite {
    pub(crate) space: Arc<IndexSpace>,
    pub(crate) op: IndexedOp,
}

impl Call {
    /// The command to send alone (to resend it, or on a connection that does not coalesce).
    pub(crate) fn into_cmd(self) -> Cmd {
        match self {
            Call::Get(key) => get_cmd(&key),
            Call::Set(key, value) => set_cmd(&key, &value),
            Call::Cmd(cmd) => cmd,
            Call::Apply(write) => write.cmd(),
        }
    }

    /// The command to send alone, keeping the call.
    pub(crate) fn to_cmd(&self) -> Cmd {
        match self {
            Call::Get(key) => get_cmd(key),
            Call::Set(key, value) => set_cmd(key, value),
            Call::Cmd(cmd) => cmd.clone(),
            Call::Apply(write) => write.cmd(),
        }
    }

    fn write(&self) -> Option<&IndexedWrite> {
        match self {
            Call::Apply(write) => Some(write),
            _ => None,
        }
    }
}

impl IndexedWrite {
    fn cmd(&self) -> Cmd {
        indexes::coalesced_apply(&self.space, [&self.op].into_iter())
    }
}

fn get_cmd(key: &[u8]) -> Cmd {
    let mut cmd = ::redis::cmd("GET");
    cmd.arg(key);
    cmd
}

fn set_cmd(key: &[u8], value: &[u8]) -> Cmd {
    let mut cmd = ::redis::cmd("SET");
    cmd.arg(key).arg(value);
    cmd
}

/// What became of one call of a batch.
pub(crate) enum Sent {
    /// The server's reply to this call alone (a [`Value::ServerError`] if it failed).
    Reply(Value),
    /// Its part of the batch failed as a whole (connection lost, timeout); the command, in
    /// case it may be sent again. Boxed, as `Alone`: rare, and as large as three replies,
    /// they would make every call's outcome that large.
    Failed(Box<(RedisError, Cmd)>),
    /// Not carried out by the batch (no connection could be had, or a cluster's slot moved):
    /// its caller sends it alone, which follows a redirect and names its own key in an error.
    Alone(Box<Cmd>),
    /// The server answered with the wrong number of replies.
    Garbled(String),
    /// A `GET` whose key holds another Redis type (named here): `MGET` answers nil for it,
    /// and `TYPE` told the two apart.
    WrongType(String),
    /// The call's own response timeout passed before its reply came.
    TimedOut,
}

impl Sent {
    pub(crate) fn failure(&self) -> Option<&RedisError> {
        match self {
            Sent::Failed(failed) => Some(&failed.0),
            _ => None,
        }
    }
}

/// How a shared connection sends a batch: one [`Sent`] per call, in order.
pub(crate) trait BatchConnection {
    /// What the pool keeps between batches to route them (a cluster's slot owners).
    type Routes: Default + Send + Sync + 'static;

    fn send_batch(
        &mut self,
        calls: Vec<Call>,
        routes: &Self::Routes,
    ) -> impl Future<Output = Vec<Sent>> + Send;
}

/// One server: the whole batch is one [`Group`], sent as one pipeline. Every call of a batch
/// was made while the others were in flight, so any order among them is one the callers
/// could have seen.
impl BatchConnection for ::redis::aio::MultiplexedConnection {
    type Routes = ();

    async fn send_batch(&mut self, calls: Vec<Call>, (): &()) -> Vec<Sent> {
        let mut pipe = ::redis::pipe();
        let group = Group::add(&calls, (0..calls.len()).collect(), &mut pipe);
        let mut sent = unanswered(calls.len());
        let replies = self.send_packed_commands(&pipe, 0, pipe.len()).await;
        answer(&[group], &calls, replies, &mut sent);
        if let Some(check) = TypeCheck::of(&calls, &sent) {
            let types = self.send_packed_commands(&check.pipe, 0, check.len()).await;
            check.apply(&calls, types, &mut sent);
        }
        answered(sent)
    }
}

/// What each call of a batch got, while it is being filled in.
pub(crate) fn unanswered(calls: usize) -> Vec<Option<Sent>> {
    (0..calls).map(|_| None).collect()
}

/// What each call got; a call left unanswered (a defect) learns so.
pub(crate) fn answered(sent: Vec<Option<Sent>>) -> Vec<Sent> {
    sent.into_iter()
        .map(|sent| sent.unwrap_or_else(|| Sent::Garbled("a reply of a batch was lost".into())))
        .collect()
}

/// The commands that carry some calls of a batch (the whole batch on one server; the calls
/// of one slot on a cluster, where a multi-key command needs one slot): their `GET`s as one
/// `MGET`, their plain `SET`s as one `MSET`, the others as they are, then the indexed writes
/// of each store as one script call. A lone `GET` or `SET` goes as itself: it answers for
/// itself, and a lone `GET` needs no type check.
pub(crate) struct Group {
    /// The calls, as positions in the batch, in order.
    members: Vec<usize>,
    gets: usize,
    sets: usize,
    /// The indexed writes, as positions in the batch: one list per store, one script call
    /// each, after the other commands.
    scripts: Vec<Vec<usize>>,
}

impl Group {
    /// Appends the commands for the calls `members` of `calls` to `pipe`, written straight
    /// into it: on a cluster a group is mostly one call, and lists of its keys would be
    /// allocations per call.
    pub(crate) fn add(calls: &[Call], members: Vec<usize>, pipe: &mut Pipeline) -> Group {
        let ours = || members.iter().map(|&n| &calls[n]);
        let gets = ours().filter(|call| matches!(call, Call::Get(_))).count();
        let sets = ours().filter(|call| matches!(call, Call::Set(..))).count();
        if gets > 0 {
            let get = pipe.cmd(if gets == 1 { "GET" } else { "MGET" });
            for call in ours() {
                if let Call::Get(key) = call {
                    get.arg(&key[..]);
                }
            }
        }
        if sets > 0 {
            let set = pipe.cmd(if sets == 1 { "SET" } else { "MSET" });
            for call in ours() {
                if let Call::Set(key, value) = call {
                    set.arg(&key[..]).arg(&value[..]);
                }
            }
        }
        for call in ours() {
            if let Call::Cmd(cmd) = call {
                pipe.add_command(cmd.clone());
            }
        }
        let mut scripts: Vec<Vec<usize>> = Vec::new();
        for &n in &members {
            let Some(write) = calls[n].write() else {
                continue;
            };
            let store = scripts.iter_mut().find(|script| {
                calls[script[0]].write().is_some_and(|first| {
                    Arc::ptr_eq(&first.space, &write.space) || first.space == write.space
                })
            });
            match store {
                Some(script) => script.push(n),
                None => scripts.push(vec![n]),
            }
        }
        for script in &scripts {
            let writes = script.iter().filter_map(|&n| calls[n].write());
            if let Some(first) = writes.clone().next() {
                pipe.add_command(indexes::coalesced_apply(
                    &first.space,
                    writes.map(|write| &write.op),
                ));
            }
        }
        Group {
            members,
            gets,
            sets,
            scripts,
        }
    }

    /// Its calls, as positions in the batch.
    #[cfg(feature = "cluster")]
    pub(crate) fn members(&self) -> impl Iterator<Item = usize> + '_ {
        self.members.iter().copied()
    }

    /// How many commands (and replies) the group has in its pipeline.
    pub(crate) fn commands(&self) -> usize {
        let writes: usize = self.scripts.iter().map(Vec::len).sum();
        let others = self.members.len() - self.gets - self.sets - writes;
        usize::from(self.gets > 0) + usize::from(self.sets > 0) + others + self.scripts.len()
    }

    /// Answers every call of the group with what `outcome` gives for its position.
    fn fail_with(&self, sent: &mut [Option<Sent>], outcome: impl Fn(usize) -> Sent) {
        for &n in &self.members {
            sent[n] = Some(outcome(n));
        }
    }

    /// Hands each call its reply, taking the group's replies from `replies` in order.
    fn spread(
        &self,
        calls: &[Call],
        replies: &mut impl Iterator<Item = Value>,
        sent: &mut [Option<Sent>],
    ) {
        let mut values = match (self.gets > 0).then(|| replies.next()).flatten() {
            Some(Value::Array(values)) if self.gets > 1 && values.len() == self.gets => {
                Spread::Each(values.into_iter())
            }
            Some(Value::ServerError(error)) => Spread::All(Value::ServerError(error)),
            Some(value) if self.gets == 1 => Spread::All(value),
            Some(other) => {
                Spread::Garbled(format!("MGET of {} keys answered {other:?}", self.gets))
            }
            None => Spread::Each(Vec::new().into_iter()),
        };
        let mut written = match (self.sets > 0).then(|| replies.next()).flatten() {
            Some(reply) => Spread::All(reply),
            None => Spread::Each(Vec::new().into_iter()),
        };
        for &n in &self.members {
            sent[n] = Some(match &calls[n] {
                Call::Get(_) => values.next(),
                Call::Set(..) => written.next(),
                Call::Cmd(_) => replies
                    .next()
                    .map(Sent::Reply)
                    .unwrap_or_else(|| Sent::Garbled("a reply of a batch was lost".into())),
                // Answered below: the scripts follow every other command.
                Call::Apply(_) => continue,
            });
        }
        for script in &self.scripts {
            spread_applied(script, replies.next(), sent);
        }
    }
}

/// Hands each indexed write of one script call (`script`: their positions, in the order of
/// the call's ops) its reply: the count `0` when applied (a `set` deletes nothing), nil when
/// the script left it out (its caller sends it again alone, which names its error), or the
/// error of the whole call.
fn spread_applied(script: &[usize], reply: Option<Value>, sent: &mut [Option<Sent>]) {
    let mut left_out = Vec::new();
    let outcome = match reply {
        Some(Value::Int(_)) => Ok(Value::Int(0)),
        Some(Value::Array(items)) if items.first() == Some(&Value::Int(4)) => {
            left_out = items;
            Ok(Value::Int(0))
        }
        Some(error @ Value::ServerError(_)) => Ok(error),
        Some(other) => Err(format!("an indexed-write script answered {other:?}")),
        None => Err("a reply of a batch was lost".to_owned()),
    };
    let left_out = left_out.get(1..).unwrap_or_default();
    for (op, &n) in (1..).zip(script) {
        sent[n] = Some(match &outcome {
            _ if left_out.contains(&Value::Int(op)) => Sent::Reply(Value::Nil),
            Ok(reply) => Sent::Reply(reply.clone()),
            Err(reason) => Sent::Garbled(reason.clone()),
        });
    }
}

/// Answers the calls of `groups` from the reply to a pipeline holding those groups, in
/// order: one server's batch (one group), or a cluster master's part (a group per slot).
pub(crate) fn answer(
    groups: &[Group],
    calls: &[Call],
    replies: RedisResult<Vec<Value>>,
    sent: &mut [Option<Sent>],
) {
    let commands: usize = groups.iter().map(Group::commands).sum();
    match replies {
        Ok(replies) if replies.len() == commands => {
            let mut replies = replies.into_iter();
            for group in groups {
                group.spread(calls, &mut replies, sent);
            }
        }
        Ok(replies) => {
            let reason = format!(
                "a batch of {commands} commands got {} replies",
                replies.len()
            );
            for group in groups {
                group.fail_with(sent, |_| Sent::Garbled(reason.clone()));
            }
        }
        Err(error) => {
            for group in groups {
                group.fail_with(sent, |n| {
                    Sent::Failed(Box::new((error.clone(), calls[n].to_cmd())))
                });
            }
        }
    }
}

/// The replies of one coalesced command, handed to its calls in order.
enum Spread {
    /// One value per call.
    Each(std::vec::IntoIter<Value>),
    /// The same reply for every call (`MSET`'s `OK`, a lone command's reply, or an error of
    /// the whole command).
    All(Value),
    /// A reply the command cannot have.
    Garbled(String),
}

impl Spread {
    fn next(&mut self) -> Sent {
        match self {
            Spread::Each(values) => values
                .next()
                .map(Sent::Reply)
                .unwrap_or_else(|| Sent::Garbled("a reply of a batch was lost".into())),
            Spread::All(value) => Sent::Reply(value.clone()),
            Spread::Garbled(reason) => Sent::Garbled(reason.clone()),
        }
    }
}

/// The one rule for a key of another Redis type, on the coalesced path: `GET` refuses it
/// with `WRONGTYPE`, `MGET` answers nil, so each nil answer to a `GET` call is checked with
/// `TYPE` (a lone `GET` was refused by the server already, and `TYPE` of a missing key says
/// `none`).
pub(crate) struct TypeCheck {
    /// The `GET` calls answered nil, as positions in the batch.
    nils: Vec<usize>,
    /// One `TYPE` per call of `nils`, in order.
    pub(crate) pipe: Pipeline,
}

impl TypeCheck {
    /// The check the answers `sent` (so far) need, if any `GET` read nil.
    pub(crate) fn of(calls: &[Call], sent: &[Option<Sent>]) -> Option<TypeCheck> {
        Self::of_some(calls, 0..calls.len(), sent)
    }

    /// The check the answers `sent` (so far) to the calls `members` need, if any of those
    /// `GET`s read nil.
    pub(crate) fn of_some(
        calls: &[Call],
        members: impl Iterator<Item = usize>,
        sent: &[Option<Sent>],
    ) -> Option<TypeCheck> {
        let mut pipe = ::redis::pipe();
        let mut nils = Vec::new();
        for n in members {
            if let (Call::Get(key), Some(Sent::Reply(Value::Nil))) = (&calls[n], &sent[n]) {
                pipe.cmd("TYPE").arg(&key[..]);
                nils.push(n);
            }
        }
        (!nils.is_empty()).then_some(TypeCheck { nils, pipe })
    }

    /// How many `TYPE`s the check sends.
    pub(crate) fn len(&self) -> usize {
        self.nils.len()
    }

    /// Turns each nil whose key holds another type into [`Sent::WrongType`]; if `TYPE`
    /// could not be asked, those calls learn why.
    pub(crate) fn apply(
        self,
        calls: &[Call],
        types: RedisResult<Vec<Value>>,
        sent: &mut [Option<Sent>],
    ) {
        match types {
            Ok(types) => {
                for (n, kind) in self.nils.into_iter().zip(types) {
                    if let Some(kind) = other_type(&kind) {
                        sent[n] = Some(Sent::WrongType(kind));
                    }
                }
            }
            Err(error) => {
                for n in self.nils {
                    sent[n] = Some(Sent::Failed(Box::new((error.clone(), calls[n].to_cmd()))));
                }
            }
        }
    }
}

/// The type `TYPE` named, if a `GET` of the key would refuse it: anything but a string or
/// no key at all (a string written since the `MGET` read as absent then, which it was).
fn other_type(reply: &Value) -> Option<String> {
    let name = match reply {
        Value::SimpleString(name) => name.clone(),
        Value::BulkString(name) => String::from_utf8_lossy(name).into_owned(),
        _ => return None,
    };
    (name != "string" && name != "none").then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    /// The commands a group's pipeline holds, as text.
    fn commands(pipe: &Pipeline) -> Vec<String> {
        pipe.cmd_iter()
            .map(|cmd| {
                let args: Vec<String> = cmd
                    .args_iter()
                    .map(|arg| match arg {
                        ::redis::Arg::Simple(bytes) => String::from_utf8_lossy(bytes).into(),
                        _ => "<cursor>".into(),
                    })
                    .collect();
                args.join(" ")
            })
            .collect()
    }

    #[test]
    fn gets_share_one_mget_and_sets_one_mset_and_each_call_gets_its_own_reply() {
        let mut unlink = ::redis::cmd("UNLINK");
        unlink.arg("c");
        let calls = vec![
            Call::Get("a".into()),
            Call::Set("x".into(), b"1".to_vec()),
            Call::Cmd(unlink),
            Call::Get("b".into()),
            Call::Set("y".into(), b"2".to_vec()),
        ];
        let mut pipe = ::redis::pipe();
        let group = Group::add(&calls, (0..calls.len()).collect(), &mut pipe);
        assert_eq!(commands(&pipe), ["MGET a b", "MSET x 1 y 2", "UNLINK c"]);
        assert_eq!(group.commands(), 3);
        let replies = vec![
            Value::Array(vec![bulk("A"), Value::Nil]),
            Value::Okay,
            Value::Int(1),
        ];
        let mut sent = unanswered(calls.len());
        answer(std::slice::from_ref(&group), &calls, Ok(replies), &mut sent);
        let sent = answered(sent);
        assert!(matches!(&sent[0], Sent::Reply(value) if *value == bulk("A")));
        assert!(matches!(&sent[1], Sent::Reply(Value::Okay)));
        assert!(matches!(&sent[2], Sent::Reply(Value::Int(1))));
        assert!(matches!(&sent[3], Sent::Reply(Value::Nil)));
        assert!(matches!(&sent[4], Sent::Reply(Value::Okay)));
        let check = TypeCheck::of(&calls, &sent.into_iter().map(Some).collect::<Vec<_>>());
        assert_eq!(
            check.map(|check| commands(&check.pipe)).unwrap(),
            ["TYPE b"]
        );
    }

    #[test]
    fn a_lone_get_or_set_goes_as_itself_and_answers_for_itself() {
        let calls = vec![Call::Set("x".into(), b"1".to_vec()), Call::Get("a".into())];
        let mut pipe = ::redis::pipe();
        let group = Group::add(&calls, vec![0, 1], &mut pipe);
        assert_eq!(commands(&pipe), ["GET a", "SET x 1"]);
        let refused = ::redis::parse_redis_value(b"-WRONGTYPE not a string\r\n").unwrap();
        assert!(matches!(refused, Value::ServerError(_)));
        let mut sent = unanswered(calls.len());
        answer(
            std::slice::from_ref(&group),
            &calls,
            Ok(vec![refused.clone(), Value::Okay]),
            &mut sent,
        );
        assert!(matches!(&sent[0], Some(Sent::Reply(Value::Okay))));
        assert!(matches!(&sent[1], Some(Sent::Reply(value)) if *value == refused));
    }

    /// An unguarded indexed `set` of `space`'s store at `id`.
    fn indexed_set(space: &IndexSpace, id: &str) -> Call {
        let op = IndexedOp::new(
            format!("{}{id}", space.entity_prefix),
            format!("{}{id}", space.record_prefix),
            crate::backend::Guard::Always,
            Some(b"v".to_vec()),
            crate::backend::WriteExpiry::Never,
            vec![vec![b"term".to_vec()]],
        );
        Call::Apply(Box::new(IndexedWrite {
            space: Arc::new(space.clone()),
            op,
        }))
    }

    fn space(namespace: &str) -> IndexSpace {
        IndexSpace {
            entity_prefix: format!("{namespace}:"),
            record_prefix: format!("{namespace}#rec:"),
            indexes: vec![crate::backend::IndexKeys {
                name: "email".into(),
                kind: crate::index::IndexKind::Equality,
                members: format!("{namespace}#idx:email"),
                expiries: format!("{namespace}#exp:email"),
            }],
        }
    }

    #[test]
    fn the_indexed_writes_of_each_store_share_one_script_call_and_keep_their_own_outcome() {
        let (users, teams) = (space("users"), space("teams"));
        let calls = vec![
            indexed_set(&users, "1"),
            Call::Get("a".into()),
            indexed_set(&teams, "1"),
            indexed_set(&users, "2"),
            indexed_set(&users, "3"),
        ];
        let mut pipe = ::redis::pipe();
        let group = Group::add(&calls, (0..calls.len()).collect(), &mut pipe);
        let sent = commands(&pipe);
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert_eq!(group.commands(), 3);
        assert!(sent[0] == "GET a");
        // EVALSHA sha numkeys: two keys per index, two per op.
        let users_call: Vec<&str> = sent[1].split(' ').collect();
        assert_eq!(users_call[0], "EVALSHA");
        assert_eq!(users_call[2], "8");
        assert_eq!(
            &users_call[3..9],
            [
                "users#idx:email",
                "users#exp:email",
                "users:1",
                "users#rec:1",
                "users:2",
                "users#rec:2"
            ]
        );
        assert!(sent[2].contains(" teams:1 teams#rec:1 "), "{}", sent[2]);
        // The users' script left its second op out (its record is of another type).
        let replies = vec![
            Value::Nil,
            Value::Array(vec![Value::Int(4), Value::Int(2)]),
            Value::Int(0),
        ];
        let mut sent = unanswered(calls.len());
        answer(std::slice::from_ref(&group), &calls, Ok(replies), &mut sent);
        let replies: Vec<Option<Value>> = answered(sent)
            .into_iter()
            .map(|sent| match sent {
                Sent::Reply(value) => Some(value),
                _ => None,
            })
            .collect();
        assert_eq!(
            replies,
            [
                Some(Value::Int(0)),
                Some(Value::Nil),
                Some(Value::Int(0)),
                Some(Value::Nil),
                Some(Value::Int(0)),
            ]
        );
    }

    #[test]
    fn an_outcome_is_no_larger_than_a_reply_and_its_tag() {
        // Each queued call's one-shot channel holds one, and the batch moves one per call.
        assert!(
            std::mem::size_of::<Sent>() <= std::mem::size_of::<Value>() + 8,
            "{} bytes",
            std::mem::size_of::<Sent>()
        );
    }

    #[test]
    fn a_reply_of_the_wrong_shape_garbles_the_group_and_a_lost_pipeline_fails_it() {
        let calls = vec![Call::Get("a".into()), Call::Get("b".into())];
        let mut pipe = ::redis::pipe();
        let group = Group::add(&calls, vec![0, 1], &mut pipe);
        let mut sent = unanswered(2);
        answer(
            std::slice::from_ref(&group),
            &calls,
            Ok(vec![Value::Array(vec![Value::Nil])]),
            &mut sent,
        );
        assert!(
            sent.iter()
                .all(|sent| matches!(sent, Some(Sent::Garbled(_))))
        );
        let lost = RedisError::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        answer(std::slice::from_ref(&group), &calls, Err(lost), &mut sent);
        assert!(
            sent.iter()
                .all(|sent| matches!(sent, Some(Sent::Failed(..))))
        );
    }
}
