//! The library's layers (docs/ARCHITECTURE.md, "Layers"): every top-level module of
//! `crates/gatehouse/src` sits in exactly one layer of [`LAYERS`], and no module refers to a
//! module in a higher layer or takes part in a cycle inside its own layer. Run it alone with
//! `cargo test -p gatehouse --test it layers`.
//!
//! The check reads the sources rather than the compiler's view, so it sees what a reader sees:
//! every `crate::<module>` path (in `use` lines, nested `use crate::{…}` groups and code) and
//! every `super::` chain that climbs to the crate root, in the files reachable from `lib.rs`
//! through `mod` declarations that are not `#[cfg(test)]`. Tests may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Bottom → top. A module may refer to modules in its own layer (without a cycle) and below.
const LAYERS: &[(&str, &[&str])] = &[
    ("foundation", &["secrets", "metrics", "health"]),
    ("configuration", &["config"]),
    ("store", &["store", "change_feed", "replicas"]),
    ("runtime state", &["state"]),
    ("tokens", &["tokens"]),
    ("rules", &["pinning", "policy", "guardrails"]),
    ("grants", &["grants"]),
    ("identity", &["identity"]),
    ("snapshot", &["entries", "snapshot"]),
    ("edge errors", &["error"]),
    ("services", &["audit", "admin"]),
    ("transport", &["upstream", "audit_sinks", "telemetry"]),
    ("federation", &["federation"]),
    ("edge", &["edge"]),
    ("request context", &["context"]),
    ("endpoints", &["oauth", "gateway", "admin_api", "console"]),
    ("composition root", &["app"]),
];

/// Upward references allowed for now: (file, referenced module, why). Empty: every top-level
/// module refers only to its own layer and those below. An entry belongs here only while a
/// move that removes it is under way, with the reason it could not be done at once; the
/// second test fails once the reference is gone, so the list cannot go stale.
#[rustfmt::skip]
const KNOWN_UPWARD: &[(&str, &str, &str)] = &[];

#[test]
fn layers_no_module_refers_upward_or_in_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = read_crate(&src);
    let problems = check(&graph, LAYERS, &allowed());
    assert!(
        problems.is_empty(),
        "{} layering problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn layers_allowlists_name_only_references_that_exist() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = read_crate(&src);
    let stale: Vec<String> = KNOWN_UPWARD
        .iter()
        .filter(|(file, module, _)| {
            !graph
                .references
                .iter()
                .any(|r| r.file == *file && r.target == *module)
        })
        .map(|(file, module, item)| format!("{file} no longer refers to crate::{module} ({item})"))
        .collect();
    assert!(
        stale.is_empty(),
        "remove these entries:\n{}",
        stale.join("\n")
    );
}

fn allowed() -> BTreeSet<(String, String)> {
    KNOWN_UPWARD
        .iter()
        .map(|(file, module, _)| (file.to_string(), module.to_string()))
        .collect()
}

/// One `crate::<target>` reference: the file (relative to `src/`) and its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    file: String,
    line: usize,
    source: String,
    target: String,
}

struct CrateGraph {
    modules: BTreeSet<String>,
    references: Vec<Reference>,
}

fn check(
    graph: &CrateGraph,
    layers: &[(&str, &[&str])],
    allowed: &BTreeSet<(String, String)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut layer_of: BTreeMap<&str, (usize, &str)> = BTreeMap::new();
    for (index, (layer, modules)) in layers.iter().enumerate() {
        for module in *modules {
            if layer_of.insert(module, (index, layer)).is_some() {
                problems.push(format!("module `{module}` is in more than one layer"));
            }
        }
    }
    for module in &graph.modules {
        if !layer_of.contains_key(module.as_str()) {
            problems.push(format!("module `{module}` is in no layer of LAYERS"));
        }
    }
    for module in layer_of.keys() {
        if !graph.modules.contains(*module) {
            problems.push(format!(
                "LAYERS names `{module}`, which lib.rs does not declare"
            ));
        }
    }
    let mut same_layer: BTreeMap<(&str, &str), &Reference> = BTreeMap::new();
    for reference in &graph.references {
        let (Some(&(from, from_layer)), Some(&(to, to_layer))) = (
            layer_of.get(reference.source.as_str()),
            layer_of.get(reference.target.as_str()),
        ) else {
            continue;
        };
        if allowed.contains(&(reference.file.clone(), reference.target.clone())) {
            continue;
        }
        if to > from {
            problems.push(format!(
                "{}:{}: `{}` (layer {from_layer}) refers to crate::{} (layer {to_layer}, above it)",
                reference.file, reference.line, reference.source, reference.target
            ));
        } else if to == from {
            same_layer
                .entry((reference.source.as_str(), reference.target.as_str()))
                .or_insert(reference);
        }
    }
    for cycle in cycles(&same_layer) {
        let path = cycle
            .iter()
            .map(|reference| {
                format!(
                    "{}:{}: `{}` refers to crate::{}",
                    reference.file, reference.line, reference.source, reference.target
                )
            })
            .collect::<Vec<_>>()
            .join("; ");
        let layer = layer_of
            .get(cycle[0].source.as_str())
            .map_or("?", |(_, name)| name);
        problems.push(format!("cycle inside layer {layer}: {path}"));
    }
    problems
}

/// Each cycle among same-layer edges, reported once as the edges that close it.
fn cycles<'a>(edges: &BTreeMap<(&'a str, &'a str), &'a Reference>) -> Vec<Vec<&'a Reference>> {
    let mut found = Vec::new();
    let mut reported: BTreeSet<BTreeSet<&str>> = BTreeSet::new();
    for &(start, _) in edges.keys() {
        // Depth-first search for a path back to `start`.
        let mut stack: Vec<(&str, Vec<&Reference>)> = vec![(start, Vec::new())];
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for (&(from, to), &reference) in edges.range((node, "")..) {
                if from != node {
                    break;
                }
                let mut next = path.clone();
                next.push(reference);
                if to == start {
                    let members: BTreeSet<&str> = next.iter().map(|r| r.source.as_str()).collect();
                    if reported.insert(members) {
                        found.push(next);
                    }
                } else if seen.insert(to) {
                    stack.push((to, next));
                }
            }
        }
    }
    found
}

fn read_crate(src: &Path) -> CrateGraph {
    let root_text = std::fs::read_to_string(src.join("lib.rs")).expect("read lib.rs");
    let root = parse_file(&root_text);
    let modules: BTreeSet<String> = root.children.iter().map(|c| c.name.clone()).collect();
    let reexports = root_reexports(&blank_comments_and_literals(root_text.as_bytes()));
    let mut references = Vec::new();
    let mut pending: Vec<(PathBuf, Vec<String>)> = root
        .children
        .iter()
        .map(|child| (child_file(src, src, child), vec![child.name.clone()]))
        .collect();
    while let Some((file, module_path)) = pending.pop() {
        let text = std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        let parsed = parse_file(&text);
        let relative = file
            .strip_prefix(src)
            .expect("under src")
            .to_string_lossy()
            .replace('\\', "/");
        for mut found in parsed.references_from(&module_path) {
            // `crate::AppState` is a reference to the module lib.rs re-exports it from.
            if let Some(module) = reexports.get(&found.target) {
                found.target = module.clone();
            }
            if found.target != module_path[0] && modules.contains(&found.target) {
                references.push(Reference {
                    file: relative.clone(),
                    line: found.line,
                    source: module_path[0].clone(),
                    target: found.target,
                });
            }
        }
        let dir = module_dir(&file, &module_path);
        for child in &parsed.children {
            let mut child_path = module_path.clone();
            child_path.push(child.name.clone());
            let declaring = file.parent().expect("a file has a folder");
            pending.push((child_file(declaring, &dir, child), child_path));
        }
    }
    references.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    CrateGraph {
        modules,
        references,
    }
}

/// Names lib.rs re-exports (`pub use module::{A, b::C};`), mapped to their module.
fn root_reexports(code: &[u8]) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for at in 0..code.len() {
        if !word_at(code, at, b"use") {
            continue;
        }
        let Some((module, end)) = ident_at(code, skip_space(code, at + 3)) else {
            continue;
        };
        let statement_end = code[end..]
            .iter()
            .position(|&b| b == b';')
            .map_or(code.len(), |p| end + p);
        // The last name of each path in the statement (after `as`, the alias) is what the
        // crate root now answers to.
        let statement = String::from_utf8_lossy(&code[end..statement_end]).into_owned();
        for path in statement.split([',', '{', '}']) {
            if let Some(name) = path
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .rfind(|w| !w.is_empty() && *w != "self")
            {
                names.insert(name.to_string(), module.clone());
            }
        }
    }
    names
}

/// The folder a module's `mod child;` declarations are resolved against.
fn module_dir(file: &Path, module_path: &[String]) -> PathBuf {
    let parent = file.parent().expect("a file has a folder").to_path_buf();
    match file.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs") | Some("lib.rs") => parent,
        _ => parent.join(module_path.last().expect("a module has a name")),
    }
}

/// Where `mod child;` lives: `#[path]` is relative to the declaring file's folder, otherwise
/// `child.rs` or `child/mod.rs` in the module's folder.
fn child_file(declaring: &Path, dir: &Path, child: &ChildModule) -> PathBuf {
    if let Some(path) = &child.path_attribute {
        return declaring.join(path);
    }
    let flat = dir.join(format!("{}.rs", child.name));
    if flat.exists() {
        flat
    } else {
        dir.join(&child.name).join("mod.rs")
    }
}

/// A `mod name;` declaration that is compiled outside tests.
#[derive(Debug, PartialEq, Eq)]
struct ChildModule {
    name: String,
    path_attribute: Option<String>,
}

/// A path that leaves the file's own module: `crate::<target>` or a `super::` chain.
#[derive(Debug, PartialEq, Eq)]
struct RawReference {
    line: usize,
    /// How many `super::` precede the name; `None` for `crate::`.
    supers: Option<usize>,
    target: String,
}

#[derive(Debug)]
struct ParsedFile {
    children: Vec<ChildModule>,
    references: Vec<RawReference>,
}

impl ParsedFile {
    /// The top-level modules this file refers to, given the module path it is compiled as.
    fn references_from(&self, module_path: &[String]) -> Vec<RawReference> {
        self.references
            .iter()
            .filter_map(|r| match r.supers {
                None => Some(RawReference {
                    line: r.line,
                    supers: None,
                    target: r.target.clone(),
                }),
                Some(n) if n == module_path.len() => Some(RawReference {
                    line: r.line,
                    supers: None,
                    target: r.target.clone(),
                }),
                Some(_) => None,
            })
            .collect()
    }
}

fn parse_file(text: &str) -> ParsedFile {
    let original = text.as_bytes();
    let mut code = blank_comments_and_literals(original);
    blank_test_items(&mut code);
    let children = child_modules(&code, original);
    let references = references(&code);
    ParsedFile {
        children,
        references,
    }
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Replaces comments, string and char literals with spaces (newlines kept, so lines still
/// count), so that neither a doc comment nor a message mentioning `crate::x` is a reference.
fn blank_comments_and_literals(src: &[u8]) -> Vec<u8> {
    let mut out = src.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for byte in &mut out[from..to.min(src.len())] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    };
    let mut i = 0;
    while i < src.len() {
        let rest = &src[i..];
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(src.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (0usize, i);
            while j < src.len() {
                if src[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if src[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if (rest.starts_with(b"r#") || rest.starts_with(b"r\"") || rest.starts_with(b"br"))
            && (i == 0 || !is_ident(src[i - 1]))
            && raw_string_hashes(rest).is_some()
        {
            let (prefix, hashes) = raw_string_hashes(rest).unwrap_or((0, 0));
            let mut closing = vec![b'"'];
            closing.extend(std::iter::repeat_n(b'#', hashes));
            let body = i + prefix;
            let end = src[body..]
                .windows(closing.len())
                .position(|w| w == closing.as_slice())
                .map_or(src.len(), |p| body + p + closing.len());
            blank(&mut out, i + prefix - 1, end);
            i = end;
        } else if src[i] == b'"' {
            let mut j = i + 1;
            while j < src.len() && src[j] != b'"' {
                j += if src[j] == b'\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if src[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            let end = if rest.get(1) == Some(&b'\\') {
                rest.iter()
                    .skip(2)
                    .position(|&b| b == b'\'')
                    .map(|p| i + p + 3)
            } else {
                let width = std::str::from_utf8(&rest[1..rest.len().min(5)])
                    .ok()
                    .or_else(|| std::str::from_utf8(&rest[1..2]).ok())
                    .and_then(|s| s.chars().next())
                    .map_or(1, char::len_utf8);
                (rest.get(1 + width) == Some(&b'\'')).then_some(i + width + 2)
            };
            match end {
                Some(end) => {
                    blank(&mut out, i, end);
                    i = end;
                }
                None => i += 1,
            }
        } else if is_ident(src[i]) {
            // Skip a whole identifier so `br` or `r` inside one never starts a literal.
            while i < src.len() && is_ident(src[i]) {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// For `r"`, `r#"`, `br"`, … : the length up to and including the opening quote, and the
/// number of `#`.
fn raw_string_hashes(rest: &[u8]) -> Option<(usize, usize)> {
    let start = if rest.starts_with(b"br") { 2 } else { 1 };
    let hashes = rest[start..].iter().take_while(|&&b| b == b'#').count();
    (rest.get(start + hashes) == Some(&b'"')).then_some((start + hashes + 1, hashes))
}

/// Blanks every item marked `#[cfg(test)]`: a `mod x;` declaration (so its file is never read),
/// a `mod x { … }` block, or any other item up to its `;` or the end of its first block.
fn blank_test_items(code: &mut [u8]) {
    let marker = b"#[cfg(test)]";
    let mut i = 0;
    while i + marker.len() <= code.len() {
        if !matches_compact(code, i, marker) {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = skip_attribute(code, i);
        loop {
            j = skip_space(code, j);
            if code.get(j) == Some(&b'#') {
                j = skip_attribute(code, j);
            } else {
                break;
            }
        }
        let mut depth = 0usize;
        while j < code.len() {
            match code[j] {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        j += 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    j += 1;
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        let end = j.min(code.len());
        for byte in &mut code[start..end] {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
        i = j;
    }
}

/// Whether `code[at..]` spells `pattern`, ignoring whitespace between its characters.
fn matches_compact(code: &[u8], at: usize, pattern: &[u8]) -> bool {
    let mut j = at;
    for &want in pattern {
        while j < code.len() && code[j].is_ascii_whitespace() && !want.is_ascii_whitespace() {
            j += 1;
        }
        if code.get(j) != Some(&want) {
            return false;
        }
        j += 1;
    }
    true
}

fn skip_space(code: &[u8], mut i: usize) -> usize {
    while i < code.len() && code[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// From a `#`, past its balanced `[ … ]`.
fn skip_attribute(code: &[u8], at: usize) -> usize {
    let mut depth = 0usize;
    let mut j = at;
    while j < code.len() {
        match code[j] {
            b'[' => depth += 1,
            b']' => {
                depth -= 1;
                if depth == 0 {
                    return j + 1;
                }
            }
            _ => {}
        }
        j += 1;
    }
    j
}

fn ident_at(code: &[u8], at: usize) -> Option<(String, usize)> {
    let end = at + code[at..].iter().take_while(|&&b| is_ident(b)).count();
    (end > at).then(|| (String::from_utf8_lossy(&code[at..end]).into_owned(), end))
}

fn word_at(code: &[u8], at: usize, word: &[u8]) -> bool {
    code[at..].starts_with(word)
        && (at == 0 || !is_ident(code[at - 1]))
        && code.get(at + word.len()).is_none_or(|&b| !is_ident(b))
}

fn line_of(code: &[u8], at: usize) -> usize {
    1 + code[..at].iter().filter(|&&b| b == b'\n').count()
}

/// `mod name;` declarations (test ones are already blanked), with a `#[path = "…"]` read from
/// the original text since literals are blanked in `code`.
fn child_modules(code: &[u8], original: &[u8]) -> Vec<ChildModule> {
    let mut children = Vec::new();
    for at in 0..code.len() {
        if !word_at(code, at, b"mod") {
            continue;
        }
        let name_at = skip_space(code, at + 3);
        let Some((name, end)) = ident_at(code, name_at) else {
            continue;
        };
        if code.get(skip_space(code, end)) != Some(&b';') {
            continue;
        }
        children.push(ChildModule {
            name,
            path_attribute: path_attribute_before(code, original, at),
        });
    }
    children
}

fn path_attribute_before(code: &[u8], original: &[u8], mod_at: usize) -> Option<String> {
    // The attributes and visibility between the previous item's end and `mod`.
    let item_start = code[..mod_at]
        .iter()
        .rposition(|&b| b == b';' || b == b'}' || b == b'{')
        .map_or(0, |p| p + 1);
    let window = &code[item_start..mod_at];
    let at = (0..window.len()).find(|&i| matches_compact(window, i, b"#[path"))?;
    let quote = item_start
        + at
        + original[item_start + at..mod_at]
            .iter()
            .position(|&b| b == b'"')?;
    let close = quote + 1 + original[quote + 1..].iter().position(|&b| b == b'"')?;
    Some(String::from_utf8_lossy(&original[quote + 1..close]).into_owned())
}

/// Every `crate::name`, `crate::{name::…, other}` and `super::…::name` in `code`.
fn references(code: &[u8]) -> Vec<RawReference> {
    let mut found = Vec::new();
    for at in 0..code.len() {
        if word_at(code, at, b"crate") {
            let after = skip_space(code, at + 5);
            if !code[after..].starts_with(b"::") {
                continue;
            }
            collect_names(code, skip_space(code, after + 2), None, &mut found);
        } else if word_at(code, at, b"super")
            && code[..at].iter().rev().find(|b| !b.is_ascii_whitespace()) != Some(&b':')
        {
            let mut supers = 0;
            let mut j = at;
            while word_at(code, j, b"super") {
                supers += 1;
                let after = skip_space(code, j + 5);
                if !code[after..].starts_with(b"::") {
                    break;
                }
                j = skip_space(code, after + 2);
            }
            if !word_at(code, j, b"super") {
                collect_names(code, j, Some(supers), &mut found);
            }
        }
    }
    found
}

/// The first name of a path, or each first name of a `{ … }` group (its nested groups belong
/// to the names they follow, so they are skipped).
fn collect_names(code: &[u8], at: usize, supers: Option<usize>, found: &mut Vec<RawReference>) {
    if code.get(at) == Some(&b'{') {
        let mut j = at + 1;
        loop {
            j = skip_space(code, j);
            if let Some((name, end)) = ident_at(code, j) {
                if name != "self" {
                    found.push(RawReference {
                        line: line_of(code, j),
                        supers,
                        target: name,
                    });
                }
                j = end;
            }
            // To the next comma at this depth, or the group's end.
            let mut depth = 0usize;
            while j < code.len() {
                match code[j] {
                    b'{' => depth += 1,
                    b'}' if depth == 0 => return,
                    b'}' => depth -= 1,
                    b',' if depth == 0 => break,
                    _ => {}
                }
                j += 1;
            }
            j += 1;
            if j >= code.len() {
                return;
            }
        }
    } else if let Some((name, _)) = ident_at(code, at) {
        found.push(RawReference {
            line: line_of(code, at),
            supers,
            target: name,
        });
    }
}

mod parser;
