//! What an equality or unique index stores for a value: the value itself, or, on an
//! encrypted store, a keyed hash of it, so that index entries do not show in clear what the
//! encrypted values hide.
//!
//! The hash is HMAC-SHA256 under the keyring's index key over the index name, a zero byte
//! and the value, cut to 16 bytes: equal values still meet (that is what the index is for,
//! and what it reveals: which entities share a value, and how many), different indexes of
//! one value give different terms, and without the key a term cannot be tested against a
//! guessed value.

use std::borrow::Cow;

#[cfg(feature = "encryption")]
use hmac::{Hmac, Mac};
#[cfg(feature = "encryption")]
use sha2::Sha256;

/// Length of a keyed term.
#[cfg(feature = "encryption")]
const TERM_LEN: usize = 16;

/// How one store's index values become stored terms. The default keeps them as they are.
#[derive(Clone, Default)]
pub(crate) struct Terms {
    #[cfg(feature = "encryption")]
    keyed: Option<Hmac<Sha256>>,
}

impl Terms {
    /// Terms hashed under `key`.
    #[cfg(feature = "encryption")]
    pub(crate) fn keyed(key: &[u8]) -> Self {
        Terms {
            // HMAC takes keys of any length: this cannot fail.
            keyed: Hmac::<Sha256>::new_from_slice(key).ok(),
        }
    }

    /// Whether values are hashed.
    pub(crate) fn is_keyed(&self) -> bool {
        #[cfg(feature = "encryption")]
        return self.keyed.is_some();
        #[cfg(not(feature = "encryption"))]
        false
    }

    /// The stored term of `value` in index `index`.
    pub(crate) fn of<'v>(&self, index: &str, value: &'v [u8]) -> Cow<'v, [u8]> {
        #[cfg(feature = "encryption")]
        if let Some(mac) = &self.keyed {
            let mut mac = mac.clone();
            mac.update(index.as_bytes());
            mac.update(&[0]);
            mac.update(value);
            let digest = mac.finalize().into_bytes();
            return Cow::Owned(digest[..TERM_LEN].to_vec());
        }
        let _ = index;
        Cow::Borrowed(value)
    }
}

#[cfg(all(test, feature = "encryption"))]
mod tests {
    use super::*;

    #[test]
    fn keyed_terms_depend_on_key_index_and_value() {
        let (a, b) = (Terms::keyed(&[1; 32]), Terms::keyed(&[2; 32]));
        let term = a.of("email", b"ann@example.com");
        assert_eq!(term.len(), TERM_LEN);
        assert_eq!(term, a.of("email", b"ann@example.com"));
        assert_ne!(term, b.of("email", b"ann@example.com"));
        assert_ne!(term, a.of("backup", b"ann@example.com"));
        assert_ne!(term, a.of("email", b"bob@example.com"));
        assert_eq!(Terms::default().of("email", b"x"), &b"x"[..]);
    }
}
