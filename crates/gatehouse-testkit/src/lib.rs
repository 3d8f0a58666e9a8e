//! Test support shared by the integration tests, the CLI tests and the cluster harness.
//!
//! Servers are the real ones (Debian's `postgresql-15` and `redis-server` binaries), each
//! started in a temporary directory on a free loopback port, never a service already running
//! on the machine. A server that cannot start fails the test with the command's output: the
//! project never skips a test because a dependency is missing.
#![forbid(unsafe_code)]

pub mod postgres;
pub mod process;
pub mod redis;
