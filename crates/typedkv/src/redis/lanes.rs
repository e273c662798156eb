//! Shared lanes: a few multiplexed connections, checked out of the pool once and lent to every
//! plain command, replaced as soon as they are known or suspected dead.
//!
//! deadpool recycles a connection on every checkout with an `UNWATCH`+`PING` round trip, which
//! measured 0.19x the throughput of one shared multiplexed connection at 64 tasks. redis-rs'
//! multiplexed connections pipeline any number of concurrent requests, so plain commands do
//! not need a connection of their own: they take turns on the lanes, and a lane goes back to
//! the pool for a fresh connection only when its connection died.
//!
//! Death is learned two ways, both recorded as a generation mark ("every connection older
//! than this is suspect"):
//! - redis-rs sends a `Disconnection` push the moment a connection's socket closes
//!   (RESP3 connections only, which is why the pool uses RESP3): idle lanes are replaced before
//!   any command tries them;
//! - a command fails with an error that means the connection is unusable (it raced the push).
//!
//! One dead connection marks all its siblings that already existed: connections die mostly
//! because the server restarted or the network failed, which kills them all. Replacing a live
//! one costs a reconnect; keeping a dead one would fail a command. Commands in flight on a
//! replaced connection still finish, as they hold their own handle on it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use arc_swap::ArcSwapOption;

use super::batching::BatchConnection;

/// A connection object from a deadpool pool that a lane can hold: standalone
/// (`deadpool_redis::Connection`) or cluster (see `cluster/manager.rs`).
pub(crate) trait Pooled: Send + Sync + 'static {
    /// The cheap, cloneable handle each command gets: every clone multiplexes onto the same
    /// connection.
    type Conn: ConnectionLike + BatchConnection + Clone + Send + Sync + 'static;

    /// A handle on this connection.
    fn handle(&self) -> Self::Conn;

    /// Detaches the connection from its pool for good, freeing its slot.
    fn detach(self);

    /// Makes `conn` (a handle of a connection checked out for one caller) wait up to
    /// `limit` for each reply, for a command that blocks on the server (a write concern's
    /// `WAIT`). Where a handle cannot (a cluster's), its replies keep the pool's limit.
    fn reply_within(conn: &mut Self::Conn, limit: Duration) {
        let _ = (conn, limit);
    }

    /// Whether `conn` is still of use, asked after a command timed out on a connection that
    /// is kept on errors (a cluster's); `false` replaces it. Takes at most `limit`, and
    /// the caller bounds it too.
    fn answers(conn: Self::Conn, limit: Duration) -> impl Future<Output = bool> + Send {
        drop((conn, limit));
        std::future::ready(true)
    }
}

impl Pooled for deadpool_redis::Connection {
    type Conn = MultiplexedConnection;

    fn handle(&self) -> MultiplexedConnection {
        MultiplexedConnection::clone(self)
    }

    fn detach(self) {
        drop(deadpool_redis::Connection::take(self));
    }

    fn reply_within(conn: &mut MultiplexedConnection, limit: Duration) {
        conn.set_response_timeout(limit);
    }
}

/// Generation numbers of lane connections, and the mark below which they are dead.
#[derive(Debug, Default)]
pub(crate) struct Generations {
    next: AtomicU64,
    dead_below: AtomicU64,
}

impl Generations {
    fn assign(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// Every connection lent before now has a generation below this.
    fn epoch(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    fn is_dead(&self, generation: u64) -> bool {
        generation < self.dead_below.load(Ordering::Relaxed)
    }

    /// A connection died just now: every connection that exists is suspect.
    pub(crate) fn all_dead(&self) {
        self.dead_below.fetch_max(self.epoch(), Ordering::Relaxed);
    }

    /// A command that started at `epoch` found its connection dead.
    fn dead_before(&self, epoch: u64) {
        self.dead_below.fetch_max(epoch, Ordering::Relaxed);
    }
}

/// One shared connection slot.
///
/// Every command reads it, so it is an `ArcSwapOption`: a read touches no shared counter or
/// lock word. With a `Mutex` here, lock and unlock bounced a cache line between the cores on
/// every command.
pub(crate) struct Lane<P: Pooled> {
    current: ArcSwapOption<Held<P>>,
    /// Serializes refills so an empty lane is refilled once, not by every waiting command.
    refill: tokio::sync::Mutex<()>,
}

impl<P: Pooled> Default for Lane<P> {
    fn default() -> Self {
        Lane {
            current: ArcSwapOption::empty(),
            refill: tokio::sync::Mutex::new(()),
        }
    }
}

struct Held<P: Pooled> {
    conn: P::Conn,
    /// The pool's handle; `None` only while dropping.
    object: Option<P>,
    generation: u64,
}

impl<P: Pooled> Drop for Held<P> {
    fn drop(&mut self) {
        // A lane lets go of a connection only when it is dead (or the pool is dropped):
        // detach it from the pool, which frees its slot for a fresh connection.
        if let Some(object) = self.object.take() {
            object.detach();
        }
    }
}

/// A handle on a lane's connection, lent to one command.
#[derive(Clone)]
pub(crate) struct Lent<C> {
    pub(crate) conn: C,
    pub(crate) lane: usize,
    /// Every connection with a lower generation existed when this command started.
    epoch: u64,
}

impl<P: Pooled> Lane<P> {
    /// The lane's connection, unless it is empty or dead (a dead one is let go here).
    pub(crate) fn lend(&self, index: usize, generations: &Generations) -> Option<Lent<P::Conn>> {
        let epoch = generations.epoch();
        let current = self.current.load();
        match current.as_deref() {
            Some(held) if !generations.is_dead(held.generation) => Some(Lent {
                conn: held.conn.clone(),
                lane: index,
                epoch,
            }),
            Some(_dead) => {
                // Empty the lane, unless another command already replaced the connection.
                self.current.compare_and_swap(&current, None);
                None
            }
            None => None,
        }
    }

    /// Waits for the right to refill this lane; re-check [`Lane::lend`] after getting it.
    pub(crate) async fn refilling(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.refill.lock().await
    }

    /// Puts a fresh connection from the pool into the lane and lends it.
    pub(crate) fn fill(&self, index: usize, object: P, generations: &Generations) -> Lent<P::Conn> {
        let generation = generations.assign();
        let conn = object.handle();
        self.current.store(Some(Arc::new(Held {
            conn: conn.clone(),
            object: Some(object),
            generation,
        })));
        Lent {
            conn,
            lane: index,
            epoch: generation + 1,
        }
    }
}

/// Connections lent to one caller at a time, for commands that block their connection (a
/// write concern's `WAIT`, see `concern.rs`). Each is checked out of the pool once and kept
/// between uses: a checkout recycles the connection with a round trip (`UNWATCH`+`PING`),
/// which made a one-task concerned write cost two round trips instead of one. At most
/// `keep` are kept idle, so that the pool keeps connections for the lanes and for
/// [`checkout`](super::RedisPool::checkout); one that existed when a connection died (by
/// the [`Generations`]) is detached from the pool, as a lane's is, instead of being lent:
/// back in the pool, a connection to a Sentinel master that was just replaced (still up,
/// still answering) would pass the pool's check and take writes the new master never sees.
pub(crate) struct Exclusive<P> {
    idle: std::sync::Mutex<Vec<(u64, P)>>,
    keep: usize,
}

/// A connection of [`Exclusive`], lent to one caller: give it back when done with it, drop
/// it when its command failed.
pub(crate) struct Borrowed<P> {
    pub(crate) object: P,
    generation: u64,
}

impl<P: Pooled> Exclusive<P> {
    /// Keeps at most `keep` idle connections.
    pub(crate) fn new(keep: usize) -> Self {
        Exclusive {
            idle: std::sync::Mutex::new(Vec::new()),
            keep,
        }
    }

    /// An idle connection that is not suspect, if one is kept.
    pub(crate) fn take(&self, generations: &Generations) -> Option<Borrowed<P>> {
        loop {
            let (generation, object) = self.lock().pop()?;
            if !generations.is_dead(generation) {
                return Some(Borrowed { object, generation });
            }
            // Suspect: let go for good (outside the lock), freeing its slot.
            object.detach();
        }
    }

    /// `object`, fresh from the pool, lent to one caller.
    pub(crate) fn lend_fresh(&self, object: P, generations: &Generations) -> Borrowed<P> {
        Borrowed {
            object,
            generation: generations.assign(),
        }
    }

    /// Takes `borrowed` back after a command that left it usable; beyond `keep` idle
    /// connections it goes back to the pool, and if it became suspect it is let go.
    pub(crate) fn give_back(&self, borrowed: Borrowed<P>, generations: &Generations) {
        if generations.is_dead(borrowed.generation) {
            borrowed.object.detach();
            return;
        }
        let mut idle = self.lock();
        if idle.len() < self.keep {
            idle.push((borrowed.generation, borrowed.object));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, P)>> {
        // The list stays consistent whatever panicked while holding it.
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl<C> Lent<C> {
    /// This command's connection turned out dead: mark it and its older siblings.
    pub(crate) fn mark_dead(&self, generations: &Generations) {
        generations.dead_before(self.epoch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_cover_what_existed_and_spare_what_came_later() {
        let g = Generations::default();
        let (a, b) = (g.assign(), g.assign());
        let epoch = g.epoch();
        let c = g.assign(); // refilled after the failing command started
        g.dead_before(epoch);
        assert!(g.is_dead(a) && g.is_dead(b));
        assert!(!g.is_dead(c));
        g.all_dead();
        assert!(g.is_dead(c));
        assert!(!g.is_dead(g.assign()));
    }
}
