//! What a write asks of a backend ([`Write`], [`WriteExpiry`]), what it requires of the
//! current value ([`Guard`]), and what a compare-and-swap found ([`Swap`]).

use std::time::Duration;

use super::Bytes;
use crate::options::Condition;
use crate::version::Version;

/// The expiry a backend applies to a write, after the store resolved its default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteExpiry {
    /// No expiry (clears an existing one).
    Never,
    /// Expire this long after the write. Never zero.
    After(Duration),
    /// Keep the key's current TTL.
    Keep,
}

/// A backend-level write: expiry and condition, resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Write {
    /// Expiry to apply.
    pub expiry: WriteExpiry,
    /// Condition of the write.
    pub condition: Condition,
}

impl Write {
    /// A write with this expiry and condition.
    pub const fn new(expiry: WriteExpiry, condition: Condition) -> Self {
        Write { expiry, condition }
    }
}

/// The outcome of [`Backend::compare_and_swap`](super::Backend::compare_and_swap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Swap {
    /// The value was as expected and has been replaced (or deleted).
    Done,
    /// The value was not as expected; this is what was found (`None`: absent).
    Changed(Option<Bytes>),
}

/// What a write requires of the key's current value: the guard of
/// [`Backend::compare_and_swap`](super::Backend::compare_and_swap) and of each
/// [`IndexedOp`](super::IndexedOp). (A plain `set` takes the user's
/// [`Condition`], which needs no value to compare.)
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Guard {
    /// Nothing.
    Always,
    /// The key must be absent.
    Absent,
    /// The key must exist.
    Present,
    /// The key must hold exactly these bytes.
    Bytes(Bytes),
    /// The key must hold bytes with this [`Version`] (SHA-1 digest).
    Version(Version),
}

impl Guard {
    /// Whether `current` (the bytes at the key, if any) meets the guard.
    pub fn matches(&self, current: Option<&[u8]>) -> bool {
        match (self, current) {
            (Guard::Always, _) | (Guard::Absent, None) => true,
            (Guard::Present, Some(_)) => true,
            (Guard::Bytes(want), Some(have)) => want.as_slice() == have,
            (Guard::Version(want), Some(have)) => *want == Version::of(have),
            _ => false,
        }
    }
}
