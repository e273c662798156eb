//! Opportunistic batching of plain single-key commands (`GET`, `SET`, `UNLINK`, `EXISTS`,
//! `PTTL`), switched on by `RedisPoolBuilder::batching`: while [`MAX_IN_FLIGHT`] commands or
//! batches of the pool are in flight, the calls that arrive meanwhile queue, and go out
//! together as one pipeline when one of them completes.
//!
//! No timer and no extra hop for a lone call: with a slot free and nothing queued, a call
//! takes the slot and goes out at once on its caller's task. A queued call waits for a
//! command in flight to complete before its batch is sent, which costs latency when the
//! server has time to spare (redis-rs would have sent it at once), and pays when the cost
//! per command dominates: Redis reads and answers a whole batch at once, and the client
//! pays one channel message and one reply array per batch instead of one per command. On
//! the machine of BENCHMARKS.md it does not win everywhere, hence off by default.
//!
//! A batch is a pipeline (on a cluster, one per master: `cluster/routes.rs`), not `MGET`:
//! every command keeps its own reply and error (a `GET` of a key holding a list is
//! `WRONGTYPE`, where `MGET` would say nil), and `SET`s keep their own conditions and TTLs.
//! Each caller decodes its own reply on its own task.
//!
//! Batches are sent by a spawned task, not by a caller, so a caller whose future is dropped
//! never strands the others. A queued call that is dropped or times out before its batch
//! goes out is left out of the batch. Memory is bounded: at most [`MAX_BATCH`] commands
//! queue; beyond that, calls go out on their own as they do with batching off.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use ::redis::{Cmd, FromRedisValue, RedisError, Value};
use deadpool::managed::{Manager, Object};
use tokio::sync::oneshot;

use super::errors::{from_redis_error, unexpected};
use super::keys::{NoKey, ToKeys};
use super::lanes::Pooled;
use super::shared::{Resend, Shared};
use crate::error::{Error, Result, Waited};

/// Batches (or lone calls) in flight at once per pool. Two keep the connection busy while the
/// client hands out one batch's replies; more only make the batches smaller (measured at
/// 1, 2, 4, 8, 16 and 32: see BENCHMARKS.md).
const MAX_IN_FLIGHT: usize = 2;

/// Most commands queued for (and so in) one batch.
const MAX_BATCH: usize = 512;

/// The queue of one pool, how many of its batches (or lone calls) are in flight, and what
/// its connection keeps to route batches (`R`: see [`BatchConnection::Routes`]).
#[derive(Default)]
pub(crate) struct Batcher<R> {
    state: Mutex<State>,
    routes: R,
}

/// The batcher of a pool whose connections are `W`.
pub(crate) type BatcherOf<W> = Batcher<<<W as Pooled>::Conn as BatchConnection>::Routes>;

#[derive(Default)]
struct State {
    in_flight: usize,
    queue: Vec<Queued>,
}

/// A command waiting for the next batch, and where its caller waits for what became of it.
struct Queued {
    cmd: Cmd,
    reply: oneshot::Sender<Sent>,
}

/// How a call goes out.
enum Entry {
    /// At once, holding a slot: release it with [`Batcher::take_or_release`] when done.
    Direct(Cmd),
    /// Queued: what became of it arrives here.
    Queued(oneshot::Receiver<Sent>),
    /// At once without a slot: the queue is full.
    Overflow(Cmd),
}

impl<R> Batcher<R> {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides how `cmd` goes out: at once if a slot is free and nobody is queued, else in
    /// the next batch.
    fn enter(&self, cmd: Cmd) -> Entry {
        let mut state = self.lock();
        if state.in_flight < MAX_IN_FLIGHT && state.queue.is_empty() {
            state.in_flight += 1;
            return Entry::Direct(cmd);
        }
        if state.queue.len() >= MAX_BATCH {
            return Entry::Overflow(cmd);
        }
        let (reply, outcome) = oneshot::channel();
        state.queue.push(Queued { cmd, reply });
        Entry::Queued(outcome)
    }

    /// Called by the holder of a slot whose command completed: the queued commands, to be
    /// sent as the next batch by the same slot, or `None` (and the slot is free again).
    fn take_or_release(&self) -> Option<Vec<Queued>> {
        let mut state = self.lock();
        if state.queue.is_empty() {
            state.in_flight = state.in_flight.saturating_sub(1);
            None
        } else {
            Some(std::mem::take(&mut state.queue))
        }
    }

    /// Frees a slot whose batches cannot be sent (no runtime to send them on, or their task
    /// ended early): the commands queued are dropped, and their callers learn it.
    fn abandon(&self) {
        let mut state = self.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        state.queue.clear();
    }
}

/// A slot held by a lone call: when the call completes, or its future is dropped, the
/// commands queued meanwhile go out as a batch on a task of their own.
struct Slot<'a, M: Manager<Error = RedisError> + 'static, W: Pooled + From<Object<M>>> {
    shared: &'a Arc<Shared<M, W>>,
    batcher: &'a BatcherOf<W>,
}

impl<M: Manager<Error = RedisError> + 'static, W: Pooled + From<Object<M>>> Drop
    for Slot<'_, M, W>
{
    fn drop(&mut self) {
        if let Some(batch) = self.batcher.take_or_release() {
            spawn_batches(Arc::clone(self.shared), batch);
        }
    }
}

/// The slot of a batch task: if the task ends before releasing it normally, the slot is
/// freed on drop.
struct Held<'a, R> {
    batcher: &'a Batcher<R>,
    released: bool,
}

impl<R> Drop for Held<'_, R> {
    fn drop(&mut self) {
        if !self.released {
            self.batcher.abandon();
        }
    }
}

/// Sends `batch`, then every batch queued meanwhile, on a task of its own, holding the slot
/// of the call that handed it over.
fn spawn_batches<M, W>(shared: Arc<Shared<M, W>>, batch: Vec<Queued>)
where
    M: Manager<Error = RedisError> + 'static,
    W: Pooled + From<Object<M>>,
{
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // Dropped outside a runtime (e.g. while one shuts down): nothing can send it.
        drop(batch);
        if let Some(batcher) = shared.batcher() {
            batcher.abandon();
        }
        return;
    };
    runtime.spawn(async move {
        let Some(batcher) = shared.batcher() else {
            return;
        };
        // If this task ends any other way (a panic, the runtime shutting down), the slot
        // is freed and the callers queued learn that their batch is gone.
        let mut held = Held {
            batcher,
            released: false,
        };
        let mut batch = batch;
        loop {
            shared.send_batch(batch, &batcher.routes).await;
            // The callers just answered were woken; let them run and queue their next
            // commands before taking the next batch, which is then larger. (Measured: without
            // this, batches alternated between large and tiny.)
            tokio::task::yield_now().await;
            match batcher.take_or_release() {
                Some(next) => batch = next,
                None => {
                    held.released = true; // by take_or_release
                    return;
                }
            }
        }
    });
}

impl<M, W> Shared<M, W>
where
    M: Manager<Error = RedisError> + 'static,
    W: Pooled + From<Object<M>>,
{
    /// Sends a plain single-key command about `key`, in a batch with others if commands are
    /// in flight and this pool batches; the reply, or the error, is this command's own.
    pub(crate) async fn single<R: FromRedisValue>(
        self: &Arc<Self>,
        key: &str,
        cmd: Cmd,
        resend: Resend,
    ) -> Result<R> {
        let Some(batcher) = self.batcher() else {
            return self.query(&key, &cmd, resend).await;
        };
        match batcher.enter(cmd) {
            Entry::Direct(cmd) => {
                let _slot = Slot {
                    shared: self,
                    batcher,
                };
                self.query(&key, &cmd, resend).await
            }
            Entry::Overflow(cmd) => self.query(&key, &cmd, resend).await,
            // Boxed: the wait is large and most calls at low concurrency never queue.
            Entry::Queued(outcome) => Box::pin(self.await_batched(key, outcome, resend)).await,
        }
    }

    /// What became of a queued command, within the response timeout counted from now: its
    /// reply, or its error; sent alone if the batch did not carry it out, or if it failed
    /// with its connection and may be sent again.
    async fn await_batched<R: FromRedisValue>(
        &self,
        key: &str,
        outcome: oneshot::Receiver<Sent>,
        resend: Resend,
    ) -> Result<R> {
        let limits = self.limits();
        let outcome = match limits.response {
            Some(limit) => tokio::time::timeout(limit, outcome)
                .await
                .map_err(|_elapsed| Error::Timeout {
                    backend: limits.backend,
                    keys: key.to_keys(),
                    timeout: limit,
                    waited: Waited::Reply,
                })?,
            None => outcome.await,
        };
        let failed = |error: RedisError| from_redis_error(&key, error, Waited::Reply, limits);
        match outcome {
            Ok(Sent::Reply(Value::ServerError(error))) => Err(failed(error.into())),
            Ok(Sent::Reply(value)) => {
                R::from_redis_value(value).map_err(|e| failed(RedisError::from(e)))
            }
            Ok(Sent::Alone(cmd)) => self.query(&key, &cmd, resend).await,
            // As `query` does for a command of its own (the batch marked the connection dead).
            Ok(Sent::Failed(error, cmd)) if resend == Resend::Safe && self.replaces(&error) => {
                self.query(&key, &cmd, resend).await
            }
            Ok(Sent::Failed(error, _)) => Err(failed(error)),
            Ok(Sent::Garbled(reason)) => Err(unexpected(&key, limits, reason)),
            Err(_dropped) => Err(unexpected(
                &key,
                limits,
                "the batch carrying this command was dropped: the runtime is shutting down"
                    .to_owned(),
            )),
        }
    }

    /// Sends the commands of `batch` whose callers still wait, and hands each caller what
    /// became of its own.
    async fn send_batch(&self, batch: Vec<Queued>, routes: &<W::Conn as BatchConnection>::Routes) {
        let mut cmds = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for queued in batch {
            if queued.reply.is_closed() {
                continue; // its caller gave up (timeout or dropped): do not send it
            }
            cmds.push(queued.cmd);
            waiting.push(queued.reply);
        }
        if waiting.is_empty() {
            return;
        }
        let sent = match self.lend(&NoKey).await {
            Ok(mut lent) => {
                let sent = lent.conn.send_batch(cmds, routes).await;
                if let Some(error) = sent.iter().find_map(Sent::failure) {
                    self.mark_if_broken(&lent, error);
                }
                sent
            }
            // Each caller sends its own command, and gets its own error naming its key.
            Err(_) => cmds.into_iter().map(Sent::Alone).collect(),
        };
        for (reply, sent) in waiting.into_iter().zip(sent) {
            let _ = reply.send(sent);
        }
    }
}

/// What became of one command of a batch.
pub(crate) enum Sent {
    /// The server's reply to this command alone (a [`Value::ServerError`] if it failed).
    Reply(Value),
    /// Its part of the batch failed as a whole (connection lost, timeout); the command, in
    /// case it may be sent again.
    Failed(RedisError, Cmd),
    /// Not carried out by the batch (no connection could be had, or a cluster's slot moved):
    /// its caller sends it alone, which follows a redirect and names its own key in an error.
    Alone(Cmd),
    /// The server answered with the wrong number of replies.
    Garbled(String),
}

impl Sent {
    fn failure(&self) -> Option<&RedisError> {
        match self {
            Sent::Failed(error, _) => Some(error),
            _ => None,
        }
    }
}

/// How a shared connection sends a batch: one [`Sent`] per command, in order.
pub(crate) trait BatchConnection {
    /// What the pool keeps between batches to route them (a cluster's slot owners).
    type Routes: Default + Send + Sync + 'static;

    fn send_batch(
        &mut self,
        cmds: Vec<Cmd>,
        routes: &Self::Routes,
    ) -> impl Future<Output = Vec<Sent>> + Send;
}

/// One server: the batch is one pipeline.
impl BatchConnection for ::redis::aio::MultiplexedConnection {
    type Routes = ();

    async fn send_batch(&mut self, cmds: Vec<Cmd>, (): &()) -> Vec<Sent> {
        let count = cmds.len();
        let mut pipe = ::redis::pipe();
        for cmd in cmds {
            pipe.add_command(cmd);
        }
        match self.send_packed_commands(&pipe, 0, count).await {
            Ok(replies) if replies.len() == count => replies.into_iter().map(Sent::Reply).collect(),
            Ok(replies) => {
                let reason = format!("a batch of {count} commands got {} replies", replies.len());
                (0..count).map(|_| Sent::Garbled(reason.clone())).collect()
            }
            Err(error) => pipe
                .cmd_iter()
                .map(|cmd| Sent::Failed(error.clone(), cmd.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get() -> Cmd {
        let mut cmd = ::redis::cmd("GET");
        cmd.arg("k");
        cmd
    }

    #[test]
    fn lone_calls_go_direct_and_the_rest_queue_until_a_slot_frees() {
        let batcher = Batcher::<()>::default();
        for _ in 0..MAX_IN_FLIGHT {
            assert!(matches!(batcher.enter(get()), Entry::Direct(_)));
        }
        let queued: Vec<_> = (0..3).map(|_| batcher.enter(get())).collect();
        assert!(queued.iter().all(|e| matches!(e, Entry::Queued(_))));
        // The first slot to finish takes all three as its next batch, and keeps its slot.
        assert_eq!(batcher.take_or_release().map(|b| b.len()), Some(3));
        // Nothing queued: both slots free up, and the next call goes direct again.
        assert!(batcher.take_or_release().is_none());
        assert!(batcher.take_or_release().is_none());
        assert!(matches!(batcher.enter(get()), Entry::Direct(_)));
    }

    #[test]
    fn a_full_queue_sends_further_calls_on_their_own() {
        let batcher = Batcher::<()>::default();
        for _ in 0..MAX_IN_FLIGHT {
            batcher.enter(get());
        }
        let _queued: Vec<_> = (0..MAX_BATCH).map(|_| batcher.enter(get())).collect();
        assert!(matches!(batcher.enter(get()), Entry::Overflow(_)));
    }
}
