//! Client ID Metadata Documents (the MCP Authorization specification's preferred
//! registration): a client whose `client_id` is an `https://` URL publishes its metadata
//! there, and Gatehouse fetches it.
//!
//! The fetch is an SSRF risk, so it is fenced: https only, no credentials in the URL, the
//! host's addresses checked *when connecting* (a resolver that drops private, loopback,
//! link-local, multicast and reserved addresses, so a DNS answer cannot point the request at
//! the internal network), no redirects, 5 s, 5 KiB. A document is trusted for its
//! `Cache-Control: max-age` (60 s to 24 h, default 10 min), then fetched again. The client is
//! recorded like a dynamically registered one (public, authorization code only), named by its
//! URL, so codes and refresh tokens bind to it as to any client.

use http::{Uri, header};
use http_body_util::{BodyExt, Full, Limited};
use serde_json::Value;
use std::{
    net::IpAddr,
    time::{Duration, Instant},
};

use crate::{
    AppState,
    federation::client_metadata::{TIMEOUT, is_public},
};
use gatehouse_model::{
    names::{ApplicationType, RedirectUri},
    records::{ClientRecord, OAuthClientMetadata},
};

const MAX_DOCUMENT: usize = 5 * 1024;
const DEFAULT_TTL: u64 = 600;

/// Whether `client_id` is shaped like a metadata-document URL.
pub fn is_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://")
}

/// The domain trust policy: with patterns configured, only a client id on a matching host is
/// fetched at all.
fn trusted_host(uri: &Uri, patterns: &[String]) -> Result<(), String> {
    let host = uri.host().unwrap_or("");
    if patterns.is_empty()
        || patterns
            .iter()
            .any(|p| gatehouse_model::host_pattern::matches(p, host))
    {
        Ok(())
    } else {
        Err(format!(
            "client ids on {host} are not trusted by this authorization server"
        ))
    }
}

fn check_url(url: &str, allow_private: bool) -> Result<Uri, String> {
    let uri: Uri = url
        .parse()
        .map_err(|_| "client_id is not a URL".to_owned())?;
    if uri.scheme_str() != Some("https") || url.contains('#') || url.len() > 2048 {
        return Err("client_id must be an https URL without a fragment".into());
    }
    let authority = uri.authority().ok_or("client_id has no host")?;
    if authority.as_str().contains('@') {
        return Err("client_id must not carry credentials".into());
    }
    if uri.path() == "/" || uri.path().is_empty() {
        return Err("client_id must have a path".into());
    }
    // An IP literal skips the resolver, so it is checked here.
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if let Ok(ip) = host.parse::<IpAddr>()
        && !allow_private
        && !is_public(ip)
    {
        return Err("client_id points at a private address".into());
    }
    Ok(uri)
}

/// The metadata in a document, checked against the URL it came from.
pub fn parse_document(url: &str, body: &[u8]) -> Result<OAuthClientMetadata, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the document is not UTF-8".to_owned())?;
    let doc = gatehouse_model::jsonrpc::strict_value(text)
        .map_err(|_| "the document is not a JSON object without duplicate keys".to_owned())?;
    if doc.get("client_id").and_then(Value::as_str) != Some(url) {
        return Err("the document's client_id is not its own URL".into());
    }
    let method = doc
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("none");
    if method != "none" {
        return Err(format!(
            "token_endpoint_auth_method {method} is not supported for metadata documents (use none)"
        ));
    }
    let list = |key: &str| -> Vec<String> {
        doc.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let redirect_uris = list("redirect_uris");
    if redirect_uris.is_empty() || redirect_uris.len() > 10 {
        return Err("the document needs 1 to 10 redirect_uris".into());
    }
    // Honoured as declared: a web client's redirect URIs follow the web rules (no private-use
    // schemes, a loopback port matched exactly). Undeclared stays native, as such documents
    // were read before clients had to say.
    let application = match doc.get("application_type") {
        None => ApplicationType::Native,
        Some(value) => value
            .as_str()
            .and_then(ApplicationType::parse)
            .ok_or("application_type must be web or native")?,
    };
    for uri in &redirect_uris {
        RedirectUri::parse(uri, application).map_err(|e| e.to_string())?;
    }
    let mut grant_types = list("grant_types");
    if grant_types.is_empty() {
        grant_types = vec!["authorization_code".into(), "refresh_token".into()];
    }
    if grant_types
        .iter()
        .any(|g| g != "authorization_code" && g != "refresh_token")
    {
        return Err(
            "metadata-document clients may use authorization_code and refresh_token only".into(),
        );
    }
    let client_name = doc
        .get("client_name")
        .and_then(Value::as_str)
        .map(|n| n.chars().filter(|c| !c.is_control()).take(100).collect());
    Ok(OAuthClientMetadata {
        token_endpoint_auth_method: "none".into(),
        grant_types,
        redirect_uris,
        application_type: Some(application.as_str().into()),
        jwks: None,
        client_name,
        origin: "cimd".into(),
        dpop_bound_access_tokens: doc
            .get("dpop_bound_access_tokens")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    })
}

/// The root cause of an error (hyper's outer message, "client error (Connect)", says little).
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

fn max_age(headers: &http::HeaderMap) -> u64 {
    let cache_control = headers
        .get(header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if cache_control.contains("no-store") || cache_control.contains("no-cache") {
        return 60;
    }
    cache_control
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_TTL)
        .clamp(60, 86_400)
}

/// Makes sure the client of `url` is known and fresh: fetches and records its document when
/// needed. Errors are for the person at the browser (the client is not trusted yet).
pub async fn ensure(state: &AppState, url: &str) -> Result<(), String> {
    let documents = &state.client_metadata;
    if documents
        .fresh_until
        .lock()
        .get(url)
        .is_some_and(|until| *until > Instant::now())
    {
        return Ok(());
    }
    let uri = check_url(url, documents.allow_private)?;
    trusted_host(&uri, &state.config.oauth.client_metadata_hosts)?;
    let client = documents
        .client
        .as_ref()
        .ok_or("metadata documents cannot be fetched (TLS setup failed)")?;
    let request = http::Request::get(uri)
        .header(header::ACCEPT, "application/json")
        .body(Full::default())
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(TIMEOUT, client.request(request))
        .await
        .map_err(|_| "the metadata document did not arrive in time".to_owned())?
        .map_err(|e| {
            format!(
                "the metadata document could not be fetched: {}",
                innermost(&e)
            )
        })?;
    if response.status() != http::StatusCode::OK {
        return Err(format!(
            "the metadata document answered HTTP {}",
            response.status()
        ));
    }
    let ttl = max_age(response.headers());
    let body = tokio::time::timeout(
        TIMEOUT,
        Limited::new(response.into_body(), MAX_DOCUMENT).collect(),
    )
    .await
    .map_err(|_| "the metadata document did not arrive in time".to_owned())?
    .map_err(|_| "the metadata document is larger than 5 KiB".to_owned())?
    .to_bytes();
    let metadata = parse_document(url, &body)?;
    let stored = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "recording a metadata-document client failed");
        "try again".to_owned()
    };
    match state.store.get_client(url).await {
        Ok(existing) if existing.oauth.as_ref() == Some(&metadata) => {}
        Ok(existing) if existing.oauth.as_ref().is_some_and(|m| m.origin == "cimd") => {
            state
                .store
                .set_client_oauth(url, Some(&metadata))
                .await
                .map_err(stored)?;
        }
        Ok(_) => return Err("this client id is registered otherwise".into()),
        Err(crate::store::StoreError::NotFound { .. }) => {
            state
                .store
                .insert_client(&ClientRecord {
                    name: url.to_owned(),
                    description: "client ID metadata document".into(),
                    disabled_at: None,
                    created_at: crate::now_ms(),
                    oauth: Some(metadata),
                })
                .await
                .map_err(stored)?;
        }
        Err(e) => return Err(stored(e)),
    }
    if let Err(err) = state.snapshot.reload().await {
        tracing::error!(error = %err, "snapshot reload after a metadata document failed");
    }
    documents
        .fresh_until
        .lock()
        .insert(url.to_owned(), Instant::now() + Duration::from_secs(ttl));
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_fenced() {
        assert!(check_url("https://app.example.com/client.json", false).is_ok());
        for bad in [
            "http://app.example.com/client.json",
            "https://app.example.com/",
            "https://user:pw@app.example.com/c.json",
            "https://127.0.0.1/c.json",
            "https://[::1]/c.json",
            "https://169.254.169.254/latest",
            "https://app.example.com/c.json#x",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("https://127.0.0.1/c.json", true).is_ok());
    }

    #[test]
    fn documents_must_name_themselves() {
        let url = "https://app.example.com/c.json";
        let good = format!(
            r#"{{"client_id":"{url}","client_name":"App","redirect_uris":["http://127.0.0.1:3000/cb"]}}"#
        );
        let meta = parse_document(url, good.as_bytes()).unwrap();
        assert_eq!(meta.origin, "cimd");
        assert_eq!(meta.client_name.as_deref(), Some("App"));
        let other = good.replace(url, "https://evil.example/c.json");
        assert!(parse_document(url, other.as_bytes()).is_err());
        let secret = good.replace(
            r#""client_name""#,
            r#""token_endpoint_auth_method":"client_secret_basic","client_name""#,
        );
        assert!(parse_document(url, secret.as_bytes()).is_err());
        let cc = good.replace(
            r#""client_name""#,
            r#""grant_types":["client_credentials"],"client_name""#,
        );
        assert!(parse_document(url, cc.as_bytes()).is_err());
        assert!(parse_document(url, b"{\"client_id\":1,\"client_id\":2}").is_err());
    }

    #[test]
    fn the_declared_application_type_decides_the_redirect_rules() {
        let url = "https://app.example.com/c.json";
        let doc = |kind: &str, redirect: &str| {
            format!(r#"{{"client_id":"{url}",{kind}"redirect_uris":["{redirect}"]}}"#)
        };
        let private_scheme = "com.example.app:/cb";
        let native = parse_document(url, doc("", private_scheme).as_bytes()).unwrap();
        assert_eq!(native.application_type.as_deref(), Some("native"));
        assert!(
            parse_document(
                url,
                doc(r#""application_type":"web","#, private_scheme).as_bytes()
            )
            .is_err(),
            "a web client has no private-use scheme"
        );
        let web = parse_document(
            url,
            doc(r#""application_type":"web","#, "https://app.example.com/cb").as_bytes(),
        )
        .unwrap();
        assert_eq!(web.application_type.as_deref(), Some("web"));
        assert!(
            parse_document(
                url,
                doc(r#""application_type":"tv","#, private_scheme).as_bytes()
            )
            .is_err()
        );
    }

    #[test]
    fn host_patterns_gate_the_fetch() {
        let uri: Uri = "https://a.example.com/c.json".parse().unwrap();
        assert!(trusted_host(&uri, &[]).is_ok());
        assert!(trusted_host(&uri, &["*.example.com".into()]).is_ok());
        assert!(trusted_host(&uri, &["example.com".into()]).is_err());
    }

    #[test]
    fn cache_lifetime_from_headers() {
        let mut headers = http::HeaderMap::new();
        assert_eq!(max_age(&headers), DEFAULT_TTL);
        headers.insert(
            header::CACHE_CONTROL,
            "public, max-age=3600".parse().unwrap(),
        );
        assert_eq!(max_age(&headers), 3600);
        headers.insert(header::CACHE_CONTROL, "max-age=5".parse().unwrap());
        assert_eq!(max_age(&headers), 60);
        headers.insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(max_age(&headers), 60);
    }
}
