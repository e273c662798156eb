//! Encryption keys and the keyring a store encrypts with (feature `encryption`).
//!
//! AES-256-GCM, under subkeys: each keyring draws a random 128-bit salt at its first write
//! and derives its write key from the current key with HKDF-SHA256 and that salt; nonces
//! are then a 64-bit counter. The salt and the counter are stored in the value's header
//! (its 24-byte nonce field), so readers derive the same subkey (cached per salt). Nonces
//! are thus unique within a subkey by the counter, and subkeys are unique across processes
//! by the salt: any number of processes share a key without coordinating, and without
//! GCM's limit of ~2^32 random 96-bit nonces per key.
//!
//! Measured for 83 bytes, encrypt and decrypt on the benchmark's VM: RustCrypto's
//! AES-256-GCM 0.36–0.43 µs, XChaCha20-Poly1305 4.2–4.8 µs and ChaCha20-Poly1305 3.1–3.6 µs
//! (a large fixed cost per message), ring's AES-256-GCM 0.21 µs (ring does not wipe its key
//! schedules; RustCrypto's `aes` does with its `zeroize` feature). See BENCHMARKS.md.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{AeadInPlace, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::envelope::{Encrypted, NONCE_LEN, TAG_LEN};
use crate::error::{BoxError, DecodeProblem, Error, Result};

/// Length of the random salt at the start of a stored nonce field; the rest is the counter.
const SALT_LEN: usize = NONCE_LEN - 8;

/// Derived keys kept for reading; past this many, the cache starts over.
const READ_KEYS_CACHED: usize = 1024;

/// What subkeys are derived for (HKDF's `info`): another use of the same key with another
/// label can never derive the same subkey.
const SUBKEY_LABEL: &[u8] = b"typedkv value encryption v1";

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
    keys: BTreeMap<u32, EncryptionKey>,
    accept_unencrypted: bool,
    /// The key of index terms (see `index/terms.rs`), if the store has indexes.
    index_key: Option<EncryptionKey>,
    /// This keyring's write subkey, derived at its first write.
    writer: OnceLock<Writer>,
    /// Subkeys derived to read values other keyrings wrote, by key id and salt.
    readers: RwLock<Subkeys>,
}

/// Subkeys by key id and salt.
type Subkeys = HashMap<(u32, [u8; SALT_LEN]), Arc<Aes256Gcm>>;

/// The subkey this keyring writes with, and its nonce counter.
struct Writer {
    salt: [u8; SALT_LEN],
    cipher: Arc<Aes256Gcm>,
    counter: AtomicU64,
}

impl Keyring {
    /// A keyring whose current key, used for every write, is `key` with id `id`.
    pub fn new(id: u32, key: EncryptionKey) -> Self {
        Keyring {
            current: id,
            keys: BTreeMap::from([(id, key)]),
            accept_unencrypted: false,
            index_key: None,
            writer: OnceLock::new(),
            readers: RwLock::default(),
        }
    }

    /// Adds a key that values may still be encrypted under: readable, never used to write.
    /// An id already in the ring is refused.
    pub fn with_old_key(mut self, id: u32, key: EncryptionKey) -> Result<Self> {
        if self.keys.contains_key(&id) {
            return Err(Error::InvalidConfig {
                reason: format!("key id {id} is in the keyring twice"),
                source: None,
            });
        }
        self.keys.insert(id, key);
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

    /// The key that equality and unique [indexes](crate::Index) of an encrypted store hash
    /// their values with (HMAC-SHA256), so that their entries do not hold the values in
    /// clear. Required by encrypted stores with indexes. It is not rotated with the value
    /// keys: replacing it means rebuilding the indexes
    /// ([`TypedStore::rebuild_indexes`](crate::TypedStore::rebuild_indexes)) with the new one.
    pub fn with_index_key(mut self, key: EncryptionKey) -> Self {
        self.index_key = Some(key);
        self
    }

    /// The id of the key new values are encrypted under.
    pub fn current_key_id(&self) -> u32 {
        self.current
    }

    /// The ids of every key in the ring, ascending.
    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    pub(crate) fn accepts_unencrypted(&self) -> bool {
        self.accept_unencrypted
    }

    /// The key under which the indexes of a store encrypting with this keyring hash their
    /// values (`index/terms.rs`), if it has one.
    pub(crate) fn index_key(&self) -> Option<&[u8]> {
        self.index_key.as_ref().map(|key| &key.0[..])
    }

    /// The current key and a nonce never used before: this keyring's salt and the next
    /// value of its counter.
    pub(crate) fn next(&self) -> std::result::Result<Encrypted, BoxError> {
        let writer = self.writer()?;
        let counter = writer.counter.fetch_add(1, Ordering::Relaxed);
        if counter == u64::MAX {
            return Err("this keyring has used all its nonces: build a new one".into());
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce[..SALT_LEN].copy_from_slice(&writer.salt);
        nonce[SALT_LEN..].copy_from_slice(&counter.to_le_bytes());
        Ok(Encrypted {
            key_id: self.current,
            nonce,
        })
    }

    /// The write subkey, derived at the first call.
    fn writer(&self) -> std::result::Result<&Writer, BoxError> {
        if let Some(writer) = self.writer.get() {
            return Ok(writer);
        }
        let mut salt = [0u8; SALT_LEN];
        OsRng
            .try_fill_bytes(&mut salt)
            .map_err(|e| format!("the operating system's random generator failed: {e}"))?;
        let key = self
            .keys
            .get(&self.current)
            .ok_or("the current key is not in the keyring")?;
        let writer = Writer {
            salt,
            cipher: Arc::new(subkey(key, &salt)?),
            counter: AtomicU64::new(0),
        };
        // Two first writes racing: one writer wins, and both use it.
        Ok(self.writer.get_or_init(|| writer))
    }

    /// The subkey of a value encrypted as `how` says.
    fn cipher(&self, how: &Encrypted) -> std::result::Result<Arc<Aes256Gcm>, DecodeProblem> {
        let (salt, _) = split(how);
        if let Some(writer) = self.writer.get()
            && how.key_id == self.current
            && writer.salt == salt
        {
            return Ok(Arc::clone(&writer.cipher));
        }
        let key = self
            .keys
            .get(&how.key_id)
            .ok_or(DecodeProblem::UnknownKeyId { id: how.key_id })?;
        let id = (how.key_id, salt);
        let cached = self.readers.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(cipher) = cached.get(&id) {
            return Ok(Arc::clone(cipher));
        }
        drop(cached);
        let cipher = Arc::new(
            subkey(key, &salt).map_err(|_| DecodeProblem::Unauthentic { key_id: how.key_id })?,
        );
        let mut cache = self.readers.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= READ_KEYS_CACHED {
            cache.clear();
        }
        cache.insert(id, Arc::clone(&cipher));
        Ok(cipher)
    }

    /// Encrypts `payload` in place and appends the tag.
    pub(crate) fn encrypt(
        &self,
        how: &Encrypted,
        aad: &[u8],
        payload: &mut Vec<u8>,
    ) -> std::result::Result<(), BoxError> {
        let cipher = self.cipher(how).map_err(|problem| problem.to_string())?;
        let tag = cipher
            .encrypt_in_place_detached(&gcm_nonce(how), aad, payload)
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
        let cipher = self.cipher(how)?;
        let unauthentic = DecodeProblem::Unauthentic { key_id: how.key_id };
        let split = sealed
            .len()
            .checked_sub(TAG_LEN)
            .ok_or(unauthentic.clone())?;
        let (ciphertext, tag) = sealed.split_at(split);
        let mut plaintext = ciphertext.to_vec();
        cipher
            .decrypt_in_place_detached(&gcm_nonce(how), aad, &mut plaintext, Tag::from_slice(tag))
            .map_err(|_| unauthentic)?;
        Ok(plaintext)
    }
}

/// The salt and the counter of a stored nonce field.
fn split(how: &Encrypted) -> ([u8; SALT_LEN], [u8; 8]) {
    let mut salt = [0u8; SALT_LEN];
    let mut counter = [0u8; 8];
    salt.copy_from_slice(&how.nonce[..SALT_LEN]);
    counter.copy_from_slice(&how.nonce[SALT_LEN..]);
    (salt, counter)
}

/// GCM's 96-bit nonce: four zero bytes, then the counter.
fn gcm_nonce(how: &Encrypted) -> Nonce<aes_gcm::aead::consts::U12> {
    let (_, counter) = split(how);
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter);
    nonce.into()
}

/// The AES-256-GCM subkey of `key` for `salt` (HKDF-SHA256).
fn subkey(key: &EncryptionKey, salt: &[u8; SALT_LEN]) -> std::result::Result<Aes256Gcm, BoxError> {
    let mut okm = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(Some(salt), &key.0[..])
        .expand(SUBKEY_LABEL, &mut okm[..])
        .map_err(|_| "HKDF cannot derive a 32-byte key")?;
    Ok(Aes256Gcm::new_from_slice(&okm[..]).map_err(|_| "AES-256 needs a 32-byte key")?)
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current_key_id", &self.current)
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("accept_unencrypted", &self.accept_unencrypted)
            .field("index_key", &self.index_key.is_some())
            .finish()
    }
}
