//! `gatehouse servers add|update --per-user-discover`: the upstream's authorization server found
//! by its metadata and Gatehouse registered there once, the registration kept across commands
//! (each its own process), and a server that offers no way to register refused with what it
//! lacks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use serde_json::{Value, json};
use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpListener,
    process::{Command, Output},
    sync::{Arc, Mutex},
};

/// A stand-in authorization server over plain HTTP/1.1: its metadata, and a registration
/// endpoint when `registration` is set. Registration bodies are kept in order.
struct StandIn {
    base: String,
    registrations: Arc<Mutex<Vec<Value>>>,
}

fn stand_in(registration: bool) -> StandIn {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let registrations = Arc::new(Mutex::new(Vec::new()));
    let (issuer, kept) = (base.clone(), registrations.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let mut stream = stream.unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let mut length = 0;
            loop {
                let mut header = String::new();
                reader.read_line(&mut header).unwrap();
                if header.trim().is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let (status, answer) =
                if line.starts_with("GET /.well-known/oauth-authorization-server ") {
                    let mut metadata = json!({
                        "issuer": issuer,
                        "authorization_endpoint": format!("{issuer}/authorize"),
                        "token_endpoint": format!("{issuer}/token"),
                        "code_challenge_methods_supported": ["S256"],
                    });
                    if registration {
                        metadata["registration_endpoint"] = json!(format!("{issuer}/register"));
                    }
                    ("200 OK", metadata)
                } else if registration && line.starts_with("POST /register ") {
                    let request: Value = serde_json::from_slice(&body).unwrap();
                    let mut kept = kept.lock().unwrap();
                    kept.push(request);
                    (
                        "201 Created",
                        json!({ "client_id": format!("dyn-{}", kept.len()) }),
                    )
                } else {
                    ("404 Not Found", json!({}))
                };
            let text = answer.to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 connection: close\r\n\r\n{text}",
                text.len()
            );
        }
    });
    StandIn {
        base,
        registrations,
    }
}

fn gatehouse(dir: &tempfile::TempDir, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--data-dir")
        .arg(dir.path())
        .arg("--output")
        .arg("json")
        .args(args)
        .env_remove("GATEHOUSE_MASTER_KEY")
        .env("GATEHOUSE_PUBLIC_URL", "https://gatehouse.example")
        .output()
        .unwrap()
}

fn server(out: Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(mut one) if one.len() == 1 => one.remove(0),
        other => other,
    }
}

#[test]
fn a_per_user_server_is_registered_once_and_kept_across_commands() {
    let saas = stand_in(true);
    let dir = tempfile::tempdir().unwrap();
    let added = server(gatehouse(
        &dir,
        &[
            "servers",
            "add",
            "files",
            "--url",
            "http://127.0.0.1:9/mcp",
            "--per-user-discover",
            "--upstream-issuer",
            &saas.base,
        ],
    ));
    let auth = &added["upstream_auth"];
    assert_eq!(auth["registration"], "dynamic", "{added}");
    assert_eq!(auth["client_id"], "dyn-1");
    assert_eq!(auth["issuer"], json!(saas.base));
    assert_eq!(
        auth["token_endpoint"],
        json!(format!("{}/token", saas.base))
    );
    assert_eq!(
        saas.registrations.lock().unwrap()[0]["redirect_uris"],
        json!(["https://gatehouse.example/oauth/upstream/callback"])
    );

    let updated = server(gatehouse(
        &dir,
        &[
            "servers",
            "update",
            "files",
            "--per-user-discover",
            "--upstream-issuer",
            &saas.base,
            "--scope",
            "repo",
        ],
    ));
    assert_eq!(updated["upstream_auth"]["client_id"], "dyn-1");
    assert_eq!(updated["upstream_auth"]["scope"], "repo");
    assert_eq!(
        saas.registrations.lock().unwrap().len(),
        1,
        "the registration is reused"
    );
}

#[test]
fn an_authorization_server_without_a_way_to_register_is_refused_and_nothing_is_added() {
    let saas = stand_in(false);
    let dir = tempfile::tempdir().unwrap();
    let out = gatehouse(
        &dir,
        &[
            "servers",
            "add",
            "files",
            "--url",
            "http://127.0.0.1:9/mcp",
            "--per-user-discover",
            "--upstream-issuer",
            &saas.base,
        ],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("supports neither client ID metadata documents nor dynamic"),
        "{stderr}"
    );
    assert!(
        stderr.contains("https://gatehouse.example/oauth/upstream/callback"),
        "{stderr}"
    );
    let listed: Value =
        serde_json::from_slice(&gatehouse(&dir, &["servers", "list"]).stdout).unwrap();
    assert_eq!(listed, json!([]));
}

/// Through `--server`, the admin API finds and registers as the local command does: the CLI
/// sends the discovery settings (it dropped `upstream_auth` before).
#[test]
fn through_the_admin_api_the_server_finds_and_registers_too() {
    let saas = stand_in(true);
    let remote = common::deployment::Deployment::remote();
    let added = remote.json(&[
        "servers",
        "add",
        "files",
        "--url",
        "http://127.0.0.1:9/mcp",
        "--per-user-discover",
        "--upstream-issuer",
        &saas.base,
        "--scope",
        "repo",
    ]);
    let added = match added {
        Value::Array(mut one) if one.len() == 1 => one.remove(0),
        other => other,
    };
    assert_eq!(added["upstream_auth"]["registration"], "dynamic", "{added}");
    assert_eq!(added["upstream_auth"]["scope"], "repo");
    assert_eq!(saas.registrations.lock().unwrap().len(), 1);
    let cleared = remote.json(&["servers", "update", "files", "--no-upstream-auth"]);
    let cleared = match cleared {
        Value::Array(mut one) if one.len() == 1 => one.remove(0),
        other => other,
    };
    assert!(cleared["upstream_auth"].is_null(), "{cleared}");
}

/// An upstream CA file that cannot be read stops discovery with a reason, not every command.
#[test]
fn an_unreadable_upstream_ca_file_stops_discovery_only() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gatehouse.toml");
    let missing = dir.path().join("missing.pem");
    std::fs::write(
        &config,
        format!(
            "[gateway]\nupstream_ca_files = [{:?}]\n",
            missing.display().to_string()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .env_remove("GATEHOUSE_MASTER_KEY")
            .output()
            .unwrap()
    };
    let listed = run(&["servers", "list"]);
    assert!(listed.status.success(), "{listed:?}");
    let refused = run(&[
        "servers",
        "add",
        "files",
        "--url",
        "http://127.0.0.1:9/mcp",
        "--per-user-discover",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("gateway.upstream_ca_files"), "{stderr}");
}
