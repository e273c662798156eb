//! The batcher of one pool: how many of its batches and lone calls are in flight, the
//! channel its queued calls wait in, and the dispatcher task that drains that channel into
//! batches whenever a batch slot is free, and sends and polls those batches itself.
//!
//! The hot path takes no lock: a lone call claims a slot with one compare-and-swap of the
//! lone count; a queued call is one message on an unbounded channel, and touches no count
//! that every caller shares (a profile put one at 30-70 ns per call at 64 tasks: its cache line
//! moves between the cores with every call).
//! The dispatcher holds the only timer of the queue (the earliest deadline of the calls it
//! holds), and each batch one more (the earliest deadline of its calls): no call has a
//! timer of its own, yet each ends by its own deadline.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use arc_swap::ArcSwapOption;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::calls::{Call, Sent, Spaces};

/// Batches in flight at once per pool. Two keep the connection busy while the client hands
/// out one batch's replies; more only make the batches smaller (measured at 1, 2, 4, 8, 16
/// and 32: see BENCHMARKS.md).
pub(super) const MAX_IN_FLIGHT: usize = 2;

/// Batches in flight at once when the calls waiting include indexed writes. Their script
/// calls hold the server for a hundred microseconds and more a batch; with few in flight
/// the server idles while the client turns replies into the next batch. 400k indexed
/// writes at 64 tasks, each moving its entity to another term: 48-53k/s with four in
/// flight, 71.5-72.6k/s with sixteen, and less client and server CPU per write (three
/// alternations, no steal); as fast as the same writes without batching, for 10% less
/// server CPU.
pub(super) const MAX_IN_FLIGHT_SCRIPTS: usize = 16;

/// Lone calls in flight at once per pool while no batch is. Up to this many concurrent
/// callers, calls go out alone, pipelined on the shared connection as without batching:
/// at 16 tasks, queueing them behind two slots halved throughput (0.50-0.65x redis-rs,
/// against 0.93-1.11x alone; BENCHMARKS.md). Beyond it, the next call queues and batching
/// takes over until the queue is empty and no batch is in flight.
pub(super) const MAX_DIRECT: usize = 16;

/// Most calls in one batch.
pub(super) const MAX_BATCH: usize = 512;

/// The smallest batch that keeps batching on once the batch in flight is answered: with
/// [`MAX_IN_FLIGHT`] batches this size, as many calls are in flight as [`MAX_DIRECT`]
/// lone ones, so the load is one that batching carries better. Without it, each gap between
/// one batch's replies and the next batch let the callers it woke go alone: 5% of calls at
/// 64 tasks, each costing the client about three times a queued one, and the server a
/// command of its own in the middle of the batches. A third of the batches at 64 tasks are
/// small, but most go out beside another, with the callers that came while it was sent:
/// only a small batch sent alone releases the hold (when small ones beside another did too,
/// 2.5% of calls still went alone, 1.8 commands per server read instead of 1.2).
pub(super) const HOLD_BATCH: usize = MAX_DIRECT / MAX_IN_FLIGHT;

/// A call waiting for a batch, and where its caller waits for what became of it.
pub(crate) struct Queued {
    pub(crate) call: Call,
    pub(crate) reply: oneshot::Sender<Sent>,
    /// When the caller's response timeout runs out (`None`: no timeout).
    pub(crate) deadline: Option<Instant>,
}

impl Queued {
    /// Whether nobody waits for this call any more (its caller dropped its future).
    pub(super) fn abandoned(&self) -> bool {
        self.reply.is_closed()
    }

    /// Whether its deadline has passed at `now`.
    pub(super) fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|deadline| deadline <= now)
    }
}

/// The earliest deadline of `calls`.
pub(super) fn earliest(calls: &[Queued]) -> Option<Instant> {
    calls.iter().filter_map(|queued| queued.deadline).min()
}

/// Answers, and removes, every call of `calls` whose deadline has passed or whose caller
/// left.
pub(crate) fn expire(calls: &mut Vec<Queued>) {
    let now = Instant::now();
    calls.retain_mut(|queued| {
        if queued.abandoned() {
            return false;
        }
        if queued.expired(now) {
            replace_sender(&mut queued.reply).send(Sent::TimedOut).ok();
            return false;
        }
        true
    });
}

/// Takes a one-shot sender out of a call that is about to be dropped.
fn replace_sender(reply: &mut oneshot::Sender<Sent>) -> oneshot::Sender<Sent> {
    std::mem::replace(reply, oneshot::channel().0)
}

/// The batcher of a pool (`R`: what its connection keeps to route batches, see
/// `BatchConnection::Routes`).
pub(crate) struct Batcher<R> {
    /// Batches in flight.
    in_flight: AtomicUsize,
    /// Lone calls in flight.
    direct: AtomicUsize,
    /// Whether the last batch was big enough that new calls queue even when no batch is in
    /// flight (see [`HOLD_BATCH`]); the next small batch lets them go alone again.
    held: AtomicBool,
    /// The dispatcher's channel; replaced if its dispatcher ended with its runtime.
    queue: ArcSwapOption<mpsc::UnboundedSender<Queued>>,
    /// Serializes starting a dispatcher (rare: the first queued call, or after a runtime
    /// ended), never taken on the hot path.
    starting: Mutex<()>,
    pub(crate) routes: R,
    /// The index spaces of queued indexed writes.
    pub(crate) spaces: Spaces,
}

impl<R: Default> Default for Batcher<R> {
    fn default() -> Self {
        Batcher {
            in_flight: AtomicUsize::new(0),
            direct: AtomicUsize::new(0),
            held: AtomicBool::new(false),
            queue: ArcSwapOption::empty(),
            starting: Mutex::new(()),
            routes: R::default(),
            spaces: Spaces::default(),
        }
    }
}

/// How a dispatcher gets at its pool's batcher and sends a batch: implemented by the pool's
/// `Shared`, which the dispatcher holds weakly (the pool's last handle ends it).
pub(crate) trait Dispatch: Send + Sync + 'static {
    type Routes: Send + Sync + 'static;

    fn batcher(&self) -> Option<&Batcher<Self::Routes>>;

    /// Sends `batch` and answers its callers, holding a slot, which it frees at the end;
    /// the dispatcher polls it.
    fn send(self: Arc<Self>, batch: Vec<Queued>) -> BoxFuture<'static, ()>;
}

/// A claimed slot, a lone call's or a batch's: freed when dropped, however its holder ends
/// (or is cancelled).
pub(crate) struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<R> Batcher<R> {
    /// Claims a slot for a lone call: while no batch is in flight and the last one was
    /// small (once batching has started under a high load, it carries that load), and fewer
    /// than [`MAX_DIRECT`] lone calls are.
    ///
    /// A call queued an instant ago may still wait for the dispatcher to claim its batch's
    /// slot; a lone call made meanwhile can overtake it, as concurrent calls may anyway.
    pub(crate) fn try_direct(&self) -> Option<Slot<'_>> {
        let free = !self.held.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Acquire) == 0
            && self
                .direct
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                    (taken < MAX_DIRECT).then_some(taken + 1)
                })
                .is_ok();
        // Built only when claimed: dropping an unclaimed one would free a slot it never held.
        free.then(|| Slot(&self.direct))
    }

    /// Claims a batch's slot if fewer than `limit` are taken; the batch holds it as
    /// [`batch_slot`](Self::batch_slot).
    fn claim(&self, limit: usize) -> bool {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |taken| {
                (taken < limit).then_some(taken + 1)
            })
            .is_ok()
    }

    /// Notes that a batch of `calls` calls goes out (`beside_another`: while another is in
    /// flight): from a batch of [`HOLD_BATCH`] calls on, new calls queue until a smaller
    /// batch goes out alone. A small batch beside another holds the callers that came while
    /// that one was sent, no sign that the load dropped.
    fn sending(&self, calls: usize, beside_another: bool) {
        let was = self.held.load(Ordering::Relaxed);
        let held = calls >= HOLD_BATCH || (beside_another && was);
        // Written only when it changes: every caller reads this line.
        if was != held {
            self.held.store(held, Ordering::Relaxed);
        }
    }

    /// The slot the dispatcher claimed for a batch, held by the batch until it ends (the
    /// dispatcher, which polls every batch, sees it end).
    pub(crate) fn batch_slot(&self) -> Slot<'_> {
        Slot(&self.in_flight)
    }
}

impl<R: Send + Sync + 'static> Batcher<R> {
    /// Queues `call` for the next batch of `pool`'s dispatcher: where its outcome will
    /// arrive, or the call back if it must go out alone (there is no runtime to run a
    /// dispatcher on).
    ///
    /// The queue needs no bound of its own: each queued call is held by a caller waiting for
    /// it, which leaves by its deadline (or when its future is dropped), as a call sent
    /// alone would wait in the connection's queue.
    pub(crate) fn enqueue<D: Dispatch<Routes = R>>(
        &self,
        pool: &Arc<D>,
        call: Call,
        deadline: Option<Instant>,
    ) -> Result<oneshot::Receiver<Sent>, Call> {
        let (reply, outcome) = oneshot::channel();
        let queued = Queued {
            call,
            reply,
            deadline,
        };
        // A guard, not a clone of the `Arc`: a clone would be two atomic updates of one count
        // that every caller on every thread shares. Nor is the channel asked whether it is
        // closed (its shared count again): `send` says so.
        let queued = match &*self.queue.load() {
            Some(sender) => match sender.send(queued) {
                Ok(()) => return Ok(outcome),
                Err(mpsc::error::SendError(back)) => back,
            },
            None => queued,
        };
        // No dispatcher yet, or it ended with its runtime: start one.
        match self.start(pool) {
            Some(sender) => match sender.send(queued) {
                Ok(()) => Ok(outcome),
                Err(mpsc::error::SendError(back)) => Err(back.call),
            },
            None => Err(queued.call),
        }
    }

    /// Starts a dispatcher for `pool` on the current runtime, unless another caller just
    /// did; `None` outside a runtime.
    fn start<D: Dispatch<Routes = R>>(
        &self,
        pool: &Arc<D>,
    ) -> Option<Arc<mpsc::UnboundedSender<Queued>>> {
        let _one_at_a_time = self.starting.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(sender) = self.queue.load_full().filter(|sender| !sender.is_closed()) {
            return Some(sender);
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (sender, queue) = mpsc::unbounded_channel();
        let sender = Arc::new(sender);
        self.queue.store(Some(Arc::clone(&sender)));
        runtime.spawn(dispatch(Arc::downgrade(pool), queue));
        Some(sender)
    }
}

/// The dispatcher of a pool: waits for calls, then for a free slot (answering calls whose
/// deadline passes meanwhile), and sends up to [`MAX_BATCH`] calls at a time as a batch.
/// It polls its batches itself, beside the queue: no task per batch, and since every batch
/// in flight is here, one ending is what frees a slot.
async fn dispatch<D: Dispatch>(pool: Weak<D>, mut queue: mpsc::UnboundedReceiver<Queued>) {
    let mut waiting: Vec<Queued> = Vec::new();
    let mut batches = FuturesUnordered::new();
    loop {
        if waiting.is_empty() {
            tokio::select! {
                biased;
                Some(()) = batches.next(), if !batches.is_empty() => continue,
                first = queue.recv() => match first {
                    Some(first) => waiting.push(first),
                    None => {
                        // The pool is gone: finish what is in flight.
                        while batches.next().await.is_some() {}
                        return;
                    }
                },
            }
        }
        let Some(pool) = pool.upgrade() else {
            return;
        };
        let Some(batcher) = pool.batcher() else {
            return;
        };
        // With no batch in flight, the dispatcher was woken by the first call queued, often
        // one of many callers the last batch's replies just woke: one yield lets them queue
        // first and go in this batch. In interleaved A/B runs it made `get` 5-12% faster at
        // 64 tasks and `set` 4-8%; at 256 tasks the change was within the spread. A lone call
        // only queues while batching is held on, so this costs one yield when the load drops.
        drain(&mut queue, &mut waiting);
        if batches.is_empty() && waiting.len() < HOLD_BATCH {
            tokio::task::yield_now().await;
        }
        // Wait for a slot; calls that time out or are abandoned meanwhile leave.
        let claimed = loop {
            let scripts = waiting.iter().any(|q| matches!(q.call, Call::Apply(_)));
            let limit = if scripts {
                MAX_IN_FLIGHT_SCRIPTS
            } else {
                MAX_IN_FLIGHT
            };
            if batcher.claim(limit) {
                break true;
            }
            drain(&mut queue, &mut waiting);
            expire(&mut waiting);
            if waiting.is_empty() {
                break false;
            }
            let deadline = earliest(&waiting);
            tokio::select! {
                Some(()) = batches.next(), if !batches.is_empty() => {}
                () = sleep_until(deadline) => {}
            }
        };
        if !claimed {
            continue;
        }
        drain(&mut queue, &mut waiting);
        // Calls beyond one batch wait for the next slot. The batch is copied out into a
        // list of its exact size and the waiting list keeps its room: moving the list into
        // the batch left a new one to grow call by call (callgrind: 124 instructions per
        // call at 64 tasks, 2,795 regrowths for 2,037 batches).
        let batch: Vec<Queued> = waiting.drain(..waiting.len().min(MAX_BATCH)).collect();
        batcher.sending(batch.len(), !batches.is_empty());
        batches.push(Arc::clone(&pool).send(batch));
    }
}

/// Sleeps until `deadline`, or forever without one (calls without a response timeout).
pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Moves what the channel holds now into `calls`, up to [`MAX_BATCH`] in all.
fn drain(queue: &mut mpsc::UnboundedReceiver<Queued>, calls: &mut Vec<Queued>) {
    while calls.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(queued) => calls.push(queued),
            Err(_) => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_calls_go_alone_until_batching_starts() {
        let batcher = Batcher::<()>::default();
        let mut lone: Vec<Slot<'_>> = (0..MAX_DIRECT)
            .map(|_| batcher.try_direct().expect("a free lone slot"))
            .collect();
        assert!(batcher.try_direct().is_none(), "every lone slot is taken");
        lone.pop();
        assert!(
            batcher.try_direct().is_some(),
            "a freed lone slot is claimed"
        );
        drop(lone);
        assert!(
            batcher.claim(MAX_IN_FLIGHT),
            "batches have slots of their own"
        );
        let batch = batcher.batch_slot();
        assert!(
            batcher.try_direct().is_none(),
            "a batch in flight carries new calls"
        );
        drop(batch);
        assert!(batcher.try_direct().is_some());
    }

    #[test]
    fn after_a_big_batch_new_calls_queue_until_a_small_one_goes_out_alone() {
        let batcher = Batcher::<()>::default();
        batcher.sending(HOLD_BATCH, false);
        assert!(
            batcher.try_direct().is_none(),
            "after a big batch, calls queue with no batch in flight"
        );
        batcher.sending(HOLD_BATCH - 1, true);
        assert!(
            batcher.try_direct().is_none(),
            "a small batch beside another keeps the hold"
        );
        batcher.sending(HOLD_BATCH - 1, false);
        assert!(
            batcher.try_direct().is_some(),
            "after a small batch alone, calls go alone again"
        );
        batcher.sending(1, true);
        assert!(
            batcher.try_direct().is_some(),
            "a small batch beside another does not start a hold"
        );
    }

    #[test]
    fn expired_and_abandoned_calls_leave_and_the_expired_learn_why() {
        let past = Instant::now();
        let future = past + std::time::Duration::from_secs(60);
        let call = |deadline| {
            let (reply, outcome) = oneshot::channel();
            let queued = Queued {
                call: Call::Get("k".into()),
                reply,
                deadline,
            };
            (queued, outcome)
        };
        let (expired, mut expired_outcome) = call(Some(past));
        let (abandoned, abandoned_outcome) = call(Some(future));
        drop(abandoned_outcome);
        let (kept, _kept_outcome) = call(None);
        let mut calls = vec![expired, abandoned, kept];
        expire(&mut calls);
        assert_eq!(calls.len(), 1, "the expired and the abandoned call left");
        assert!(matches!(expired_outcome.try_recv(), Ok(Sent::TimedOut)));
    }
}
