//! What a Redis command is about, named in [`Keys`] only when an error is built: successful
//! commands format and allocate nothing for it.

use crate::error::Keys;
use crate::keyspace::key_text;

/// Something commands can be about: one key, a batch, or nothing (a ping, a checkout).
pub(crate) trait ToKeys: Sync {
    /// The keys, as an error names them.
    fn to_keys(&self) -> Keys;
}

impl ToKeys for str {
    fn to_keys(&self) -> Keys {
        Keys::one(self)
    }
}

impl ToKeys for String {
    fn to_keys(&self) -> Keys {
        Keys::one(self.as_str())
    }
}

impl<T: ToKeys + ?Sized> ToKeys for &T {
    fn to_keys(&self) -> Keys {
        (**self).to_keys()
    }
}

/// Commands about no key: connection checks.
pub(crate) struct NoKey;

impl ToKeys for NoKey {
    fn to_keys(&self) -> Keys {
        Keys::none()
    }
}

/// A batch of keys: its first key and how many.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyBatch<'a> {
    first: Option<&'a [u8]>,
    len: usize,
}

impl<'a> KeyBatch<'a> {
    pub(crate) fn new<K: AsRef<[u8]>>(keys: &'a [K]) -> Self {
        KeyBatch {
            first: keys.first().map(AsRef::as_ref),
            len: keys.len(),
        }
    }

    /// `len` keys whose first is `first`.
    pub(crate) fn starting(first: Option<&'a str>, len: usize) -> Self {
        KeyBatch {
            first: first.map(str::as_bytes),
            len,
        }
    }

    /// The keys of `(key, value)` entries.
    pub(crate) fn from_entries<V>(entries: &'a [(String, V)]) -> Self {
        KeyBatch {
            first: entries.first().map(|(key, _)| key.as_bytes()),
            len: entries.len(),
        }
    }
}

impl ToKeys for KeyBatch<'_> {
    fn to_keys(&self) -> Keys {
        match self.first {
            Some(first) => Keys::batch(key_text(first), self.len),
            None => Keys::none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_named_by_their_first_key_and_size() {
        assert_eq!(KeyBatch::new::<&str>(&[]).to_keys(), Keys::none());
        assert_eq!(KeyBatch::new(&["a:1"]).to_keys(), Keys::one("a:1"));
        let three = KeyBatch::new(&["a:1", "a:2", "a:3"]).to_keys();
        assert_eq!((three.first(), three.count()), (Some("a:1"), 3));
        let odd = KeyBatch::new(&[b"a:\xff".to_vec()]).to_keys();
        assert_eq!(odd.first(), Some(r"a:\xff"));
    }
}
