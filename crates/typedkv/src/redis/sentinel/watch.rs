//! Following `+switch-master`: a task subscribed on one sentinel at a time to the channel
//! where sentinels announce a new master, which marks every lane of the pool dead when
//! ours changes.
//!
//! Without it a pool moves only when a connection fails: at once when the old master died,
//! but an old master that is still up (a network partition, a manual `SENTINEL FAILOVER`)
//! keeps answering, and acknowledges writes the new master will never have, until it is
//! reconfigured as a replica and answers `READONLY`. With it, the pool moves as soon as a
//! sentinel announces the switch.

use std::sync::Weak;
use std::time::Duration;

use ::redis::{AsyncConnectionConfig, ConnectionInfo, PushKind, Value};
use tokio::sync::mpsc;

use crate::redis::lanes::Generations;

/// Pause before trying the next sentinel after losing (or failing to open) a subscription.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// How often an idle watcher checks whether its pool is gone.
const POOL_CHECK: Duration = Duration::from_secs(1);

/// Watches for a switch of `master` on `sentinels` (one at a time, in turn) for as long as
/// `generations` (the pool's) is alive.
pub(crate) async fn watch(
    sentinels: Vec<ConnectionInfo>,
    master: String,
    config: AsyncConnectionConfig,
    generations: Weak<Generations>,
) {
    for sentinel in sentinels.iter().cycle() {
        if generations.strong_count() == 0 {
            return;
        }
        let (pushes, mut received) = mpsc::unbounded_channel();
        let config = config.clone().set_push_sender(pushes);
        let subscribed = async {
            let client = ::redis::Client::open(sentinel.clone())?;
            let mut conn = client
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            conn.subscribe("+switch-master").await?;
            Ok::<_, ::redis::RedisError>(conn)
        };
        let Ok(_conn) = subscribed.await else {
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        loop {
            let push = match tokio::time::timeout(POOL_CHECK, received.recv()).await {
                Ok(Some(push)) => push,
                Ok(None) => break,
                Err(_idle) if generations.strong_count() == 0 => return,
                Err(_idle) => continue,
            };
            match push.kind {
                PushKind::Message if switched(&push.data, &master) => match generations.upgrade() {
                    Some(generations) => generations.all_dead(),
                    None => return,
                },
                PushKind::Disconnection => break,
                _ => {}
            }
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Whether a `+switch-master` message (`[channel, "<name> <old ip> <old port> <new ip>
/// <new port>"]`) is about `master`.
fn switched(data: &[Value], master: &str) -> bool {
    let Some(Value::BulkString(payload)) = data.get(1) else {
        return false;
    };
    payload.split(|b| *b == b' ').next() == Some(master.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_masters_switch_counts() {
        let message = |text: &str| {
            vec![
                Value::BulkString(b"+switch-master".to_vec()),
                Value::BulkString(text.as_bytes().to_vec()),
            ]
        };
        assert!(switched(
            &message("mymaster 10.0.0.1 6379 10.0.0.2 6379"),
            "mymaster"
        ));
        assert!(!switched(
            &message("other 10.0.0.1 6379 10.0.0.2 6379"),
            "mymaster"
        ));
        assert!(!switched(
            &message("mymaster2 10.0.0.1 6379 10.0.0.2 6379"),
            "mymaster"
        ));
        assert!(!switched(&[], "mymaster"));
    }
}
