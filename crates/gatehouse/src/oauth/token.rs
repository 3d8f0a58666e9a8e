//! The token endpoint (RFC 6749 §3.2): client authentication, then one grant type.
//!
//! Nothing here waits on the database for `client_credentials`: clients, secrets, connections
//! and signing keys come from the snapshot, so the endpoint scales like the gateway does.

use axum::{
    extract::{ConnectInfo, Request, State},
    response::Response,
};
use http::Method;
use serde_json::json;
use std::{collections::BTreeSet, net::SocketAddr, time::Instant};

use crate::{
    AppState,
    error::OAuthError,
    oauth::{
        OAuthAudit,
        clients::OAuthClient,
        form::Form,
        tokens::{self, MintRequest},
    },
    snapshot::Snapshot,
};
use gatehouse_model::scope::{Scope, ScopeItem};

pub async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let started = Instant::now();
    let mut audit = OAuthAudit::new(&state, peer, request.headers(), "oauth/token");
    let (parts, body) = request.into_parts();
    let result = async {
        if parts.method != Method::POST {
            return Err(OAuthError::MethodNotAllowed);
        }
        let form = Form::read(&parts.headers, body, &["resource"]).await?;
        let snapshot = state.snapshot.current();
        let now = crate::now_ms();
        // A workload token without client authentication is the client's credential itself.
        let workload =
            super::jwt_bearer::workload_client(&state, &snapshot, &parts.headers, &form, now)
                .await?;
        let client = match &workload {
            Some((client, _)) => client.clone(),
            None => {
                super::assertion::authenticate(&state, &snapshot, &parts.headers, &form, now)
                    .await?
            }
        };
        audit.client = Some(client.name.to_string());
        let token_endpoint = format!("{}/oauth/token", state.config.public_base());
        let proof = super::dpop::check_request(
            &state,
            &parts.headers,
            "POST",
            &token_endpoint,
            None,
            now.div_euclid(1000),
        )
        .await
        .map_err(|refusal| match refusal {
            super::dpop::ProofRefusal::UseNonce(nonce) => OAuthError::UseDpopNonce(nonce),
            super::dpop::ProofRefusal::Unavailable => OAuthError::TemporarilyUnavailable,
            other => OAuthError::InvalidDpopProof(other.to_string()),
        })?;
        if proof.is_none() && client.metadata.dpop_bound_access_tokens {
            return Err(OAuthError::InvalidDpopProof(
                "this client's token requests must carry a DPoP proof".into(),
            ));
        }
        let jkt = proof.as_ref().map(|p| p.jkt.as_str());
        let grant_type = form.require("grant_type")?;
        match grant_type {
            "client_credentials" => {
                audit.method = "oauth/token:client_credentials";
                client_credentials(&state, &snapshot, &client, &form, (now, jkt), &mut audit)
            }
            "authorization_code" => {
                audit.method = "oauth/token:authorization_code";
                super::grants::authorization_code(
                    &state,
                    &snapshot,
                    &client,
                    &form,
                    (now, jkt),
                    &mut audit,
                )
                .await
            }
            "refresh_token" => {
                audit.method = "oauth/token:refresh_token";
                super::grants::refresh_token(
                    &state,
                    &snapshot,
                    &client,
                    &form,
                    (now, jkt),
                    &mut audit,
                )
                .await
            }
            super::jwt_bearer::GRANT_TYPE => {
                audit.method = "oauth/token:jwt-bearer";
                super::jwt_bearer::grant(
                    &state,
                    &snapshot,
                    &client,
                    &form,
                    (now, jkt),
                    (&mut audit, workload.as_ref().map(|(_, use_once)| use_once)),
                )
                .await
            }
            other => Err(OAuthError::UnsupportedGrantType(
                other.chars().take(64).collect(),
            )),
        }
    }
    .await;
    state.metrics.token_outcome(
        audit.method.strip_prefix("oauth/token:").unwrap_or("-"),
        result.as_ref().err().map(OAuthError::code),
    );
    audit.respond(&state, started, result.map(Some)).await
}

fn client_credentials(
    state: &AppState,
    snapshot: &Snapshot,
    client: &OAuthClient,
    form: &Form,
    (now, jkt): (i64, Option<&str>),
    audit: &mut OAuthAudit,
) -> Result<serde_json::Value, OAuthError> {
    // A public client has no credentials to present for itself.
    if client.is_public() {
        return Err(OAuthError::UnauthorizedClient(
            "this client may not use the client_credentials grant".into(),
        ));
    }
    client.require_grant("client_credentials")?;
    issue_for_client(state, snapshot, &client.name, form, (now, jkt), audit)
}

/// An access token acting for `client` itself, within its connections: what
/// `client_credentials` and a workload's jwt-bearer grant issue.
pub(super) fn issue_for_client(
    state: &AppState,
    snapshot: &Snapshot,
    client: &str,
    form: &Form,
    (now, jkt): (i64, Option<&str>),
    audit: &mut OAuthAudit,
) -> Result<serde_json::Value, OAuthError> {
    let (audiences, scope) = audience_and_scope(
        snapshot,
        client,
        form.all("resource").collect(),
        form.get("scope"),
    )?;
    // OAuth 2.1 §4.2: no refresh token for client credentials, so `offline_access` means
    // nothing here.
    let scope = Scope::from_items(
        scope
            .items()
            .filter(|i| **i != ScopeItem::OfflineAccess)
            .cloned(),
    );
    let ttl = i64::try_from(state.config.oauth.access_token_ttl.as_secs()).unwrap_or(600);
    let minted = tokens::mint(
        &snapshot.oauth.signing,
        &MintRequest {
            issuer: state.config.public_base(),
            subject: client,
            client_id: client,
            audiences: &audiences,
            scope: &scope,
            ttl_secs: ttl,
            now_ms: now,
            grant: None,
            jkt,
        },
    )?;
    audit.credential_id = Some(minted.jti.clone());
    Ok(json!({
        "access_token": minted.token,
        "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": minted.expires_in,
        "scope": scope.to_string(),
    }))
}

/// The audiences and scope of a new token, within `client`'s connections.
///
/// - `resource` parameters (RFC 8707) must each be a server's MCP URL that the client has a
///   connection to (`invalid_target` otherwise).
/// - A requested `scope` must name only those servers (or, without `resource`, servers the
///   client is connected to), and only tools the connection grants (`invalid_scope`).
/// - Without `scope`, the token gets `mcp:{server}` for each audience; without either, for
///   every server the client is connected to.
pub fn audience_and_scope(
    snapshot: &Snapshot,
    client: &str,
    resources: Vec<&str>,
    requested: Option<&str>,
) -> Result<(Vec<String>, Scope), OAuthError> {
    let mut servers: BTreeSet<String> = BTreeSet::new();
    for resource in &resources {
        let server = snapshot.server_by_resource(resource).ok_or_else(|| {
            OAuthError::InvalidTarget(format!(
                "resource {:?} is not an MCP server behind this authorization server",
                resource.chars().take(200).collect::<String>()
            ))
        })?;
        if snapshot.grant(client, &server.name).is_none() {
            return Err(OAuthError::InvalidTarget(format!(
                "this client has no connection to {}",
                server.resource
            )));
        }
        servers.insert(server.name.to_string());
    }
    let scope = match requested {
        Some(text) => {
            let scope = Scope::parse(text).map_err(|e| OAuthError::InvalidScope(e.to_string()))?;
            for item in scope.items() {
                let Some(server) = item.server() else {
                    continue;
                };
                let beyond = || OAuthError::InvalidScope(format!("scope {item} is not granted"));
                if !resources.is_empty() && !servers.contains(server) {
                    return Err(OAuthError::InvalidScope(format!(
                        "scope {item} names a server outside the requested resource"
                    )));
                }
                let grant = snapshot.grant(client, server).ok_or_else(beyond)?;
                if let ScopeItem::Tool { tool, .. } = item
                    && !grant.allows_tool(tool, None)
                {
                    return Err(beyond());
                }
            }
            if resources.is_empty() {
                servers = scope.servers().into_iter().map(str::to_owned).collect();
            }
            scope
        }
        None => {
            if resources.is_empty() {
                servers = snapshot
                    .clients
                    .get(client)
                    .map(|c| c.servers().map(str::to_owned).collect())
                    .unwrap_or_default();
            }
            Scope::from_items(servers.iter().cloned().map(ScopeItem::Server))
        }
    };
    if servers.is_empty() {
        return Err(OAuthError::InvalidScope(
            "the token would name no server: request a resource or an mcp:{server} scope".into(),
        ));
    }
    let audiences = servers
        .iter()
        .filter_map(|name| snapshot.servers.get(name))
        .map(|s| s.resource.clone())
        .collect();
    Ok((audiences, scope))
}
