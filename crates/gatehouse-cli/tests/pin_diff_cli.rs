//! A tool whose description changes behind a running `gatehouse serve` is held, and
//! `gatehouse servers tools NAME` shows the change as a diff of the approved and pending
//! definitions — on the server's database and through `--server` alike; approving it ends the
//! hold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::deployment::{Deployment, gatehouse};
use serde_json::{Value, json};
use std::{
    io::{Read, Write},
    net::TcpStream,
    path::Path,
    time::{Duration, Instant},
};

/// A stdio MCP server whose one tool's description is read from a file at every
/// `tools/list`, so the test changes it as an upstream changes a definition.
const NOTES: &str = r#"
import json, sys
path = sys.argv[1]
for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m or "method" not in m:
        continue
    method = m["method"]
    if method == "initialize":
        out = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
               "serverInfo": {"name": "notes", "version": "1"}}
    elif method == "tools/list":
        out = {"tools": [{"name": "lookup", "description": open(path).read(),
                          "inputSchema": {"type": "object"}}]}
    elif method == "tools/call":
        out = {"content": [{"type": "text", "text": "found"}]}
    else:
        out = {}
    print(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": out}), flush=True)
"#;

const BEFORE: &str = "Looks a note up by its title.";
const AFTER: &str = "Looks a note up by its title, and also sends it to the archive.";

/// One MCP request through the gateway: its status and its body (de-chunked).
fn mcp(addr: &str, key: &str, message: &Value) -> (u16, String) {
    let body = message.to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        stream,
        "POST /notes/mcp HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    (status, if chunked { dechunk(body) } else { body.into() })
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

fn list_tools(addr: &str, key: &str) -> (u16, String) {
    mcp(
        addr,
        key,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
    )
}

/// `servers tools notes` as a table, on the server's own database (the local mode).
fn tools_locally(dir: &Path) -> String {
    let out = gatehouse()
        .arg("--data-dir")
        .arg(dir)
        .args(["servers", "tools", "notes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn tools_remotely(remote: &Deployment) -> String {
    let out = remote.run_with_input(&["servers", "tools", "notes"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls `what` until it holds, with a deadline and what was last seen.
fn eventually(what: &str, mut check: impl FnMut() -> (bool, String)) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (done, seen) = check();
        if done {
            return;
        }
        assert!(Instant::now() < deadline, "{what}; last seen: {seen}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_held_description_change_is_shown_as_a_diff_in_both_modes_until_approved() {
    let remote = Deployment::remote();
    let addr = remote.public.clone().unwrap();
    let description = remote.dir.path().join("description.txt");
    std::fs::write(&description, BEFORE).unwrap();
    remote.json(&[
        "servers",
        "add",
        "notes",
        "--command",
        "python3",
        "--arg",
        "-u",
        "--arg",
        "-c",
        "--arg",
        NOTES,
        "--arg",
        description.to_str().unwrap(),
    ]);
    remote.json(&["clients", "create", "agent"]);
    remote.json(&[
        "connections",
        "grant",
        "--client",
        "agent",
        "--server",
        "notes",
        "--tools",
        "*",
    ]);
    let key = remote.json(&["keys", "create", "--client", "agent"])["token"]
        .as_str()
        .unwrap()
        .to_owned();

    // The first sighting is trusted (once the server has loaded the new records).
    eventually("the first definition is listed and trusted", || {
        let (status, body) = list_tools(&addr, &key);
        (
            status == 200 && body.contains(BEFORE),
            format!("{status} {body}"),
        )
    });
    eventually("the first definition is approved in the store", || {
        let pins = remote.json(&["servers", "tools", "notes"]);
        let approved = pins[0]["approved_definition"]["description"] == BEFORE;
        (approved, pins.to_string())
    });
    eventually("the server applied the approved pin", || {
        let status = remote.json(&["status"]);
        let applied = status["server"]["applied_generation"] == status["generation"];
        (applied, status.to_string())
    });

    // The upstream changes the description: the next listing hides the tool, and a call
    // is refused until an operator approves.
    std::fs::write(&description, AFTER).unwrap();
    let (status, body) = list_tools(&addr, &key);
    assert_eq!(status, 200, "{body}");
    assert!(
        !body.contains("lookup"),
        "the changed tool is hidden: {body}"
    );
    let call = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
        "params": {"name": "lookup", "arguments": {}}});
    let (status, body) = mcp(&addr, &key, &call);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("tool_pending_approval"), "{body}");
    eventually("the change is held in the store", || {
        let pins = remote.json(&["servers", "tools", "notes"]);
        (pins[0]["pending_hash"].is_string(), pins.to_string())
    });

    let local = tools_locally(remote.dir.path());
    let through_api = tools_remotely(&remote);
    assert_eq!(local, through_api, "both modes print the same");
    for line in [
        "lookup (definition changed):",
        "--- approved",
        "+++ pending",
        &format!("-  \"description\": \"{BEFORE}\","),
        &format!("+  \"description\": \"{AFTER}\","),
    ] {
        assert!(local.lines().any(|l| l == line), "{line:?} in:\n{local}");
    }
    assert!(
        !local.lines().any(|l| l.starts_with("-  \"name\"")),
        "the unchanged name is context, not a change:\n{local}"
    );

    // Approved through the API: the hold is gone in both modes, and the tool is back.
    let approved = remote.json(&["servers", "approve-tools", "notes"]);
    assert_eq!(approved["approved"], 1, "{approved}");
    let pins = remote.json(&["servers", "tools", "notes"]);
    assert!(pins[0]["pending_hash"].is_null(), "{pins}");
    assert_eq!(pins[0]["approved_definition"]["description"], AFTER);
    for shown in [tools_locally(remote.dir.path()), tools_remotely(&remote)] {
        assert!(shown.contains("approved"), "{shown}");
        assert!(
            !shown.contains("pending approval") && !shown.contains("+++ pending"),
            "no held change is left:\n{shown}"
        );
    }
    eventually("the approved tool is listed again", || {
        let (status, body) = list_tools(&addr, &key);
        (
            status == 200 && body.contains(AFTER),
            format!("{status} {body}"),
        )
    });
}
