//! Write concerns: how many replicas (and disks) must have a write before it is
//! acknowledged.

use std::time::Duration;

use crate::error::{Error, Result};

/// How many replicas must have a write before a store acknowledges it, how long to wait for
/// them, and whether it must be on disk: MongoDB's write concern, on Redis' `WAIT` and
/// `WAITAOF`.
///
/// Redis replicates asynchronously: a master acknowledges a write before any replica has it,
/// and a failover drops what the replicas did not receive. With a concern, a store sends
/// `WAIT` (or `WAITAOF`) after the write on the same connection and returns `Ok` only once
/// enough replicas confirmed it. When they do not within [`timeout`](WriteConcern::timeout),
/// the call fails with [`Error::Unacknowledged`]: the write *may* have been applied (it is on
/// the master, and on the replicas that confirmed it), exactly as after a reply timeout.
///
/// Set it for every write of a store with the store builder's `write_concern`, or for one
/// write in [`SetOptions::write_concern`](crate::SetOptions::write_concern).
///
/// ```
/// use std::time::Duration;
/// use typedkv::WriteConcern;
///
/// let one = WriteConcern::replicas(1).timeout(Duration::from_millis(500));
/// let every = WriteConcern::all_replicas();
/// let on_disk = WriteConcern::replicas(1).on_disk(); // WAITAOF: Redis 7.2+, Valkey
/// let none = WriteConcern::none();                   // the master's word is enough
/// # let _ = (one, every, on_disk, none);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteConcern {
    /// How many replicas must confirm the write.
    pub replicas: Replicas,
    /// How long to wait for them (default 1 s). It bounds the wait after the write;
    /// the write itself is bounded by the pool's response timeout as always.
    pub timeout: Duration,
    /// Whether the write must also be in the append-only file of the master and of as many
    /// replicas (`WAITAOF`, Redis 7.2+ and Valkey; on older servers a store refuses it with
    /// [`Error::InvalidConfig`] before writing anything).
    pub on_disk: bool,
}

/// How many replicas must confirm a write. Part of [`WriteConcern`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Replicas {
    /// This many (0: the master alone, no wait).
    Count(u32),
    /// Every replica the master reports connected when the write is sent (`ROLE`). With no
    /// replica connected, the master alone.
    All,
}

/// The wait of a concern unless set: long enough for replicas on a network, short enough
/// that a stopped replica surfaces quickly.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

impl WriteConcern {
    /// `n` replicas must confirm each write, within 1 s unless [`timeout`](Self::timeout)
    /// says otherwise.
    pub const fn replicas(n: u32) -> Self {
        WriteConcern {
            replicas: Replicas::Count(n),
            timeout: DEFAULT_TIMEOUT,
            on_disk: false,
        }
    }

    /// Every replica the master reports connected must confirm each write.
    pub const fn all_replicas() -> Self {
        WriteConcern {
            replicas: Replicas::All,
            ..Self::replicas(0)
        }
    }

    /// The master's acknowledgement is enough: what a store without a concern does. For one
    /// write of a store that has a concern.
    pub const fn none() -> Self {
        Self::replicas(0)
    }

    /// Wait at most `timeout` for the replicas (more than zero: Redis reads 0 as "for ever").
    pub const fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The write must also be in the append-only file of the master and of the replicas
    /// asked for (`WAITAOF 1 n`).
    pub const fn on_disk(mut self) -> Self {
        self.on_disk = true;
        self
    }

    /// Whether the concern asks for anything beyond the master's acknowledgement.
    pub(crate) fn asks(&self) -> bool {
        self.on_disk || self.replicas != Replicas::Count(0)
    }

    /// What a backend keeps of the concern: `None` when it asks for nothing; a wait of zero
    /// refused.
    pub(crate) fn kept(self) -> Result<Option<Self>> {
        Ok(self.checked()?.asks().then_some(self))
    }

    /// The concern, if a store can keep it: a wait of zero is refused.
    pub(crate) fn checked(self) -> Result<Self> {
        if self.asks() && self.timeout.is_zero() {
            return Err(Error::config(
                "a write concern's timeout must be greater than zero (Redis waits for ever on 0)",
            ));
        }
        Ok(self)
    }
}

impl Default for WriteConcern {
    /// [`WriteConcern::none`].
    fn default() -> Self {
        Self::none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn none_asks_nothing_and_a_zero_wait_is_refused() {
        assert!(!WriteConcern::none().asks());
        assert!(WriteConcern::replicas(1).asks());
        assert!(WriteConcern::none().on_disk().asks());
        assert!(WriteConcern::all_replicas().asks());
        assert!(
            WriteConcern::none()
                .timeout(Duration::ZERO)
                .checked()
                .is_ok()
        );
        let zero = WriteConcern::replicas(1).timeout(Duration::ZERO).checked();
        assert!(matches!(zero, Err(Error::InvalidConfig { .. })));
    }

    /// In process, no replica can lose a write: every concern is met, in every write path
    /// and in transactions.
    #[tokio::test]
    async fn memory_meets_every_concern() -> Result<()> {
        use crate::{MemoryBackend, MemoryStore, SetOptions, Store, StoreExt, Update};
        let backend = MemoryBackend::new();
        let all = WriteConcern::all_replicas().on_disk();
        let store = MemoryStore::<u64>::builder(backend.clone(), "m")
            .write_concern(WriteConcern::replicas(3))
            .build()?;
        assert!(
            store
                .set_opts("a", &1, SetOptions::new().write_concern(all))
                .await?
        );
        store.set_many(&[("b", &2)]).await?;
        store
            .update_with("a", |n| Update::Set(n.unwrap_or(0) + 1))
            .await?;
        assert!(store.delete("b").await?);
        let store = &store;
        crate::transaction(&backend, |tx| async move { tx.set(store, "c", &3) }).await?;
        assert_eq!(
            store.get_many(&["a", "b", "c"]).await?,
            [Some(2), None, Some(3)]
        );
        Ok(())
    }
}
