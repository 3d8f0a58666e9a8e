//! Helpers shared by the CLI test binaries that run a real `gatehouse serve`.

pub mod deployment;

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

/// `gatehouse serve` on a free loopback port, and the address it listens on.
// Every test binary compiles this module; some use only `serve_with`.
#[allow(dead_code)]
pub fn serve(dir: &Path) -> (Child, String) {
    serve_with(dir, &[])
}

/// [`serve`] with more `GATEHOUSE_*` settings in its environment.
#[allow(dead_code)]
pub fn serve_with(dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .arg("--data-dir")
        .arg(dir)
        .arg("serve")
        // Removed first, so a caller may pass one.
        .env_remove("GATEHOUSE_MASTER_KEY")
        .envs(env.iter().copied())
        .env("GATEHOUSE_LISTEN", "127.0.0.1:0")
        .env("GATEHOUSE_LOG__FILTER", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("gatehouse serve ended before it listened")
            .unwrap();
        if let Some(rest) = line.strip_prefix("gatehouse listening on http://") {
            break rest
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
    };
    // Drained, so the server never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}
