//! The JWT authorization grant (RFC 7523 §2.1, `grant_type=urn:ietf:params:oauth:grant-type:
//! jwt-bearer`). One grant type, two kinds of assertion, told apart by the JWT's `typ`:
//!
//! - `oauth-id-jag+jwt`: an Identity Assertion JWT Authorization Grant from an enterprise IdP
//!   (`id_jag.rs`), redeemed by an authenticated client for a person;
//! - anything else: a workload token (`workload.rs`), which is the client's credential as
//!   well, so no other client authentication is needed.

use http::HeaderMap;
use serde_json::Value;
use std::sync::Arc;

use crate::{
    AppState,
    error::{AssertionRefusal, AssertionRole, OAuthError},
    identity::oauth_clients::OAuthClient,
    oauth::{
        OAuthAudit,
        form::Form,
        workload::{self, UseOnce},
    },
    snapshot::Snapshot,
    tokens::jwt,
};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The JOSE `typ` of an ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant §3.1).
pub const ID_JAG_TYP: &str = "oauth-id-jag+jwt";

/// Whether the JWT's header says it is an ID-JAG (RFC 7515 §4.1.9 comparison).
pub fn is_id_jag(assertion: &str) -> bool {
    jwt::decode_unverified_header(assertion)
        .ok()
        .and_then(|header| header.typ().map(str::to_ascii_lowercase))
        .is_some_and(|typ| typ.trim_start_matches("application/") == ID_JAG_TYP)
}

fn authenticates_otherwise(headers: &HeaderMap, form: &Form) -> bool {
    headers.contains_key(http::header::AUTHORIZATION)
        || form.get("client_assertion").is_some()
        || form.get("client_assertion_type").is_some()
        || form.get("client_secret").is_some()
}

/// For a jwt-bearer grant whose assertion is a workload token and which carries no other
/// client authentication: the client the token maps to (a `client_id` sent along must name
/// the same one), and the token's single use, which [`grant`] spends. `None` for every other
/// request, which authenticates as usual.
pub async fn workload_client(
    state: &AppState,
    snapshot: &Snapshot,
    headers: &HeaderMap,
    form: &Form,
    now_ms: i64,
) -> Result<Option<(Arc<OAuthClient>, UseOnce)>, OAuthError> {
    if form.get("grant_type") != Some(GRANT_TYPE) || authenticates_otherwise(headers, form) {
        return Ok(None);
    }
    let Some(assertion) = form.get("assertion") else {
        return Ok(None);
    };
    if is_id_jag(assertion) {
        return Ok(None);
    }
    let refuse = |refusal: AssertionRefusal| refusal.into_oauth(AssertionRole::Grant);
    // A client_id that is not the mapped client must not cost the token its single use.
    let (mapped, use_once) = workload::verify_unspent(
        state,
        snapshot,
        assertion,
        now_ms.div_euclid(1000),
        |client| form.get("client_id").is_none_or(|id| id == client),
    )
    .await
    .map_err(refuse)?;
    Ok(Some((workload::client_for(snapshot, &mapped), use_once)))
}

/// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`. `workload`: the assertion
/// already authenticated `client` as its workload ([`workload_client`]); its single use is
/// spent here, after the request's other checks.
pub async fn grant(
    state: &AppState,
    snapshot: &Snapshot,
    client: &OAuthClient,
    form: &Form,
    (now, jkt): (i64, Option<&str>),
    (audit, workload): (&mut OAuthAudit, Option<&UseOnce>),
) -> Result<Value, OAuthError> {
    let assertion = form.require("assertion")?;
    if is_id_jag(assertion) {
        return super::id_jag::grant(state, snapshot, client, assertion, form, (now, jkt), audit)
            .await;
    }
    if let Some(use_once) = workload {
        use_once
            .spend(state, now.div_euclid(1000))
            .await
            .map_err(|refusal| refusal.into_oauth(AssertionRole::Grant))?;
    } else {
        // The client authenticated some other way and brings a workload token too: it must
        // be that client's.
        workload::verify(state, snapshot, assertion, now.div_euclid(1000), |mapped| {
            mapped == &*client.name
        })
        .await
        .map_err(|refusal| refusal.into_oauth(AssertionRole::Grant))?;
    }
    // No refresh token: the workload presents a fresh platform token when this one expires.
    super::token::issue_for_client(state, snapshot, &client.name, form, (now, jkt), audit)
}
