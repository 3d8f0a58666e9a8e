//! `gatehouse servers add|update` with upstream tokens and the identity header: settings shown,
//! secrets read from a file or the environment and never printed, removal, refusals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::process::{Command, Output};

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_gatehouse"))
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--output")
            .arg("json")
            .args(args)
            .env_remove("GATEHOUSE_MASTER_KEY")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str], env: &[(&str, &str)]) -> Value {
        let out = self.run(args, env);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(!text.contains("cli-s3cret"), "a secret was printed: {text}");
        let value: Value = serde_json::from_str(&text).unwrap();
        match value {
            Value::Array(mut one) if one.len() == 1 => one.remove(0),
            other => other,
        }
    }

    fn fails(&self, args: &[&str], message: &str) {
        let out = self.run(args, &[]);
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{args:?} should fail"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(message),
            "{args:?}: expected {message:?} in {stderr:?}"
        );
    }
}

#[test]
fn servers_take_client_credentials_and_an_identity_header_and_drop_them() {
    let cli = Cli {
        dir: tempfile::tempdir().unwrap(),
    };
    let secret_file = cli.dir.path().join("secret.txt");
    std::fs::write(&secret_file, "cli-s3cret\n").unwrap();
    let added = cli.json(
        &[
            "servers",
            "add",
            "files",
            "--url",
            "http://127.0.0.1:9/mcp",
            "--token-endpoint",
            "http://127.0.0.1:9/token",
            "--client-id",
            "gatehouse",
            "--client-secret-file",
            secret_file.to_str().unwrap(),
            "--scope",
            "files:read",
            "--identity-header",
            "X-Gatehouse-Identity",
        ],
        &[],
    );
    let auth = &added["upstream_auth"];
    assert_eq!(auth["kind"], "client_credentials", "{added}");
    assert_eq!(auth["auth_method"], "client_secret_basic");
    assert_eq!(auth["scope"], "files:read");
    assert_eq!(added["identity_header"], "x-gatehouse-identity");

    let updated = cli.json(
        &[
            "servers",
            "update",
            "files",
            "--token-endpoint",
            "http://127.0.0.1:9/token",
            "--client-id",
            "gatehouse",
            "--auth-method",
            "client_secret_post",
            "--client-secret-env",
            "FILES_SECRET",
        ],
        &[("FILES_SECRET", "cli-s3cret")],
    );
    assert_eq!(
        updated["upstream_auth"]["auth_method"],
        "client_secret_post"
    );
    assert_eq!(
        updated["identity_header"], "x-gatehouse-identity",
        "the identity header stays"
    );

    let exchanged = cli.json(
        &[
            "servers",
            "update",
            "files",
            "--token-exchange",
            "--token-endpoint",
            "http://127.0.0.1:9/token",
            "--client-id",
            "gatehouse",
            "--client-secret-env",
            "FILES_SECRET",
        ],
        &[("FILES_SECRET", "cli-s3cret")],
    );
    assert_eq!(exchanged["upstream_auth"]["kind"], "token_exchange");

    let per_user = cli.json(
        &[
            "servers",
            "update",
            "files",
            "--authorization-endpoint",
            "http://127.0.0.1:9/authorize",
            "--revocation-endpoint",
            "http://127.0.0.1:9/revoke",
            "--token-endpoint",
            "http://127.0.0.1:9/token",
            "--client-id",
            "gatehouse",
            "--auth-method",
            "none",
            "--scope",
            "files",
        ],
        &[],
    );
    // The admin API's server view, as the CLI prints it in both modes: the settings flat.
    let spec = &per_user["upstream_auth"];
    assert_eq!(spec["kind"], "per_user", "{per_user}");
    assert_eq!(
        spec["authorization_endpoint"],
        "http://127.0.0.1:9/authorize"
    );
    assert_eq!(spec["revocation_endpoint"], "http://127.0.0.1:9/revoke");
    assert_eq!(spec["auth_method"], "none");

    let cleared = cli.json(
        &[
            "servers",
            "update",
            "files",
            "--no-upstream-auth",
            "--no-identity-header",
        ],
        &[],
    );
    assert_eq!(
        cleared["upstream_auth"],
        serde_json::Value::Null,
        "{cleared}"
    );
    assert_eq!(
        cleared["identity_header"],
        serde_json::Value::Null,
        "{cleared}"
    );

    cli.fails(
        &[
            "servers",
            "update",
            "files",
            "--token-endpoint",
            "http://127.0.0.1:9/token",
            "--client-id",
            "gatehouse",
        ],
        "needs a client secret",
    );
    cli.fails(
        &[
            "servers",
            "update",
            "files",
            "--token-endpoint",
            "http://127.0.0.1:9/token",
            "--client-id",
            "gatehouse",
            "--auth-method",
            "private_key_jwt",
            "--client-secret-file",
            secret_file.to_str().unwrap(),
        ],
        "PKCS #8",
    );
    cli.fails(
        &[
            "servers",
            "update",
            "files",
            "--identity-header",
            "Authorization",
        ],
        "sets itself",
    );
}

/// A revocation endpoint that answers one request 200 and hands its body over.
fn one_revocation() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/revoke", listener.local_addr().unwrap());
    let (sent, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut stream = stream;
        stream
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .unwrap();
        sent.send(String::from_utf8(body).unwrap()).unwrap();
    });
    (url, received)
}

#[test]
fn a_persons_upstream_grant_is_listed_without_its_tokens_and_revoked_at_the_upstream() {
    use gatehouse::{secrets::Keyring, store, upstream::delegated::grant_context};
    let cli = Cli {
        dir: tempfile::tempdir().unwrap(),
    };
    let (revocation, revoked) = one_revocation();
    cli.json(
        &[
            "servers",
            "add",
            "files",
            "--url",
            "http://127.0.0.1:9/mcp",
            "--authorization-endpoint",
            "http://127.0.0.1:9/authorize",
            "--revocation-endpoint",
            &revocation,
            "--token-endpoint",
            "http://127.0.0.1:9/token",
            "--client-id",
            "gatehouse",
            "--auth-method",
            "none",
        ],
        &[],
    );
    let ann = cli.json(&["users", "add", "ann"], &[]);
    let ann_id = ann["id"].as_str().unwrap().to_owned();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let url = format!("sqlite://{}", cli.dir.path().join("gatehouse.db").display());
        let store = store::open(&url).await.unwrap();
        let keyring = Keyring::load_or_create(cli.dir.path()).unwrap();
        let context = grant_context(&ann_id, "files");
        store
            .put_upstream_grant(&gatehouse_model::records::UpstreamGrantRecord {
                user_id: ann_id.clone(),
                server: "files".into(),
                access_sealed: keyring.encrypt(b"cli-s3cret-access", &context).unwrap(),
                refresh_sealed: Some(keyring.encrypt(b"cli-s3cret-refresh", &context).unwrap()),
                expires_at: Some(4_102_444_800_000),
                scope: "files".into(),
                created_at: 1,
                refreshed_at: None,
            })
            .await
            .unwrap();
    });
    let listed = cli.json(&["users", "upstream-grants", "list", "--user", "ann"], &[]);
    assert_eq!(listed["user"], "ann", "{listed}");
    assert_eq!(listed["server"], "files");
    assert_eq!(listed["refreshable"], true);

    let out = cli.run(&["users", "upstream-grants", "revoke", "ann", "files"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body = revoked
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the revocation endpoint was told");
    assert!(
        body.contains("token=cli-s3cret-refresh") && body.contains("token_type_hint=refresh_token"),
        "{body}"
    );
    assert_eq!(
        cli.json(&["users", "upstream-grants", "list"], &[]),
        serde_json::json!([])
    );
    cli.fails(
        &["users", "upstream-grants", "revoke", "ann", "files"],
        "upstream grant",
    );
}
