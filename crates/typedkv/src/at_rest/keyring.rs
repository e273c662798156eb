//! Encryption keys and the keyring a store encrypts with (feature `encryption`).
//!
//! XChaCha20-Poly1305: its 192-bit nonces leave room for a random part large enough that any
//! number of processes can share a key without coordinating (AES-GCM's 96-bit nonces would
//! limit a key to ~2^32 random ones). A nonce is 128 random bits drawn once per keyring, then
//! a 64-bit counter: unique within the process by the counter, across processes by the
//! random part. Drawing all 192 bits from the OS per write cost a system call, ~1.5 µs per
//! `set` on the benchmark's VM.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{AeadInPlace, KeyInit, OsRng};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::envelope::{Encrypted, NONCE_LEN, TAG_LEN};
use crate::error::{BoxError, DecodeProblem, Error, Result};

/// A 256-bit key of a [`Keyring`]. Wiped from memory when dropped; never printed.
///
/// ```
/// use typedkv::EncryptionKey;
///
/// let key = EncryptionKey::from_slice(&[7u8; 32])?;
/// assert_eq!(format!("{key:?}"), "EncryptionKey(***)");
/// assert!(EncryptionKey::from_slice(b"too short").is_err());
/// # Ok::<(), typedkv::Error>(())
/// ```
pub struct EncryptionKey(Zeroizing<[u8; EncryptionKey::LEN]>);

impl EncryptionKey {
    /// Length of a key in bytes.
    pub const LEN: usize = 32;

    /// A key from its 32 bytes (e.g. decoded from a secret manager's value).
    pub fn from_bytes(bytes: [u8; Self::LEN]) -> Self {
        EncryptionKey(Zeroizing::new(bytes))
    }

    /// A key from a slice, which must be exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let mut key = Zeroizing::new([0u8; Self::LEN]);
        if bytes.len() != Self::LEN {
            return Err(Error::InvalidConfig {
                reason: format!(
                    "an encryption key is {} bytes, this one is {}",
                    Self::LEN,
                    bytes.len()
                ),
                source: None,
            });
        }
        key.copy_from_slice(bytes);
        Ok(EncryptionKey(key))
    }

    /// A new random key from the operating system's generator, e.g. to make the next key of
    /// a rotation (store its bytes in your secret manager: see [`EncryptionKey::expose`]).
    pub fn generate() -> Result<Self> {
        let mut key = Zeroizing::new([0u8; Self::LEN]);
        OsRng
            .try_fill_bytes(&mut key[..])
            .map_err(|e| Error::InvalidConfig {
                reason: "the operating system's random generator failed".into(),
                source: Some(e.to_string().into()),
            })?;
        Ok(EncryptionKey(key))
    }

    /// The key's bytes, to store them where keys belong (a secret manager). Never log them.
    pub fn expose(&self) -> &[u8; Self::LEN] {
        &self.0
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptionKey(***)")
    }
}

/// The keys a store encrypts with, by id: new values are encrypted under the current key;
/// values under any other key of the ring stay readable, until
/// [`TypedStore::reencrypt`](crate::TypedStore::reencrypt) moves them to the current one.
///
/// Key ids are yours to choose (e.g. 1, 2, 3 as keys rotate) and are stored in clear in each
/// value's header; the keys themselves are never stored, printed or logged, and are wiped
/// from memory when the keyring is dropped.
///
/// ```
/// use typedkv::{EncryptionKey, Keyring};
///
/// // Rotating from key 1 to key 2: both read, key 2 writes.
/// let keyring = Keyring::new(2, EncryptionKey::from_slice(&[2u8; 32])?)
///     .with_old_key(1, EncryptionKey::from_slice(&[1u8; 32])?)?;
/// assert_eq!(keyring.current_key_id(), 2);
/// assert_eq!(keyring.key_ids().collect::<Vec<_>>(), [1, 2]);
/// assert!(!format!("{keyring:?}").contains("[2, 2"));
/// # Ok::<(), typedkv::Error>(())
/// ```
pub struct Keyring {
    current: u32,
    ciphers: BTreeMap<u32, XChaCha20Poly1305>,
    accept_unencrypted: bool,
    /// The random first 16 bytes of this keyring's nonces, drawn at the first write.
    nonce_prefix: OnceLock<[u8; NONCE_PREFIX_LEN]>,
    /// The last 8 bytes of the next nonce.
    nonce_counter: AtomicU64,
}

/// Random bytes at the start of every nonce.
const NONCE_PREFIX_LEN: usize = NONCE_LEN - 8;

impl Keyring {
    /// A keyring whose current key, used for every write, is `key` with id `id`.
    pub fn new(id: u32, key: EncryptionKey) -> Self {
        Keyring {
            current: id,
            ciphers: BTreeMap::from([(id, cipher(&key))]),
            accept_unencrypted: false,
            nonce_prefix: OnceLock::new(),
            nonce_counter: AtomicU64::new(0),
        }
    }

    /// Adds a key that values may still be encrypted under: readable, never used to write.
    /// An id already in the ring is refused.
    pub fn with_old_key(mut self, id: u32, key: EncryptionKey) -> Result<Self> {
        if self.ciphers.contains_key(&id) {
            return Err(Error::InvalidConfig {
                reason: format!("key id {id} is in the keyring twice"),
                source: None,
            });
        }
        self.ciphers.insert(id, cipher(&key));
        Ok(self)
    }

    /// Whether values stored unencrypted are read (default `false`: they are a
    /// [`DecodeProblem::NotEncrypted`] error, so that whoever can write to Redis cannot slip
    /// in values the store would trust). Turn it on while adopting encryption on existing
    /// data, run [`TypedStore::reencrypt`](crate::TypedStore::reencrypt), then turn it off.
    pub fn accept_unencrypted(mut self, accept: bool) -> Self {
        self.accept_unencrypted = accept;
        self
    }

    /// The id of the key new values are encrypted under.
    pub fn current_key_id(&self) -> u32 {
        self.current
    }

    /// The ids of every key in the ring, ascending.
    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.ciphers.keys().copied()
    }

    pub(crate) fn accepts_unencrypted(&self) -> bool {
        self.accept_unencrypted
    }

    /// The current key and a nonce never used before.
    pub(crate) fn next(&self) -> std::result::Result<Encrypted, BoxError> {
        let prefix = match self.nonce_prefix.get() {
            Some(prefix) => prefix,
            None => {
                let mut prefix = [0u8; NONCE_PREFIX_LEN];
                OsRng
                    .try_fill_bytes(&mut prefix)
                    .map_err(|e| format!("the operating system's random generator failed: {e}"))?;
                // Two first writes racing: one prefix wins, and both use it.
                self.nonce_prefix.get_or_init(|| prefix)
            }
        };
        let counter = self.nonce_counter.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..NONCE_PREFIX_LEN].copy_from_slice(prefix);
        nonce[NONCE_PREFIX_LEN..].copy_from_slice(&counter.to_le_bytes());
        Ok(Encrypted {
            key_id: self.current,
            nonce,
        })
    }

    /// Encrypts `payload` in place and appends the tag.
    pub(crate) fn encrypt(
        &self,
        how: &Encrypted,
        aad: &[u8],
        payload: &mut Vec<u8>,
    ) -> std::result::Result<(), BoxError> {
        let cipher = self
            .ciphers
            .get(&how.key_id)
            .ok_or("the current key is not in the keyring")?;
        let tag = cipher
            .encrypt_in_place_detached(XNonce::from_slice(&how.nonce), aad, payload)
            .map_err(|_| "the payload is too large to encrypt")?;
        payload.extend_from_slice(&tag);
        Ok(())
    }

    /// Decrypts `sealed` (ciphertext then tag), checking that it was encrypted with `aad`.
    pub(crate) fn decrypt(
        &self,
        how: &Encrypted,
        aad: &[u8],
        sealed: &[u8],
    ) -> std::result::Result<Vec<u8>, DecodeProblem> {
        let cipher = self
            .ciphers
            .get(&how.key_id)
            .ok_or(DecodeProblem::UnknownKeyId { id: how.key_id })?;
        let unauthentic = DecodeProblem::Unauthentic { key_id: how.key_id };
        let split = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(unauthentic.clone())?;
        let (ciphertext, tag) = sealed.split_at(split);
        let mut plaintext = ciphertext.to_vec();
        cipher
            .decrypt_in_place_detached(
                XNonce::from_slice(&how.nonce),
                aad,
                &mut plaintext,
                Tag::from_slice(tag),
            )
            .map_err(|_| unauthentic)?;
        Ok(plaintext)
    }
}

fn cipher(key: &EncryptionKey) -> XChaCha20Poly1305 {
    // The cipher keeps its own copy of the key and wipes it on drop.
    XChaCha20Poly1305::new(chacha20poly1305::Key::from_slice(&key.0[..]))
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current_key_id", &self.current)
            .field("key_ids", &self.ciphers.keys().collect::<Vec<_>>())
            .field("accept_unencrypted", &self.accept_unencrypted)
            .finish()
    }
}
