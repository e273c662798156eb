//! [`TypedStore::reencrypt`]: moves every value of a store to its current settings at rest
//! (after a key rotation, or when encryption or compression was switched on).

use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::TypedStore;
use crate::backend::{Backend, Guard, Swap, WriteExpiry};
use crate::codec::Codec;
use crate::envelope::Header;
use crate::error::Result;

/// What [`TypedStore::reencrypt`] did, so far or in all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReencryptReport {
    /// Keys looked at.
    pub scanned: u64,
    /// Values already under the current key (or, without encryption, already as the store
    /// writes them): left as they are.
    pub current: u64,
    /// Values written anew under the current key.
    pub rewritten: u64,
    /// Values changed or deleted by another writer meanwhile (that write used the current
    /// settings), or that do not decode (they are left as they are: see
    /// [`scan`](crate::Store::scan) to find them).
    pub skipped: u64,
}

impl<T, B, C> TypedStore<T, B, C>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    B: Backend,
    C: Codec,
{
    /// Rewrites every value of the namespace that is not stored as this store writes values:
    /// encrypted under an older key of the keyring (or not encrypted at all), or compressed
    /// otherwise than the store's settings say. Each value is decoded and written back with a
    /// compare-and-swap on its stored bytes, keeping its TTL, so a concurrent write wins and
    /// nothing is lost; safe while the application runs. `progress` hears the running totals
    /// after each page of keys.
    ///
    /// After a rotation: deploy the new key as current with the old one still in the ring,
    /// run this, then remove the old key. Values under a key id missing from the ring, or that
    /// do not decode, are counted as skipped and left as they are.
    ///
    /// (The example needs the `encryption` feature; without it, it is not run.)
    #[cfg_attr(feature = "encryption", doc = "```")]
    #[cfg_attr(not(feature = "encryption"), doc = "```ignore")]
    /// # use typedkv::{EncryptionKey, Keyring, MemoryBackend, MemoryStore, Store};
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> typedkv::Result<()> {
    /// let (old, new) = ([1u8; 32], [2u8; 32]); // from your secret manager
    /// let backend = MemoryBackend::new();
    /// let before = MemoryStore::<String>::builder(backend.clone(), "token")
    ///     .encryption(Keyring::new(1, EncryptionKey::from_bytes(old)))
    ///     .build()?;
    /// before.set("t1", &"secret".to_string()).await?;
    ///
    /// let rotated = MemoryStore::<String>::builder(backend.clone(), "token")
    ///     .encryption(
    ///         Keyring::new(2, EncryptionKey::from_bytes(new))
    ///             .with_old_key(1, EncryptionKey::from_bytes(old))?,
    ///     )
    ///     .build()?;
    /// let report = rotated.reencrypt(&mut |so_far| println!("{so_far:?}")).await?;
    /// assert_eq!(report.rewritten, 1);
    ///
    /// // Key 1 can go now.
    /// let after = MemoryStore::<String>::builder(backend, "token")
    ///     .encryption(Keyring::new(2, EncryptionKey::from_bytes(new)))
    ///     .build()?;
    /// assert_eq!(after.get("t1").await?.as_deref(), Some("secret"));
    /// # Ok(()) }
    /// ```
    pub async fn reencrypt(
        &self,
        progress: &mut (dyn FnMut(&ReencryptReport) + Send),
    ) -> Result<ReencryptReport> {
        let mut report = ReencryptReport::default();
        let mut pages = self.stored_pages();
        while let Some(page) = pages.next().await {
            let page = page?;
            if page.is_empty() {
                continue;
            }
            for (key, bytes) in page {
                report.scanned += 1;
                let Some(bytes) = bytes else { continue }; // deleted meanwhile
                if self.is_current(&bytes) {
                    report.current += 1;
                    continue;
                }
                let Ok(value) = self.decode(&key, &bytes) else {
                    report.skipped += 1;
                    continue;
                };
                let new = self.encode(&key, &value)?;
                let guard = Guard::Bytes(bytes);
                match self
                    .swap(&key, guard, Some((&value, new)), WriteExpiry::Keep)
                    .await?
                {
                    Swap::Done => report.rewritten += 1,
                    Swap::Changed(_) => report.skipped += 1,
                }
            }
            progress(&report);
        }
        Ok(report)
    }

    /// Whether `stored` is sealed as this store seals values now: under the current key if it
    /// encrypts (nothing else to check: compression is decided per value), and otherwise
    /// neither encrypted nor, unless it compresses, compressed.
    fn is_current(&self, stored: &[u8]) -> bool {
        let seal = Header::parse(stored)
            .map(|(header, _)| header.seal)
            .unwrap_or_default();
        let at_rest = &self.inner.at_rest;
        #[cfg(feature = "encryption")]
        if let Some(keyring) = &at_rest.keyring {
            return seal
                .encrypted
                .is_some_and(|how| how.key_id == keyring.current_key_id());
        }
        seal.encrypted.is_none() && (seal.compressed.is_none() || !at_rest.is_plain())
    }
}
