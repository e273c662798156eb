#![allow(dead_code)] // The types exist to be traced, never read.

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use serde::Deserialize;

use super::*;

fn description<T: DeserializeOwned>() -> Option<String> {
    trace::trace::<T>().map(|(root, containers)| describe(&root, &containers))
}

mod v1 {
    #[derive(serde::Deserialize)]
    pub(super) struct Scores {
        pub(super) scores: Vec<u8>,
    }
}

mod v2 {
    #[derive(serde::Deserialize)]
    pub(super) struct Scores {
        pub(super) level: u8,
        pub(super) scores: Vec<u8>,
    }

    /// v1's layout under another type name.
    #[derive(serde::Deserialize)]
    pub(super) struct Renamed {
        pub(super) scores: Vec<u8>,
    }

    /// v1's layout with the Rust field renamed but serde's name kept.
    #[derive(serde::Deserialize)]
    pub(super) struct RenamedField {
        #[serde(rename = "scores")]
        pub(super) points: Vec<u8>,
    }
}

/// A field added at the front changes the layout; a renamed type does
/// not, nor a renamed Rust field that keeps its serde name; a renamed serde field does.
#[test]
fn what_changes_the_fingerprint() {
    let v1 = Layout::of::<v1::Scores>();
    assert!(v1.is_some());
    assert_ne!(v1, Layout::of::<v2::Scores>());
    assert_eq!(v1, Layout::of::<v2::Renamed>());
    assert_eq!(v1, Layout::of::<v2::RenamedField>());
    #[derive(Deserialize)]
    struct OtherName {
        points: Vec<u8>,
    }
    assert_ne!(v1, Layout::of::<OtherName>());
    // Widening an integer is a change of layout (bincode happens to read some of them).
    #[derive(Deserialize)]
    struct Wider {
        scores: Vec<u16>,
    }
    assert_ne!(v1, Layout::of::<Wider>());
    // The same type always has the same fingerprint.
    assert_eq!(Layout::of::<v2::Scores>(), Layout::of::<v2::Scores>());
}

#[derive(Deserialize)]
enum Kind {
    Reader,
    Admin { level: u8 },
    Guest(Option<String>),
}

#[derive(Deserialize)]
struct Golden {
    id: u64,
    name: String,
    tags: Vec<String>,
    kind: Kind,
    extra: BTreeMap<String, (i32, f64)>,
}

/// The canonical form is part of the stored format: if this changes, every stored value's
/// fingerprint changes with it. Never update these literals to make the test pass.
#[test]
fn the_canonical_form_and_its_fingerprint_are_stable() {
    assert_eq!(
        description::<Golden>().as_deref(),
        Some(
            "{id:u64,name:str,tags:seq<str>,kind:enum{0=Reader;1=Admin{level:u8,};\
             2=Guest(option<str>);},extra:map<str,tuple(i32,f64,)>,}"
        )
    );
    assert_eq!(
        Layout::of::<Golden>().map(Layout::to_bits),
        Some(GOLDEN_FINGERPRINT)
    );
}

/// The first 8 bytes (little endian) of the SHA-1 of the description above, as Python
/// `hashlib.sha1(d).digest()[:8]` computes them.
const GOLDEN_FINGERPRINT: u64 = 9414272375302169514;

#[derive(Deserialize)]
enum List {
    Cons(u32, Box<List>),
    Nil,
}

#[derive(Deserialize)]
struct Tree {
    value: u32,
    children: Vec<Tree>,
    parent: Option<Box<Tree>>,
}

#[derive(Deserialize)]
enum Expr {
    Add(Box<Expr>, Box<Expr>),
    Neg(Box<Expr>),
    Call { args: Vec<Expr> },
    Lit(i64),
}

/// Types that refer to themselves trace (serde-reflection overflows the stack on `List`,
/// whose first variant recurses), and the recursion is part of the description.
#[test]
fn recursive_types_are_traced() {
    assert_eq!(
        description::<List>().as_deref(),
        Some("enum{0=Cons(u32,rec<0>,);1=Nil;}")
    );
    assert_eq!(
        description::<Tree>().as_deref(),
        Some("{value:u32,children:seq<rec<0>>,parent:option<rec<0>>,}")
    );
    assert!(description::<Expr>().is_some_and(|d| d.contains("Lit(i64)")));
}

#[derive(Deserialize)]
enum Outer {
    A(Middle),
    B,
}

#[derive(Deserialize)]
enum Middle {
    X,
    Y(Inner),
}

#[derive(Deserialize)]
enum Inner {
    P,
    Q(u8),
    R { s: String },
}

/// Every variant of enums nested inside variants is reached.
#[test]
fn nested_enums_are_traced_completely() {
    assert_eq!(
        description::<Outer>().as_deref(),
        Some("enum{0=A(enum{0=X;1=Y(enum{0=P;1=Q(u8);2=R{s:str,};});});1=B;}")
    );
}

/// A date that must parse, and a 16-byte id: validating `Deserialize`s that refuse the first
/// made-up value get the next candidate.
struct Date(String);

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let parts: Vec<&str> = text.split('-').collect();
        match parts.as_slice() {
            [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => Ok(Date(text)),
            _ => Err(serde::de::Error::custom("not a YYYY-MM-DD date")),
        }
    }
}

struct Id16([u8; 16]);

impl<'de> Deserialize<'de> for Id16 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes_like(deserializer)?;
        let id: [u8; 16] = bytes
            .try_into()
            .map_err(|_| serde::de::Error::custom("an id is 16 bytes"))?;
        Ok(Id16(id))
    }
}

fn serde_bytes_like<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    struct Bytes;
    impl serde::de::Visitor<'_> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
    }
    d.deserialize_bytes(Bytes)
}

#[derive(Deserialize)]
struct Validated {
    count: NonZeroU32,
    born: Date,
    id: Id16,
    name: String,
}

#[test]
fn validating_types_are_traced_with_other_made_up_values() {
    assert_eq!(
        description::<Validated>().as_deref(),
        Some("{count:u32,born:str,id:bytes,name:str,}")
    );
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Untagged {
    Number(u32),
    Text(String),
}

/// Types that need a self-describing format cannot be traced: no fingerprint.
#[test]
fn types_needing_deserialize_any_have_no_layout() {
    assert_eq!(Layout::of::<Untagged>(), None);

    #[derive(Deserialize)]
    struct Holding {
        a: u8,
        inner: Untagged,
    }
    assert_eq!(Layout::of::<Holding>(), None);
}

#[test]
fn primitives_and_zero_bits() {
    assert!(Layout::of::<u32>().is_some());
    assert_ne!(Layout::of::<u32>(), Layout::of::<i32>());
    assert_ne!(Layout::of::<String>(), Layout::of::<Vec<u8>>());
    assert_eq!(Layout::from_bits(0), None);
    let layout = Layout::of::<String>();
    assert_eq!(layout.and_then(|l| Layout::from_bits(l.to_bits())), layout);
}
