//! The value every case stores: a typical ~83-byte (bincode) domain object.

use serde::{Deserialize, Serialize};
use std::sync::LazyLock;

use typedkv::codec::Bincode;
use typedkv::envelope::Stamp;
use typedkv::{BoxError, Layout, envelope};

/// A user record like the ones services keep in Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BenchUser {
    id: u64,
    name: String,
    email: String,
    age: u32,
    active: bool,
    tags: Vec<String>,
    score: f64,
    created_at: u64,
}

/// [`BenchUser`] borrowing its text from the bytes it is decoded from: what decoding costs
/// without building the value's own heap parts (only `tags`' vector is allocated).
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // Only decoded, to be measured.
pub(crate) struct BorrowedUser<'a> {
    id: u64,
    name: &'a str,
    email: &'a str,
    age: u32,
    active: bool,
    tags: Vec<&'a str>,
    score: f64,
    created_at: u64,
}

pub(crate) fn sample() -> BenchUser {
    BenchUser {
        id: 4_200_042,
        name: "Alice Example".into(),
        email: "alice.example@example.com".into(),
        age: 37,
        active: true,
        tags: vec!["admin".into(), "beta".into(), "eu-west-1".into()],
        score: 4.75,
        created_at: 1_764_000_000,
    }
}

impl BenchUser {
    /// The sample with another `age` (the field the `find_by` case groups by).
    pub(crate) fn aged(age: u32) -> BenchUser {
        BenchUser { age, ..sample() }
    }

    /// The sample with the id `id`.
    pub(crate) fn numbered(id: u64) -> BenchUser {
        BenchUser { id, ..sample() }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The email, for an equality index.
    pub(crate) fn email(&self) -> &str {
        &self.email
    }

    /// The age, for an equality index.
    pub(crate) fn age(&self) -> u32 {
        self.age
    }

    /// The tags, for an index with several values per entity.
    pub(crate) fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The creation time, for a range index.
    pub(crate) fn created_at(&self) -> u64 {
        self.created_at
    }
}

/// What a store of [`BenchUser`] stamps on its values: schema 1 and the type's layout
/// fingerprint (traced once, as a store does when built).
static STAMP: LazyLock<Stamp> =
    LazyLock::new(|| Stamp::new(1).with_layout(Layout::of::<BenchUser>()));

/// How the store encodes (envelope with schema and layout, buffer reserved at `hint` bytes).
pub(crate) fn typed_encode(value: &BenchUser, hint: usize) -> Result<Vec<u8>, BoxError> {
    envelope::encode(&Bincode::new(), *STAMP, value, hint)
}

/// How the store decodes (the header, schema and layout checked).
pub(crate) fn typed_decode(bytes: &[u8]) -> Result<BenchUser, BoxError> {
    envelope::decode(&Bincode::new(), *STAMP, bytes).map_err(|(problem, _)| problem.into())
}

/// How hand-written code encodes: bincode's own `encode_to_vec` with the standard config.
pub(crate) fn raw_encode(value: &BenchUser) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
}

/// How hand-written code decodes.
pub(crate) fn raw_decode(bytes: &[u8]) -> Result<BenchUser, bincode::error::DecodeError> {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard()).map(|(value, _)| value)
}
