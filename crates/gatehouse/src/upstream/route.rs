//! The routing step between authorisation and the upstream call: which upstream serves a
//! server's tool, and under what name it knows the tool. One-to-one today (a server is one
//! upstream, a tool keeps its name); a virtual server, aggregating several upstreams, answers
//! here with the member that owns the tool and the tool's name there.

use http::{HeaderName, HeaderValue};

use super::{HttpUpstream, Transport};
use crate::{snapshot::ServerEntry, upstream::client::UpstreamClient};

/// Where one call goes.
pub struct Route<'a> {
    pub upstream: Transport<'a>,
    /// The tool's name as the upstream knows it; `None` when the request calls no tool.
    pub original_tool_name: Option<&'a str>,
}

/// Routes a call to `tool` (if it calls one) on `server`; `client` is the process's pool of
/// upstream connections; `injected` the headers this caller's call carries (an upstream
/// token, the identity assertion).
pub fn route<'a>(
    server: &'a ServerEntry,
    client: &'a UpstreamClient,
    tool: Option<&'a str>,
    injected: &'a [(HeaderName, HeaderValue)],
) -> Route<'a> {
    Route {
        upstream: Transport::Http(HttpUpstream {
            client,
            uri: &server.upstream,
            credential: server.auth.static_header(),
            injected,
        }),
        original_tool_name: tool,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GatewayConfig;
    use crate::snapshot::upstream_auth::UpstreamAuth;
    use gatehouse_model::pin_action::PinAction;

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
        }
    }

    #[test]
    fn a_tool_goes_to_its_servers_own_upstream_under_its_own_name() {
        let client = UpstreamClient::new(&GatewayConfig::default()).unwrap();
        let credential = (
            HeaderName::from_static("x-upstream-key"),
            HeaderValue::from_static("s3cret"),
        );
        let files = server("http://files.internal:9000/mcp", Some(credential.clone()));
        let token = [(
            HeaderName::from_static("authorization"),
            HeaderValue::from_static("Bearer t"),
        )];
        let route = route(&files, &client, Some("read_file"), &token);
        assert_eq!(route.original_tool_name, Some("read_file"));
        let Transport::Http(http) = &route.upstream;
        assert_eq!(http.uri, &files.upstream);
        assert_eq!(http.credential, Some(&credential));
        assert_eq!(http.injected, &token);
    }

    #[test]
    fn a_call_without_a_tool_routes_to_the_server_and_names_none() {
        let client = UpstreamClient::new(&GatewayConfig::default()).unwrap();
        let other = server("https://other.example/mcp", None);
        let route = route(&other, &client, None, &[]);
        assert_eq!(route.original_tool_name, None);
        let Transport::Http(http) = &route.upstream;
        assert_eq!(http.uri.to_string(), "https://other.example/mcp");
        assert!(http.credential.is_none());
    }
}
