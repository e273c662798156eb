//! What a [transaction](crate::transaction) asks of a backend when it commits: the keys it
//! read with what it saw there ([`Check`]), the writes it decided ([`CommitWrite`]), and
//! whether they were applied ([`Committed`]).

use super::{Bytes, Guard, WriteExpiry};

/// A key a transaction read, and what it must still hold for the commit to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Check {
    /// The key.
    pub key: String,
    /// What it held when read: [`Guard::Bytes`], or [`Guard::Absent`] when it was missing.
    pub guard: Guard,
}

impl Check {
    /// A check that `key` still meets `guard`.
    pub fn new(key: String, guard: Guard) -> Self {
        Check { key, guard }
    }
}

/// One write of a commit: unconditional once every [`Check`] holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CommitWrite {
    /// The key.
    pub key: String,
    /// The new bytes; `None` deletes the key.
    pub value: Option<Bytes>,
    /// The value's expiry (ignored on delete).
    pub expiry: WriteExpiry,
}

impl CommitWrite {
    /// A write of `value` (`None`: a delete) at `key` with `expiry`.
    pub fn new(key: String, value: Option<Bytes>, expiry: WriteExpiry) -> Self {
        CommitWrite { key, value, expiry }
    }
}

/// The outcome of [`Backend::commit`](super::Backend::commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committed {
    /// Every check held and every write was applied.
    Done,
    /// Check number `check` (its position) did not hold; nothing was written.
    Changed {
        /// Position of the check that failed.
        check: usize,
    },
}
