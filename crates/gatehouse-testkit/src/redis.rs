//! Redis for tests: Debian's `redis-server` on a free loopback port, from a temporary
//! directory, persisting nothing (`--save "" --appendonly no`).
//!
//! [`Redis::shared`] is one server per test binary (tests keep apart by key prefix);
//! [`Redis::private`] is a test's own, which it may stop and start again on the same port.

use std::{
    io,
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock},
    time::{Duration, Instant},
};

use crate::process::{free_loopback_port, stop_when_test_exits};

/// How long a server may take to answer `PING` after it is started.
const READY_WITHIN: Duration = Duration::from_secs(20);

pub struct Redis {
    port: u16,
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
    /// Arguments after the standard ones (`--replicaof …`); for a sentinel, its mode.
    role: Role,
}

#[derive(Clone)]
enum Role {
    Standalone,
    ReplicaOf(u16),
    /// Monitors the master on this port under this name.
    Sentinel(u16, &'static str),
}

impl Redis {
    /// The test binary's server, started on first use. Panics (failing the test, never
    /// skipping it) when it cannot be started.
    pub fn shared() -> &'static Redis {
        static SHARED: OnceLock<Redis> = OnceLock::new();
        SHARED.get_or_init(|| {
            Redis::start().unwrap_or_else(|err| panic!("starting redis-server: {err}"))
        })
    }

    /// A server of the caller's own, stopped when dropped.
    pub fn private() -> io::Result<Redis> {
        Redis::start()
    }

    fn start() -> io::Result<Redis> {
        Self::start_as(Role::Standalone)
    }

    fn start_as(role: Role) -> io::Result<Redis> {
        let mut last = None;
        // A port found free can be taken before the server binds it: retry with another.
        for _ in 0..3 {
            let redis = Redis {
                port: free_loopback_port()?,
                dir: tempfile::tempdir()?,
                child: Mutex::new(None),
                role: role.clone(),
            };
            match redis.start_again() {
                Ok(()) => return Ok(redis),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("redis-server did not start")))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port, waiting until it answers.
    pub fn start_again(&self) -> io::Result<()> {
        let mut command = Command::new("redis-server");
        if let Role::Sentinel(master, name) = self.role {
            // A sentinel rewrites its configuration file, so it gets one of its own.
            let conf = self.dir.path().join("sentinel.conf");
            std::fs::write(
                &conf,
                format!(
                    "sentinel monitor {name} 127.0.0.1 {master} 1\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 10000\n"
                ),
            )?;
            command.arg(&conf).arg("--sentinel");
        }
        command
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--daemonize", "no", "--protected-mode", "yes"])
            .arg("--dir")
            .arg(self.dir.path());
        match self.role {
            Role::Sentinel(..) => {}
            Role::Standalone => {
                command.args(["--save", "", "--appendonly", "no"]);
            }
            Role::ReplicaOf(master) => {
                command.args(["--save", "", "--appendonly", "no"]);
                command.args(["--replicaof", "127.0.0.1", &master.to_string()]);
            }
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| io::Error::other(format!("running redis-server: {err}")))?;
        stop_when_test_exits(&child, "TERM")?;
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = child.try_wait()? {
                let output = child.wait_with_output()?;
                return Err(io::Error::other(format!(
                    "redis-server on port {} exited with {status}:\n{}{}",
                    self.port,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )));
            }
            if self.cli(&["PING"]).is_ok_and(|answer| answer == "PONG") {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(io::Error::other(format!(
                    "redis-server on port {} did not answer PING within {READY_WITHIN:?}",
                    self.port
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        Ok(())
    }

    /// Stops the server at once, keeping nothing (`SHUTDOWN NOSAVE`).
    pub fn stop(&self) -> io::Result<()> {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            let _ = self.cli(&["SHUTDOWN", "NOSAVE"]);
            if child.try_wait()?.is_none() {
                child.kill()?;
            }
            child.wait()?;
        }
        Ok(())
    }

    /// Runs one command through `redis-cli`; its answer, trimmed.
    pub fn cli(&self, args: &[&str]) -> io::Result<String> {
        let output = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        if !output.status.success() {
            return Err(io::Error::other(
                String::from_utf8_lossy(&output.stderr).into_owned(),
            ));
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
}

/// A master, one replica and one sentinel watching them as `master_name`: a failover moves
/// the master to the replica's port.
pub struct SentinelTrio {
    pub master: Redis,
    pub replica: Redis,
    pub sentinel: Redis,
}

impl SentinelTrio {
    pub const MASTER_NAME: &'static str = "gatehouse";

    pub fn start() -> io::Result<SentinelTrio> {
        let master = Redis::start()?;
        let replica = Redis::start_as(Role::ReplicaOf(master.port))?;
        let sentinel = Redis::start_as(Role::Sentinel(master.port, Self::MASTER_NAME))?;
        Ok(SentinelTrio {
            master,
            replica,
            sentinel,
        })
    }

    /// `host:port` of the sentinel.
    pub fn sentinel_addr(&self) -> String {
        format!("127.0.0.1:{}", self.sentinel.port)
    }

    /// The port the sentinel currently names as the master's.
    pub fn master_port(&self) -> io::Result<u16> {
        let answer =
            self.sentinel
                .cli(&["SENTINEL", "get-master-addr-by-name", Self::MASTER_NAME])?;
        answer
            .lines()
            .nth(1)
            .and_then(|port| port.trim().parse().ok())
            .ok_or_else(|| io::Error::other(format!("no master named: {answer}")))
    }

    /// Whether the sentinel knows a replica it could promote.
    pub fn replica_known(&self) -> bool {
        self.sentinel
            .cli(&["SENTINEL", "replicas", Self::MASTER_NAME])
            .is_ok_and(|answer| answer.contains(&self.replica.port.to_string()))
    }

    /// Asks the sentinel to fail over, once it can: a sentinel that has seen the replica may
    /// still answer `NOGOODSLAVE` until the replica's link to the master is up and its `INFO`
    /// fresh, so that answer is asked again (until `deadline`); any other answer is returned.
    pub fn fail_over(&self, deadline: std::time::Instant) -> io::Result<String> {
        loop {
            let answer = self
                .sentinel
                .cli(&["SENTINEL", "FAILOVER", Self::MASTER_NAME])?;
            if !answer.starts_with("NOGOODSLAVE") || std::time::Instant::now() >= deadline {
                return Ok(answer);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_server_answers_stops_and_starts_again_on_its_port() {
        let redis = Redis::private().unwrap();
        assert_eq!(redis.cli(&["SET", "k", "v"]).unwrap(), "OK");
        assert_eq!(redis.cli(&["GET", "k"]).unwrap(), "v");
        redis.stop().unwrap();
        assert!(redis.cli(&["PING"]).is_err(), "stopped");
        redis.start_again().unwrap();
        assert_eq!(
            redis.cli(&["GET", "k"]).unwrap(),
            "",
            "nothing was persisted"
        );
    }

    #[test]
    fn a_sentinel_failover_moves_the_master_to_the_replica() {
        let trio = SentinelTrio::start().unwrap();
        assert_eq!(trio.master_port().unwrap(), trio.master.port());
        let deadline = Instant::now() + Duration::from_secs(30);
        while !trio.replica_known() {
            assert!(
                Instant::now() < deadline,
                "the sentinel never saw the replica"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(trio.fail_over(deadline).unwrap(), "OK");
        while trio.master_port().unwrap() != trio.replica.port() {
            assert!(Instant::now() < deadline, "the failover never completed");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
