//! Range queries: the values a range index orders by, the query, its pages and cursors.

use std::ops::{Bound, RangeBounds};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::backend::{Lex, Order};

/// A value a range index orders by: numbers and times, as 8 bytes whose byte order is the
/// value's order.
///
/// Query an index with the type its extractor returns: an `i64` index queried with `u64`
/// bounds compares different encodings.
pub trait RangeKey {
    /// The value as 8 bytes that sort (as bytes) the way the values do.
    fn sortable(&self) -> [u8; 8];
}

macro_rules! unsigned_keys {
    ($($t:ty),*) => {$(
        impl RangeKey for $t {
            fn sortable(&self) -> [u8; 8] {
                u64::from(*self).to_be_bytes()
            }
        }
    )*};
}
unsigned_keys!(u8, u16, u32, u64);

macro_rules! signed_keys {
    ($($t:ty),*) => {$(
        impl RangeKey for $t {
            fn sortable(&self) -> [u8; 8] {
                // Flipping the sign bit puts negatives below positives in byte order.
                (i64::from(*self).cast_unsigned() ^ (1 << 63)).to_be_bytes()
            }
        }
    )*};
}
signed_keys!(i8, i16, i32, i64);

impl RangeKey for f64 {
    fn sortable(&self) -> [u8; 8] {
        // IEEE 754 total order: negatives have every bit flipped, positives the sign bit.
        let bits = self.to_bits();
        let sortable = if bits >> 63 == 1 {
            !bits
        } else {
            bits | (1 << 63)
        };
        sortable.to_be_bytes()
    }
}

impl RangeKey for f32 {
    fn sortable(&self) -> [u8; 8] {
        f64::from(*self).sortable()
    }
}

/// Times order by whole milliseconds since the Unix epoch (earlier ones negative).
impl RangeKey for SystemTime {
    fn sortable(&self) -> [u8; 8] {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let since = match self.duration_since(UNIX_EPOCH) {
            Ok(after) => ms(after),
            Err(before) => -ms(before.duration()),
        };
        since.sortable()
    }
}

/// Where the previous page of a range query ended; pass it to [`RangeQuery::after`] for the
/// next one. Pages continue after the last entry returned, so they never overlap and, for
/// entities whose value stays put, never skip one, however many writes happen in between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeCursor(pub(crate) Vec<u8>);

impl RangeCursor {
    /// The cursor as bytes, e.g. to hand to a web client (it holds the last entry's value and
    /// id: encrypt or sign it if those are not for the client's eyes).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// A cursor from bytes [`as_bytes`](Self::as_bytes) gave.
    pub fn from_bytes(bytes: impl Into<Vec<u8>>) -> Self {
        RangeCursor(bytes.into())
    }
}

/// One page of a range query: entities in index order, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RangePage<T> {
    /// Ids and values, in the query's order.
    pub items: Vec<(String, T)>,
    /// Where the next page starts; `None` when this page reached the end of the range.
    pub next: Option<RangeCursor>,
}

/// The default number of entries a range page holds.
pub const DEFAULT_RANGE_LIMIT: usize = 100;

/// A query of a range index: bounds, order, page size and where to continue.
///
/// ```
/// use typedkv::{Order, RangeQuery};
///
/// let adults = RangeQuery::new(18u32..).limit(50);
/// let oldest_first = RangeQuery::new(..=120u32).order(Order::Descending);
/// # let _ = (adults, oldest_first);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeQuery {
    lo: Bound<[u8; 8]>,
    hi: Bound<[u8; 8]>,
    pub(crate) limit: usize,
    pub(crate) order: Order,
    after: Option<RangeCursor>,
}

impl RangeQuery {
    /// Entities whose value lies in `range` (`a..b`, `a..=b`, `a..`, `..b`, `..`), ascending,
    /// [`DEFAULT_RANGE_LIMIT`] per page.
    pub fn new<K: RangeKey>(range: impl RangeBounds<K>) -> Self {
        let encode = |bound: Bound<&K>| bound.map(RangeKey::sortable);
        RangeQuery {
            lo: encode(range.start_bound()),
            hi: encode(range.end_bound()),
            limit: DEFAULT_RANGE_LIMIT,
            order: Order::Ascending,
            after: None,
        }
    }

    /// Every entity of the index, ascending, [`DEFAULT_RANGE_LIMIT`] per page.
    pub fn all() -> Self {
        Self::new::<i64>(..)
    }

    /// At most `limit` entries per page (at least 1).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit;
        self
    }

    /// The order of the pages.
    pub fn order(mut self, order: Order) -> Self {
        self.order = order;
        self
    }

    /// The page after the one that returned `cursor`.
    pub fn after(mut self, cursor: RangeCursor) -> Self {
        self.after = Some(cursor);
        self
    }

    /// The member range to read, lowest end first, with the cursor applied.
    pub(crate) fn lex_range(&self) -> (Lex, Lex) {
        // An id is never empty, so `value` alone is below every member holding it and
        // `value || 0xFF` above every one (ids never hold the byte 0xFF).
        let above = |v: &[u8; 8]| Lex::Excl([v.as_slice(), &[0xFF]].concat());
        let mut lo = match &self.lo {
            Bound::Unbounded => Lex::Min,
            Bound::Included(v) => Lex::Incl(v.to_vec()),
            Bound::Excluded(v) => above(v),
        };
        let mut hi = match &self.hi {
            Bound::Unbounded => Lex::Max,
            Bound::Included(v) => above(v),
            Bound::Excluded(v) => Lex::Excl(v.to_vec()),
        };
        if let Some(RangeCursor(last)) = &self.after {
            match self.order {
                Order::Ascending => lo = Lex::Excl(last.clone()),
                Order::Descending => hi = Lex::Excl(last.clone()),
            }
        }
        (lo, hi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_value_order() {
        let ints = [i64::MIN, -2, -1, 0, 1, i64::MAX];
        assert!(ints.windows(2).all(|w| w[0].sortable() < w[1].sortable()));
        let floats = [
            f64::NEG_INFINITY,
            -1.5,
            -0.0,
            0.0,
            1e-300,
            2.5,
            f64::INFINITY,
        ];
        assert!(floats.windows(2).all(|w| w[0].sortable() < w[1].sortable()));
        let times = [
            UNIX_EPOCH - Duration::from_secs(10),
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::from_millis(1),
        ];
        assert!(times.windows(2).all(|w| w[0].sortable() < w[1].sortable()));
        assert!(3u8.sortable() < 300u16.sortable());
    }
}
