//! Load driver of the three-replica harness (`bench/cluster/run.sh`, described in
//! `bench/README.md`). It acts as the callers and as a round-robin load balancer in front of
//! the replicas:
//!
//! - `load`: mixed traffic for `--seconds` (at most `--max-requests`): API-key and JWT calls
//!   of two tools, a tool the client is not granted (403), a rate-limited client (429 beyond
//!   its limit), and legacy sessions whose calls move from replica to replica. Prints one JSON
//!   object: throughput, p50/p99, outcomes, the rate limit's admitted ÷ configured, and the
//!   requests the replicas read and then lost (a rolling restart must have none).
//! - `propagation`: checks a key works on every replica, runs the revoke command, and polls
//!   every replica until it refuses the key; prints the time each took.
#![forbid(unsafe_code)]

mod http;
mod traffic;

use std::{collections::HashMap, process::ExitCode};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(mode) = args.next() else {
        eprintln!("usage: gatehouse-cluster-load (load|propagation) --name value ...");
        return ExitCode::from(2);
    };
    let mut options = HashMap::new();
    while let Some(name) = args.next() {
        let Some(name) = name.strip_prefix("--") else {
            eprintln!("unexpected argument {name}");
            return ExitCode::from(2);
        };
        options.insert(name.to_owned(), args.next().unwrap_or_default());
    }
    let result = match mode.as_str() {
        "load" => traffic::Options::from(&options).and_then(traffic::run),
        "propagation" => traffic::propagation(&options),
        other => Err(format!("unknown mode {other}")),
    };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("gatehouse-cluster-load: {err}");
            ExitCode::FAILURE
        }
    }
}
