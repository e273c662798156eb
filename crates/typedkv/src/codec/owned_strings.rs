//! A serde deserializer adapter that builds owned strings and byte buffers from borrowed ones.
//!
//! bincode 2.0.1 decodes an owned `String` or `Vec<u8>` by zero-filling a buffer of the
//! claimed length (`vec![0u8; len]`, i.e. `calloc`) and reading into it. glibc's `calloc`
//! skips its per-thread cache once a process has a second thread, so in any tokio service
//! every decoded string paid for the arena lock. Through this adapter, `deserialize_string`
//! and `deserialize_byte_buf` borrow the bytes from the payload instead and copy them into a
//! buffer of exactly their length (`malloc` + `memcpy`); see BENCHMARKS.md for what it saves.
//!
//! What a type's `Deserialize` sees does not change: the same `Deserializer` methods are
//! answered with the same `Visitor` calls (`visit_string`, `visit_byte_buf`) as bincode's own
//! owned decoding makes, and the stored format is untouched. A side effect is a better bound:
//! a borrowed string must lie inside the payload, so a hostile length prefix fails before
//! anything is allocated.
//!
//! Every other call is passed through unchanged; wrapping the `SeqAccess`, `MapAccess`,
//! `EnumAccess` and seeds that bincode hands out keeps nested values on the same path.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{
    DeserializeOwned, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

/// Deserializes a `T` through [`OwnedStrings`]; for decoders that take a seed.
pub(super) struct Owned<T>(PhantomData<fn() -> T>);

impl<T> Owned<T> {
    pub(super) fn new() -> Self {
        Owned(PhantomData)
    }
}

impl<'de, T: DeserializeOwned> DeserializeSeed<'de> for Owned<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize(OwnedStrings(d))
    }
}

/// The deserializer adapter.
struct OwnedStrings<D>(D);

/// How a wrapped visitor treats borrowed text and bytes.
const PASS: u8 = 0;
/// `visit_borrowed_str`/`visit_str` become `visit_string` with an owned copy.
const OWN_STR: u8 = 1;
/// `visit_borrowed_bytes`/`visit_bytes` become `visit_byte_buf` with an owned copy.
const OWN_BYTES: u8 = 2;

/// A visitor wrapped so that what it is handed is wrapped too.
struct Wrap<V, const MODE: u8>(V);

/// A seed wrapped so that the deserializer it is given is wrapped.
struct Seed<S>(S);

/// Generates pass-through `Deserializer` methods that only wrap the visitor.
macro_rules! forward_deserialize {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {$(
        fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            self.0.$method($($arg,)* Wrap::<V, PASS>(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for OwnedStrings<D> {
    type Error = D::Error;

    forward_deserialize! {
        deserialize_any(); deserialize_bool();
        deserialize_i8(); deserialize_i16(); deserialize_i32(); deserialize_i64(); deserialize_i128();
        deserialize_u8(); deserialize_u16(); deserialize_u32(); deserialize_u64(); deserialize_u128();
        deserialize_f32(); deserialize_f64(); deserialize_char();
        deserialize_str(); deserialize_bytes();
        deserialize_option(); deserialize_unit();
        deserialize_unit_struct(name: &'static str);
        deserialize_newtype_struct(name: &'static str);
        deserialize_seq();
        deserialize_tuple(len: usize);
        deserialize_tuple_struct(name: &'static str, len: usize);
        deserialize_map();
        deserialize_struct(name: &'static str, fields: &'static [&'static str]);
        deserialize_enum(name: &'static str, variants: &'static [&'static str]);
        deserialize_identifier(); deserialize_ignored_any();
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_str(Wrap::<V, OWN_STR>(visitor))
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_bytes(Wrap::<V, OWN_BYTES>(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Generates pass-through `Visitor` methods for values that contain nothing to wrap.
macro_rules! forward_visit {
    ($($method:ident($ty:ty);)*) => {$(
        fn $method<E: serde::de::Error>(self, v: $ty) -> Result<V::Value, E> {
            self.0.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>, const MODE: u8> Visitor<'de> for Wrap<V, MODE> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.expecting(f)
    }

    forward_visit! {
        visit_bool(bool);
        visit_i8(i8); visit_i16(i16); visit_i32(i32); visit_i64(i64); visit_i128(i128);
        visit_u8(u8); visit_u16(u16); visit_u32(u32); visit_u64(u64); visit_u128(u128);
        visit_f32(f32); visit_f64(f64); visit_char(char);
        visit_string(String); visit_byte_buf(Vec<u8>);
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<V::Value, E> {
        match MODE {
            OWN_STR => self.0.visit_string(v.to_owned()),
            _ => self.0.visit_str(v),
        }
    }

    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        match MODE {
            OWN_STR => self.0.visit_string(v.to_owned()),
            _ => self.0.visit_borrowed_str(v),
        }
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<V::Value, E> {
        match MODE {
            OWN_BYTES => self.0.visit_byte_buf(v.to_vec()),
            _ => self.0.visit_bytes(v),
        }
    }

    fn visit_borrowed_bytes<E: serde::de::Error>(self, v: &'de [u8]) -> Result<V::Value, E> {
        match MODE {
            OWN_BYTES => self.0.visit_byte_buf(v.to_vec()),
            _ => self.0.visit_borrowed_bytes(v),
        }
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_none()
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<V::Value, E> {
        self.0.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_some(OwnedStrings(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<V::Value, D::Error> {
        self.0.visit_newtype_struct(OwnedStrings(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.0.visit_seq(Wrap::<A, PASS>(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.0.visit_map(Wrap::<A, PASS>(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<V::Value, A::Error> {
        self.0.visit_enum(Wrap::<A, PASS>(data))
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<S::Value, D::Error> {
        self.0.deserialize(OwnedStrings(d))
    }
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Wrap<A, PASS> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        self.0.next_element_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Wrap<A, PASS> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        self.0.next_key_seed(Seed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        self.0.next_value_seed(Seed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Wrap<A, PASS> {
    type Error = A::Error;
    type Variant = Wrap<A::Variant, PASS>;

    fn variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<(T::Value, Self::Variant), A::Error> {
        let (value, variant) = self.0.variant_seed(Seed(seed))?;
        Ok((value, Wrap(variant)))
    }
}

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Wrap<A, PASS> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), A::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
        self.0.newtype_variant_seed(Seed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, A::Error> {
        self.0.tuple_variant(len, Wrap::<V, PASS>(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        self.0.struct_variant(fields, Wrap::<V, PASS>(visitor))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};
    use std::ffi::CString;
    use std::path::PathBuf;

    use serde::{Deserialize, Serialize};

    use crate::codec::{Bincode, Codec};
    use crate::error::BoxError;

    /// One of everything serde can hand a bincode deserializer.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Everything {
        text: String,
        boxed: Box<str>,
        path: PathBuf,
        c_string: CString,
        maybe: Option<String>,
        nothing: Option<String>,
        list: Vec<Option<String>>,
        tuple: (char, u128, i64, f32, bool),
        map: HashMap<String, Vec<String>>,
        ordered: BTreeMap<u8, (String, ())>,
        unit: Unit,
        wrapped: Wrapped,
        variants: Vec<Variant>,
        raw_bytes: Vec<u8>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Unit;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrapped(String);

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Variant {
        Plain,
        Newtype(String),
        Tuple(String, u8),
        Struct { name: String, tags: Vec<String> },
    }

    fn everything() -> Everything {
        Everything {
            text: "héllo".into(),
            boxed: "boxed".into(),
            path: PathBuf::from("/tmp/ü"),
            c_string: CString::new(vec![1, 2, 3]).unwrap_or_default(),
            maybe: Some("some".into()),
            nothing: None,
            list: vec![None, Some("x".into()), Some(String::new())],
            tuple: ('ß', u128::MAX, -5, 1.5, true),
            map: HashMap::from([("k".into(), vec!["v".into(), "w".into()])]),
            ordered: BTreeMap::from([(7, ("seven".into(), ()))]),
            unit: Unit,
            wrapped: Wrapped("inner".into()),
            variants: vec![
                Variant::Plain,
                Variant::Newtype("n".into()),
                Variant::Tuple("t".into(), 9),
                Variant::Struct {
                    name: "s".into(),
                    tags: vec!["a".into(), "b".into()],
                },
            ],
            raw_bytes: vec![0, 255, 7],
        }
    }

    #[test]
    fn decodes_what_bincode_itself_decodes() -> Result<(), BoxError> {
        let mut bytes = Vec::new();
        Bincode::new().encode(&everything(), &mut bytes)?;
        let ours: Everything = Bincode::new().decode(&bytes)?;
        let (theirs, _): (Everything, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())?;
        assert_eq!(ours, theirs);
        assert_eq!(ours, everything());
        Ok(())
    }

    /// Visitors that only accept owned data still get it: the adapter must not turn
    /// `deserialize_string`/`deserialize_byte_buf` into borrowed visits.
    #[test]
    fn owned_only_visitors_get_owned_data() -> Result<(), BoxError> {
        #[derive(Debug, PartialEq)]
        struct OwnedOnly(String, Vec<u8>);

        struct StringOnly;
        // Deliberately owned-only: such visitors exist, and must keep working.
        #[allow(clippy::serde_api_misuse)]
        impl serde::de::Visitor<'_> for StringOnly {
            type Value = String;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an owned string")
            }
            fn visit_string<E>(self, v: String) -> Result<String, E> {
                Ok(v)
            }
        }

        struct ByteBufOnly;
        impl serde::de::Visitor<'_> for ByteBufOnly {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an owned byte buffer")
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }

        impl<'de> Deserialize<'de> for OwnedOnly {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct Pair;
                impl<'de> serde::de::Visitor<'de> for Pair {
                    type Value = OwnedOnly;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a pair")
                    }
                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<OwnedOnly, A::Error> {
                        let missing = || serde::de::Error::custom("missing element");
                        let text = seq.next_element_seed(Seeded(true))?.ok_or_else(missing)?;
                        let bytes = seq.next_element_seed(Seeded(false))?.ok_or_else(missing)?;
                        match (text, bytes) {
                            (Field::Text(t), Field::Bytes(b)) => Ok(OwnedOnly(t, b)),
                            _ => Err(missing()),
                        }
                    }
                }
                d.deserialize_tuple(2, Pair)
            }
        }

        enum Field {
            Text(String),
            Bytes(Vec<u8>),
        }
        struct Seeded(bool);
        impl<'de> serde::de::DeserializeSeed<'de> for Seeded {
            type Value = Field;
            fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
                if self.0 {
                    d.deserialize_string(StringOnly).map(Field::Text)
                } else {
                    d.deserialize_byte_buf(ByteBufOnly).map(Field::Bytes)
                }
            }
        }

        // A string then a byte string: both are a varint length and the bytes.
        let bytes = [3, b'a', b'b', b'c', 2, 0xFF, 0x00];
        let value: OwnedOnly = Bincode::new().decode(&bytes)?;
        assert_eq!(value, OwnedOnly("abc".into(), vec![0xFF, 0x00]));
        Ok(())
    }

    /// A varint length of 2^60, far beyond the payload. bincode's own owned decoding would
    /// try to allocate it and abort the process; every string and byte-buffer position must
    /// instead fail cleanly, however deeply nested.
    #[test]
    fn hostile_lengths_fail_in_every_position() {
        let mut huge = vec![0xFD];
        huge.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let prefixed = |prefix: &[u8]| [prefix, &huge].concat();
        let codec = Bincode::new();

        assert!(codec.decode::<String>(&huge).is_err());
        assert!(codec.decode::<Box<str>>(&huge).is_err());
        assert!(codec.decode::<PathBuf>(&huge).is_err());
        assert!(codec.decode::<CString>(&huge).is_err());
        assert!(codec.decode::<Wrapped>(&huge).is_err());
        // One element, Some, then the string.
        assert!(
            codec
                .decode::<Vec<Option<String>>>(&prefixed(&[1, 1]))
                .is_err()
        );
        // One entry whose key is the string.
        assert!(
            codec
                .decode::<HashMap<String, u8>>(&prefixed(&[1]))
                .is_err()
        );
        // Variant index 1 (`Newtype`), 3 (`Struct`, first field).
        assert!(codec.decode::<Variant>(&prefixed(&[1])).is_err());
        assert!(codec.decode::<Variant>(&prefixed(&[3])).is_err());
        // A sequence claiming 2^60 elements: serde reserves a bounded amount, then runs out.
        assert!(codec.decode::<Vec<u64>>(&huge).is_err());
    }
}
