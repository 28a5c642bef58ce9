//! The node's layering, checked on its source: a module imports only layers at or below
//! its own, and no two files import each other.
//!
//! The crate boundaries enforce the bottom of the stack (`ringdb-core` cannot name storage,
//! `ringdb-storage` cannot name the node); this test enforces the order of the modules inside
//! the node crate, which the compiler does not, and pins what the two bottom crates may
//! depend on. It reads `crate::` and `super::` paths (grouped `use crate::{..}` included),
//! skipping comments and string literals. The layer order is written once, in `LAYERS`, and
//! node/src/lib.rs states the same order.
//!
//! A module's root file (`mod.rs`, `lib.rs`) and its own direct children may name each other:
//! the root declares and re-exports its children, and they use the types it defines. Any
//! other pair of files that import each other is a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The node's modules from the bottom up; a module may import its own layer and those
/// before it. `query` runs document queries (FIND, COUNT, AGGREGATE).
const LAYERS: &[&[&str]] = &[
    &["ring", "version", "merkle", "clock"], // ringdb-core
    &["storage"],                            // ringdb-storage
    &["error"],                              // the request error, over storage's
    &["security"],                           // TLS material, node credentials, token hashes
    &["transport"],
    &["cluster"],
    &["coordinator"],
    &["repair"],
    &["query"],
    &["api"],
    &["server"],
];

/// What the pure cores may depend on: small crates without I/O or an async runtime.
const CORE_MAY_USE: &[&str] = &["bytes", "murmur3", "thiserror"];

/// What the pure query core may depend on: likewise, plus JSON and base64 (page tokens).
const QUERY_MAY_USE: &[&str] = &["base64", "serde_json", "thiserror"];

/// The node's own crates storage may sit on: the pure cores alone (ring, versions, hash
/// trees, clock; and the query core, whose index entries storage keeps).
const STORAGE_MAY_USE: &[&str] = &["ringdb-core", "ringdb-query"];

/// One source file: where it is, its module path in its crate, and its code without
/// comments and string contents (line breaks kept, so line numbers hold).
struct Source {
    path: String,
    module: Vec<String>,
    code: String,
}

/// A `crate::` or `super::` path found in a file, made absolute in its crate.
struct Reference {
    line: usize,
    target: Vec<String>,
}

/// Blank out comments, string and char literals, keeping line breaks.
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let ident = |i: usize| i < c.len() && (c[i].is_alphanumeric() || c[i] == '_');
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        let (ch, next) = (c[i], c.get(i + 1).copied());
        if ch == '/' && next == Some('/') {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && next == Some('*') {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && c.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && c.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if c[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if ch == 'r'
            && matches!(next, Some('"') | Some('#'))
            && (i == 0 || !ident(i - 1) || (c[i - 1] == 'b' && (i < 2 || !ident(i - 2))))
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while c.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if c.get(j) != Some(&'"') {
                // A raw identifier (r#type), not a string.
                out.push(ch);
                i += 1;
                continue;
            }
            j += 1;
            while j < c.len() {
                if c[j] == '"' && (0..hashes).all(|h| c.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                if c[j] == '\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if ch == '"' {
            i += 1;
            while i < c.len() && c[i] != '"' {
                if c[i] == '\\' {
                    i += 1;
                }
                if c.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if ch == '\'' && next == Some('\\') {
            i += 3;
            while i < c.len() && c[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else if ch == '\'' && c.get(i + 2) == Some(&'\'') {
            i += 3;
            out.push_str("' '");
        } else {
            out.push(ch);
            i += 1;
        }
    }
    out
}

/// Every `crate::`/`super::` path in `src`, expanded out of `{..}` groups and made
/// absolute; `super::` inside an inline module (`mod tests { .. }`) first leaves that.
fn references(src: &Source) -> Vec<Reference> {
    let c: Vec<char> = src.code.chars().collect();
    let is_ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut out = Vec::new();
    let (mut depth, mut inline_mods, mut line) = (0usize, Vec::<usize>::new(), 1usize);
    let mut words: Vec<String> = Vec::new(); // the last two words, to spot `mod name {`
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
        }
        if ch == '{' {
            depth += 1;
            if words.len() == 2 && words[0] == "mod" {
                inline_mods.push(depth);
            }
            words.clear();
        } else if ch == '}' {
            if inline_mods.last() == Some(&depth) {
                inline_mods.pop();
            }
            depth = depth.saturating_sub(1);
            words.clear();
        }
        if !is_ident(ch) {
            if !ch.is_whitespace() && ch != '{' {
                words.clear();
            }
            i += 1;
            continue;
        }
        let start = i;
        while i < c.len() && is_ident(c[i]) {
            i += 1;
        }
        let word: String = c[start..i].iter().collect();
        let after_path = start > 0 && (c[start - 1] == ':' || c[start - 1] == '$');
        if (word == "crate" || word == "super") && !after_path && c[i..].starts_with(&[':', ':']) {
            let mut leaves = Vec::new();
            i = parse_path(&c, start, vec![], &mut line, &mut leaves);
            for (segments, at) in leaves {
                if let Some(target) = absolute(&src.module, inline_mods.len(), &segments) {
                    out.push(Reference { line: at, target });
                }
            }
            words.clear();
            continue;
        }
        words.push(word);
        if words.len() > 2 {
            words.remove(0);
        }
    }
    out
}

/// Parse the path starting at `i` (after `prefix`), pushing each full path with its line;
/// returns where it ends.
fn parse_path(
    c: &[char],
    mut i: usize,
    mut prefix: Vec<String>,
    line: &mut usize,
    leaves: &mut Vec<(Vec<String>, usize)>,
) -> usize {
    let skip_ws = |i: &mut usize, line: &mut usize| {
        while *i < c.len() && c[*i].is_whitespace() {
            if c[*i] == '\n' {
                *line += 1;
            }
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i, line);
        if i < c.len() && c[i] == '{' {
            i += 1;
            loop {
                skip_ws(&mut i, line);
                match c.get(i) {
                    Some('}') => return i + 1,
                    Some(',') => i += 1,
                    None => return i,
                    _ => i = parse_path(c, i, prefix.clone(), line, leaves),
                }
            }
        }
        let start = i;
        while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
            i += 1;
        }
        if start == i {
            // `*`, or the end of a path: keep what was read.
            if i < c.len() && c[i] == '*' {
                i += 1;
            }
            break;
        }
        let word: String = c[start..i].iter().collect();
        if word != "self" {
            prefix.push(word);
        }
        if c[i..].starts_with(&[':', ':']) {
            i += 2;
        } else {
            // `as alias` and the rest of the statement are not part of the path.
            break;
        }
    }
    leaves.push((prefix, *line));
    i
}

/// A path made absolute in its crate (`None` when it stays inside its own file).
fn absolute(module: &[String], inline: usize, segments: &[String]) -> Option<Vec<String>> {
    let path = match segments.first().map(String::as_str) {
        Some("crate") => segments[1..].to_vec(),
        Some("super") => {
            let ups = segments.iter().take_while(|s| *s == "super").count();
            if ups <= inline {
                return None;
            }
            let base = module.len().checked_sub(ups - inline)?;
            let mut p = module[..base].to_vec();
            p.extend_from_slice(&segments[ups..]);
            p
        }
        _ => return None,
    };
    (!path.is_empty()).then_some(path)
}

/// The layer of a top-level module of the node crate.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// Every import of a layer above the importing file's, and every module without a layer.
fn upward_imports(crate_files: &[Source]) -> Vec<String> {
    let mut found = Vec::new();
    for src in crate_files {
        let Some(own) = src.module.first() else {
            continue; // lib.rs: the crate root declares and re-exports every layer
        };
        let Some(own_layer) = layer_of(own) else {
            found.push(format!(
                "{}: module `{own}` has no layer; place it in LAYERS",
                src.path
            ));
            continue;
        };
        for r in references(src) {
            let to = &r.target[0];
            match layer_of(to) {
                Some(l) if l <= own_layer => {}
                Some(_) => found.push(format!(
                    "{}:{}: `{own}` imports `{}`, a layer above it",
                    src.path,
                    r.line,
                    r.target.join("::")
                )),
                None => found.push(format!(
                    "{}:{}: `{own}` imports `{}`, which has no layer",
                    src.path,
                    r.line,
                    r.target.join("::")
                )),
            }
        }
    }
    found
}

/// Every pair of files in one crate that import each other, other than a module root and
/// its own child.
fn import_circles(crate_files: &[Source]) -> Vec<String> {
    let by_module: BTreeMap<&[String], usize> = crate_files
        .iter()
        .enumerate()
        .map(|(i, s)| (s.module.as_slice(), i))
        .collect();
    // (from, to) -> first line in `from` naming `to`.
    let mut edges: BTreeMap<(usize, usize), usize> = BTreeMap::new();
    for (from, src) in crate_files.iter().enumerate() {
        for r in references(src) {
            let to = (1..=r.target.len())
                .rev()
                .find_map(|n| by_module.get(&r.target[..n]).copied());
            if let Some(to) = to.filter(|to| *to != from) {
                edges.entry((from, to)).or_insert(r.line);
            }
        }
    }
    let parent_child = |a: &[String], b: &[String]| {
        (a.len() + 1 == b.len() && b.starts_with(a)) || (b.len() + 1 == a.len() && a.starts_with(b))
    };
    let mut found = BTreeSet::new();
    for (&(a, b), &line_a) in &edges {
        let Some(&line_b) = edges.get(&(b, a)) else {
            continue;
        };
        let (sa, sb) = (&crate_files[a], &crate_files[b]);
        if a < b && !parent_child(&sa.module, &sb.module) {
            found.insert(format!(
                "{}:{line_a} and {}:{line_b} import each other",
                sa.path, sb.path
            ));
        }
    }
    found.into_iter().collect()
}

/// The `.rs` files under a crate's `src`, skipping `bin/` (binaries are crates of their own).
fn crate_sources(root: &Path) -> Vec<Source> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|e| e.expect("directory entry").path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n != "bin") {
                    walk(&p, out);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let src = root.join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    let node = node_dir();
    let workspace = node.parent().unwrap_or(&node);
    files
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(&src).expect("under src");
            let mut module: Vec<String> = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()));
            Source {
                path: p
                    .strip_prefix(workspace)
                    .unwrap_or(&p)
                    .display()
                    .to_string(),
                module,
                code: code_only(&text),
            }
        })
        .collect()
}

/// The names under `[dependencies]` in a Cargo.toml.
fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest)
        .unwrap_or_else(|e| panic!("read {}: {e}", manifest.display()));
    let mut in_deps = false;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_deps = line == "[dependencies]";
        } else if in_deps && !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['=', '.', ' ']).next().unwrap_or_default();
            out.push(name.to_string());
        }
    }
    out
}

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn no_node_module_imports_a_layer_above_it() {
    let files = crate_sources(&node_dir());
    // The scan must see the imports every layer is known to make, or it proves nothing.
    let seen: BTreeSet<(String, String)> = files
        .iter()
        .flat_map(|s| {
            let own = s.module.first().cloned().unwrap_or_default();
            references(s)
                .into_iter()
                .map(move |r| (own.clone(), r.target[0].clone()))
        })
        .collect();
    for (from, to) in [
        ("server", "api"),
        ("api", "coordinator"),
        ("repair", "coordinator"),
        ("coordinator", "cluster"),
        ("cluster", "transport"),
        ("cluster", "storage"),
        ("error", "storage"),
    ] {
        assert!(
            seen.contains(&(from.to_string(), to.to_string())),
            "the scan missed `{from}` importing `{to}`"
        );
    }
    let found = upward_imports(&files);
    assert!(found.is_empty(), "upward imports:\n{}", found.join("\n"));
}

#[test]
fn no_two_files_import_each_other() {
    let mut found = Vec::new();
    for dir in [
        node_dir(),
        node_dir().join("core"),
        node_dir().join("storage"),
        node_dir().join("query"),
    ] {
        found.extend(import_circles(&crate_sources(&dir)));
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

#[test]
fn the_bottom_crates_depend_only_on_what_their_layer_allows() {
    let core = dependencies(&node_dir().join("core/Cargo.toml"));
    let impure: Vec<&String> = core
        .iter()
        .filter(|d| !CORE_MAY_USE.contains(&d.as_str()))
        .collect();
    assert!(
        impure.is_empty(),
        "ringdb-core must stay pure, but depends on {impure:?}"
    );
    let query = dependencies(&node_dir().join("query/Cargo.toml"));
    let impure: Vec<&String> = query
        .iter()
        .filter(|d| !QUERY_MAY_USE.contains(&d.as_str()))
        .collect();
    assert!(
        impure.is_empty(),
        "ringdb-query must stay pure, but depends on {impure:?}"
    );
    let storage = dependencies(&node_dir().join("storage/Cargo.toml"));
    let above: Vec<&String> = storage
        .iter()
        .filter(|d| {
            (d.starts_with("ringdb-") && !STORAGE_MAY_USE.contains(&d.as_str()))
                || d.starts_with("tonic")
                || *d == "prost"
        })
        .collect();
    assert!(
        above.is_empty(),
        "ringdb-storage must sit on the pure cores ({STORAGE_MAY_USE:?}) alone, but depends on {above:?}"
    );
    assert!(storage.iter().any(|d| d == "ringdb-core"), "{storage:?}");
}

/// Sources for the checks' own tests.
fn fake(path: &str, code: &str) -> Source {
    let mut module: Vec<String> = path
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    if module.last().is_some_and(|m| m == "mod" || m == "lib") {
        module.pop();
    }
    Source {
        path: path.to_string(),
        module,
        code: code_only(code),
    }
}

#[test]
fn the_checks_find_an_upward_import_and_a_circle_and_nothing_else() {
    let files = vec![
        fake(
            "cluster/mod.rs",
            "//! Docs naming crate::api::Anything are not imports.\n\
             pub mod gossip;\n\
             use crate::ring::Ring;\n\
             const S: &str = \"crate::server::start\";\n\
             use crate::{storage::Storage, coordinator::{hints::Hints, self}};\n",
        ),
        fake(
            "cluster/gossip.rs",
            "use super::Membership;\n\
             use crate::transport::Transport;\n\
             #[cfg(test)]\n\
             mod tests {\n    use super::*;\n    use super::super::Membership as M;\n}\n",
        ),
        fake(
            "coordinator/mod.rs",
            "pub mod hints;\nuse crate::cluster::Membership;\n",
        ),
        fake(
            "coordinator/hints.rs",
            "use crate::cluster::gossip::Thing;\n",
        ),
        fake("coordinator/read.rs", "use super::write::Plan;\n"),
        fake(
            "coordinator/write.rs",
            "fn f() { let c = '{'; }\nuse super::read::Reply;\n",
        ),
    ];
    let up = upward_imports(&files);
    assert_eq!(
        up,
        [
            "cluster/mod.rs:5: `cluster` imports `coordinator::hints::Hints`, a layer above it",
            "cluster/mod.rs:5: `cluster` imports `coordinator`, a layer above it",
        ],
        "{up:#?}"
    );
    let circles = import_circles(&files);
    assert_eq!(
        circles,
        [
            "cluster/mod.rs:5 and coordinator/mod.rs:2 import each other",
            "coordinator/read.rs:1 and coordinator/write.rs:2 import each other",
        ],
        "{circles:#?}"
    );
}
