//! Batching of plain single-key commands (`GET`, `SET`, `UNLINK`, `EXISTS`, `PTTL`), on
//! unless `RedisPoolBuilder::batching(false)`: up to [`MAX_DIRECT`](queue::MAX_DIRECT)
//! concurrent calls go out alone; beyond that, the calls that arrive queue and go out
//! together, at most [`MAX_IN_FLIGHT`](queue::MAX_IN_FLIGHT) batches at a time, until the
//! queue is empty and no batch is in flight.
//!
//! - **A lone call goes out at once** on its caller's task: with no batch in flight, the
//!   last batch small ([`HOLD_BATCH`](queue::HOLD_BATCH)) and a lone slot free, it claims the
//!   slot (one compare-and-swap) and sends its command, with no hand-off.
//! - **A queued call costs one message** on the pool's channel (`queue.rs`); a dispatcher
//!   task drains the channel into a batch whenever a batch slot frees, and sends and polls
//!   its batches itself (a task per batch measured 10-15% slower at 64 tasks). Batches are
//!   never sent by a caller, so a caller whose future is dropped never
//!   strands the others; a queued call whose caller left is left out of its batch.
//! - **One command per kind**: on one server a batch is one pipeline holding one `MGET` for
//!   its `GET`s and one `MSET` for its plain `SET`s (no condition, no expiry; a lone one goes
//!   as `GET`/`SET`), and the other
//!   commands as they are (`calls.rs`); on a cluster, one pipeline per master
//!   holding that for each slot (`cluster/routes.rs`): a hash-tagged store's batch is one
//!   `MGET`. Redis reads, parses and answers a whole batch at once, and the
//!   client parses one reply array instead of one reply per call.
//! - **Each call keeps its own outcome**: its own reply or error (a `GET` of a key holding
//!   another Redis type is `WRONGTYPE`, as alone: a nil of the `MGET` is checked with
//!   `TYPE`), and its own deadline: no call has a timer of its own, but the dispatcher and
//!   each batch sleep until the earliest deadline of the calls they hold and answer
//!   those whose time is up.
//! - The queue needs no bound of its own: each queued call belongs to a caller waiting for
//!   it, as a call sent alone waits in the connection's queue.

mod calls;
mod queue;

use std::sync::Arc;

use ::redis::{FromRedisValue, RedisError, Value};
use deadpool::managed::{Manager, Object};
use futures::future::BoxFuture;
use tokio::sync::oneshot;

pub(crate) use calls::{BatchConnection, Call, Plain, Sent};
#[cfg(feature = "cluster")]
pub(crate) use calls::{Group, TypeCheck, answer, answered, unanswered};
pub(crate) use queue::Batcher;
use queue::{Dispatch, Queued, expire, sleep_until};

use super::errors::{from_redis_error, unexpected};
use super::keys::{NoKey, ToKeys};
use super::lanes::Pooled;
use super::shared::{Resend, Shared};
use crate::error::{Error, Result, Waited};

/// The batcher of a pool whose connections are `W`.
pub(crate) type BatcherOf<W> = Batcher<<<W as Pooled>::Conn as BatchConnection>::Routes>;

impl<M, W> Dispatch for Shared<M, W>
where
    M: Manager<Error = RedisError> + 'static,
    W: Pooled + From<Object<M>>,
{
    type Routes = <W::Conn as BatchConnection>::Routes;

    fn batcher(&self) -> Option<&Batcher<Self::Routes>> {
        Shared::batcher(self)
    }

    fn send(self: Arc<Self>, batch: Vec<Queued>) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let Some(batcher) = Shared::batcher(&self) else {
                return;
            };
            let _slot = batcher.batch_slot();
            self.send_batch(batch, &batcher.routes).await;
        })
    }
}

impl<M, W> Shared<M, W>
where
    M: Manager<Error = RedisError> + 'static,
    W: Pooled + From<Object<M>>,
{
    /// Sends a plain single-key call about `key`, in a batch with others if commands are in
    /// flight and this pool batches; the reply, or the error, is this call's own.
    ///
    /// The route is chosen when the future is made, not in it: the future then holds the
    /// chosen path's state only, once (an `async fn` would also keep its arguments), and
    /// every call allocates it.
    pub(crate) fn single<R: FromRedisValue + Send>(
        self: &Arc<Self>,
        key: &str,
        plain: Plain<'_>,
        resend: Resend,
    ) -> impl Future<Output = Result<R>> + Send {
        let route = match self.batcher() {
            None => Route::Alone(None, plain.cmd()),
            Some(batcher) => match batcher.try_direct() {
                Some(slot) => Route::Alone(Some(slot), plain.cmd()),
                None => {
                    let deadline = self
                        .limits()
                        .response
                        .map(|limit| tokio::time::Instant::now() + limit);
                    match batcher.enqueue(self, plain.call(), deadline) {
                        Ok(outcome) => Route::Queued(outcome),
                        Err(call) => Route::Alone(None, call.into_cmd()),
                    }
                }
            },
        };
        async move {
            match route {
                Route::Alone(_slot, cmd) => self.query(&key, &cmd, resend).await,
                Route::Queued(outcome) => self.await_batched(key, outcome, resend).await,
            }
        }
    }

    /// What became of a queued call: its reply, or its error; sent alone if the batch did
    /// not carry it out, or if it failed with its connection and may be sent again.
    async fn await_batched<R: FromRedisValue>(
        &self,
        key: &str,
        outcome: oneshot::Receiver<Sent>,
        resend: Resend,
    ) -> Result<R> {
        let limits = self.limits();
        let failed = |error: RedisError| from_redis_error(&key, error, Waited::Reply, limits);
        match outcome.await {
            Ok(Sent::Reply(Value::ServerError(error))) => Err(failed(error.into())),
            Ok(Sent::Reply(value)) => {
                R::from_redis_value(value).map_err(|e| failed(RedisError::from(e)))
            }
            // Sending alone is boxed, here and below: rare, and inlined it would make every
            // queued call's future five times larger.
            Ok(Sent::Alone(cmd)) => Box::pin(self.query(&key, &cmd, resend)).await,
            // As `query` does for a command of its own (the batch marked the connection dead).
            Ok(Sent::Failed(error, cmd)) if resend == Resend::Safe && self.replaces(&error) => {
                Box::pin(self.query(&key, &cmd, resend)).await
            }
            Ok(Sent::Failed(error, _)) => Err(failed(error)),
            Ok(Sent::Garbled(reason)) => Err(unexpected(&key, limits, reason)),
            Ok(Sent::WrongType(kind)) => Err(wrong_type(&key, &kind, limits.backend)),
            Ok(Sent::TimedOut) => Err(Error::Timeout {
                backend: limits.backend,
                keys: key.to_keys(),
                timeout: limits.response.unwrap_or_default(),
                waited: Waited::Reply,
            }),
            Err(_dropped) => Err(unexpected(
                &key,
                limits,
                "the batch carrying this command was dropped: the runtime is shutting down"
                    .to_owned(),
            )),
        }
    }

    /// Sends the calls of `batch` whose callers still wait, and hands each caller what
    /// became of its own, or [`Sent::TimedOut`] when its deadline passes first.
    async fn send_batch(
        &self,
        mut batch: Vec<Queued>,
        routes: &<W::Conn as BatchConnection>::Routes,
    ) {
        expire(&mut batch);
        if batch.is_empty() {
            return;
        }
        // Who waits for each call (until answered) and until when.
        let (calls, mut waiting): (Vec<Call>, Vec<_>) = batch
            .into_iter()
            .map(|queued| (queued.call, (Some(queued.reply), queued.deadline)))
            .unzip();
        let send = async {
            match self.lend(&NoKey).await {
                Ok(mut lent) => {
                    let sent = lent.conn.send_batch(calls, routes).await;
                    if let Some(error) = sent.iter().find_map(Sent::failure) {
                        self.mark_if_broken(&lent, error);
                    }
                    sent
                }
                // Each caller sends its own command, and gets its own error naming its key.
                Err(_) => calls
                    .into_iter()
                    .map(|call| Sent::Alone(call.into_cmd()))
                    .collect(),
            }
        };
        tokio::pin!(send);
        loop {
            let next = waiting
                .iter()
                .filter(|(reply, _)| reply.is_some())
                .filter_map(|(_, deadline)| *deadline)
                .min();
            tokio::select! {
                sent = &mut send => {
                    for ((reply, _), sent) in waiting.into_iter().zip(sent) {
                        if let Some(reply) = reply {
                            reply.send(sent).ok();
                        }
                    }
                    return;
                }
                () = sleep_until(next) => {
                    let now = tokio::time::Instant::now();
                    for (reply, deadline) in &mut waiting {
                        if deadline.is_some_and(|deadline| deadline <= now)
                            && let Some(reply) = reply.take()
                        {
                            reply.send(Sent::TimedOut).ok();
                        }
                    }
                }
            }
        }
    }
}

/// How a plain call goes out.
enum Route<'a> {
    /// Alone, holding a lone call's slot if it claimed one.
    Alone(Option<queue::Slot<'a>>, ::redis::Cmd),
    /// In a batch: where its outcome arrives.
    Queued(oneshot::Receiver<Sent>),
}

/// A key holding another Redis type than a string, reported as `GET` would: `WRONGTYPE`.
fn wrong_type(key: &dyn ToKeys, kind: &str, backend: &'static str) -> Error {
    Error::Refused {
        backend,
        keys: key.to_keys(),
        code: "WRONGTYPE".to_owned(),
        source: format!("the key holds a Redis {kind}, not a string").into(),
    }
}
