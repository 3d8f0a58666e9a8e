use std::{
    net::{IpAddr, SocketAddr},
    process::ExitCode,
};

use gatehouse::Config;

#[derive(clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides `listen`), e.g. 0.0.0.0:8080. With the default
    /// `public_url`, that URL follows it.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

/// Applies `--listen`, and says when `public_url` cannot be how clients reach this listener:
/// OAuth metadata and `WWW-Authenticate` challenges are built from `public_url`.
pub fn apply_listen(config: &mut Config, listen: Option<SocketAddr>) -> Option<String> {
    if let Some(addr) = listen {
        if config.public_url == Config::default().public_url {
            let host = if addr.ip().is_unspecified() {
                IpAddr::from([127, 0, 0, 1])
            } else {
                addr.ip()
            };
            config.public_url = format!("http://{}", SocketAddr::new(host, addr.port()));
        }
        config.listen = addr;
    }
    let url = http::Uri::try_from(config.public_url.as_str()).ok()?;
    let host = url.host()?.trim_start_matches('[').trim_end_matches(']');
    let direct = host == "localhost" || host.parse::<IpAddr>().is_ok();
    // A DNS name usually fronts a reverse proxy, whose address and port differ by design.
    if !direct {
        return None;
    }
    let port = url
        .port_u16()
        .unwrap_or(if url.scheme_str() == Some("https") {
            443
        } else {
            80
        });
    let listen_ip = config.listen.ip();
    let same_host = listen_ip.is_unspecified()
        || match host.parse::<IpAddr>() {
            Ok(ip) => ip == listen_ip,
            Err(_) => listen_ip.is_loopback(),
        };
    (port != config.listen.port() || !same_host).then(|| {
        format!(
            "public_url {} does not match the listen address {}: OAuth metadata and \
             challenges name public_url, so clients following them will miss this server; \
             set public_url to the address clients use",
            config.public_url, config.listen
        )
    })
}

pub fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log.filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        // One JSON object per line, the event's fields at the top level (a collector's parser
        // reads `decision` rather than `fields.decision`).
        gatehouse::config::LogFormat::Json => builder.json().flatten_event(true).try_init(),
        // Colour codes only for a person at a terminal, not in a log file or a pipe.
        gatehouse::config::LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
    };
}

pub async fn run(mut config: Config, args: ServeArgs) -> anyhow::Result<ExitCode> {
    init_tracing(&config);
    if let Some(warning) = apply_listen(&mut config, args.listen) {
        tracing::warn!("{warning}");
    }
    super::create_data_dir(&config)?;
    let server = gatehouse::app::start(config, None).await?;
    eprintln!(
        "gatehouse listening on {} (replica {})",
        server.local_url(),
        server.replica_id
    );
    shutdown_signal().await;
    eprintln!("shutting down");
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
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
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn config(listen: &str, public_url: &str) -> Config {
        Config {
            listen: listen.parse().unwrap(),
            public_url: public_url.into(),
            ..Config::default()
        }
    }

    #[test]
    fn listen_moves_the_default_public_url_with_it() {
        let mut c = Config::default();
        assert_eq!(
            apply_listen(&mut c, Some("127.0.0.1:9000".parse().unwrap())),
            None
        );
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.public_url, "http://127.0.0.1:9000");
        let mut c = Config::default();
        assert_eq!(
            apply_listen(&mut c, Some("0.0.0.0:9001".parse().unwrap())),
            None
        );
        assert_eq!(c.public_url, "http://127.0.0.1:9001");
    }

    #[test]
    fn a_public_url_that_cannot_reach_the_listener_is_reported() {
        let mut c = config("127.0.0.1:8080", "http://127.0.0.1:9090");
        assert!(
            apply_listen(&mut c, None)
                .unwrap()
                .contains("does not match")
        );
        let mut c = config("127.0.0.1:8080", "http://10.1.2.3:8080");
        assert!(apply_listen(&mut c, None).is_some());
        let mut c = config("127.0.0.1:8080", "http://localhost:8080");
        assert_eq!(apply_listen(&mut c, None), None);
        let mut c = config("0.0.0.0:8080", "http://192.0.2.10:8080");
        assert_eq!(apply_listen(&mut c, None), None);
        // Behind a reverse proxy the public name and port differ by design.
        let mut c = config("127.0.0.1:8080", "https://mcp.example.com");
        assert_eq!(apply_listen(&mut c, None), None);
        // An explicit public_url is kept when --listen is given.
        let mut c = config("127.0.0.1:8080", "https://mcp.example.com");
        apply_listen(&mut c, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(c.public_url, "https://mcp.example.com");
    }
}
