//! Per-write options of stores, the TTL limit, and the answer of `ttl`.

use std::time::Duration;

use crate::concern::WriteConcern;

/// How long a written value lives. Part of [`SetOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TtlPolicy {
    /// The store's default TTL if its builder set one, otherwise no expiry.
    #[default]
    StoreDefault,
    /// Expire after this long (rounded up to whole milliseconds).
    Expire(Duration),
    /// Keep the key's current TTL (no expiry if the key is new or had none).
    Keep,
    /// Never expire, even if the store has a default TTL.
    Never,
}

/// When a write happens. Part of [`SetOptions`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Condition {
    /// Always write.
    #[default]
    Always,
    /// Write only if the key does not exist (`SET NX`).
    IfAbsent,
    /// Write only if the key exists (`SET XX`).
    IfPresent,
}

/// Options for [`Store::set_opts`](crate::Store::set_opts).
///
/// ```
/// use std::time::Duration;
/// use typedkv::SetOptions;
///
/// let claim = SetOptions::new().if_absent().ttl(Duration::from_secs(30));
/// let touch_up = SetOptions::new().if_present().keep_ttl();
/// # let _ = (claim, touch_up);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SetOptions {
    /// TTL policy of the write.
    pub ttl: TtlPolicy,
    /// Condition of the write.
    pub condition: Condition,
    /// The write concern of this write; `None`: the store's (see
    /// [`WriteConcern`]).
    pub concern: Option<WriteConcern>,
}

impl SetOptions {
    /// Unconditional write with the store's default TTL: what [`Store::set`](crate::Store::set)
    /// does.
    pub const fn new() -> Self {
        SetOptions {
            ttl: TtlPolicy::StoreDefault,
            condition: Condition::Always,
            concern: None,
        }
    }

    /// Expire after `ttl` instead of the store default.
    pub const fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = TtlPolicy::Expire(ttl);
        self
    }

    /// Keep the key's existing TTL.
    pub const fn keep_ttl(mut self) -> Self {
        self.ttl = TtlPolicy::Keep;
        self
    }

    /// Never expire, whatever the store default.
    pub const fn never_expire(mut self) -> Self {
        self.ttl = TtlPolicy::Never;
        self
    }

    /// Only write if the key is absent.
    pub const fn if_absent(mut self) -> Self {
        self.condition = Condition::IfAbsent;
        self
    }

    /// Only write if the key is present.
    pub const fn if_present(mut self) -> Self {
        self.condition = Condition::IfPresent;
        self
    }

    /// Acknowledge this write only once `concern` is met, instead of the store's concern
    /// ([`WriteConcern::none`] for none).
    pub const fn write_concern(mut self, concern: WriteConcern) -> Self {
        self.concern = Some(concern);
        self
    }
}

/// The remaining life of a key that exists; the answer of [`Store::ttl`](crate::Store::ttl),
/// which returns `None` when the key does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// The key has no expiry.
    Never,
    /// The key expires in this long (millisecond precision).
    In(Duration),
}

impl Expiry {
    /// The remaining time, or `None` for a key without expiry.
    pub fn remaining(self) -> Option<Duration> {
        match self {
            Expiry::Never => None,
            Expiry::In(d) => Some(d),
        }
    }
}

/// The longest TTL a store accepts: 2^62 milliseconds, about 146 million years.
///
/// Redis refuses an expiry whose absolute time (now plus the TTL, in Unix milliseconds)
/// overflows a signed 64-bit integer, so the largest `PX` it takes is `i64::MAX` minus the
/// current time; 2^62 stays inside that for the next 146 million years. A longer TTL is
/// [`Error::InvalidConfig`](crate::Error::InvalidConfig) on every backend, before anything
/// is sent (for no expiry, use [`SetOptions::never_expire`]).
pub const MAX_TTL: Duration = Duration::from_millis(1 << 62);

/// `d` in whole milliseconds, rounded up (Redis' `PX` precision; never 0 for a non-zero `d`).
pub(crate) fn ceil_millis(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(!d.subsec_nanos().is_multiple_of(1_000_000));
    u64::try_from(ms).unwrap_or(u64::MAX)
}

/// `ttl`, if a store accepts it: more than zero and at most [`MAX_TTL`] (after rounding up
/// to whole milliseconds). Every TTL a store is given goes through here.
pub(crate) fn check_ttl(ttl: Duration) -> crate::Result<Duration> {
    if ttl.is_zero() {
        return Err(crate::Error::config("a TTL must be greater than zero"));
    }
    if ceil_millis(ttl) > ceil_millis(MAX_TTL) {
        return Err(crate::Error::config(format!(
            "a TTL must be at most MAX_TTL ({} ms), not {ttl:?}; use no expiry instead",
            ceil_millis(MAX_TTL)
        )));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_milliseconds() {
        assert_eq!(ceil_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_millis(Duration::from_millis(1500)), 1500);
        assert_eq!(ceil_millis(Duration::from_micros(1500)), 2);
        assert_eq!(ceil_millis(Duration::MAX), u64::MAX);
    }
}
