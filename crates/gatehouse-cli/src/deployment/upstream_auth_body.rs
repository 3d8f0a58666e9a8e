//! A server's upstream token settings as the admin API's `upstream_auth` body takes them, so
//! the remote CLI sends what the local one hands the admin service.

use gatehouse::admin::{upstream_auth::NewUpstreamAuth, upstream_registration::PerUserDiscovery};
use gatehouse_model::upstream_auth::{UpstreamAuthSpec, UpstreamClientAuth};
use serde_json::{Value, json};

/// The `upstream_auth` body for settings given in full or to be discovered.
pub fn upstream_auth_body(
    given: Option<&NewUpstreamAuth>,
    discovery: Option<&PerUserDiscovery>,
) -> Option<Value> {
    if let Some(d) = discovery {
        return Some(json!({
            "kind": "per_user",
            "issuer": d.issuer,
            "client_id": d.client_id,
            "auth_method": d.auth_method.map(UpstreamClientAuth::as_str),
            "client_secret": d.secret,
            "scope": d.scope,
            "resource": d.resource,
        }));
    }
    let given = given?;
    let client = given.spec.client();
    let mut body = json!({
        "kind": given.spec.kind(),
        "token_endpoint": client.token_endpoint,
        "client_id": client.client_id,
        "auth_method": client.auth_method.as_str(),
        "scope": client.scope,
        "resource": client.resource,
    });
    let secret_field = if client.auth_method == UpstreamClientAuth::PrivateKeyJwt {
        "private_key_pem"
    } else {
        "client_secret"
    };
    if let Some(secret) = &given.secret {
        body[secret_field] = json!(secret);
    }
    if let UpstreamAuthSpec::PerUser {
        authorization_endpoint,
        revocation_endpoint,
        issuer,
        ..
    } = &given.spec
    {
        body["authorization_endpoint"] = json!(authorization_endpoint);
        body["revocation_endpoint"] = json!(revocation_endpoint);
        body["issuer"] = json!(issuer);
    }
    Some(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_is_sent_as_a_per_user_body_without_endpoints() {
        let discovery = PerUserDiscovery {
            issuer: Some("https://as.example".into()),
            scope: Some("repo".into()),
            ..Default::default()
        };
        let body = upstream_auth_body(None, Some(&discovery)).unwrap();
        assert_eq!(body["kind"], "per_user");
        assert_eq!(body["issuer"], "https://as.example");
        assert!(body["token_endpoint"].is_null());
        assert!(body["authorization_endpoint"].is_null());
        assert!(upstream_auth_body(None, None).is_none());
    }
}
