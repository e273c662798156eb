//! Following the sentinels' announcements: a task per sentinel, subscribed to the channels
//! where it announces a promoted replica (`+promoted-slave`, from the sentinel leading a
//! failover, the moment it sees the promotion) and a new master (`+switch-master`, from
//! every sentinel once it learns of it). When one names our master, every lane of the pool
//! is marked dead, that sentinel is asked first for the master from then on, and the
//! switch is counted for the local cache, whose tracking connection must move too.
//!
//! Without it a pool moves only when a connection fails: at once when the old master died,
//! but an old master that is still up (a network partition, a manual `SENTINEL FAILOVER`)
//! keeps answering, and acknowledges writes the new master will never have, until it is
//! reconfigured as a replica and answers `READONLY`, seconds later. Every sentinel is
//! watched because only the leader of a failover announces the promotion, and it announces
//! `+switch-master` last, when the failover ends.

use std::sync::Weak;
use std::time::Duration;

use ::redis::{AsyncConnectionConfig, ConnectionInfo, PushKind, Value};
use tokio::sync::mpsc;

use super::lookup::MasterLookup;
use crate::redis::lanes::Generations;

/// First pause before subscribing again after losing (or failing to open) a subscription;
/// it doubles up to [`MAX_RETRY_PAUSE`] while the sentinel stays unreachable.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);
/// How often an idle watcher checks whether its pool is gone.
const POOL_CHECK: Duration = Duration::from_secs(1);
/// The announcements that name a new master.
const CHANNELS: [&str; 2] = ["+promoted-slave", "+switch-master"];

/// Starts a watcher of each of `sentinels` for announcements about `master`, each running
/// for as long as `generations` (the pool's) is alive.
pub(crate) fn watch_all(
    sentinels: Vec<ConnectionInfo>,
    master: String,
    config: AsyncConnectionConfig,
    generations: Weak<Generations>,
    lookup: Weak<MasterLookup>,
) {
    for (index, sentinel) in sentinels.into_iter().enumerate() {
        let watcher = Watcher {
            index,
            master: master.clone(),
            generations: generations.clone(),
            lookup: lookup.clone(),
        };
        tokio::spawn(watcher.watch(sentinel, config.clone()));
    }
}

/// What one sentinel's watcher acts on.
struct Watcher {
    /// The sentinel's position in the pool's list.
    index: usize,
    master: String,
    generations: Weak<Generations>,
    lookup: Weak<MasterLookup>,
}

impl Watcher {
    async fn watch(self, sentinel: ConnectionInfo, config: AsyncConnectionConfig) {
        let mut pause = RETRY_PAUSE;
        while self.generations.strong_count() > 0 {
            let (pushes, received) = mpsc::unbounded_channel();
            let config = config.clone().set_push_sender(pushes);
            let subscribed = async {
                let client = ::redis::Client::open(sentinel.clone())?;
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                conn.subscribe(&CHANNELS[..]).await?;
                Ok::<_, ::redis::RedisError>(conn)
            };
            if let Ok(_conn) = subscribed.await {
                pause = RETRY_PAUSE;
                if !self.follow(received).await {
                    return;
                }
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_RETRY_PAUSE);
        }
    }

    /// Acts on the announcements in `received` until the subscription ends (`true`) or the
    /// pool is gone (`false`).
    async fn follow(&self, mut received: mpsc::UnboundedReceiver<::redis::PushInfo>) -> bool {
        loop {
            let push = match tokio::time::timeout(POOL_CHECK, received.recv()).await {
                Ok(Some(push)) => push,
                Ok(None) => return true,
                Err(_idle) if self.generations.strong_count() == 0 => return false,
                Err(_idle) => continue,
            };
            match push.kind {
                PushKind::Message if names(&push.data, &self.master) => {
                    let (Some(generations), Some(lookup)) =
                        (self.generations.upgrade(), self.lookup.upgrade())
                    else {
                        return false;
                    };
                    lookup.prefer(self.index);
                    generations.all_dead();
                    lookup.switched();
                }
                PushKind::Disconnection => return true,
                _ => {}
            }
        }
    }
}

/// Whether an announcement (`[channel, payload]`) is about `master`:
/// - `+switch-master`: `<name> <old ip> <old port> <new ip> <new port>`;
/// - `+promoted-slave`: `slave <ip>:<port> <ip> <port> @ <name> <master ip> <master port>`.
fn names(data: &[Value], master: &str) -> bool {
    let (Some(Value::BulkString(channel)), Some(Value::BulkString(payload))) =
        (data.first(), data.get(1))
    else {
        return false;
    };
    let mut words = payload.split(|b| *b == b' ');
    let name = match &channel[..] {
        b"+switch-master" => words.next(),
        _ => words.skip_while(|word| *word != b"@").nth(1),
    };
    name == Some(master.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(channel: &str, text: &str) -> Vec<Value> {
        vec![
            Value::BulkString(channel.as_bytes().to_vec()),
            Value::BulkString(text.as_bytes().to_vec()),
        ]
    }

    #[test]
    fn only_announcements_about_our_master_count() {
        let switch = |text| message("+switch-master", text);
        assert!(names(
            &switch("mymaster 10.0.0.1 6379 10.0.0.2 6379"),
            "mymaster"
        ));
        assert!(!names(
            &switch("other 10.0.0.1 6379 10.0.0.2 6379"),
            "mymaster"
        ));
        assert!(!names(
            &switch("mymaster2 10.0.0.1 6379 10.0.0.2 6379"),
            "mymaster"
        ));
        assert!(!names(&[], "mymaster"));
        let promoted = message(
            "+promoted-slave",
            "slave 10.0.0.2:6379 10.0.0.2 6379 @ mymaster 10.0.0.1 6379",
        );
        assert!(names(&promoted, "mymaster"));
        assert!(!names(&promoted, "other"));
        // A master named like a keyword is read by its place, which the channel says.
        assert!(names(&switch("slave 10.0.0.1 6379 10.0.0.2 6379"), "slave"));
        assert!(!names(
            &switch("mymaster 10.0.0.1 6379 10.0.0.2 6379"),
            "slave"
        ));
    }
}
