//! The guides' shell commands, run as written against the real binaries (only the ports
//! change), so a guide that stops working fails here rather than for a reader.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{net::SocketAddr, path::Path, process::Command};

fn guide(file: &str, heading: &str) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join(file)).unwrap();
    let start = text.find(heading).unwrap();
    let section = &text[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| block[..block.find("```").unwrap()].to_owned())
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn oauth_guide_1_runs_against_the_example_server() {
    let blocks = guide("docs/oauth.md", "## Guide 1");
    assert_eq!(blocks.len(), 2, "setup, then the job's calls");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let example = runtime
        .block_on(gatehouse_example_server::ExampleServer::start(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            tokio_util::sync::CancellationToken::new(),
        ))
        .unwrap();
    let gateway = format!("127.0.0.1:{}", free_port());
    // The example server already runs (in this process, on a free port).
    let setup: String = blocks[0]
        .lines()
        .filter(|line| !line.starts_with("gatehouse-example-server"))
        .map(|line| format!("{line}\n"))
        .collect();
    let setup = setup
        .replace("127.0.0.1:9090", &example.addr().to_string())
        .replace(
            "gatehouse serve &",
            &format!("gatehouse serve --listen {gateway} &"),
        );
    let calls = blocks[1].replace("127.0.0.1:8080", &gateway);
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_gatehouse")).parent().unwrap();
    let script = format!(
        "set -e\ntrap 'kill $(jobs -p) 2>/dev/null' EXIT\n{setup}\
         for _ in $(seq 200); do curl -fs http://{gateway}/healthz >/dev/null && break; sleep 0.05; done\n\
         {calls}\n\
         mcp '{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{{\"name\":\"add\",\"arguments\":{{\"a\":1,\"b\":2}}}}}}'\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(dir.path())
        .env("PATH", path)
        .env_remove("GATEHOUSE_MASTER_KEY")
        .env_remove("GATEHOUSE_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains(r#""content":[{"type":"text","text":"hi"}]"#),
        "the granted call answers: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("tool_not_granted"),
        "the ungranted one is refused: {stdout}"
    );
}
