//! The header in front of every enveloped value: its layout, read and written in one place.

use crate::error::DecodeProblem;
use crate::layout::Layout;

/// First bytes of every enveloped value.
#[doc(hidden)]
pub const MAGIC: [u8; 3] = [0xC1, b'T', b'K'];
/// The envelope layout of plain values (neither compressed nor encrypted).
#[doc(hidden)]
pub const FORMAT: u8 = 2;
/// Length of a format-2 header.
#[doc(hidden)]
pub const HEADER_LEN: usize = 17;
/// The first envelope layout, still read: no layout fingerprint.
#[doc(hidden)]
pub const FORMAT_V1: u8 = 1;
/// Length of a format-1 header.
#[doc(hidden)]
pub const HEADER_LEN_V1: usize = 9;
/// The envelope layout of compressed or encrypted values: format 2, then a flags byte and
/// what the flags need.
#[doc(hidden)]
pub const FORMAT_SEALED: u8 = 3;
/// Flag: the payload is an LZ4 block; its length before compression follows the flags.
#[doc(hidden)]
pub const FLAG_LZ4: u8 = 0b01;
/// Flag: the payload is encrypted with AES-256-GCM; key id and nonce field follow.
#[doc(hidden)]
pub const FLAG_ENCRYPTED: u8 = 0b10;
/// Length of an encrypted value's nonce field: the writer's 16-byte salt (its subkey), then
/// its 8-byte counter (the GCM nonce).
#[doc(hidden)]
pub const NONCE_LEN: usize = 24;
/// Length of the authentication tag after an encrypted payload.
#[doc(hidden)]
pub const TAG_LEN: usize = 16;

/// What a store writes into the header of every value, and requires of every value it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stamp {
    /// The store's schema version.
    pub schema: u32,
    /// The layout fingerprint of the store's type, if it could be traced.
    pub layout: Option<Layout>,
}

impl Stamp {
    /// A stamp of `schema` without a layout fingerprint: values written with it carry none,
    /// and reading with it checks the schema version only.
    pub const fn new(schema: u32) -> Self {
        Stamp {
            schema,
            layout: None,
        }
    }

    /// The same stamp with `layout`.
    pub const fn with_layout(mut self, layout: Option<Layout>) -> Self {
        self.layout = layout;
        self
    }
}

/// What was done to a payload at rest (format 3); nothing, in formats 1 and 2.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Seal {
    /// LZ4-compressed: the payload's length before compression (after decryption).
    pub compressed: Option<u32>,
    /// Encrypted, under this key and nonce.
    pub encrypted: Option<Encrypted>,
}

impl Seal {
    /// A seal saying the payload was compressed (from `compressed` bytes) and/or encrypted.
    pub const fn new(compressed: Option<u32>, encrypted: Option<Encrypted>) -> Self {
        Seal {
            compressed,
            encrypted,
        }
    }

    /// Whether nothing was done (the value is written in format 2).
    pub fn is_plain(&self) -> bool {
        self.compressed.is_none() && self.encrypted.is_none()
    }
}

/// How an encrypted value was encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Encrypted {
    /// The id of the key in the writer's keyring.
    pub key_id: u32,
    /// The writer's salt (16 bytes) and counter (8 bytes, little endian).
    pub nonce: [u8; NONCE_LEN],
}

impl Encrypted {
    /// Encrypted under the key `key_id` with `nonce`.
    pub const fn new(key_id: u32, nonce: [u8; NONCE_LEN]) -> Self {
        Encrypted { key_id, nonce }
    }
}

/// What a stored header says. Later formats may add fields (`#[non_exhaustive]`): build one
/// with [`Header::new`] and [`Header::with_seal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Header {
    /// Codec id (`0`: a plain codec's payload, enveloped only because it is sealed).
    pub codec: u8,
    /// Schema version and layout fingerprint (`None` in format 1, or when the writer's type
    /// had none).
    pub stamp: Stamp,
    /// Compression and encryption (format 3).
    pub seal: Seal,
}

impl Header {
    /// A header of a plain value.
    pub const fn new(codec: u8, stamp: Stamp) -> Self {
        Header {
            codec,
            stamp,
            seal: Seal::new(None, None),
        }
    }

    /// The same header for a payload sealed as `seal` says (format 3 when it is not plain).
    pub const fn with_seal(mut self, seal: Seal) -> Self {
        self.seal = seal;
        self
    }

    /// Reads the header at the start of `bytes` (format 1, 2 or 3); returns it and the
    /// payload after it.
    pub fn parse(bytes: &[u8]) -> Result<(Header, &[u8]), DecodeProblem> {
        if !bytes.starts_with(&MAGIC) {
            // A prefix of the magic that ends early is a truncated header, not foreign bytes.
            return Err(if !bytes.is_empty() && MAGIC.starts_with(bytes) {
                DecodeProblem::TruncatedHeader { len: bytes.len() }
            } else {
                DecodeProblem::NotEnveloped
            });
        }
        let truncated = || DecodeProblem::TruncatedHeader { len: bytes.len() };
        // One fixed-size read of the fixed part: this runs on every decode.
        let (fixed, rest, layout) = match bytes.get(3) {
            Some(&(FORMAT | FORMAT_SEALED)) => {
                let (fixed, rest) = bytes
                    .split_first_chunk::<HEADER_LEN>()
                    .ok_or_else(truncated)?;
                let bits = u64::from_le_bytes([
                    fixed[9], fixed[10], fixed[11], fixed[12], fixed[13], fixed[14], fixed[15],
                    fixed[16],
                ]);
                (&fixed[..], rest, Layout::from_bits(bits))
            }
            Some(&FORMAT_V1) => {
                let (fixed, rest) = bytes
                    .split_first_chunk::<HEADER_LEN_V1>()
                    .ok_or_else(truncated)?;
                (&fixed[..], rest, None)
            }
            Some(&found) => return Err(DecodeProblem::UnknownEnvelope { found }),
            None => return Err(truncated()),
        };
        let schema = u32::from_le_bytes([fixed[5], fixed[6], fixed[7], fixed[8]]);
        let mut header = Header::new(fixed[4], Stamp { schema, layout });
        if fixed[3] != FORMAT_SEALED {
            return Ok((header, rest));
        }
        let (&flags, mut rest) = rest.split_first().ok_or_else(truncated)?;
        if flags & !(FLAG_LZ4 | FLAG_ENCRYPTED) != 0 || flags == 0 {
            return Err(DecodeProblem::UnknownFlags { flags });
        }
        if flags & FLAG_LZ4 != 0 {
            let (len, after) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
            header.seal.compressed = Some(u32::from_le_bytes(*len));
            rest = after;
        }
        if flags & FLAG_ENCRYPTED != 0 {
            let (key_id, after) = rest.split_first_chunk::<4>().ok_or_else(truncated)?;
            let (nonce, after) = after
                .split_first_chunk::<NONCE_LEN>()
                .ok_or_else(truncated)?;
            header.seal.encrypted = Some(Encrypted {
                key_id: u32::from_le_bytes(*key_id),
                nonce: *nonce,
            });
            rest = after;
        }
        Ok((header, rest))
    }

    /// Length of this header as [`Header::write`] writes it.
    pub fn encoded_len(&self) -> usize {
        if self.seal.is_plain() {
            return HEADER_LEN;
        }
        let compressed = if self.seal.compressed.is_some() { 4 } else { 0 };
        let encrypted = if self.seal.encrypted.is_some() {
            4 + NONCE_LEN
        } else {
            0
        };
        HEADER_LEN + 1 + compressed + encrypted
    }

    /// Appends the header to `out`: format 2 for a plain value, 3 for a sealed one.
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut fixed = [0u8; HEADER_LEN];
        fixed[..3].copy_from_slice(&MAGIC);
        fixed[3] = if self.seal.is_plain() {
            FORMAT
        } else {
            FORMAT_SEALED
        };
        fixed[4] = self.codec;
        fixed[5..9].copy_from_slice(&self.stamp.schema.to_le_bytes());
        let layout = self.stamp.layout.map_or(0, Layout::to_bits);
        fixed[9..].copy_from_slice(&layout.to_le_bytes());
        out.extend_from_slice(&fixed);
        if self.seal.is_plain() {
            return;
        }
        let mut flags = 0;
        if self.seal.compressed.is_some() {
            flags |= FLAG_LZ4;
        }
        if self.seal.encrypted.is_some() {
            flags |= FLAG_ENCRYPTED;
        }
        out.push(flags);
        if let Some(len) = self.seal.compressed {
            out.extend_from_slice(&len.to_le_bytes());
        }
        if let Some(encrypted) = self.seal.encrypted {
            out.extend_from_slice(&encrypted.key_id.to_le_bytes());
            out.extend_from_slice(&encrypted.nonce);
        }
    }
}
