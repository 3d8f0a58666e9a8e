//! `gatehouse servers add|update --members` (a virtual server, ADR 0006 §4) in both CLI modes:
//! the local database and a running server's admin API print the same server, and refuse a
//! member's removal the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::deployment::Deployment;
use serde_json::json;

fn virtual_server_round(d: &Deployment) {
    for (name, port) in [("files", "9"), ("search", "10")] {
        d.json(&[
            "servers",
            "add",
            name,
            "--url",
            &format!("http://127.0.0.1:{port}/mcp"),
        ]);
    }
    let added = d.json(&["servers", "add", "tools", "--members", "search,files"]);
    let added = added.as_array().map_or(&added, |one| &one[0]);
    assert_eq!(added["members"], json!(["search", "files"]), "{}", d.mode());
    assert_eq!(added["url"], "virtual://tools", "{}", d.mode());

    let updated = d.json(&["servers", "update", "tools", "--members", "files"]);
    let updated = updated.as_array().map_or(&updated, |one| &one[0]);
    assert_eq!(updated["members"], json!(["files"]), "{}", d.mode());

    let out = d.run_with_input(&["servers", "remove", "files"], None);
    assert!(!out.status.success(), "{}: a named member stays", d.mode());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("member of virtual server \"tools\""),
        "{}: {stderr}",
        d.mode()
    );
    let out = d.run_with_input(&["servers", "add", "outer", "--members", "tools"], None);
    assert!(!out.status.success(), "{}: no nesting", d.mode());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("do not nest"),
        "{}",
        d.mode()
    );
}

#[test]
fn a_virtual_server_is_added_changed_and_guarded_locally_and_through_the_admin_api() {
    virtual_server_round(&Deployment::local());
    virtual_server_round(&Deployment::remote());
}
