//! [`Shared`]: a deadpool pool plus the [lanes](super::lanes) its plain commands share, and
//! how commands are sent on them: a command, pipeline or script on a lent connection, and a
//! plain single-key command alone or in a batch (the batcher and its dispatcher are in
//! `batching/`, which sends its batches back through [`Dispatch`]). What is sent for each
//! [`Backend`](crate::Backend) method is in `commands.rs`. Standalone, Sentinel and cluster
//! pools are each a `Shared` over their own deadpool manager.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use ::redis::{Cmd, FromRedisValue, Pipeline, RedisError, ScriptInvocation, Value};
use deadpool::managed::{Manager, Object, Pool, PoolError};
use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::batching::{
    BatchConnection, Batcher, Call, Dispatch, Plain, Queued, Sent, Slot, expire, sleep_until,
};
use super::config::Settings;
use super::errors::{Limits, from_pool_error, from_redis_error, unexpected};
use super::keys::{NoKey, ToKeys};
use super::lanes::{Borrowed, Exclusive, Generations, Lane, Lent, Pooled};
use crate::error::{Error, Result, Waited};

/// Whether a command may be sent again after its connection broke.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resend {
    /// Reads: sending twice cannot change anything, so one retry on a fresh connection hides
    /// a connection that died since its last use (e.g. a server restart).
    Safe,
    /// Writes: the first attempt may have been applied, and a retry could misreport (a
    /// conditional SET would say "not written"), so the error goes to the caller.
    Never,
}

/// What to do with a lane whose command failed with an error that means "connection
/// unusable".
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnBrokenConnection {
    /// Standalone: the connection is dead for good, replace it (and its older siblings).
    Replace,
    /// Cluster: the error came from one node, and the cluster connection reconnects to
    /// nodes and refreshes its slot map by itself; replacing it would only pay for a full
    /// topology discovery. Unless it stopped answering altogether: a command that timed out
    /// has the connection probed ([`Pooled::answers`]), and one that answers nothing is
    /// replaced.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    Keep,
    /// Sentinel: as `Replace`, and also when the server answers `READONLY`: it was demoted
    /// to a replica by a failover, and a fresh connection asks the sentinels for the new
    /// master.
    #[cfg_attr(not(feature = "sentinel"), allow(dead_code))]
    ReplaceOnDemotion,
}

/// The batcher of a pool whose connections are `W`.
pub(crate) type BatcherOf<W> = Batcher<<<W as Pooled>::Conn as BatchConnection>::Routes>;

/// A pool, its shared lanes, and the timeouts its errors report.
pub(crate) struct Shared<M: Manager, W: Pooled + From<Object<M>>> {
    pool: Pool<M, W>,
    lanes: Box<[Lane<W>]>,
    next_lane: AtomicUsize,
    generations: Arc<Generations>,
    on_broken: OnBrokenConnection,
    limits: Limits,
    /// `None`: every command goes out on its own (batching switched off).
    batcher: Option<BatcherOf<W>>,
    /// A connection is being probed after a timeout (one probe at a time per pool).
    probing: Arc<AtomicBool>,
    /// The server was found to have `WAITAOF` (see `concern.rs`); asked until it has.
    pub(crate) has_waitaof: AtomicBool,
    /// Connections for commands that block theirs (see `concern.rs`).
    exclusive: Exclusive<W>,
}

impl<M, W> Shared<M, W>
where
    M: Manager<Error = RedisError> + 'static,
    W: Pooled + From<Object<M>>,
{
    /// A pool of `manager`'s connections sized and timed by `settings`, with its lanes.
    pub(crate) fn new(
        manager: M,
        settings: &Settings,
        backend: &'static str,
        generations: Arc<Generations>,
        on_broken: OnBrokenConnection,
    ) -> Result<Self> {
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .wait_timeout(Some(settings.wait_timeout))
            .create_timeout(Some(settings.create_timeout))
            .recycle_timeout(Some(settings.recycle_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::InvalidConfig {
                reason: format!("cannot build the pool for {}", settings.redacted_urls()),
                source: Some(e.into()),
            })?;
        Ok(Shared {
            pool,
            lanes: (0..settings.shared_connections)
                .map(|_| Lane::default())
                .collect(),
            next_lane: AtomicUsize::new(0),
            generations,
            on_broken,
            limits: settings.limits(backend),
            batcher: settings.batching.then(Default::default),
            probing: Arc::default(),
            has_waitaof: AtomicBool::new(false),
            // Every connection of the pool but one for the lanes and one for a checkout.
            exclusive: Exclusive::new(
                settings
                    .pool_size
                    .saturating_sub(settings.shared_connections + 1),
            ),
        })
    }

    /// The backend's name and the timeouts that apply, as this pool's errors report them.
    pub(crate) fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The queue of batched commands, if this pool batches.
    pub(crate) fn batcher(&self) -> Option<&BatcherOf<W>> {
        self.batcher.as_ref()
    }

    pub(crate) fn pool(&self) -> &Pool<M, W> {
        &self.pool
    }

    /// Publishes the pool's occupancy as `metrics` gauges labelled `pool` (see
    /// `RedisPool::record_metrics`).
    pub(crate) fn record_metrics(&self, pool: String) {
        let status = self.pool.status();
        let states = [
            ("max", status.max_size),
            ("open", status.size),
            ("idle", status.available),
        ];
        for (state, connections) in states {
            metrics::gauge!("typedkv_pool_connections", "pool" => pool.clone(), "state" => state)
                .set(connections as f64);
        }
        metrics::gauge!("typedkv_pool_waiting", "pool" => pool).set(status.waiting as f64);
    }

    /// A connection of the pool for the caller alone.
    pub(crate) async fn checkout(&self) -> Result<W> {
        self.pool
            .get()
            .await
            .map_err(|e| self.pool_failed(&NoKey, e))
    }

    /// A connection for the caller alone, for commands on `keys` that block it: one kept
    /// from an earlier such command, or a fresh checkout. Give it back with
    /// [`Shared::give_back`] if its commands left it usable.
    pub(crate) async fn borrow(&self, keys: &dyn ToKeys) -> Result<Borrowed<W>> {
        if let Some(borrowed) = self.exclusive.take(&self.generations) {
            return Ok(borrowed);
        }
        let object = self
            .pool
            .get()
            .await
            .map_err(|e| self.pool_failed(keys, e))?;
        Ok(self.exclusive.lend_fresh(object, &self.generations))
    }

    /// Takes back a connection of [`Shared::borrow`] after a command; `error`: the
    /// command's, if it failed. One broken is let go, and the connections that existed
    /// with it are suspect, as on a lane; one whose reply timed out is let go alone (the
    /// server may still be blocked on its command, and the next would wait behind it).
    pub(crate) fn give_back(&self, borrowed: Borrowed<W>, error: Option<&RedisError>) {
        match error {
            Some(error) if self.replaces(error) => {
                self.generations.all_dead();
                borrowed.object.detach();
            }
            Some(error) if error.is_timeout() => borrowed.object.detach(),
            _ => self.exclusive.give_back(borrowed, &self.generations),
        }
    }

    /// Opens every lane that is not open yet and `PING`s on each.
    pub(crate) async fn ping(&self) -> Result<()> {
        for index in 0..self.lanes.len() {
            let mut lent = self.lend_lane(index, &NoKey).await?;
            let reply: std::result::Result<String, RedisError> =
                ::redis::cmd("PING").query_async(&mut lent.conn).await;
            reply.map_err(|e| self.failed(&NoKey, &lent, e))?;
        }
        Ok(())
    }

    /// A shared connection for one command on `key`, round-robin over the lanes.
    pub(crate) async fn lend(&self, key: &dyn ToKeys) -> Result<Lent<W::Conn>> {
        let lanes = self.lanes.len();
        // One lane (the default) needs no shared round-robin counter.
        let index = match lanes {
            1 => 0,
            _ => self.next_lane.fetch_add(1, Ordering::Relaxed) % lanes,
        };
        self.lend_lane(index, key).await
    }

    /// The connection of lane `index`, taking a new one from the pool if the lane is empty
    /// or its connection dead.
    ///
    /// A call that needs a new connection waits for it at most the create timeout in all,
    /// counted from its own start: whether it makes the attempt itself or waits behind
    /// another call's. (Without this bound, calls on a hung server queued behind one
    /// connection attempt after another: the eighth gave up after eight connect timeouts.)
    async fn lend_lane(&self, index: usize, key: &dyn ToKeys) -> Result<Lent<W::Conn>> {
        match self.lanes[index].lend(index, &self.generations) {
            Some(lent) => Ok(lent),
            // Boxed: the pool's checkout future is several KiB, and inlined it would make the
            // future of every command that large (measured: 7.3 KiB per GET, a big allocation
            // and copies on each call) although commands almost never refill.
            None => {
                Box::pin(async {
                    let limit = self.limits.create;
                    tokio::time::timeout(limit, self.refill(index, key))
                        .await
                        .unwrap_or_else(|_elapsed| {
                            Err(Error::Timeout {
                                backend: self.limits.backend,
                                keys: key.to_keys(),
                                timeout: limit,
                                waited: Waited::Connection,
                            })
                        })
                })
                .await
            }
        }
    }

    /// Fills lane `index` with a connection from the pool (once, however many commands
    /// found it empty) and lends it.
    async fn refill(&self, index: usize, key: &dyn ToKeys) -> Result<Lent<W::Conn>> {
        let lane = &self.lanes[index];
        let _refilling = lane.refilling().await;
        if let Some(lent) = lane.lend(index, &self.generations) {
            return Ok(lent); // another command refilled it while we waited
        }
        let object = self
            .pool
            .get()
            .await
            .map_err(|e| self.pool_failed(key, e))?;
        Ok(lane.fill(index, object, &self.generations))
    }

    fn pool_failed(&self, key: &dyn ToKeys, error: PoolError<RedisError>) -> Error {
        from_pool_error(key, error, &self.limits)
    }

    /// Turns a redis-rs error of a lent connection into [`Error`], first marking the
    /// connection dead if the error means it is unusable and such connections are replaced.
    pub(crate) fn failed(
        &self,
        key: &dyn ToKeys,
        lent: &Lent<W::Conn>,
        error: RedisError,
    ) -> Error {
        self.mark_if_broken(lent, &error);
        self.error(key, error, Waited::Reply)
    }

    /// A redis-rs error about `key`, met while waiting for `waited`, as this pool reports
    /// it; for connections outside the lanes too (the cache's tracking connections).
    pub(crate) fn error(&self, key: &dyn ToKeys, error: RedisError, waited: Waited) -> Error {
        from_redis_error(key, error, waited, &self.limits)
    }

    /// Marks `lent`'s connection (and its older siblings) dead if `error` of its command
    /// means it is unusable and such connections are replaced.
    pub(crate) fn mark_if_broken(&self, lent: &Lent<W::Conn>, error: &RedisError) {
        if self.replaces(error) {
            lent.mark_dead(&self.generations);
        } else if self.on_broken == OnBrokenConnection::Keep && error.is_timeout() {
            self.probe(lent);
        }
    }

    /// A command on `lent` timed out on a connection kept on errors: unless a probe is
    /// already running, probe the connection in the background, bounded by the response
    /// timeout, and mark it dead if it answers nothing. No cost on the path of commands that
    /// succeed.
    fn probe(&self, lent: &Lent<W::Conn>) {
        let Some(limit) = self.limits.response else {
            return; // Without a response timeout, nothing times out.
        };
        // A timeout was timed by a runtime, so one is here; without one, nothing to do.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (lent, generations, probing) = (
            lent.clone(),
            Arc::clone(&self.generations),
            Arc::clone(&self.probing),
        );
        runtime.spawn(async move {
            let answered = tokio::time::timeout(limit, W::answers(lent.conn.clone(), limit)).await;
            if !answered.unwrap_or(false) {
                tracing::warn!("a shared connection timed out and is of no use now: replacing it");
                lent.mark_dead(&generations);
            }
            probing.store(false, Ordering::Release);
        });
    }

    /// Whether `error` means the connection is unusable and is replaced: then reads may be
    /// sent again on a fresh one.
    pub(crate) fn replaces(&self, error: &RedisError) -> bool {
        match self.on_broken {
            OnBrokenConnection::Replace => error.is_unrecoverable_error(),
            OnBrokenConnection::ReplaceOnDemotion => {
                error.is_unrecoverable_error() || error.code() == Some("READONLY")
            }
            OnBrokenConnection::Keep => false,
        }
    }

    /// Sends `cmd` about `key` on a shared connection.
    pub(crate) async fn query<R: FromRedisValue>(
        &self,
        key: &dyn ToKeys,
        cmd: &Cmd,
        resend: Resend,
    ) -> Result<R> {
        let mut lent = self.lend(key).await?;
        match cmd.query_async(&mut lent.conn).await {
            Ok(reply) => Ok(reply),
            Err(e) if resend == Resend::Safe && self.replaces(&e) => {
                lent.mark_dead(&self.generations);
                // Boxed: rare, and inlined it would enlarge every command's future.
                Box::pin(async {
                    let mut fresh = self.lend_lane(lent.lane, key).await?;
                    cmd.query_async(&mut fresh.conn)
                        .await
                        .map_err(|e| self.failed(key, &fresh, e))
                })
                .await
            }
            Err(e) => Err(self.failed(key, &lent, e)),
        }
    }

    /// Sends `pipe` about `key` on a shared connection; never resent.
    pub(crate) async fn query_pipeline<R: FromRedisValue>(
        &self,
        key: &dyn ToKeys,
        pipe: &Pipeline,
    ) -> Result<R> {
        let mut lent = self.lend(key).await?;
        pipe.query_async(&mut lent.conn)
            .await
            .map_err(|e| self.failed(key, &lent, e))
    }

    /// Runs a script about `key` on a shared connection; never resent.
    pub(crate) async fn invoke<R: FromRedisValue>(
        &self,
        key: &dyn ToKeys,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<R> {
        let mut lent = self.lend(key).await?;
        invocation
            .invoke_async(&mut lent.conn)
            .await
            .map_err(|e| self.failed(key, &lent, e))
    }

    // Plain single-key commands: alone, or in a batch (`batching/`).

    /// Sends a plain single-key call about `key`, in a batch with others if commands are in
    /// flight and this pool batches; the reply, or the error, is this call's own.
    ///
    /// The route is chosen when the future is made, not in it, and everything but a queued
    /// call's reply is boxed: the future of the common case (a queued call answered) then
    /// holds a one-shot receiver and little else. Unboxed, a lone command's state (a lent
    /// connection, redis-rs' request) made every call's future 544 bytes, moved at that size
    /// into its caller's.
    pub(crate) fn single<R: FromRedisValue + Send>(
        self: &Arc<Self>,
        key: &str,
        plain: Plain<'_>,
        resend: Resend,
    ) -> impl Future<Output = Result<R>> + Send {
        let pending = match self.queue_or_claim(plain) {
            Ok(outcome) => Pending::Queued(outcome),
            Err((slot, cmd)) => Pending::Alone(Box::pin(self.alone(key, slot, cmd, resend))),
        };
        async move {
            match pending {
                Pending::Queued(outcome) => {
                    // Made before it is awaited: the outcome it takes is not kept across that
                    // await in this future.
                    let settling = match outcome.await {
                        Ok(Sent::Reply(value)) if !matches!(value, Value::ServerError(_)) => {
                            return R::from_redis_value(value).map_err(|e| {
                                from_redis_error(&key, e.into(), Waited::Reply, self.limits())
                            });
                        }
                        other => Box::pin(self.settle(key, other, resend)),
                    };
                    settling.await
                }
                Pending::Alone(sent) => sent.await,
            }
        }
    }

    /// Queues `plain` for a batch if this pool batches and calls are in flight: where its
    /// outcome arrives; otherwise the command to send alone, with the lone call's slot it
    /// claimed, if any.
    fn queue_or_claim(
        self: &Arc<Self>,
        plain: Plain<'_>,
    ) -> std::result::Result<oneshot::Receiver<Sent>, (Option<Slot<'_>>, Cmd)> {
        let Some(batcher) = self.batcher() else {
            return Err((None, plain.cmd()));
        };
        if let Some(slot) = batcher.try_direct() {
            return Err((Some(slot), plain.cmd()));
        }
        let deadline = self
            .limits()
            .response
            .map(|limit| tokio::time::Instant::now() + limit);
        batcher
            .enqueue(self, plain.call(&batcher.spaces), deadline)
            .map_err(|call| (None, call.into_cmd()))
    }

    /// A call that goes out alone, holding `slot` (a lone call's) until it is answered.
    async fn alone<R: FromRedisValue>(
        &self,
        key: &str,
        slot: Option<Slot<'_>>,
        cmd: Cmd,
        resend: Resend,
    ) -> Result<R> {
        let _slot = slot;
        self.query(&key, &cmd, resend).await
    }

    /// What became of a queued call that did not simply get its reply: its error, or its
    /// reply to a command sent alone, if the batch did not carry it out or failed with its
    /// connection and the command may be sent again.
    async fn settle<R: FromRedisValue>(
        &self,
        key: &str,
        outcome: std::result::Result<Sent, oneshot::error::RecvError>,
        resend: Resend,
    ) -> Result<R> {
        let limits = self.limits();
        let failed = |error: RedisError| from_redis_error(&key, error, Waited::Reply, limits);
        match outcome {
            Ok(Sent::Reply(Value::ServerError(error))) => Err(failed(error.into())),
            Ok(Sent::Reply(value)) => {
                R::from_redis_value(value).map_err(|e| failed(RedisError::from(e)))
            }
            Ok(Sent::Alone(cmd)) => self.query(&key, &cmd, resend).await,
            Ok(Sent::Failed(failure)) => {
                let (error, cmd) = *failure;
                // As `query` does for a command of its own (the batch marked the connection
                // dead).
                if resend == Resend::Safe && self.replaces(&error) {
                    self.query(&key, &cmd, resend).await
                } else {
                    Err(failed(error))
                }
            }
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
                    .map(|call| Sent::Alone(Box::new(call.into_cmd())))
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

/// A plain call on its way: queued for a batch (where its outcome arrives), or sent alone
/// (`F`: [`Shared::alone`]'s future, boxed).
enum Pending<F> {
    Queued(oneshot::Receiver<Sent>),
    Alone(std::pin::Pin<Box<F>>),
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
