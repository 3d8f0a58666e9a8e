//! Enterprise-managed authorization (MCP extension
//! `io.modelcontextprotocol/enterprise-managed-authorization`): a client redeems an Identity
//! Assertion JWT Authorization Grant (ID-JAG, draft-ietf-oauth-identity-assertion-authz-grant)
//! that the person's enterprise IdP issued it by token exchange (RFC 8693), and gets an access
//! token for that person without a browser.
//!
//! The IdP is an `[[oauth.providers]]` entry with `accept_id_jag`, so its keys come from the
//! same discovery as browser sign-in, and the person is the same Gatehouse user either way
//! (found by provider + `sub`; by `email` as a configured fallback). The token reaches what
//! that user's groups reach on the one server the ID-JAG names, within its scope. No refresh
//! token: the client asks the IdP for a fresh ID-JAG, so the IdP's policy is asked again.

use serde_json::{Value, json};

use crate::{
    AppState,
    config::IdentityProviderConfig,
    error::{AssertionRefusal, AssertionRole, OAuthError},
    identity::oauth_clients::OAuthClient,
    oauth::{
        OAuthAudit,
        external::unverified_claim,
        form::Form,
        jwt_bearer::{GRANT_TYPE, ID_JAG_TYP},
        tokens::{self, MintRequest},
        upstream, workload,
    },
    snapshot::Snapshot,
    tokens::jwt::{self, Expectations, JwtError},
};
use gatehouse_model::{
    records::UserRecord,
    scope::{Scope, ScopeItem},
};

/// The provider that issued `assertion`, if it accepts ID-JAGs.
fn provider_of<'a>(state: &'a AppState, assertion: &str) -> Option<&'a IdentityProviderConfig> {
    let iss = unverified_claim(assertion, "iss")?;
    state
        .config
        .oauth
        .providers
        .iter()
        .find(|p| p.accept_id_jag && p.issuer.trim_end_matches('/') == iss.trim_end_matches('/'))
}

/// Whether `granted` (the ID-JAG's scope) covers `item`: itself, or its whole server.
fn covers(granted: &Scope, item: &ScopeItem) -> bool {
    granted.contains(item)
        || item
            .server()
            .is_some_and(|server| granted.contains(&ScopeItem::Server(server.to_owned())))
}

pub async fn grant(
    state: &AppState,
    snapshot: &Snapshot,
    client: &OAuthClient,
    assertion: &str,
    form: &Form,
    (now_ms, jkt): (i64, Option<&str>),
    audit: &mut OAuthAudit,
) -> Result<Value, OAuthError> {
    client.require_grant(GRANT_TYPE)?;
    let refuse = |refusal: AssertionRefusal| {
        tracing::info!(client = %client.name, %refusal, "ID-JAG refused");
        refusal.into_oauth(AssertionRole::Grant)
    };
    let now = now_ms.div_euclid(1000);
    let provider =
        provider_of(state, assertion).ok_or_else(|| refuse(AssertionRefusal::UntrustedIssuer))?;
    let unavailable = |error: String| {
        tracing::warn!(provider = %provider.name, %error, "identity provider keys unavailable");
        AssertionRefusal::Unavailable
    };
    let cached = upstream::provider_keys(state, provider, false)
        .await
        .map_err(|e| refuse(unavailable(e)))?;
    let leeway = i64::try_from(state.config.oauth.clock_skew.as_secs()).unwrap_or(60);
    let expect = Expectations {
        issuer: cached.discovery.issuer.clone(),
        // Its audience is this authorization server: its issuer identifier, exactly.
        audience: state.config.public_base().to_owned(),
        typ: Some(ID_JAG_TYP.to_owned()),
        leeway_secs: leeway,
        single_key_without_kid: false,
    };
    let verified = match jwt::verify_at(assertion, &cached.keys, &expect, now) {
        Err(JwtError::UnknownKid) => {
            let fresh = upstream::provider_keys(state, provider, true)
                .await
                .map_err(|e| refuse(unavailable(e)))?;
            jwt::verify_at(assertion, &fresh.keys, &expect, now)
        }
        other => other,
    }
    .map_err(|e| refuse(workload::refusal(e)))?;
    let claims = verified.claims();
    let text = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| refuse(AssertionRefusal::MissingClaim(name)))
    };
    text("sub")?;
    let jti = text("jti")?;
    if verified.iat().is_none() {
        return Err(refuse(AssertionRefusal::MissingClaim("iat")));
    }
    // The client the IdP issued it to must be the one redeeming it.
    if text("client_id")? != &*client.name {
        return Err(refuse(AssertionRefusal::WrongClient));
    }
    let resource = match claims.get("resource") {
        Some(Value::String(resource)) => resource.clone(),
        Some(_) => return Err(refuse(AssertionRefusal::WrongResource)),
        None => {
            let mut asked = form.all("resource");
            match (asked.next(), asked.next()) {
                (Some(resource), None) => resource.to_owned(),
                _ => return Err(refuse(AssertionRefusal::NoResource)),
            }
        }
    };
    let server = snapshot
        .server_by_resource(&resource)
        .ok_or_else(|| refuse(AssertionRefusal::WrongResource))?;
    if form.all("resource").any(|r| r != resource) {
        return Err(refuse(AssertionRefusal::ResourceMismatch));
    }
    let granted = match claims.get("scope") {
        None => Scope::from_items([ScopeItem::Server(server.name.to_string())]),
        Some(Value::String(text)) => {
            let scope = Scope::parse(text).map_err(|_| refuse(AssertionRefusal::ForeignScope))?;
            if scope
                .items()
                .any(|i| i.server().is_some_and(|s| s != &*server.name))
            {
                return Err(refuse(AssertionRefusal::ForeignScope));
            }
            scope
        }
        Some(_) => return Err(refuse(AssertionRefusal::ForeignScope)),
    };
    // The token gets what was asked for within what the IdP granted (the intersection).
    let scope = match form.get("scope") {
        None => granted,
        Some(text) => {
            let asked = Scope::parse(text).map_err(|e| OAuthError::InvalidScope(e.to_string()))?;
            let within = Scope::from_items(asked.items().filter(|i| covers(&granted, i)).cloned());
            if within.items().all(|i| *i == ScopeItem::OfflineAccess) {
                return Err(OAuthError::InvalidScope(
                    "the requested scope is outside the scope of the assertion".into(),
                ));
            }
            within
        }
    };
    let scope = Scope::from_items(
        scope
            .items()
            .filter(|i| **i != ScopeItem::OfflineAccess)
            .cloned(),
    );
    let user = linked_user(state, provider, claims)
        .await?
        .filter(|u| u.disabled_at.is_none())
        .ok_or_else(|| refuse(AssertionRefusal::InactiveUser))?;
    // A user created just now is in the snapshot the link reloaded, not the one we hold.
    let current = state.snapshot.current();
    let grant = current
        .user_grant(&user.id, &server.name)
        .ok_or_else(|| refuse(AssertionRefusal::NoAccess))?;
    for item in scope.items() {
        if let ScopeItem::Tool { tool, .. } = item
            && !grant.allows_tool(tool, None)
        {
            return Err(OAuthError::InvalidScope(format!(
                "scope {item} is not granted to the user"
            )));
        }
    }
    let replay_key = format!("id-jag\u{0}{}\u{0}{jti}", cached.discovery.issuer);
    match state
        .client_assertions
        .first_use(&replay_key, verified.exp() + leeway, now)
        .await
    {
        Ok(true) => {}
        Ok(false) => return Err(refuse(AssertionRefusal::Replayed)),
        Err(crate::state::Unavailable) => return Err(refuse(AssertionRefusal::Unavailable)),
    }
    let ttl = i64::try_from(state.config.oauth.access_token_ttl.as_secs()).unwrap_or(600);
    let minted = tokens::mint(
        &current.oauth.signing,
        &MintRequest {
            issuer: state.config.public_base(),
            subject: &user.id,
            client_id: &client.name,
            audiences: std::slice::from_ref(&server.resource),
            scope: &scope,
            ttl_secs: ttl,
            now_ms,
            grant: None,
            jkt,
        },
    )?;
    audit.credential_id = Some(minted.jti.clone());
    audit.user = Some(user.id.clone());
    Ok(json!({
        "access_token": minted.token,
        "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": minted.expires_in,
        "scope": scope.to_string(),
    }))
}

/// The Gatehouse user the ID-JAG's person is: linked by provider + `sub`; else, with
/// `link_by_email`, the local user named by its `email`; else a new user, as at a first
/// browser sign-in. Groups follow the ID-JAG only when it carries the groups claim, so one
/// without it does not strip what browser sign-in recorded.
async fn linked_user(
    state: &AppState,
    provider: &IdentityProviderConfig,
    claims: &serde_json::Map<String, Value>,
) -> Result<Option<UserRecord>, OAuthError> {
    let failed = |err: crate::store::StoreError| {
        if err.is_unreachable() {
            tracing::warn!(error = %err, "ID-JAG: the database is unreachable");
            return OAuthError::TemporarilyUnavailable;
        }
        tracing::error!(error = %err, "ID-JAG: linking the user failed");
        OAuthError::ServerError
    };
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let carries_groups = provider
        .groups_claim
        .as_ref()
        .is_some_and(|claim| claims.contains_key(claim));
    if let Some(user) = state
        .store
        .find_user_by_idp(&provider.name, sub)
        .await
        .map_err(failed)?
    {
        let groups = upstream::claim_groups(provider, claims);
        if !carries_groups || groups == user.groups {
            return Ok(Some(user));
        }
        // Only the groups: an ID-JAG rarely carries the profile a sign-in records.
        state
            .store
            .update_user_profile(&user.id, &user.display_name, &groups)
            .await
            .map_err(failed)?;
        if let Err(err) = state.snapshot.reload().await {
            tracing::error!(error = %err, "snapshot reload after an ID-JAG changed groups failed");
        }
        return state
            .store
            .get_user(&user.id)
            .await
            .map(Some)
            .map_err(failed);
    }
    if provider.link_by_email
        && let Some(email) = claims.get("email").and_then(Value::as_str)
    {
        let local = state
            .store
            .find_user_by_username(&email.to_ascii_lowercase())
            .await
            .map_err(failed)?;
        // Only a local account: one linked to an identity elsewhere is that identity's.
        if let Some(user) = local.filter(|u| u.idp.is_none()) {
            return Ok(Some(user));
        }
    }
    upstream::link_user(state, provider, claims)
        .await
        .map(Some)
        .map_err(failed)
}
