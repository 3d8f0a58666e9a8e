//! A real PostgreSQL server for tests, from Debian's `postgresql-15` binaries: `initdb` into a
//! temporary directory, `postgres` on a free loopback port, run as an unprivileged account
//! when the tests run as root.
//!
//! [`Postgres::shared`] starts one server per test binary; each test takes a database of its
//! own ([`Postgres::database`]), copied from a template migrated once. [`Postgres::private`]
//! starts one a test may stop and start again (fault tests).
//!
//! The cluster's default collation is ICU `en-US`, not `C`: whatever a test lists comes out in
//! byte order only because the schema asks for it, as on an operator's database.

use std::{
    collections::BTreeSet,
    io,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::process::{self, RunAs};

/// The role `initdb` creates (trust authentication on loopback).
pub const USER: &str = "gatehouse";

pub struct Postgres {
    port: u16,
    dir: PathBuf,
    bindir: PathBuf,
    run_as: RunAs,
    server: Mutex<Option<Child>>,
    templates: Mutex<BTreeSet<String>>,
    /// Removes the directory when a private server is dropped; the shared one is removed by
    /// its watchdog after the test process exits.
    _owned_dir: Option<tempfile::TempDir>,
}

static SHARED: OnceLock<Postgres> = OnceLock::new();
static DATABASES: AtomicU64 = AtomicU64::new(0);

impl Postgres {
    /// The server of this test binary, started on first use. A server that cannot start
    /// fails the test with the command's output (never a skip).
    pub fn shared() -> &'static Postgres {
        SHARED.get_or_init(|| {
            Self::start(true).unwrap_or_else(|err| panic!("PostgreSQL did not start: {err}"))
        })
    }

    /// A server of the caller's own, which it may stop and start again; stopped when dropped.
    pub fn private() -> io::Result<Postgres> {
        Self::start(false)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{database}", self.port)
    }

    /// A new empty database; its URL.
    pub fn empty_database(&self) -> String {
        let name = Self::next_name();
        self.psql(&format!("CREATE DATABASE {name}"))
            .unwrap_or_else(|err| panic!("creating {name}: {err}"));
        self.url(&name)
    }

    /// A new database copied from `template`, which `prepare` (given the template's URL) fills
    /// once per server; `prepare` must have closed its connections when it returns.
    pub fn database(&self, template: &str, prepare: impl FnOnce(&str)) -> String {
        {
            let mut done = self
                .templates
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if !done.contains(template) {
                self.psql(&format!("CREATE DATABASE {template}"))
                    .unwrap_or_else(|err| panic!("creating {template}: {err}"));
                prepare(&self.url(template));
                done.insert(template.to_owned());
            }
        }
        let name = Self::next_name();
        // Waits (up to 5 s, inside PostgreSQL) for the template's last sessions to end.
        self.psql(&format!("CREATE DATABASE {name} TEMPLATE {template}"))
            .unwrap_or_else(|err| panic!("creating {name} from {template}: {err}"));
        self.url(&name)
    }

    /// Runs one SQL command as the superuser on the `postgres` database.
    pub fn psql(&self, sql: &str) -> io::Result<()> {
        process::run(
            Command::new(self.bindir.join("psql"))
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1"])
                .args([
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    USER,
                    "-d",
                    "postgres",
                    "-c",
                    sql,
                ]),
        )
    }

    /// Stops the server (fast shutdown: sessions are ended, nothing is lost).
    pub fn stop(&self) -> io::Result<()> {
        let mut server = self
            .server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut command = Command::new(self.bindir.join("pg_ctl"));
        command
            .args(["stop", "-m", "fast", "-w", "-D"])
            .arg(self.data());
        self.run_as.apply(&mut command);
        process::run(&mut command)?;
        if let Some(mut child) = server.take() {
            child.wait()?;
        }
        Ok(())
    }

    /// Starts a stopped server again, on the same port and directory.
    pub fn restart(&self) -> io::Result<()> {
        let child = self.spawn_server(self.port)?;
        process::stop_when_test_exits(&child, "QUIT")?;
        *self
            .server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(child);
        self.wait_ready()
    }

    fn next_name() -> String {
        format!("t_{}", DATABASES.fetch_add(1, Ordering::Relaxed))
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn start(shared: bool) -> io::Result<Postgres> {
        let run_as = RunAs::unprivileged()?;
        let owned = tempfile::Builder::new().prefix("gatehouse-pg").tempdir()?;
        let dir = owned.path().to_path_buf();
        run_as.own(&dir)?;
        let bindir = bindir();
        let mut initdb = Command::new(bindir.join("initdb"));
        initdb
            .args(["-A", "trust", "-U", USER, "--no-sync", "-E", "UTF8"])
            .args([
                "--locale=C.UTF-8",
                "--locale-provider=icu",
                "--icu-locale=en-US",
            ])
            .arg("-D")
            .arg(dir.join("data"));
        run_as.apply(&mut initdb);
        process::run(&mut initdb)?;

        let mut postgres = Postgres {
            port: 0,
            dir,
            bindir,
            run_as,
            server: Mutex::new(None),
            templates: Mutex::new(BTreeSet::new()),
            _owned_dir: None,
        };
        // A port taken between asking and binding shows as a failed start: retried twice.
        let mut last_error = None;
        for _ in 0..3 {
            let port = process::free_loopback_port()?;
            let child = postgres.spawn_server(port)?;
            postgres.port = port;
            *postgres.server.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(child);
            match postgres.wait_ready() {
                Ok(()) => {
                    let server = postgres.server.get_mut().unwrap_or_else(|p| p.into_inner());
                    if let Some(child) = server.as_ref() {
                        let remove = shared.then_some(postgres.dir.as_path());
                        process::stop_when_test_exits_then_remove(child, "QUIT", remove)?;
                    }
                    if shared {
                        // Removed by the watchdog: statics are never dropped.
                        let _ = owned.keep();
                    } else {
                        postgres._owned_dir = Some(owned);
                    }
                    return Ok(postgres);
                }
                Err(err) => last_error = Some(err),
            }
        }
        Err(last_error.unwrap_or_else(|| io::Error::other("PostgreSQL did not start")))
    }

    fn spawn_server(&self, port: u16) -> io::Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))?;
        let mut command = Command::new(self.bindir.join("postgres"));
        command
            .arg("-D")
            .arg(self.data())
            .args(["-p", &port.to_string(), "-c", "listen_addresses=127.0.0.1"])
            .arg("-k")
            .arg(&self.dir)
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=300"])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.run_as.apply(&mut command);
        command.spawn()
    }

    fn wait_ready(&self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            {
                let mut server = self
                    .server
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if let Some(child) = server.as_mut()
                    && let Some(status) = child.try_wait()?
                {
                    server.take();
                    return Err(io::Error::other(format!(
                        "postgres exited with {status}:\n{}",
                        self.log()
                    )));
                }
            }
            if self.psql("SELECT 1").is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::other(format!(
                    "postgres did not accept connections within 60 s:\n{}",
                    self.log()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let running = self
            .server
            .get_mut()
            .map(|server| server.is_some())
            .unwrap_or(false);
        if running {
            let _ = self.stop();
        }
    }
}

/// Debian's server binaries: `pg_config --bindir` when it names one with `postgres` in it,
/// else PostgreSQL 15's directory.
fn bindir() -> PathBuf {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|dir| dir.join("postgres").exists());
    from_pg_config.unwrap_or_else(|| Path::new("/usr/lib/postgresql/15/bin").to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_server_stops_and_starts_again_on_its_port() {
        let server = Postgres::private().unwrap();
        let url = server.empty_database();
        assert!(url.contains(&server.port().to_string()), "{url}");
        server.stop().unwrap();
        assert!(server.psql("SELECT 1").is_err(), "answered while stopped");
        server.restart().unwrap();
        server.psql("SELECT 1").unwrap();
    }
}
