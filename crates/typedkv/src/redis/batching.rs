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

/// The queue of one pool, and how many of its batches (or lone calls) are in flight.
#[derive(Default)]
pub(crate) struct Batcher {
    state: Mutex<State>,
    routes: Routes,
}

#[derive(Default)]
struct State {
    in_flight: usize,
    queue: Vec<Queued>,
}

/// A command waiting for the next batch.
struct Queued {
    cmd: Cmd,
    resend: Resend,
    reply: oneshot::Sender<Outcome>,
}

/// What became of a queued command.
enum Outcome {
    /// The server's reply to this command alone (a [`Value::ServerError`] if it failed).
    Reply(Value),
    /// The batch failed as a whole (connection lost, timeout). `retry`: the command, if it
    /// is safe to send again on a fresh connection.
    Failed {
        error: RedisError,
        retry: Option<Cmd>,
    },
    /// The batch did not carry it out (no connection could be had, or a cluster redirected
    /// it): the caller sends its command itself, and gets its own error if that fails too.
    NotSent(Cmd),
    /// The server answered the batch with the wrong number of replies.
    Garbled(String),
}

/// How a call goes out.
enum Entry {
    /// At once, holding a slot: release it with [`Batcher::take_or_release`] when done.
    Direct(Cmd),
    /// Queued: its outcome arrives here.
    Queued(oneshot::Receiver<Outcome>),
    /// At once without a slot: the queue is full.
    Overflow(Cmd),
}

impl Batcher {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; a poisoned state is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides how `cmd` goes out: at once if a slot is free and nobody is queued, else in
    /// the next batch.
    fn enter(&self, cmd: Cmd, resend: Resend) -> Entry {
        let mut state = self.lock();
        if state.in_flight < MAX_IN_FLIGHT && state.queue.is_empty() {
            state.in_flight += 1;
            return Entry::Direct(cmd);
        }
        if state.queue.len() >= MAX_BATCH {
            return Entry::Overflow(cmd);
        }
        let (reply, outcome) = oneshot::channel();
        state.queue.push(Queued { cmd, resend, reply });
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
    batcher: &'a Batcher,
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
struct Held<'a> {
    batcher: &'a Batcher,
    released: bool,
}

impl Drop for Held<'_> {
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
        match batcher.enter(cmd, resend) {
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

    /// The outcome of a queued command, within the response timeout counted from now.
    async fn await_batched<R: FromRedisValue>(
        &self,
        key: &str,
        outcome: oneshot::Receiver<Outcome>,
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
            Ok(Outcome::Reply(Value::ServerError(error))) => Err(failed(error.into())),
            Ok(Outcome::Reply(value)) => {
                R::from_redis_value(value).map_err(|e| failed(RedisError::from(e)))
            }
            Ok(
                Outcome::NotSent(cmd)
                | Outcome::Failed {
                    retry: Some(cmd), ..
                },
            ) => self.query(&key, &cmd, resend).await,
            Ok(Outcome::Failed { error, retry: None }) => Err(failed(error)),
            Ok(Outcome::Garbled(reason)) => Err(unexpected(&key, limits, reason)),
            Err(_dropped) => Err(unexpected(
                &key,
                limits,
                "the batch carrying this command was dropped: the runtime is shutting down"
                    .to_owned(),
            )),
        }
    }

    /// Sends the commands of `batch` whose callers still wait as one pipeline, and hands
    /// each caller its own reply.
    async fn send_batch(&self, batch: Vec<Queued>, routes: &Routes) {
        let mut cmds = Vec::with_capacity(batch.len());
        let mut waiting = Vec::with_capacity(batch.len());
        for queued in batch {
            if queued.reply.is_closed() {
                continue; // its caller gave up (timeout or dropped): do not send it
            }
            cmds.push(queued.cmd);
            waiting.push((queued.resend, queued.reply));
        }
        if waiting.is_empty() {
            return;
        }
        let mut lent = match self.lend(&NoKey).await {
            Ok(lent) => lent,
            Err(_) => {
                // Each caller sends its own command, and gets its own error naming its key.
                for ((_, reply), cmd) in waiting.into_iter().zip(cmds) {
                    let _ = reply.send(Outcome::NotSent(cmd));
                }
                return;
            }
        };
        let sent = lent.conn.send_batch(cmds, routes).await;
        for ((resend, reply), sent) in waiting.into_iter().zip(sent) {
            let outcome = match sent {
                Sent::Reply(value) => Outcome::Reply(value),
                Sent::Redirected(cmd) => Outcome::NotSent(cmd),
                Sent::Failed(error, cmd) => {
                    let resendable = self.broken(&lent, &error) && resend == Resend::Safe;
                    Outcome::Failed {
                        error,
                        retry: resendable.then_some(cmd),
                    }
                }
                Sent::Garbled(reason) => Outcome::Garbled(reason),
            };
            let _ = reply.send(outcome);
        }
    }
}

/// What became of one command of a batch, as its connection saw it.
pub(crate) enum Sent {
    /// The server's reply to this command alone (a [`Value::ServerError`] if it failed).
    Reply(Value),
    /// Its part of the batch failed as a whole (connection lost, timeout); the command, in
    /// case it may be sent again.
    Failed(RedisError, Cmd),
    /// Not carried out where it went (a cluster's slots moved, or are moving): its caller
    /// sends it alone, which follows the redirect.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    Redirected(Cmd),
    /// The server answered with the wrong number of replies.
    Garbled(String),
}

/// How a shared connection sends a batch: one reply (or failure) per command, in order.
pub(crate) trait BatchConnection {
    fn send_batch(
        &mut self,
        cmds: Vec<Cmd>,
        routes: &Routes,
    ) -> impl Future<Output = Vec<Sent>> + Send;
}

/// One server: the batch is one pipeline.
impl BatchConnection for ::redis::aio::MultiplexedConnection {
    async fn send_batch(&mut self, cmds: Vec<Cmd>, _: &Routes) -> Vec<Sent> {
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

/// Which cluster node owns each slot, as the batches last learned it (`CLUSTER SLOTS`), to
/// send the commands of one node together. Unused on one server.
#[derive(Default)]
#[cfg_attr(not(feature = "cluster"), allow(dead_code))]
pub(crate) struct Routes {
    /// The owner (a node number) of each of the 16,384 slots, and when they were learned.
    pub(crate) owners: Mutex<Option<(Arc<Vec<u16>>, std::time::Instant)>>,
    /// A command was redirected: learn the owners again before the next batch.
    pub(crate) stale: std::sync::atomic::AtomicBool,
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
        let batcher = Batcher::default();
        for _ in 0..MAX_IN_FLIGHT {
            assert!(matches!(
                batcher.enter(get(), Resend::Safe),
                Entry::Direct(_)
            ));
        }
        let queued: Vec<_> = (0..3).map(|_| batcher.enter(get(), Resend::Safe)).collect();
        assert!(queued.iter().all(|e| matches!(e, Entry::Queued(_))));
        // The first slot to finish takes all three as its next batch, and keeps its slot.
        assert_eq!(batcher.take_or_release().map(|b| b.len()), Some(3));
        // Nothing queued: both slots free up, and the next call goes direct again.
        assert!(batcher.take_or_release().is_none());
        assert!(batcher.take_or_release().is_none());
        assert!(matches!(
            batcher.enter(get(), Resend::Safe),
            Entry::Direct(_)
        ));
    }

    #[test]
    fn a_full_queue_sends_further_calls_on_their_own() {
        let batcher = Batcher::default();
        for _ in 0..MAX_IN_FLIGHT {
            batcher.enter(get(), Resend::Safe);
        }
        let _queued: Vec<_> = (0..MAX_BATCH)
            .map(|_| batcher.enter(get(), Resend::Safe))
            .collect();
        assert!(matches!(
            batcher.enter(get(), Resend::Safe),
            Entry::Overflow(_)
        ));
    }
}
