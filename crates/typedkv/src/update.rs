//! Read-modify-write: what the caller's function decides, and how retries wait.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

/// What [`Store::update`](crate::Store::update)'s function decides for the current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update<T> {
    /// Leave the key as it is.
    Keep,
    /// Store this value (the key's TTL is kept; a key created by the update gets the store's
    /// default TTL).
    Set(T),
    /// Delete the key.
    Delete,
}

/// Default number of read-modify-write attempts before [`Error::Conflict`](crate::Error::Conflict).
pub const DEFAULT_UPDATE_ATTEMPTS: u32 = 100;

/// The pause before retry number `attempt` (counting from 1) after a conflict: none for the
/// first two, then a random wait of up to 1, 2, 4, 8, 16 ms (and 16 ms after that), so
/// writers colliding on a hot key spread out instead of colliding again in lock-step.
pub(crate) fn backoff(attempt: u32) -> Option<Duration> {
    if attempt <= 2 {
        return None;
    }
    let ceiling_us = 1000u64 << (attempt - 3).min(4);
    // RandomState is seeded randomly per instance: jitter without a RNG dependency.
    let random = RandomState::new().build_hasher().finish();
    Some(Duration::from_micros(random % (ceiling_us + 1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_a_bound() {
        assert_eq!(backoff(1), None);
        assert_eq!(backoff(2), None);
        for attempt in 3..40 {
            let wait = backoff(attempt).unwrap_or_default();
            assert!(wait <= Duration::from_millis(16), "{attempt}: {wait:?}");
        }
    }
}
