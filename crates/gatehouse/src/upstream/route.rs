//! The routing step between authorisation and the upstream call: which upstream serves a
//! server's tool, and under what name it knows the tool. One-to-one today (a server is one
//! upstream, a tool keeps its name); a virtual server, aggregating several upstreams, answers
//! here with the member that owns the tool and the tool's name there.

use http::{HeaderName, HeaderValue};

use std::sync::Arc;

use super::{HttpUpstream, Transport, stdio};
use crate::{
    snapshot::ServerEntry,
    state::{Owner, event_streams::EventStreams},
    upstream::client::UpstreamClient,
};

/// What this process reaches upstreams through, and who is calling (a stdio server may run
/// one child per principal).
pub struct Upstreams<'a> {
    /// The pooled HTTP client.
    pub http: &'a UpstreamClient,
    /// The running stdio children.
    pub stdio: &'a dyn stdio::StdioChildren,
    pub stdio_timeouts: stdio::StdioTimeouts,
    /// Where the events of stdio servers' resumable streams are kept.
    pub event_streams: &'a Arc<dyn EventStreams>,
    pub owner: Owner<'a>,
}

/// Where one call goes.
pub struct Route<'a> {
    pub upstream: Transport<'a>,
    /// The tool's name as the upstream knows it; `None` when the request calls no tool.
    pub original_tool_name: Option<&'a str>,
}

/// Routes a call to `tool` (if it calls one) on `server` through `upstreams`; `injected` are
/// the headers this caller's call carries to an HTTP upstream (an upstream token, the
/// identity assertion).
pub fn route<'a>(
    server: &'a ServerEntry,
    upstreams: &Upstreams<'a>,
    tool: Option<&'a str>,
    injected: &'a [(HeaderName, HeaderValue)],
) -> Route<'a> {
    let upstream = match &server.stdio {
        Some(launch) => Transport::Stdio(stdio::StdioUpstream {
            children: upstreams.stdio,
            server: &server.name,
            launch,
            owner: upstreams.owner,
            timeouts: upstreams.stdio_timeouts,
            streams: upstreams.event_streams,
        }),
        None => Transport::Http(HttpUpstream {
            client: upstreams.http,
            uri: &server.upstream,
            credential: server.auth.static_header(),
            injected,
        }),
    };
    Route {
        upstream,
        original_tool_name: tool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;
    use crate::snapshot::{stdio::StdioLaunch, upstream_auth::UpstreamAuth};
    use gatehouse_model::{pin_action::PinAction, records::StdioSettings};
    use http::{HeaderName, HeaderValue};
    use std::{sync::Arc, time::Duration};

    fn server(upstream: &str, credential: Option<(HeaderName, HeaderValue)>) -> ServerEntry {
        ServerEntry {
            name: "files".into(),
            upstream: upstream.parse().unwrap(),
            auth: credential.map_or(UpstreamAuth::None, UpstreamAuth::Static),
            identity_header: None,
            pins: Default::default(),
            pin_action: PinAction::Off,
            anonymous_grant: None,
            allow_unknown_methods: false,
            resource_metadata_url: String::new(),
            resource: String::new(),
            stdio: None,
            members: Vec::new(),
        }
    }

    fn with_upstreams(run: impl FnOnce(&Upstreams<'_>)) {
        let client = UpstreamClient::new(&GatewayConfig::default()).unwrap();
        let children = stdio::InMemoryChildren::new(None, Default::default());
        let streams: Arc<dyn EventStreams> =
            Arc::new(crate::state::memory::MemoryEventStreams::default());
        run(&Upstreams {
            http: &client,
            stdio: &children,
            stdio_timeouts: stdio::StdioTimeouts {
                start: Duration::from_secs(1),
                head: Duration::from_secs(1),
                poll_after: None,
                retry: Duration::from_secs(1),
            },
            event_streams: &streams,
            owner: Owner {
                client: Some("agent"),
                subject: None,
            },
        });
    }

    #[test]
    fn a_tool_goes_to_its_servers_own_upstream_under_its_own_name() {
        let credential = (
            HeaderName::from_static("x-upstream-key"),
            HeaderValue::from_static("s3cret"),
        );
        let files = server("http://files.internal:9000/mcp", Some(credential.clone()));
        let token = [(
            HeaderName::from_static("authorization"),
            HeaderValue::from_static("Bearer t"),
        )];
        with_upstreams(|upstreams| {
            let route = route(&files, upstreams, Some("read_file"), &token);
            assert_eq!(route.original_tool_name, Some("read_file"));
            let Transport::Http(http) = &route.upstream else {
                panic!("an HTTP server is reached over HTTP")
            };
            assert_eq!(http.uri, &files.upstream);
            assert_eq!(http.credential, Some(&credential));
            assert_eq!(http.injected, &token);
        });
    }

    #[test]
    fn a_call_without_a_tool_routes_to_the_server_and_names_none() {
        let other = server("https://other.example/mcp", None);
        with_upstreams(|upstreams| {
            let route = route(&other, upstreams, None, &[]);
            assert_eq!(route.original_tool_name, None);
            let Transport::Http(http) = &route.upstream else {
                panic!("an HTTP server is reached over HTTP")
            };
            assert_eq!(http.uri.to_string(), "https://other.example/mcp");
            assert!(http.credential.is_none());
        });
    }

    #[test]
    fn a_server_with_a_command_is_reached_over_stdio_as_the_caller() {
        let mut local = server("stdio://files", None);
        local.stdio = Some(Arc::new(StdioLaunch {
            settings: StdioSettings {
                command: "npx".into(),
                args: vec![],
                env_names: vec![],
                env_sealed: None,
                cwd: None,
                sharing: Default::default(),
                max_children: None,
                idle_timeout_secs: None,
                limits: Default::default(),
            },
            env: vec![],
        }));
        with_upstreams(|upstreams| {
            let route = route(&local, upstreams, Some("read_file"), &[]);
            let Transport::Stdio(stdio) = &route.upstream else {
                panic!("a stdio server is reached over stdio")
            };
            assert_eq!(stdio.server, "files");
            assert_eq!(stdio.owner.client, Some("agent"));
        });
    }
}
