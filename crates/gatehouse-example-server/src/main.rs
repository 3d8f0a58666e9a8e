//! `gatehouse-example-server [--listen 127.0.0.1:PORT] [--allow-host NAME]... | --stdio`
//!
//! Serves the example MCP server at `http://ADDR/mcp`, prints exactly one line
//! `listening on http://ADDR/mcp` to stdout once ready, and runs until SIGINT or SIGTERM.
#![forbid(unsafe_code)]

use std::{
    io::{IsTerminal, Write},
    net::SocketAddr,
    process::ExitCode,
};

use gatehouse_example_server::{ExampleServer, MCP_PATH};
use tokio_util::sync::CancellationToken;

const DEFAULT_LISTEN: &str = "127.0.0.1:9090";

const USAGE: &str = "\
Usage: gatehouse-example-server [--listen ADDR] [--allow-host NAME]...
       gatehouse-example-server --stdio

Serves the Gatehouse example MCP server (demo tools and MCP conformance fixtures).

Options:
  --listen ADDR       Socket address to bind [default: 127.0.0.1:9090]; port 0 picks a free port
  --allow-host NAME   Also accept this Host header (NAME or NAME:PORT), besides loopback; repeatable
  --stdio             Speak MCP over stdin/stdout instead (until stdin closes)
  -h, --help          Print this help

Logs go to stderr; set RUST_LOG to change the level (default: warn).";

#[derive(Debug, PartialEq)]
struct Args {
    listen: SocketAddr,
    allowed_hosts: Vec<String>,
}

enum Command {
    Run(Args),
    Stdio,
    Help,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Command, String> {
    let mut listen = None;
    let mut allowed_hosts = Vec::new();
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_owned(), Some(value.to_owned()))
            }
            _ => (arg, None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--stdio" => return Ok(Command::Stdio),
            "--listen" => {
                let raw = value("--listen")?;
                let addr = raw
                    .parse()
                    .map_err(|error| format!("invalid --listen address {raw:?}: {error}"))?;
                listen = Some(addr);
            }
            "--allow-host" => allowed_hosts.push(value("--allow-host")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let listen = match listen {
        Some(addr) => addr,
        None => DEFAULT_LISTEN
            .parse()
            .map_err(|error| format!("invalid default address: {error}"))?,
    };
    Ok(Command::Run(Args {
        listen,
        allowed_hosts,
    }))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Stdio) => {
            init_tracing();
            return match gatehouse_example_server::serve_stdio().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("error: {error}");
                    ExitCode::FAILURE
                }
            };
        }
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    init_tracing();

    let cancel = CancellationToken::new();
    let server = match ExampleServer::start_with_allowed_hosts(
        args.listen,
        cancel.clone(),
        &args.allowed_hosts,
    )
    .await
    {
        Ok(server) => server,
        Err(error) => {
            eprintln!("error: cannot listen on {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let announced = writeln!(stdout, "listening on http://{}{MCP_PATH}", server.addr())
        .and_then(|()| stdout.flush());
    drop(stdout);
    if let Err(error) = announced {
        eprintln!("error: cannot write to stdout: {error}");
        server.shutdown().await;
        return ExitCode::FAILURE;
    }

    wait_for_shutdown_signal().await;
    server.shutdown().await;
    ExitCode::SUCCESS
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn wait_for_shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; stopping on SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|a| (*a).to_owned()))
    }

    fn run_args(args: &[&str]) -> Args {
        match parse(args) {
            Ok(Command::Run(args)) => args,
            _ => panic!("expected run arguments for {args:?}"),
        }
    }

    #[test]
    fn defaults_to_loopback_9090() {
        assert_eq!(run_args(&[]).listen, "127.0.0.1:9090".parse().unwrap());
    }

    #[test]
    fn accepts_listen_and_allowed_hosts() {
        let args = run_args(&[
            "--listen",
            "127.0.0.1:0",
            "--allow-host=example",
            "--allow-host",
            "b:1",
        ]);
        assert_eq!(args.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(args.allowed_hosts, ["example", "b:1"]);
        assert_eq!(
            run_args(&["--listen=[::1]:80"]).listen,
            "[::1]:80".parse().unwrap()
        );
    }

    #[test]
    fn rejects_bad_input() {
        assert!(parse(&["--listen"]).is_err());
        assert!(parse(&["--listen", "nope"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
        assert!(matches!(parse(&["--stdio"]), Ok(Command::Stdio)));
    }
}
