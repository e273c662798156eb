//! The library's module structure, checked by reading its `use` lines and paths:
//!
//! - **no cycles**: among the modules of one folder (the top level included), no module
//!   uses one that uses it back, directly or through others;
//! - **layers**: a top-level module uses only modules of its own layer or a lower one
//!   ([`LAYERS`]), so the format and the byte-level contract never depend on the typed
//!   layer or a backend.
//!
//! A module is a file or a folder; a folder's own `mod.rs` only gathers its children, so its
//! uses of them are not counted, nor are a child's uses of its ancestors. Comments, doc
//! links and `#[cfg(test)] mod tests` are not code and are left out.

// A test: its helpers report an unreadable source tree by panicking.
#![allow(clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules, lowest layer first. A module may use its own layer and those
/// before it.
const LAYERS: &[&[&str]] = &[
    &["error", "version", "concern", "options", "layout"],
    &["codec", "keyspace"],
    &["envelope"],
    &["at_rest", "backend"],
    &["index", "update", "load"],
    &["store"],
    &["typed"],
    &["transaction"],
    &["memory", "redis"],
];

/// A module path below the crate root, e.g. `["redis", "batching", "queue"]`.
type Module = Vec<String>;

/// One use of a module by another: where it is written.
#[derive(Debug, Clone)]
struct Use {
    file: PathBuf,
    line: usize,
    text: String,
}

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir` with its module path.
fn modules(dir: &Path, prefix: &Module, out: &mut Vec<(Module, PathBuf)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("the source folder is readable")
        .map(|entry| entry.expect("a readable entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .expect("a UTF-8 file name")
            .to_owned();
        if path.is_dir() {
            let mut module = prefix.clone();
            module.push(name);
            modules(&path, &module, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let module = match name.as_str() {
                "mod" | "lib" => prefix.clone(),
                _ => {
                    let mut module = prefix.clone();
                    module.push(name);
                    module
                }
            };
            out.push((module, path));
        }
    }
}

/// The code of a file: without comments and without its `#[cfg(test)] mod tests`.
fn code(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut all = text.lines().enumerate().peekable();
    while let Some((n, line)) = all.next() {
        let trimmed = line.trim();
        if trimmed == "#[cfg(test)]"
            && all
                .peek()
                .is_some_and(|(_, next)| next.trim_start().starts_with("mod tests"))
        {
            break;
        }
        let without_comment = match line.find("//") {
            // `redis://` in a string is not a comment.
            Some(at) if !line[..at].ends_with(':') => &line[..at],
            _ => line,
        };
        lines.push((n + 1, without_comment.to_owned()));
    }
    lines
}

/// The paths a file names, each as the segments after `crate::` or resolved from
/// `super::`/`self::`, with the line that names it. `use` trees are expanded.
fn paths(module: &Module, text: &str) -> Vec<(Module, usize, String)> {
    let lines = code(text);
    // Join the lines so that a `use` tree over several lines reads as one.
    let mut joined = String::new();
    let mut line_of = Vec::new();
    for (n, line) in &lines {
        joined.push_str(line);
        joined.push('\n');
        line_of.resize(joined.len(), *n);
    }
    let bytes = joined.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &joined[at..];
        let starts_word = at == 0 || !is_ident(bytes[at - 1]) && bytes[at - 1] != b':';
        let root = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|root| rest.starts_with(root));
        let (Some(root), true) = (root, starts_word) else {
            at += 1;
            continue;
        };
        // The folder a `super`/`self` path starts from.
        let mut base: Module = match root {
            "crate::" => Vec::new(),
            "self::" => module.clone(),
            _ => {
                // `super` of a file `a/b.rs` is `a`; of `a/b/mod.rs` it is `a` too.
                let mut parent = module.clone();
                parent.pop();
                parent
            }
        };
        let mut end = at + root.len();
        // Further `super::`s.
        while joined[end..].starts_with("super::") {
            base.pop();
            end += "super::".len();
        }
        let (tree, used) = tree_at(&joined[end..]);
        for tail in expand(&tree) {
            let mut path = base.clone();
            path.extend(tail);
            let line = line_of[at.min(line_of.len() - 1)];
            let text = lines
                .iter()
                .find(|(n, _)| *n == line)
                .map(|(_, text)| text.trim().to_owned())
                .unwrap_or_default();
            found.push((path, line, text));
        }
        at = end + used.max(1);
    }
    found
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The path or `use` tree at the start of `text` (`a::b::{c, d::e}`), and how many bytes it
/// spans.
fn tree_at(text: &str) -> (String, usize) {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut end = 0;
    while end < bytes.len() {
        let byte = bytes[end];
        match byte {
            b'{' => depth += 1,
            b'}' if depth == 0 => break,
            b'}' => depth -= 1,
            b':' => {}
            b',' | b' ' | b'\n' | b'\t' if depth > 0 => {}
            _ if is_ident(byte) || byte == b'*' => {}
            _ => break,
        }
        end += 1;
        if depth == 0 && byte == b'}' {
            break;
        }
    }
    (text[..end].to_owned(), end)
}

/// The paths of a `use` tree, as segments (`a::{b, c::d}` gives `a::b` and `a::c::d`).
fn expand(tree: &str) -> Vec<Vec<String>> {
    let tree = tree.trim().trim_end_matches("::");
    match tree.find('{') {
        None => vec![
            tree.split("::")
                .map(str::trim)
                .filter(|segment| !segment.is_empty() && *segment != "*" && *segment != "self")
                .map(str::to_owned)
                .collect(),
        ],
        Some(open) => {
            let head: Vec<String> = tree[..open]
                .split("::")
                .map(str::trim)
                .filter(|segment| !segment.is_empty())
                .map(str::to_owned)
                .collect();
            let inner = tree[open + 1..].trim_end().trim_end_matches('}');
            let mut out = Vec::new();
            for branch in split_top_level(inner) {
                for tail in expand(&branch) {
                    let mut path = head.clone();
                    path.extend(tail);
                    out.push(path);
                }
            }
            if out.is_empty() {
                out.push(head);
            }
            out
        }
    }
}

/// `inner` split at the commas outside braces.
fn split_top_level(inner: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut current = String::new();
    for ch in inner.chars() {
        match ch {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    parts.push(current);
    parts
        .into_iter()
        .map(|part| part.trim().to_owned())
        .filter(|part| !part.is_empty())
        .collect()
}

/// The module a path names: its longest prefix that is a module of the crate, or, for an
/// item a module re-exports (`pub use child::Item`), the module that defines it.
fn module_of(path: &Module, known: &BTreeSet<Module>, reexports: &Reexports) -> Module {
    let module = (0..=path.len())
        .rev()
        .map(|len| path[..len].to_vec())
        .find(|prefix| known.contains(prefix))
        .unwrap_or_default();
    match path
        .get(module.len())
        .and_then(|item| reexports.get(&(module.clone(), item.clone())))
    {
        Some(source) if source != &module => module_of(source, known, reexports),
        _ => module,
    }
}

/// Items a module re-exports from its children: `(module, name)` to the path it names.
type Reexports = BTreeMap<(Module, String), Module>;

/// The re-exports of every folder's `mod.rs` (and `lib.rs`): `use` lines whose path starts at
/// a child module, with or without `self::`.
fn reexports(files: &[(Module, PathBuf)], known: &BTreeSet<Module>) -> Reexports {
    let mut found = Reexports::new();
    for (module, file) in files {
        let is_mod_file = file
            .file_name()
            .is_some_and(|name| name == "mod.rs" || name == "lib.rs");
        if !is_mod_file {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a readable source file");
        let code: String = code(&text)
            .into_iter()
            .map(|(_, line)| line + "\n")
            .collect();
        for statement in code.split(';') {
            let statement = statement.trim();
            let Some(at) = statement.find("use ") else {
                continue;
            };
            if !statement.starts_with("pub") {
                continue;
            }
            let tree = statement[at + "use ".len()..].trim();
            let tree = tree.strip_prefix("self::").unwrap_or(tree);
            // The crate root re-exports by `crate::` paths.
            let tree = match module.is_empty() {
                true => tree.strip_prefix("crate::").unwrap_or(tree),
                false => tree,
            };
            for path in expand(tree) {
                let Some((last, _)) = path.split_last() else {
                    continue;
                };
                let mut full = module.clone();
                full.extend(path.iter().cloned());
                let child: Module = full[..module.len() + 1].to_vec();
                if !known.contains(&child) {
                    continue;
                }
                // `Item as Alias` is known by its alias.
                let name = last.rsplit(" as ").next().unwrap_or(last).trim().to_owned();
                let (_, source) = full.split_last().expect("a path of at least one segment");
                let mut source = source.to_vec();
                source.push(last.split(" as ").next().unwrap_or(last).trim().to_owned());
                found.insert((module.clone(), name), source);
            }
        }
    }
    found
}

/// Uses between siblings: `(parent, from child, to child)` with where each is written.
type Edges = BTreeMap<(Module, String, String), Vec<Use>>;

fn sibling_edges() -> Edges {
    let mut files = Vec::new();
    modules(&source_root(), &Vec::new(), &mut files);
    let known: BTreeSet<Module> = files.iter().map(|(module, _)| module.clone()).collect();
    let reexports = reexports(&files, &known);
    let mut edges = Edges::new();
    for (module, file) in &files {
        if file.file_name().is_some_and(|name| name == "tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("a readable source file");
        for (path, line, text) in paths(module, &text) {
            let target = module_of(&path, &known, &reexports);
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            // A use of an ancestor or of a descendant is not between siblings.
            if common == module.len() || common == target.len() {
                continue;
            }
            let parent = module[..common].to_vec();
            let key = (parent, module[common].clone(), target[common].clone());
            edges.entry(key).or_default().push(Use {
                file: file
                    .strip_prefix(source_root())
                    .unwrap_or(file)
                    .to_path_buf(),
                line,
                text,
            });
        }
    }
    edges
}

/// The cycles among the children of each folder, each as its modules in order.
fn cycles(edges: &Edges) -> Vec<(Module, Vec<String>)> {
    let mut by_parent: BTreeMap<&Module, BTreeMap<&str, BTreeSet<&str>>> = BTreeMap::new();
    for (parent, from, to) in edges.keys() {
        by_parent
            .entry(parent)
            .or_default()
            .entry(from)
            .or_default()
            .insert(to);
    }
    let mut found = Vec::new();
    for (parent, graph) in by_parent {
        let mut reported = BTreeSet::new();
        for &start in graph.keys() {
            // A path back to `start`, by breadth-first search from its successors.
            let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
            let mut queue: std::collections::VecDeque<&str> = std::collections::VecDeque::new();
            queue.push_back(start);
            let mut closed = false;
            while let Some(node) = queue.pop_front() {
                for &next in graph.get(node).into_iter().flatten() {
                    if next == start {
                        previous.insert(start, node);
                        closed = true;
                        break;
                    }
                    if !previous.contains_key(next) {
                        previous.insert(next, node);
                        queue.push_back(next);
                    }
                }
                if closed {
                    break;
                }
            }
            if !closed {
                continue;
            }
            let mut cycle = vec![start.to_owned()];
            let mut node = previous[start];
            while node != start {
                cycle.push(node.to_owned());
                node = previous[node];
            }
            cycle.reverse();
            let members: BTreeSet<String> = cycle.iter().cloned().collect();
            if reported.insert(members) {
                found.push((parent.clone(), cycle));
            }
        }
    }
    found
}

fn describe(edges: &Edges, parent: &Module, from: &str, to: &str) -> String {
    let uses = &edges[&(parent.clone(), from.to_owned(), to.to_owned())];
    let first = &uses[0];
    format!(
        "    {from} -> {to}: {}:{} `{}`{}",
        first.file.display(),
        first.line,
        first.text,
        match uses.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        }
    )
}

#[test]
fn no_module_uses_one_that_uses_it_back() {
    let edges = sibling_edges();
    let mut report = String::new();
    for (parent, cycle) in cycles(&edges) {
        let folder = if parent.is_empty() {
            "the crate root".to_owned()
        } else {
            parent.join("::")
        };
        report.push_str(&format!("cycle in {folder}: {}\n", cycle.join(" -> ")));
        for (n, from) in cycle.iter().enumerate() {
            let to = &cycle[(n + 1) % cycle.len()];
            report.push_str(&describe(&edges, &parent, from, to));
            report.push('\n');
        }
    }
    assert!(report.is_empty(), "module cycles:\n{report}");
}

#[test]
fn top_level_modules_use_only_their_layer_and_those_below() {
    let layer_of = |name: &str| LAYERS.iter().position(|layer| layer.contains(&name));
    let mut files = Vec::new();
    modules(&source_root(), &Vec::new(), &mut files);
    let top: BTreeSet<&str> = files
        .iter()
        .filter_map(|(module, _)| module.first().map(String::as_str))
        .collect();
    let unplaced: Vec<&&str> = top.iter().filter(|name| layer_of(name).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "top-level modules missing from LAYERS: {unplaced:?}"
    );
    let edges = sibling_edges();
    let mut report = String::new();
    for (parent, from, to) in edges.keys() {
        if !parent.is_empty() {
            continue;
        }
        if layer_of(from) < layer_of(to) {
            report.push_str(&describe(&edges, parent, from, to));
            report.push('\n');
        }
    }
    assert!(report.is_empty(), "uses of a higher layer:\n{report}");
}

#[test]
fn the_reader_expands_use_trees_and_resolves_super() {
    let module: Module = vec!["redis".into(), "batching".into(), "queue".into()];
    let text = "use super::calls::{Call, Sent};\nuse crate::error::{self, Error, nested::{A, B}};\n\
                // use crate::commented::Out;\nfn f() { super::super::shared::Shared::new(); }\n";
    let found: Vec<String> = paths(&module, text)
        .into_iter()
        .map(|(path, _, _)| path.join("::"))
        .collect();
    assert_eq!(
        found,
        [
            "redis::batching::calls::Call",
            "redis::batching::calls::Sent",
            "error",
            "error::Error",
            "error::nested::A",
            "error::nested::B",
            "redis::shared::Shared::new",
        ]
    );
}

#[test]
fn the_checks_find_a_cycle_and_follow_reexports() {
    let module = |path: &str| -> Module { path.split("::").map(str::to_owned).collect() };
    let used = Use {
        file: PathBuf::from("x.rs"),
        line: 1,
        text: String::new(),
    };
    let mut edges = Edges::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        edges.insert(
            (module("redis"), from.into(), to.into()),
            vec![used.clone()],
        );
    }
    let found = cycles(&edges);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].0, module("redis"));
    assert_eq!(found[0].1.len(), 3);

    let known: BTreeSet<Module> = ["redis", "redis::pool", "redis::builder"]
        .into_iter()
        .map(module)
        .collect();
    let mut reexports = Reexports::new();
    reexports.insert(
        (module("redis"), "RedisPool".into()),
        module("redis::pool::RedisPool"),
    );
    assert_eq!(
        module_of(&module("redis::RedisPool::new"), &known, &reexports),
        module("redis::pool")
    );
    assert_eq!(
        module_of(
            &module("redis::builder::RedisPoolBuilder"),
            &known,
            &reexports
        ),
        module("redis::builder")
    );
}
