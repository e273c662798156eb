//! The serde layout of a stored type, and its fingerprint in the envelope.
//!
//! bincode is not self-describing: after a field is added at the front of a struct, old bytes
//! can decode as the new type with every value shifted (`ScoresV1 { scores: [2, 5, 7] }`,
//! stored `03 02 05 07`, reads as `ScoresV2 { level: 3, scores: [5, 7] }`). A schema version
//! only helps if someone remembers to bump it. So each store computes, once when it is built,
//! a fingerprint of its type's serde layout, writes it into the envelope of every value, and
//! refuses (as [`DecodeProblem::LayoutMismatch`](crate::DecodeProblem::LayoutMismatch)) a
//! value whose fingerprint is another one.
//!
//! What the fingerprint covers: the shape of every field and enum variant, in order, with
//! the names serde uses for them (so `#[serde(rename)]` keeps a renamed Rust field's
//! fingerprint), the kind of each primitive (`u32` and `u64` differ), options, sequences,
//! maps, tuples, and where a type refers to itself. Not covered: the names of the types
//! themselves (renaming `UserV2` to `User` changes nothing stored), and anything a custom
//! `Deserialize` does beyond the serde calls it makes.
//!
//! How it is found: `T::deserialize` runs over a tracer that answers each serde
//! call with a made-up value and records what was asked for, as serde-reflection does. Our
//! own, because serde-reflection recurses without end (a stack overflow, which aborts the
//! process) on an enum whose first variant refers to the enum itself. Where a type cannot be
//! traced (it needs `deserialize_any`, as untagged enums and `serde_json::Value` do, or its
//! `Deserialize` refuses every made-up value, or it is too deep), the store has no
//! fingerprint: its values carry none, and reads check the schema version only, as before.

mod trace;

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;

use serde::de::DeserializeOwned;

/// The fingerprint of a type's serde layout (see the [module docs](self)): the first 8 bytes
/// of the SHA-1 digest of a canonical description of the layout. Never zero (zero stands for
/// "no fingerprint" in the envelope).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout(u64);

impl Layout {
    /// The fingerprint of `T`'s layout, or `None` if `T` cannot be traced (see the
    /// [module docs](self)). Traced anew on each call: a store calls it once, when built.
    pub fn of<T: DeserializeOwned>() -> Option<Layout> {
        let (root, containers) = trace::trace::<T>()?;
        Some(Layout::of_description(&describe(&root, &containers)))
    }

    fn of_description(description: &str) -> Layout {
        let digest = sha1_smol::Sha1::from(description).digest().bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        // Zero means "none" in the envelope; a digest starting with 8 zero bytes becomes 1.
        Layout(u64::from_le_bytes(first).max(1))
    }

    /// The fingerprint as stored in an envelope.
    pub fn to_bits(self) -> u64 {
        self.0
    }

    /// A fingerprint read from an envelope; `None` for 0 ("no fingerprint").
    pub fn from_bits(bits: u64) -> Option<Layout> {
        (bits != 0).then_some(Layout(bits))
    }
}

impl fmt::Debug for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Layout({:016x})", self.0)
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The layout of a value, as the tracer recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Shape {
    /// Not recorded (a muted visit, or a call that failed).
    Unknown,
    /// A primitive, by serde's name for it (`u32`, `str`, `bytes`, `unit`, ...).
    Primitive(&'static str),
    Option(Box<Shape>),
    Seq(Box<Shape>),
    Map(Box<Shape>, Box<Shape>),
    Tuple(Vec<Shape>),
    /// A named struct or enum, by its Rust type name (which never reaches the fingerprint).
    Container(&'static str),
}

/// The layout of a named struct or enum.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Container {
    UnitStruct,
    Newtype(Shape),
    TupleStruct(Vec<Shape>),
    Struct(Vec<(&'static str, Shape)>),
    /// Variants by index; `None` until the tracer has visited it.
    Enum(Vec<Option<(&'static str, Variant)>>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Variant {
    Unit,
    Newtype(Shape),
    Tuple(Vec<Shape>),
    Struct(Vec<(&'static str, Shape)>),
}

/// The canonical description of `root`: containers written out where they are used (so type
/// names are left out) and a reference to itself written `rec<n>` (`n` levels up).
fn describe(root: &Shape, containers: &HashMap<&'static str, Container>) -> String {
    let mut out = String::new();
    let mut stack = Vec::new();
    write_shape(&mut out, root, containers, &mut stack);
    out
}

fn write_shape(
    out: &mut String,
    shape: &Shape,
    containers: &HashMap<&'static str, Container>,
    stack: &mut Vec<&'static str>,
) {
    match shape {
        Shape::Unknown => out.push('?'),
        Shape::Primitive(name) => out.push_str(name),
        Shape::Option(inner) => {
            out.push_str("option<");
            write_shape(out, inner, containers, stack);
            out.push('>');
        }
        Shape::Seq(inner) => {
            out.push_str("seq<");
            write_shape(out, inner, containers, stack);
            out.push('>');
        }
        Shape::Map(key, value) => {
            out.push_str("map<");
            write_shape(out, key, containers, stack);
            out.push(',');
            write_shape(out, value, containers, stack);
            out.push('>');
        }
        Shape::Tuple(items) => write_list(out, "tuple(", items, containers, stack),
        Shape::Container(name) => {
            if let Some(up) = stack.iter().rev().position(|seen| seen == name) {
                let _ = write!(out, "rec<{up}>");
                return;
            }
            stack.push(name);
            match containers.get(name) {
                None => out.push('?'),
                Some(Container::UnitStruct) => out.push_str("unit_struct"),
                Some(Container::Newtype(inner)) => {
                    out.push_str("newtype(");
                    write_shape(out, inner, containers, stack);
                    out.push(')');
                }
                Some(Container::TupleStruct(items)) => {
                    write_list(out, "tuple_struct(", items, containers, stack);
                }
                Some(Container::Struct(fields)) => write_fields(out, fields, containers, stack),
                Some(Container::Enum(variants)) => {
                    out.push_str("enum{");
                    for (index, variant) in variants.iter().enumerate() {
                        let _ = write!(out, "{index}=");
                        match variant {
                            None => out.push('?'),
                            Some((name, variant)) => {
                                out.push_str(name);
                                write_variant(out, variant, containers, stack);
                            }
                        }
                        out.push(';');
                    }
                    out.push('}');
                }
            }
            stack.pop();
        }
    }
}

fn write_variant(
    out: &mut String,
    variant: &Variant,
    containers: &HashMap<&'static str, Container>,
    stack: &mut Vec<&'static str>,
) {
    match variant {
        Variant::Unit => {}
        Variant::Newtype(inner) => {
            out.push('(');
            write_shape(out, inner, containers, stack);
            out.push(')');
        }
        Variant::Tuple(items) => write_list(out, "(", items, containers, stack),
        Variant::Struct(fields) => write_fields(out, fields, containers, stack),
    }
}

fn write_list(
    out: &mut String,
    open: &str,
    items: &[Shape],
    containers: &HashMap<&'static str, Container>,
    stack: &mut Vec<&'static str>,
) {
    out.push_str(open);
    for item in items {
        write_shape(out, item, containers, stack);
        out.push(',');
    }
    out.push(')');
}

fn write_fields(
    out: &mut String,
    fields: &[(&'static str, Shape)],
    containers: &HashMap<&'static str, Container>,
    stack: &mut Vec<&'static str>,
) {
    out.push('{');
    for (name, shape) in fields {
        out.push_str(name);
        out.push(':');
        write_shape(out, shape, containers, stack);
        out.push(',');
    }
    out.push('}');
}

#[cfg(test)]
mod tests;
