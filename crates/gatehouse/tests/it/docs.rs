//! docs/errors.md names every reason code the code can emit, so an operator who reads one in
//! a response or the audit trail can look it up.

use std::path::{Path, PathBuf};

fn repo_file(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(path)).unwrap()
}

/// The string literals after `=>` in the body of `fn {name}(&self)` in `source`.
fn match_arms(source: &str, name: &str) -> Vec<String> {
    let start = source
        .find(&format!("fn {name}(&self)"))
        .unwrap_or_else(|| panic!("fn {name} not found"));
    let body = &source[start..];
    let body = &body[..body.find("\n    }\n").unwrap()];
    body.split("=> \"")
        .skip(1)
        .map(|rest| rest[..rest.find('"').unwrap()].to_owned())
        .collect()
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// `"reason": "…"` written directly into bodies (response rewrites, guardrails).
fn literal_reasons() -> Vec<String> {
    let mut files = Vec::new();
    rust_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    let mut reasons = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for rest in text.split("\"reason\": \"").skip(1) {
            reasons.push(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    reasons
}

#[test]
fn every_reason_the_code_emits_is_in_docs_errors_md() {
    let doc = repo_file("docs/errors.md");
    let gateway = match_arms(&repo_file("crates/gatehouse/src/error/mod.rs"), "reason");
    let oauth = match_arms(&repo_file("crates/gatehouse/src/error/oauth.rs"), "code");
    let literal = literal_reasons();
    // Guards against the extraction silently finding nothing after a reformat.
    assert!(gateway.len() >= 25, "{gateway:?}");
    assert!(oauth.len() >= 10, "{oauth:?}");
    assert!(literal.len() >= 2, "{literal:?}");
    let missing: Vec<&String> = gateway
        .iter()
        .chain(&oauth)
        .chain(&literal)
        .filter(|reason| !doc.contains(&format!("`{reason}`")))
        .collect();
    assert!(missing.is_empty(), "not in docs/errors.md: {missing:?}");
}
