//! Deployments for the CLI tests that run the same commands on the local database and
//! through `--server` against a running `gatehouse serve`.
#![allow(dead_code)]

use serde_json::Value;
use std::{
    io::Write,
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

/// A running server that is killed when the test ends, pass or fail.
pub struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a scenario's commands go.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    /// `--server` URL and admin token, for the remote mode.
    pub remote: Option<(String, String)>,
    pub _server: Option<Running>,
    /// The running server's gateway address (`host:port`), in the remote mode.
    pub public: Option<String>,
    /// A data directory the remote mode is pointed at: it must never be created.
    pub unused: tempfile::TempDir,
}

pub fn gatehouse() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    command
        .env_remove("GATEHOUSE_MASTER_KEY")
        .env_remove("GATEHOUSE_SERVER")
        .env_remove("GATEHOUSE_PROFILE")
        .env_remove("GATEHOUSE_ADMIN_TOKEN");
    command
}

impl Deployment {
    pub fn local() -> Self {
        Deployment {
            dir: tempfile::tempdir().unwrap(),
            remote: None,
            _server: None,
            public: None,
            unused: tempfile::tempdir().unwrap(),
        }
    }

    /// `gatehouse serve` with its admin listener on a free port, and an admin token made the
    /// way an operator makes the first one (on the server's host, before it starts).
    pub fn remote() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let out = gatehouse()
            .arg("--data-dir")
            .arg(dir.path())
            .args([
                "-o",
                "json",
                "--actor",
                "setup",
                "admin-tokens",
                "create",
                "--name",
                "cli",
                "--role",
                "admin",
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let created: Value = serde_json::from_slice(&out.stdout).unwrap();
        let token = created["token"].as_str().unwrap().to_owned();
        let port = gatehouse_testkit::process::free_loopback_port().unwrap();
        let admin = format!("127.0.0.1:{port}");
        let (child, public) = super::serve_with(dir.path(), &[("GATEHOUSE_ADMIN_LISTEN", &admin)]);
        let server = Running(child);
        wait_for_listener(&admin);
        Deployment {
            dir,
            remote: Some((format!("http://{admin}"), token)),
            _server: Some(server),
            public: Some(public),
            unused: tempfile::tempdir().unwrap(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = gatehouse();
        match &self.remote {
            Some((url, token)) => {
                let never = self.unused.path().join("never");
                command
                    .arg("--data-dir")
                    .arg(never)
                    .args(["--server", url])
                    .env("GATEHOUSE_ADMIN_TOKEN", token);
            }
            None => {
                command
                    .arg("--data-dir")
                    .arg(self.dir.path())
                    .args(["--actor", "tester"]);
            }
        }
        command.args(args);
        command
    }

    pub fn run_with_input(&self, args: &[&str], input: Option<&str>) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        if let Some(text) = input {
            stdin.write_all(text.as_bytes()).unwrap();
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    pub fn json_with_input(&self, args: &[&str], input: Option<&str>) -> Value {
        let mut all = vec!["-o", "json"];
        all.extend_from_slice(args);
        let out = self.run_with_input(&all, input);
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            self.mode(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{} {args:?}: not JSON ({e})", self.mode()))
    }

    pub fn json(&self, args: &[&str]) -> Value {
        self.json_with_input(args, None)
    }

    pub fn mode(&self) -> &'static str {
        if self.remote.is_some() {
            "remote"
        } else {
            "local"
        }
    }

    /// Held tool definitions, written as a server that saw them change would.
    pub fn observe_changed_tools(&self) {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let url = format!(
            "sqlite://{}",
            self.dir.path().join("gatehouse.db").display()
        );
        let store = runtime.block_on(gatehouse::store::open(&url)).unwrap();
        for (tool, hash) in [("echo", "e1"), ("echo", "e2"), ("add", "a1"), ("add", "a2")] {
            let seen = gatehouse_model::records::ToolObservation {
                server: "demo".into(),
                tool: tool.into(),
                hash: hash.into(),
                definition: format!(r#"{{"name":"{tool}","description":"{hash}"}}"#),
                suspicious: None,
                at: 1_000,
            };
            runtime.block_on(store.observe_tool(&seen)).unwrap();
        }
    }
}

impl Deployment {
    /// A person's grant at an upstream, sealed and stored as the server's consent callback
    /// stores it (no upstream takes part).
    pub fn put_upstream_grant(&self, username: &str, server: &str) {
        use gatehouse::{secrets::Keyring, upstream::delegated::grant_context};
        let users = self.json(&["users", "list"]);
        let user_id = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == username)
            .and_then(|u| u["id"].as_str())
            .unwrap_or_else(|| panic!("no user {username}: {users}"))
            .to_owned();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let url = format!(
            "sqlite://{}",
            self.dir.path().join("gatehouse.db").display()
        );
        let store = runtime.block_on(gatehouse::store::open(&url)).unwrap();
        let keyring = Keyring::load_or_create(self.dir.path()).unwrap();
        let context = grant_context(&user_id, server);
        let grant = gatehouse_model::records::UpstreamGrantRecord {
            user_id,
            server: server.into(),
            access_sealed: keyring.encrypt(b"grant-s3cret-access", &context).unwrap(),
            refresh_sealed: Some(keyring.encrypt(b"grant-s3cret-refresh", &context).unwrap()),
            expires_at: Some(4_102_444_800_000),
            scope: "files".into(),
            created_at: 1_000,
            refreshed_at: None,
        };
        runtime.block_on(store.put_upstream_grant(&grant)).unwrap();
    }
}

pub fn wait_for_listener(addr: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "the admin listener on {addr} did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
