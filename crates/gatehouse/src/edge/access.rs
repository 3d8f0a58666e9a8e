//! The checks before any credential is looked at: `Host` and `Origin` (DNS rebinding, as the
//! MCP transport requires), and reading the credential from the request.

use axum::{extract::Request, response::Response};
use http::{HeaderMap, HeaderValue, Uri, Version, header};

use crate::{
    config::Config,
    error::{CredentialProblem, GatewayError},
};

/// Which `Host` and `Origin` values reach the gateway.
#[derive(Debug, Clone)]
pub struct HostOriginPolicy {
    any_host: bool,
    hosts: Vec<String>,
    any_origin: bool,
    origins: Vec<String>,
}

const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "[::1]"];

impl HostOriginPolicy {
    pub fn from_config(config: &Config) -> Self {
        let public: Option<Uri> = config.public_url.parse().ok();
        let mut hosts: Vec<String> = config
            .gateway
            .allowed_hosts
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .collect();
        let mut origins: Vec<String> = config
            .gateway
            .allowed_origins
            .iter()
            .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
            .collect();
        if let Some(public) = &public
            && let Some(authority) = public.authority()
        {
            hosts.push(authority.as_str().to_ascii_lowercase());
            if let Some(scheme) = public.scheme_str() {
                origins.push(format!(
                    "{scheme}://{}",
                    authority.as_str().to_ascii_lowercase()
                ));
            }
        }
        Self {
            any_host: hosts.iter().any(|h| h == "*"),
            hosts,
            any_origin: origins.iter().any(|o| o == "*"),
            origins,
        }
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<(), GatewayError> {
        if !self.any_host {
            // HTTP/1.1 requires Host; without one there is nothing to rebind.
            let mut hosts = headers.get_all(header::HOST).iter();
            if let Some(host) = hosts.next() {
                if hosts.next().is_some() {
                    return Err(GatewayError::InvalidHostHeader("more than one Host header"));
                }
                let host = host.to_str().map_err(|_| GatewayError::HostNotAllowed)?;
                if !self.host_allowed(&host.to_ascii_lowercase()) {
                    return Err(GatewayError::HostNotAllowed);
                }
            }
        }
        if !self.any_origin
            && let Some(origin) = headers.get(header::ORIGIN)
        {
            let origin = origin
                .to_str()
                .map_err(|_| GatewayError::OriginNotAllowed)?;
            if !self.origin_allowed(&origin.to_ascii_lowercase()) {
                return Err(GatewayError::OriginNotAllowed);
            }
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.hosts.iter().any(|h| h == host) || is_loopback_authority(host)
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        if self.origins.iter().any(|o| o == origin) {
            return true;
        }
        // Loopback origins (local tools such as the MCP Inspector) are as local as we are.
        origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .is_some_and(is_loopback_authority)
    }
}

/// Every route: the request names exactly one authority, and `Host` is it (RFC 9112 §3.2).
///
/// An HTTP/1.1 request without `Host` or with two is refused (400). A request in absolute form
/// targets the authority in its URI, whatever its `Host` says (§3.2.2), so that authority
/// replaces `Host`: the DNS-rebinding check and everything after it then judge the host the
/// request actually targets. HTTP/2 carries the authority in the URI too.
/// The refusal, if the request is refused.
pub fn one_authority(request: &mut Request) -> Option<Response> {
    let hosts = request.headers().get_all(header::HOST).iter().count();
    let target = request
        .uri()
        .authority()
        .map(|a| HeaderValue::from_str(a.as_str()));
    let refused = match (hosts, target) {
        (2.., _) => Some("more than one Host header"),
        (_, Some(Err(_))) => Some("the request target's authority is not a valid host"),
        (_, Some(Ok(authority))) => {
            request.headers_mut().insert(header::HOST, authority);
            None
        }
        (0, None) if request.version() == Version::HTTP_11 => Some("no Host header"),
        _ => None,
    };
    let problem = refused?;
    let path = request.uri().path();
    // Each face answers in its own protocol.
    Some(
        if path.starts_with("/oauth/") || path.starts_with("/.well-known/") {
            crate::error::OAuthError::InvalidRequest(problem.into()).into_response()
        } else {
            GatewayError::InvalidHostHeader(problem).into_response(&Default::default())
        },
    )
}

/// [`one_authority`] in front of every route, as a layer. Written out rather than with
/// `axum::middleware::from_fn`, which boxes the inner service and its future on every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct OneAuthorityLayer;

impl<S> tower_layer::Layer<S> for OneAuthorityLayer {
    type Service = OneAuthority<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OneAuthority(inner)
    }
}

/// The service [`OneAuthorityLayer`] wraps around the router.
#[derive(Debug, Clone)]
pub struct OneAuthority<S>(S);

impl<S> tower_service::Service<Request> for OneAuthority<S>
where
    S: tower_service::Service<Request, Response = Response>,
{
    type Response = Response;
    type Error = S::Error;
    type Future =
        futures_util::future::Either<std::future::Ready<Result<Response, S::Error>>, S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match one_authority(&mut request) {
            None => futures_util::future::Either::Right(self.0.call(request)),
            Some(refusal) => futures_util::future::Either::Left(std::future::ready(Ok(refusal))),
        }
    }
}

/// `localhost`, `127.0.0.1` or `[::1]`, with or without a port.
fn is_loopback_authority(authority: &str) -> bool {
    LOOPBACK_HOSTS.iter().any(|h| {
        authority == *h
            || authority
                .strip_prefix(h)
                .and_then(|rest| rest.strip_prefix(':'))
                .is_some_and(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The credential a request carries: `Authorization: Bearer …` or `X-API-Key`.
/// Whether the `Authorization` header uses the DPoP scheme.
pub fn is_dpop_scheme(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().get(..5))
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"dpop "))
}

pub fn credential<'a>(headers: &'a HeaderMap, uri: &Uri) -> Result<Option<&'a str>, GatewayError> {
    if let Some(query) = uri.query() {
        let leaked = query.split('&').any(|pair| {
            let name = pair.split('=').next().unwrap_or("").to_ascii_lowercase();
            matches!(
                name.as_str(),
                "access_token" | "api_key" | "apikey" | "key" | "token"
            )
        });
        if leaked {
            return Err(GatewayError::InvalidCredential(
                CredentialProblem::InQueryString,
            ));
        }
    }
    let invalid = |_| GatewayError::InvalidCredential(CredentialProblem::Malformed);
    let bearer = match headers.get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().map_err(invalid)?;
            let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
            // `DPoP` (RFC 9449 §7.1) carries a key-bound access token; its proof is checked
            // where the token is.
            if !(scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop"))
                || token.trim().is_empty()
            {
                return Err(GatewayError::InvalidCredential(
                    CredentialProblem::Malformed,
                ));
            }
            Some(token.trim())
        }
        None => None,
    };
    // A `HeaderName`: a lookup by `&str` parses and lower-cases the name each time.
    const API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");
    let api_key = match headers.get(API_KEY) {
        Some(value) => Some(value.to_str().map_err(invalid)?.trim()),
        None => None,
    };
    match (bearer, api_key) {
        (Some(a), Some(b)) if a != b => Err(GatewayError::InvalidCredential(
            CredentialProblem::Conflicting,
        )),
        (Some(token), _) | (None, Some(token)) => Ok(Some(token)),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn policy() -> HostOriginPolicy {
        let config = Config {
            public_url: "https://mcp.example.com".into(),
            ..Config::default()
        };
        HostOriginPolicy::from_config(&config)
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn hosts_and_origins() {
        let p = policy();
        assert!(p.check(&headers(&[("host", "mcp.example.com")])).is_ok());
        assert!(p.check(&headers(&[("host", "127.0.0.1:8080")])).is_ok());
        assert!(p.check(&headers(&[("host", "localhost")])).is_ok());
        assert_eq!(
            p.check(&headers(&[("host", "evil.example.com")])),
            Err(GatewayError::HostNotAllowed)
        );
        assert_eq!(
            p.check(&headers(&[("host", "localhost.evil.com")])),
            Err(GatewayError::HostNotAllowed)
        );
        assert!(
            p.check(&headers(&[("origin", "https://mcp.example.com")]))
                .is_ok()
        );
        assert!(
            p.check(&headers(&[("origin", "http://localhost:6274")]))
                .is_ok()
        );
        assert_eq!(
            p.check(&headers(&[("origin", "http://evil.example.com")])),
            Err(GatewayError::OriginNotAllowed)
        );
    }

    #[test]
    fn credentials_from_headers_only() {
        let uri: Uri = "/demo/mcp".parse().unwrap();
        assert_eq!(
            credential(&headers(&[("authorization", "Bearer abc")]), &uri).unwrap(),
            Some("abc")
        );
        assert_eq!(
            credential(&headers(&[("authorization", "bearer abc")]), &uri).unwrap(),
            Some("abc")
        );
        assert_eq!(
            credential(&headers(&[("x-api-key", "abc")]), &uri).unwrap(),
            Some("abc")
        );
        assert!(credential(&headers(&[("authorization", "Basic abc")]), &uri).is_err());
        assert!(
            credential(
                &headers(&[("authorization", "Bearer a"), ("x-api-key", "b")]),
                &uri
            )
            .is_err()
        );
        let leaky: Uri = "/demo/mcp?api_key=abc".parse().unwrap();
        assert_eq!(
            credential(&HeaderMap::new(), &leaky),
            Err(GatewayError::InvalidCredential(
                CredentialProblem::InQueryString
            ))
        );
    }
}
