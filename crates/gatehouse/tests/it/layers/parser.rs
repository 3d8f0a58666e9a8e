//! Unit tests of the layers check itself: the parser and the rule.

use super::*;

fn targets(text: &str) -> Vec<(usize, String)> {
    let parsed = parse_file(text);
    parsed
        .references_from(&["here".to_string()])
        .into_iter()
        .map(|r| (r.line, r.target))
        .collect()
}

#[test]
fn layers_parser_reads_nested_groups_code_paths_and_top_level_super() {
    let text = "use crate::{\n    alpha::{One, two::Three},\n    beta,\n    self,\n};\n\
                fn f() { let _ = crate::gamma::make(); }\n\
                use super::delta::X;\n";
    assert_eq!(
        targets(text),
        vec![
            (2, "alpha".to_string()),
            (3, "beta".to_string()),
            (6, "gamma".to_string()),
            (7, "delta".to_string()),
        ]
    );
}

#[test]
fn layers_parser_skips_tests_comments_and_literals() {
    let text = "// crate::comment\n/// crate::doc\nconst S: &str = \"crate::string\";\n\
                const R: &str = r#\"crate::raw\"#;\nfn f<'a>(x: &'a str) -> char { 'c' }\n\
                #[cfg(test)]\nmod tests {\n    use crate::tested;\n    fn g() { crate::also(); }\n}\n\
                #[cfg(test)]\n#[path = \"x_tests.rs\"]\nmod x_tests;\n\
                use crate::kept;\n";
    assert_eq!(targets(text), vec![(14, "kept".to_string())]);
    assert!(
        parse_file(text).children.is_empty(),
        "a test-only file is never read"
    );
}

#[test]
fn layers_parser_maps_root_reexports_to_their_module() {
    let code = blank_comments_and_literals(
        b"pub mod ctx;\npub use ctx::{AppState, inner::Other as Alias};\npub use cfg::Config;\n",
    );
    let names = root_reexports(&code);
    assert_eq!(names.get("AppState").map(String::as_str), Some("ctx"));
    assert_eq!(names.get("Alias").map(String::as_str), Some("ctx"));
    assert_eq!(names.get("Config").map(String::as_str), Some("cfg"));
    assert_eq!(names.get("Other"), None);
}

#[test]
fn layers_parser_finds_child_modules_and_their_path_attributes() {
    let text = "pub mod a;\n#[path = \"b_impl.rs\"]\nmod b;\nmod inline { }\n";
    assert_eq!(
        parse_file(text).children,
        vec![
            ChildModule {
                name: "a".to_string(),
                path_attribute: None
            },
            ChildModule {
                name: "b".to_string(),
                path_attribute: Some("b_impl.rs".to_string())
            },
        ]
    );
}

#[test]
fn layers_check_names_the_upward_reference_and_the_cycle() {
    let reference = |source: &str, target: &str, line| Reference {
        file: format!("{source}.rs"),
        line,
        source: source.to_string(),
        target: target.to_string(),
    };
    let graph = CrateGraph {
        modules: ["low", "mid", "peer", "top"].map(String::from).into(),
        references: vec![
            reference("low", "top", 3),
            reference("mid", "peer", 4),
            reference("peer", "mid", 5),
            reference("top", "low", 6),
        ],
    };
    let layers: &[(&str, &[&str])] = &[
        ("bottom", &["low"]),
        ("middle", &["mid", "peer"]),
        ("roof", &["top"]),
    ];
    let problems = check(&graph, layers, &BTreeSet::new());
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert_eq!(
        problems[0],
        "low.rs:3: `low` (layer bottom) refers to crate::top (layer roof, above it)"
    );
    assert!(
        problems[1].starts_with("cycle inside layer middle: "),
        "{problems:?}"
    );
    assert!(problems[1].contains("mid.rs:4") && problems[1].contains("peer.rs:5"));
    let allowed = [("low.rs".to_string(), "top".to_string())].into();
    assert_eq!(check(&graph, layers, &allowed).len(), 1);
}
