//! Server-assisted client-side caching: one connection of the cache's own asks Redis for
//! invalidations of every key under the store's prefix (`CLIENT TRACKING ON BCAST PREFIX`),
//! whoever writes them, and receives them as RESP3 pushes.
//!
//! If that connection drops, invalidations may have been missed: the whole cache is flushed
//! and nothing is cached until a new connection tracks again (a background task reconnects).
//! Broadcast mode is used because reads go through the store's shared connections, not this
//! one (default-mode tracking only covers keys read on the tracking connection itself).

use std::convert::Infallible;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{PushInfo, PushKind, Value};
use tokio::sync::Notify;

use super::entries::Entries;
use super::trackable::Trackable;
use crate::error::Result;

/// Name of tracking connections in `CLIENT LIST`.
pub const TRACKING_CLIENT_NAME: &str = "typedkv-tracking";
/// Pause between attempts to track again after the connection dropped.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Opens a tracking connection for keys under `prefix`, feeding `entries`; `lost` is
/// notified when it drops.
pub(crate) async fn track<T: Send + Sync + 'static, B: Trackable>(
    pool: &B,
    prefix: &str,
    entries: &Arc<Entries<T>>,
    lost: &Arc<Notify>,
) -> Result<MultiplexedConnection> {
    let on_push = {
        let entries = Arc::downgrade(entries);
        let lost = Arc::clone(lost);
        move |push: PushInfo| {
            if let Some(entries) = entries.upgrade() {
                handle_push(&entries, &lost, push);
            }
            Ok::<(), Infallible>(())
        }
    };
    let mut conn = pool.dedicated_connection(on_push).await?;
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
    let tracking: std::result::Result<(), _> = setup.query_async(&mut conn).await;
    tracking.map_err(|e| pool.command_failed(prefix, e))?;
    entries.start_tracking();
    Ok(conn)
}

fn handle_push<T>(entries: &Entries<T>, lost: &Notify, push: PushInfo) {
    match push.kind {
        PushKind::Invalidate => {
            entries.note_invalidation();
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
        }
        PushKind::Disconnection => {
            entries.stop_tracking();
            lost.notify_one();
        }
        _ => {}
    }
}

/// Keeps a tracking connection open for as long as `entries` is alive: waits for `conn` to
/// drop, then tracks again, retrying every [`RETRY_PAUSE`].
pub(crate) async fn maintain<T: Send + Sync + 'static, B: Trackable>(
    pool: B,
    prefix: String,
    entries: Weak<Entries<T>>,
    lost: Arc<Notify>,
    conn: MultiplexedConnection,
) {
    let mut _current = Some(conn);
    loop {
        lost.notified().await;
        _current = None;
        loop {
            let Some(strong) = entries.upgrade() else {
                return;
            };
            match track(&pool, &prefix, &strong, &lost).await {
                Ok(conn) => {
                    _current = Some(conn);
                    break;
                }
                Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
            }
        }
    }
}
