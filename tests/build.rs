//! Extracts the Rust snippets of README.md into `$OUT_DIR/readme_snippets.rs`, so that
//! `tests/memory/readme.rs` compiles them: the README cannot drift from the API unnoticed.
//!
//! A snippet that starts with a macro call at item level (the testkit's `conformance_tests!`)
//! becomes a module; every other one becomes the body of an `async fn` returning
//! `Result<(), BoxError>`, after [`CONTEXT`]: the bindings the README's prose introduces
//! (types come from the prelude in `tests/memory/readme.rs`).

use std::fmt::Write as _;
use std::path::PathBuf;

/// What the README's snippets use without defining it (a macro could not introduce these
/// names to the snippets: hygiene).
const CONTEXT: &str = r#"    let pool = RedisPool::from_url("redis://127.0.0.1:1")?;
    let users: RedisStore<User> = RedisStore::builder(pool.clone(), "user").build()?;
    let counters: RedisStore<u64> = RedisStore::builder(pool.clone(), "counter").build()?;
    let docs: RedisStore<Doc> = RedisStore::builder(pool.clone(), "doc").build()?;
    let edited = Doc::default();
    let profiles: RedisStore<Profile> = RedisStore::builder(pool.clone(), "profile").build()?;
"#;

fn main() {
    let readme_path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    println!("cargo::rerun-if-changed={}", readme_path.display());
    let readme = std::fs::read_to_string(&readme_path).unwrap_or_default();
    let mut out = String::new();
    let mut snippet: Option<(usize, String)> = None;
    for (number, line) in readme.lines().enumerate() {
        match (&mut snippet, line.trim_end()) {
            (None, "```rust") => snippet = Some((number + 1, String::new())),
            (Some((start, code)), "```") => {
                let _ = match code.trim_start().starts_with("typedkv_testkit::") {
                    true => writeln!(
                        out,
                        "mod readme_line_{start} {{\n    use super::prelude::*;\n{code}}}\n"
                    ),
                    false => writeln!(
                        out,
                        "#[allow(unreachable_code)]\nasync fn readme_line_{start}() -> Result<(), BoxError> {{\n{CONTEXT}{code}    Ok(())\n}}\n"
                    ),
                };
                snippet = None;
            }
            (Some((_, code)), _) => {
                code.push_str(line);
                code.push('\n');
            }
            (None, _) => {}
        }
    }
    let count = readme.matches("```rust").count();
    let _ = writeln!(out, "const SNIPPETS: usize = {count};");
    let out_dir = std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into());
    let _ = std::fs::write(PathBuf::from(out_dir).join("readme_snippets.rs"), out);
}
