//! Starting server processes for tests: free loopback ports, an unprivileged account when the
//! tests run as root, and a watchdog that stops a server once the test process is gone.

use std::{
    io,
    net::{Ipv4Addr, TcpListener},
    os::unix::{fs::MetadataExt, process::CommandExt},
    path::Path,
    process::{Child, Command, Stdio},
};

/// A loopback port nobody listens on at the moment of asking. The caller binds it soon after;
/// a lost race shows as a bind failure, which callers retry with a new port.
pub fn free_loopback_port() -> io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The account a server runs as: `None` keeps the current user; `Some((uid, gid))` when the
/// tests run as root, which PostgreSQL refuses. Debian's `postgresql-common` creates the
/// `postgres` account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs(pub Option<(u32, u32)>);

impl RunAs {
    /// The current user, or `postgres` (read from `/etc/passwd`) when running as root.
    pub fn unprivileged() -> io::Result<Self> {
        if !running_as_root()? {
            return Ok(Self(None));
        }
        account("postgres")
            .map(|ids| Self(Some(ids)))
            .ok_or_else(|| {
                io::Error::other(
                    "the tests run as root and there is no `postgres` account to run servers as \
                 (install postgresql-15, which creates it)",
                )
            })
    }

    /// Hands `dir` (and what is in it) to the account, so the server can write there.
    pub fn own(self, dir: &Path) -> io::Result<()> {
        let Some((uid, gid)) = self.0 else {
            return Ok(());
        };
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))?;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                self.own(&path)?;
            } else {
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))?;
            }
        }
        Ok(())
    }

    /// Sets the command to run as the account.
    pub fn apply(self, command: &mut Command) {
        if let Some((uid, gid)) = self.0 {
            command.uid(uid).gid(gid);
        }
    }
}

fn running_as_root() -> io::Result<bool> {
    Ok(std::fs::metadata("/proc/self")?.uid() == 0)
}

fn account(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

/// Runs `command` to completion; a non-zero exit is an error carrying its output.
pub fn run(command: &mut Command) -> io::Result<()> {
    let output = command.stdin(Stdio::null()).output()?;
    if output.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{command:?} exited with {}:\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

/// Starts a small `sh` that sends `signal` (for example `QUIT`) to `server` once this test
/// process has exited. Statics are never dropped, so a server shared by a whole test binary
/// would otherwise outlive it.
pub fn stop_when_test_exits(server: &Child, signal: &str) -> io::Result<()> {
    let script = format!(
        "while kill -0 {test} 2>/dev/null; do sleep 1; done; kill -{signal} {server} 2>/dev/null",
        test = std::process::id(),
        server = server.id(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
}

/// [`stop_when_test_exits`], then, once the server has exited, removes `dir` (the server's
/// temporary directory, which a static never drops).
pub fn stop_when_test_exits_then_remove(
    server: &Child,
    signal: &str,
    dir: Option<&Path>,
) -> io::Result<()> {
    let Some(dir) = dir else {
        return stop_when_test_exits(server, signal);
    };
    let dir = dir
        .to_str()
        .ok_or_else(|| io::Error::other("a directory named in UTF-8"))?;
    let script = format!(
        "while kill -0 {test} 2>/dev/null; do sleep 1; done; kill -{signal} {server} 2>/dev/null; \
         while kill -0 {server} 2>/dev/null; do sleep 1; done; rm -rf '{dir}'",
        test = std::process::id(),
        server = server.id(),
    );
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound() {
        let port = free_loopback_port().unwrap();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }

    #[test]
    fn a_failing_command_reports_its_output() {
        let err = run(Command::new("sh").args(["-c", "echo broken >&2; exit 3"])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("broken"), "{text}");
        assert!(text.contains('3'), "{text}");
    }

    #[test]
    fn accounts_are_read_from_passwd() {
        assert_eq!(account("root"), Some((0, 0)));
        assert_eq!(account("no-such-account-here"), None);
    }
}
