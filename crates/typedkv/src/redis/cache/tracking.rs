//! Server-assisted client-side caching: connections of the cache's own (one per server
//! holding keys: one, or each master of a cluster) ask Redis for invalidations of every key
//! under the store's prefix (`CLIENT TRACKING ON BCAST PREFIX`), whoever writes them, and
//! receive them as RESP3 pushes.
//!
//! If that connection drops, invalidations may have been missed: the whole cache is flushed
//! and nothing is cached until a new connection tracks again (a background task reconnects).
//! The same when the server to track changes while the old one stays up: a Sentinel
//! failover (the old master keeps the tracking connection open, and hears nothing of the
//! new master's writes, until Sentinel demotes it seconds later, or never when it is cut off
//! from the sentinels), or a cluster's set of masters.
//! Broadcast mode is used because reads go through the store's shared connections, not this
//! one (default-mode tracking only covers keys read on the tracking connection itself).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{PushInfo, PushKind, Value};
use tokio::sync::{Notify, watch};

use super::entries::Entries;
use super::trackable::Trackable;
use crate::error::Result;

/// Name of tracking connections in `CLIENT LIST`.
pub const TRACKING_CLIENT_NAME: &str = "typedkv-tracking";
/// Pause between attempts to track again after the connection dropped.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How often a cluster cache checks whether its masters changed.
const TOPOLOGY_CHECK: Duration = Duration::from_millis(500);

/// Tells the maintainer that a tracking connection of the current set dropped.
#[derive(Default)]
pub(crate) struct Lost {
    notify: Notify,
    /// Which set of connections is current: a set replaced by a newer one may still report
    /// its connections closing, which must not end the newer set's tracking.
    generation: AtomicU64,
}

/// Opens the tracking connections for keys under `prefix` (one per server of the pool),
/// feeding `entries`; `lost` hears when one drops.
pub(crate) async fn track<T: Send + Sync + 'static, B: Trackable>(
    pool: &B,
    prefix: &str,
    entries: &Arc<Entries<T>>,
    lost: &Arc<Lost>,
) -> Result<Vec<MultiplexedConnection>> {
    let generation = lost.generation.fetch_add(1, Ordering::SeqCst) + 1;
    let on_push = {
        let entries = Arc::downgrade(entries);
        let lost = Arc::clone(lost);
        move |push: PushInfo| {
            if let Some(entries) = entries.upgrade() {
                handle_push(&entries, &lost, generation, push);
            }
            Ok::<(), Infallible>(())
        }
    };
    let mut connections = pool.tracking_connections(on_push).await?;
    for conn in &mut connections {
        let mut setup = ::redis::pipe();
        setup
            .cmd("CLIENT")
            .arg("SETNAME")
            .arg(TRACKING_CLIENT_NAME)
            .ignore()
            .cmd("CLIENT")
            .arg(&["TRACKING", "ON", "BCAST", "PREFIX"][..])
            .arg(prefix)
            .ignore();
        let tracking: std::result::Result<(), _> = setup.query_async(conn).await;
        tracking.map_err(|e| pool.command_failed(prefix, e))?;
    }
    entries.start_tracking();
    Ok(connections)
}

fn handle_push<T>(entries: &Entries<T>, lost: &Lost, generation: u64, push: PushInfo) {
    match push.kind {
        PushKind::Invalidate => {
            // `invalidate [key, ...]`, or `invalidate nil` when Redis dropped its tracking
            // table (e.g. FLUSHALL): then everything may have changed.
            match push.data.first() {
                Some(Value::Array(keys)) => {
                    entries.evict(keys.iter().filter_map(|key| match key {
                        Value::BulkString(bytes) => Some(bytes.as_slice()),
                        _ => None,
                    }))
                }
                _ => entries.flush(),
            }
            // Counted once applied: whoever sees the count sees its evictions done.
            entries.note_invalidation();
        }
        PushKind::Disconnection if lost.generation.load(Ordering::SeqCst) == generation => {
            entries.stop_tracking();
            lost.notify.notify_one();
        }
        _ => {}
    }
}

/// The next announced switch of `switches`; never, without them.
async fn next_switch(switches: &mut Option<watch::Receiver<u64>>) {
    let announced = match switches {
        Some(switches) => switches.changed().await.is_ok(),
        None => false,
    };
    if !announced {
        std::future::pending::<()>().await;
    }
}

/// Keeps tracking connections open for as long as `entries` is alive: waits for one of
/// `conns` to drop, for the pool to announce that its server switched (Sentinel), or, on a
/// cluster, for the set of masters to change (checked every [`TOPOLOGY_CHECK`]), then
/// tracks again, retrying every [`RETRY_PAUSE`]. `switches` was subscribed before `conns`
/// were opened, so no switch between the two is missed.
pub(crate) async fn maintain<T: Send + Sync + 'static, B: Trackable>(
    pool: B,
    prefix: String,
    entries: Weak<Entries<T>>,
    lost: Arc<Lost>,
    conns: Vec<MultiplexedConnection>,
    mut switches: Option<watch::Receiver<u64>>,
) {
    let mut _current = conns;
    let mut servers = pool.tracked_servers().await;
    loop {
        tokio::select! {
            () = lost.notify.notified() => {}
            () = next_switch(&mut switches) => {
                // Values read from the new master would not be invalidated by the old one:
                // nothing is cached until a connection tracks the master named now.
                match entries.upgrade() {
                    Some(entries) => entries.stop_tracking(),
                    None => return,
                }
            }
            () = tokio::time::sleep(TOPOLOGY_CHECK), if servers.is_some() => {
                let now = pool.tracked_servers().await;
                if now.is_none() || now == servers {
                    continue;
                }
                // A server joined or left: what it holds was not (or is no longer)
                // tracked by these connections.
                match entries.upgrade() {
                    Some(entries) => entries.stop_tracking(),
                    None => return,
                }
            }
        }
        _current = Vec::new();
        loop {
            let Some(strong) = entries.upgrade() else {
                return;
            };
            servers = pool.tracked_servers().await;
            match track(&pool, &prefix, &strong, &lost).await {
                Ok(conns) => {
                    _current = conns;
                    break;
                }
                Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalidate(key: &str) -> PushInfo {
        PushInfo {
            kind: PushKind::Invalidate,
            data: vec![Value::Array(vec![Value::BulkString(
                key.as_bytes().to_vec(),
            )])],
        }
    }

    /// Whoever sees an invalidation counted sees its evictions done: a test (or a user)
    /// that waits for the count and then reads is never answered, nor has its fill voided
    /// by, an invalidation already counted. Round `r` caches `r` and then invalidates it,
    /// so after `c` counted invalidations no value below `c` may be found.
    #[test]
    fn an_invalidation_is_counted_once_its_entries_are_gone() {
        let entries = Arc::new(Entries::<u64>::new(100));
        entries.start_tracking();
        let lost = Lost::default();
        let rounds = 100_000;
        let writer = {
            let entries = Arc::clone(&entries);
            std::thread::spawn(move || {
                for round in 0..rounds {
                    if let Some(ticket) = entries.fill_ticket() {
                        entries.insert(ticket, "k".into(), Arc::new(round), None);
                    }
                    handle_push(&entries, &lost, 0, invalidate("k"));
                }
            })
        };
        while !writer.is_finished() {
            let counted = entries.stats().invalidations;
            if let Some(found) = entries.get("k") {
                assert!(
                    *found >= counted,
                    "{found} found after {counted} invalidations"
                );
            }
        }
        writer.join().unwrap();
    }
}
