//! Value types the suite stores.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// A struct with the shapes real domain objects have: nested `Vec`, `Option`, enums and
/// maps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Plain field.
    pub name: String,
    /// Integer.
    pub age: u32,
    /// Optional nested struct.
    pub address: Option<Address>,
    /// Vector of enums.
    pub roles: Vec<Role>,
    /// Map of vectors.
    pub scores: HashMap<String, Vec<i64>>,
    /// Optional float.
    pub rating: Option<f64>,
}

/// Nested struct of [`Profile`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Address {
    /// Street.
    pub street: String,
    /// Optional postcode.
    pub postcode: Option<String>,
}

/// Enum with unit, tuple and struct variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Role {
    /// Unit variant.
    Reader,
    /// Tuple variant.
    Editor(Vec<String>),
    /// Struct variant.
    Admin {
        /// Level.
        level: u8,
    },
}

/// A populated [`Profile`]; `seed` varies the content.
pub fn profile(seed: u32) -> Profile {
    Profile {
        name: format!("user-{seed}"),
        age: 20 + seed,
        address: seed.is_multiple_of(2).then(|| Address {
            street: format!("{seed} Main St"),
            postcode: Some("12345".into()),
        }),
        roles: vec![
            Role::Reader,
            Role::Editor(vec!["docs".into(), format!("team-{seed}")]),
            Role::Admin { level: 3 },
        ],
        scores: HashMap::from([
            ("math".to_owned(), vec![1, -2, i64::from(seed)]),
            ("empty".to_owned(), vec![]),
        ]),
        rating: Some(4.5),
    }
}
