//! Values at rest: what a store does to encoded payloads before storing them (compression,
//! encryption) and undoes after reading them. Each value's header says what was done to it
//! (envelope format 3), so a store reads values written with any of its settings, past or
//! present, and a build without a feature names it instead of misreading the value.
//!
//! Order: encode, compress, encrypt (ciphertext does not compress). The associated data of
//! the encryption is the whole header (codec, schema version, layout, flags, key id, nonce)
//! followed by `namespace:id`, so a value copied to another key, or whose header is changed
//! to claim another schema version, fails to decrypt.

#[cfg(feature = "compression")]
mod compression;
#[cfg(feature = "encryption")]
mod keyring;

use std::borrow::Cow;
#[cfg(feature = "encryption")]
use std::sync::Arc;

#[cfg(feature = "compression")]
pub use self::compression::Compression;
#[cfg(feature = "encryption")]
pub use self::keyring::{EncryptionKey, Keyring};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::Codec;
use crate::envelope::{self, Header, Stamp};
use crate::error::{BoxError, DecodeProblem};

/// The stored value a payload belongs to; authenticated with it when encrypted.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(not(feature = "encryption"), allow(dead_code))]
pub(crate) struct Context<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) id: &'a str,
}

/// One store's settings for values at rest. The default does nothing.
#[derive(Debug, Clone, Default)]
pub(crate) struct AtRest {
    #[cfg(feature = "compression")]
    pub(crate) compression: Option<Compression>,
    #[cfg(feature = "encryption")]
    pub(crate) keyring: Option<Arc<Keyring>>,
}

impl AtRest {
    /// Whether values are stored as encoded (nothing compressed or encrypted).
    pub(crate) fn is_plain(&self) -> bool {
        #[allow(unused_mut)]
        let mut plain = true;
        #[cfg(feature = "compression")]
        {
            plain &= self.compression.is_none();
        }
        #[cfg(feature = "encryption")]
        {
            plain &= self.keyring.is_none();
        }
        plain
    }

    /// Whether a value that is not encrypted is refused.
    pub(crate) fn requires_encryption(&self) -> bool {
        #[cfg(feature = "encryption")]
        if let Some(keyring) = &self.keyring {
            return !keyring.accepts_unencrypted();
        }
        false
    }

    /// The stored form of `payload`: `header` (its seal filled in here) then the payload,
    /// compressed and encrypted as configured. A plain codec's payload (`header.codec == 0`)
    /// that ends up neither compressed nor encrypted is stored as it is, without a header.
    #[cfg_attr(not(feature = "encryption"), allow(unused_variables))]
    #[cfg_attr(not(feature = "compression"), allow(unused_mut))]
    pub(crate) fn seal(
        &self,
        mut header: Header,
        mut payload: Vec<u8>,
        context: Context<'_>,
    ) -> Result<Vec<u8>, BoxError> {
        #[cfg(feature = "compression")]
        if let Some(compression) = &self.compression
            && let Some((compressed, len)) = compression.compress(&payload)
        {
            payload = compressed;
            header.seal.compressed = Some(len);
        }
        #[cfg(feature = "encryption")]
        let keyring = self.keyring.as_deref();
        #[cfg(feature = "encryption")]
        if let Some(keyring) = keyring {
            header.seal.encrypted = Some(keyring.next()?);
        }
        if header.codec == 0 && header.seal.is_plain() {
            return Ok(payload);
        }
        let mut out = Vec::with_capacity(header.encoded_len() + payload.len() + 16);
        header.write(&mut out);
        #[cfg(feature = "encryption")]
        if let (Some(keyring), Some(how)) = (keyring, &header.seal.encrypted) {
            keyring.encrypt(how, &associated_data(&out, context), &mut payload)?;
        }
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// The encoded payload of a stored value whose header is `header` (`header_bytes` long)
    /// and whose payload after it is `body`: decrypted and decompressed as its header says.
    /// Decompression allocates at most `limit` bytes.
    fn open<'b>(
        &self,
        header: &Header,
        header_bytes: &[u8],
        body: &'b [u8],
        limit: usize,
        context: Context<'_>,
    ) -> Result<Cow<'b, [u8]>, DecodeProblem> {
        let payload = match &header.seal.encrypted {
            #[cfg(feature = "encryption")]
            Some(how) => {
                let keyring = self
                    .keyring
                    .as_deref()
                    .ok_or_else(|| envelope::no_keyring(how))?;
                let aad = associated_data(header_bytes, context);
                Cow::Owned(keyring.decrypt(how, &aad, body)?)
            }
            #[cfg(not(feature = "encryption"))]
            Some(how) => {
                let _ = (header_bytes, context);
                return Err(envelope::no_keyring(how));
            }
            None if self.requires_encryption() => return Err(DecodeProblem::NotEncrypted),
            None => Cow::Borrowed(body),
        };
        envelope::decompressed(header, payload, limit)
    }

    /// `value` encoded with `codec` behind a header stamped `stamp`, then compressed and
    /// encrypted as this store says, for the value at `context`. `size_hint` is the expected
    /// length (see [`envelope::encode`]).
    pub(crate) fn encode<C: Codec, T: Serialize + ?Sized>(
        &self,
        codec: &C,
        stamp: Stamp,
        context: Context<'_>,
        value: &T,
        size_hint: usize,
    ) -> Result<Vec<u8>, BoxError> {
        if self.is_plain() {
            return envelope::encode(codec, stamp, value, size_hint);
        }
        let mut payload = Vec::with_capacity(size_hint.max(16));
        codec.encode(value, &mut payload)?;
        let header = Header::new(codec.envelope_id().unwrap_or(0), stamp);
        self.seal(header, payload, context)
    }

    /// [`envelope::decode`] of the value at `context` for a store whose values at rest are as
    /// this says: what was compressed or encrypted is opened.
    pub(crate) fn decode<C: Codec, T: DeserializeOwned>(
        &self,
        codec: &C,
        stamp: Stamp,
        context: Context<'_>,
        bytes: &[u8],
    ) -> Result<T, (DecodeProblem, Option<BoxError>)> {
        let limit = codec.decode_limit();
        envelope::decode_with(
            codec,
            stamp,
            bytes,
            self.requires_encryption(),
            |header, header_bytes, body| self.open(header, header_bytes, body, limit, context),
        )
    }
}

#[cfg(feature = "encryption")]
fn associated_data(header_bytes: &[u8], context: Context<'_>) -> Vec<u8> {
    let mut aad =
        Vec::with_capacity(header_bytes.len() + context.namespace.len() + 1 + context.id.len());
    aad.extend_from_slice(header_bytes);
    aad.extend_from_slice(context.namespace.as_bytes());
    aad.push(b':');
    aad.extend_from_slice(context.id.as_bytes());
    aad
}
