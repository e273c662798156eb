//! What a batch carries and what each call gets back, and how one server's connection sends
//! a batch: its `GET`s as one `MGET`, its plain `SET`s as one `MSET`, everything else as
//! commands of the same pipeline.

use std::future::Future;

use ::redis::{Cmd, RedisError, Value};

use crate::backend::Bytes;

/// A plain single-key call as its caller makes it, before it is known whether it goes out
/// alone (as a [`Cmd`]) or in a batch (as a [`Call`]): only a queued call copies its key.
pub(crate) enum Plain<'a> {
    /// `GET key`.
    Get(&'a str),
    /// `SET key value`, without a condition or an expiry: what `MSET` does.
    Set(&'a str, Bytes),
    /// Any other single-key command (`SET` with options, `UNLINK`, `EXISTS`, `PTTL`).
    Cmd(Cmd),
}

impl Plain<'_> {
    /// The command to send alone.
    pub(crate) fn cmd(self) -> Cmd {
        match self {
            Plain::Get(key) => get_cmd(key),
            Plain::Set(key, value) => set_cmd(key, &value),
            Plain::Cmd(cmd) => cmd,
        }
    }

    /// The call to queue.
    pub(crate) fn call(self) -> Call {
        match self {
            Plain::Get(key) => Call::Get(key.to_owned()),
            Plain::Set(key, value) => Call::Set(key.to_owned(), value),
            Plain::Cmd(cmd) => Call::Cmd(cmd),
        }
    }
}

/// A queued call (see [`Plain`]).
pub(crate) enum Call {
    Get(String),
    Set(String, Bytes),
    Cmd(Cmd),
}

impl Call {
    /// The command to send alone (to resend it, or on a connection that does not coalesce).
    pub(crate) fn into_cmd(self) -> Cmd {
        match self {
            Call::Get(key) => get_cmd(&key),
            Call::Set(key, value) => set_cmd(&key, &value),
            Call::Cmd(cmd) => cmd,
        }
    }
}

fn get_cmd(key: &str) -> Cmd {
    let mut cmd = ::redis::cmd("GET");
    cmd.arg(key);
    cmd
}

fn set_cmd(key: &str, value: &[u8]) -> Cmd {
    let mut cmd = ::redis::cmd("SET");
    cmd.arg(key).arg(value);
    cmd
}

/// What became of one call of a batch.
pub(crate) enum Sent {
    /// The server's reply to this call alone (a [`Value::ServerError`] if it failed).
    Reply(Value),
    /// Its part of the batch failed as a whole (connection lost, timeout); the command, in
    /// case it may be sent again.
    Failed(RedisError, Cmd),
    /// Not carried out by the batch (no connection could be had, or a cluster's slot moved):
    /// its caller sends it alone, which follows a redirect and names its own key in an error.
    Alone(Cmd),
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
            Sent::Failed(error, _) => Some(error),
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

/// One server: one pipeline of one `MGET` for the batch's `GET`s, one `MSET` for its plain
/// `SET`s and the other commands as they are. Every call of a batch was made while the others
/// were in flight, so any order among them is one the callers could have seen.
impl BatchConnection for ::redis::aio::MultiplexedConnection {
    type Routes = ();

    async fn send_batch(&mut self, calls: Vec<Call>, (): &()) -> Vec<Sent> {
        let mut mget = ::redis::cmd("MGET");
        let mut mset = ::redis::cmd("MSET");
        let (mut gets, mut sets) = (0, 0);
        let mut others = Vec::new();
        for call in &calls {
            match call {
                Call::Get(key) => {
                    mget.arg(key);
                    gets += 1;
                }
                Call::Set(key, value) => {
                    mset.arg(key).arg(value);
                    sets += 1;
                }
                Call::Cmd(cmd) => others.push(cmd),
            }
        }
        let mut pipe = ::redis::pipe();
        if gets > 0 {
            pipe.add_command(mget);
        }
        if sets > 0 {
            pipe.add_command(mset);
        }
        for cmd in others {
            pipe.add_command(cmd.clone());
        }
        let count = pipe.len();
        let replies = match self.send_packed_commands(&pipe, 0, count).await {
            Ok(replies) if replies.len() == count => replies,
            Ok(replies) => {
                let reason = format!("a batch of {count} commands got {} replies", replies.len());
                return calls
                    .iter()
                    .map(|_| Sent::Garbled(reason.clone()))
                    .collect();
            }
            Err(error) => {
                return calls
                    .into_iter()
                    .map(|call| Sent::Failed(error.clone(), call.into_cmd()))
                    .collect();
            }
        };
        let mut replies = replies.into_iter();
        let mut values = match (gets > 0).then(|| replies.next()).flatten() {
            Some(Value::Array(values)) if values.len() == gets => Spread::Each(values.into_iter()),
            Some(Value::ServerError(error)) => Spread::All(Value::ServerError(error)),
            Some(other) => Spread::Garbled(format!("MGET of {gets} keys answered {other:?}")),
            None => Spread::Each(Vec::new().into_iter()),
        };
        let mut written = match (sets > 0).then(|| replies.next()).flatten() {
            Some(reply) => Spread::All(reply),
            None => Spread::Each(Vec::new().into_iter()),
        };
        let mut sent: Vec<Sent> = calls
            .iter()
            .map(|call| match call {
                Call::Get(_) => values.next(),
                Call::Set(..) => written.next(),
                Call::Cmd(_) => replies
                    .next()
                    .map(Sent::Reply)
                    .unwrap_or_else(|| Sent::Garbled("a reply of a batch was lost".into())),
            })
            .collect();
        tell_wrong_types(self, &calls, &mut sent).await;
        sent
    }
}

/// The replies of one coalesced command, handed to its calls in order.
enum Spread {
    /// One value per call.
    Each(std::vec::IntoIter<Value>),
    /// The same reply for every call (`MSET`'s `OK`, or an error of the whole command).
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
/// with `WRONGTYPE`, `MGET` answers nil, so a nil of the `MGET` is checked with `TYPE`.
/// Turns the nil replies of `GET` calls whose key holds another type into
/// [`Sent::WrongType`]; if `TYPE` cannot be asked, those calls learn why.
async fn tell_wrong_types(
    conn: &mut ::redis::aio::MultiplexedConnection,
    calls: &[Call],
    sent: &mut [Sent],
) {
    let nils: Vec<usize> = calls
        .iter()
        .zip(sent.iter())
        .enumerate()
        .filter(|(_, (call, sent))| {
            matches!(call, Call::Get(_)) && matches!(sent, Sent::Reply(Value::Nil))
        })
        .map(|(n, _)| n)
        .collect();
    if nils.is_empty() {
        return;
    }
    let mut pipe = ::redis::pipe();
    for &n in &nils {
        if let Call::Get(key) = &calls[n] {
            pipe.cmd("TYPE").arg(key);
        }
    }
    let types = conn.send_packed_commands(&pipe, 0, nils.len()).await;
    match types {
        Ok(types) => {
            for (n, kind) in nils.into_iter().zip(types) {
                if let Some(kind) = other_type(&kind) {
                    sent[n] = Sent::WrongType(kind);
                }
            }
        }
        Err(error) => {
            for n in nils {
                if let Call::Get(key) = &calls[n] {
                    sent[n] = Sent::Failed(error.clone(), get_cmd(key));
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
