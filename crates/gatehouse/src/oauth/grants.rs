//! The user-delegated grants of the token endpoint: `authorization_code` (with PKCE) and
//! `refresh_token` (rotated on every use; a reused one revokes its whole family).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{
    AppState,
    error::OAuthError,
    oauth::{
        OAuthAudit,
        authorize::code_hash,
        clients::OAuthClient,
        form::Form,
        tokens::{self, MintRequest},
    },
    secrets,
    snapshot::Snapshot,
};
use gatehouse_model::{
    records::{CodeRedemption, RefreshOutcome, RefreshTokenRecord, RevokedToken},
    scope::Scope,
};

pub const REFRESH_PREFIX: &str = "ghr_";

pub fn refresh_hash(state: &AppState, token: &str) -> [u8; 32] {
    state
        .keyring
        .hash_secret(format!("refresh-token:{token}").as_bytes())
}

/// What the store keeps of a public client's refresh token bound to a DPoP key (RFC 9449
/// §5): the key's thumbprint is part of the hash, so the token is found only when presented
/// with a proof by the same key, and a thief without the key cannot even burn it.
fn bound_refresh_hash(state: &AppState, token: &str, jkt: &str) -> [u8; 32] {
    state
        .keyring
        .hash_secret(format!("refresh-token:{token}\u{0}dpop:{jkt}").as_bytes())
}

/// An unreachable database is the one failure the client may retry unchanged (RFC 6749's
/// `temporarily_unavailable`); nothing was consumed, since the write never happened.
fn store_failed(err: crate::store::StoreError) -> OAuthError {
    if err.is_unreachable() {
        tracing::warn!(error = %err, "token endpoint: the database is unreachable");
        return OAuthError::TemporarilyUnavailable;
    }
    tracing::error!(error = %err, "token endpoint store operation failed");
    OAuthError::ServerError
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Revokes a grant: its refresh tokens, and every access token minted from it (their
/// `gh_grant` goes on the revocation list until the longest of them has expired).
pub async fn revoke_grant(state: &AppState, family: &str, now: i64) -> Result<(), OAuthError> {
    state
        .store
        .revoke_refresh_family(family, now)
        .await
        .map_err(store_failed)?;
    let ttl = ms(state.config.oauth.access_token_ttl + state.config.oauth.clock_skew);
    state
        .store
        .revoke_access_token(
            &RevokedToken {
                jti: format!("{GRANT_REVOCATION_PREFIX}{family}"),
                expires_at: now.saturating_add(ttl),
            },
            now,
        )
        .await
        .map_err(store_failed)?;
    if let Err(err) = state.snapshot.reload().await {
        tracing::error!(error = %err, "snapshot reload after revoking a grant failed");
    }
    Ok(())
}

pub use crate::tokens::GRANT_REVOCATION_PREFIX;

/// RFC 7636 §4.6: `BASE64URL(SHA256(verifier)) == challenge`, the verifier being 43–128
/// unreserved characters.
fn pkce_ok(verifier: &str, challenge: &str) -> bool {
    let shaped = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed = B64.encode(Sha256::digest(verifier.as_bytes()));
    shaped && bool::from(computed.as_bytes().ct_eq(challenge.as_bytes()))
}

struct Issue<'a> {
    client: &'a OAuthClient,
    subject: &'a str,
    resource: &'a str,
    /// The scope of the grant (what refreshes may ask for at most).
    granted: &'a Scope,
    /// The access token's scope (the granted one, or narrower on refresh).
    scope: &'a Scope,
    family: Option<String>,
    /// The DPoP key the tokens are bound to.
    jkt: Option<&'a str>,
}

/// Mints the access token and, when the client may refresh, the next refresh token.
async fn issue(
    state: &AppState,
    snapshot: &Snapshot,
    issue: Issue<'_>,
    now: i64,
    audit: &mut OAuthAudit,
) -> Result<
    (
        Value,
        tokens::MintedToken,
        Option<(String, RefreshTokenRecord)>,
    ),
    OAuthError,
> {
    let refreshable = issue.client.allows_grant("refresh_token");
    let family = match (refreshable, issue.family) {
        (false, _) => None,
        (true, Some(family)) => Some(family),
        (true, None) => Some(secrets::random_id(16).map_err(|_| OAuthError::ServerError)?),
    };
    let ttl = i64::try_from(state.config.oauth.access_token_ttl.as_secs()).unwrap_or(600);
    let minted = tokens::mint(
        &snapshot.oauth.signing,
        &MintRequest {
            issuer: state.config.public_base(),
            subject: issue.subject,
            client_id: &issue.client.name,
            audiences: &[issue.resource.to_owned()],
            scope: issue.scope,
            ttl_secs: ttl,
            now_ms: now,
            grant: family.as_deref(),
            jkt: issue.jkt,
        },
    )?;
    audit.credential_id = Some(minted.jti.clone());
    audit.user = Some(issue.subject.to_owned());
    let mut body = json!({
        "access_token": minted.token,
        "token_type": if issue.jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": minted.expires_in,
        "scope": issue.scope.to_string(),
    });
    let refresh = if let Some(family) = family {
        let token = format!(
            "{REFRESH_PREFIX}{}",
            secrets::random_base62(43).map_err(|_| OAuthError::ServerError)?
        );
        let bound_to = issue.jkt.filter(|_| issue.client.is_public());
        let record = RefreshTokenRecord {
            id: secrets::random_id(16).map_err(|_| OAuthError::ServerError)?,
            family,
            token_hash: match bound_to {
                Some(jkt) => bound_refresh_hash(state, &token, jkt),
                None => refresh_hash(state, &token),
            }
            .to_vec(),
            revocation_hash: bound_to.map(|_| refresh_hash(state, &token).to_vec()),
            client: issue.client.name.to_string(),
            subject: Some(issue.subject.to_owned()),
            scope: issue.granted.to_string(),
            resource: issue.resource.to_owned(),
            created_at: now,
            expires_at: now.saturating_add(ms(state.config.oauth.refresh_token_ttl)),
            consumed_at: None,
            replaced_by: None,
            revoked_at: None,
        };
        body["refresh_token"] = json!(token);
        Some((token, record))
    } else {
        None
    };
    Ok((body, minted, refresh))
}

pub async fn authorization_code(
    state: &AppState,
    snapshot: &Snapshot,
    client: &OAuthClient,
    form: &Form,
    (now, jkt): (i64, Option<&str>),
    audit: &mut OAuthAudit,
) -> Result<Value, OAuthError> {
    client.require_grant("authorization_code")?;
    let code = form.require("code")?;
    let hash = code_hash(state, code);
    let record = match state
        .store
        .redeem_authorization_code(&hash, now)
        .await
        .map_err(store_failed)?
    {
        CodeRedemption::Fresh(record) => record,
        CodeRedemption::Invalid => {
            return Err(OAuthError::InvalidGrant(
                "the code is unknown or expired".into(),
            ));
        }
        CodeRedemption::Replayed(record) => {
            // OAuth 2.1 §4.1.3: a second redemption means the code leaked; revoke what the
            // first one issued.
            if let Some(family) = &record.family {
                revoke_grant(state, family, now).await?;
            }
            if let (Some(jti), Some(exp)) = (&record.access_jti, record.access_expires_at) {
                state
                    .store
                    .revoke_access_token(
                        &RevokedToken {
                            jti: jti.clone(),
                            expires_at: exp,
                        },
                        now,
                    )
                    .await
                    .map_err(store_failed)?;
                if let Err(err) = state.snapshot.reload().await {
                    tracing::error!(error = %err, "snapshot reload after code replay failed");
                }
            }
            return Err(OAuthError::InvalidGrant(
                "the code was already used; the tokens it issued are revoked".into(),
            ));
        }
    };
    if record.client != *client.name {
        return Err(OAuthError::InvalidGrant(
            "the code was issued to another client".into(),
        ));
    }
    if form
        .get("redirect_uri")
        .is_some_and(|uri| uri != record.redirect_uri)
    {
        return Err(OAuthError::InvalidGrant(
            "redirect_uri differs from the authorization request".into(),
        ));
    }
    // RFC 9449 §10: a code bound with `dpop_jkt` is redeemed only with a proof by that key.
    // Checked after the code is consumed, like PKCE: a failed attempt burns the code.
    if let Some(bound) = &record.dpop_jkt {
        match jkt {
            Some(presented) if presented == bound => {}
            Some(_) => {
                return Err(OAuthError::InvalidGrant(
                    "the code is bound (dpop_jkt) to another DPoP key than the proof's".into(),
                ));
            }
            None => {
                return Err(OAuthError::InvalidGrant(
                    "the code is bound to a DPoP key (dpop_jkt); the token request needs a proof by it"
                        .into(),
                ));
            }
        }
    }
    let Some(verifier) = form.get("code_verifier") else {
        return Err(OAuthError::InvalidGrant(
            "code_verifier is required (PKCE)".into(),
        ));
    };
    if !pkce_ok(verifier, &record.code_challenge) {
        return Err(OAuthError::InvalidGrant(
            "code_verifier does not match the code_challenge".into(),
        ));
    }
    if let Some(resource) = form.all("resource").find(|r| *r != record.resource) {
        return Err(OAuthError::InvalidTarget(format!(
            "resource {resource} is not the one the user authorized"
        )));
    }
    if !snapshot.users.contains_key(&record.subject) {
        return Err(OAuthError::InvalidGrant(
            "the user is no longer active".into(),
        ));
    }
    let scope = Scope::parse(&record.scope).map_err(|_| OAuthError::ServerError)?;
    let (body, minted, refresh) = issue(
        state,
        snapshot,
        Issue {
            client,
            subject: &record.subject,
            resource: &record.resource,
            granted: &scope,
            scope: &scope,
            family: None,
            jkt,
        },
        now,
        audit,
    )
    .await?;
    let family = refresh.as_ref().map(|(_, r)| r.family.clone());
    if let Some((_, record)) = &refresh {
        state
            .store
            .insert_refresh_token(record)
            .await
            .map_err(store_failed)?;
    }
    state
        .store
        .record_code_issue(
            &hash,
            family.as_deref(),
            &minted.jti,
            (now / 1000 + minted.expires_in) * 1000,
        )
        .await
        .map_err(store_failed)?;
    Ok(body)
}

pub async fn refresh_token(
    state: &AppState,
    snapshot: &Snapshot,
    client: &OAuthClient,
    form: &Form,
    (now, jkt): (i64, Option<&str>),
    audit: &mut OAuthAudit,
) -> Result<Value, OAuthError> {
    client.require_grant("refresh_token")?;
    let presented = form.require("refresh_token")?;
    let invalid = || OAuthError::InvalidGrant("the refresh token is invalid".into());
    // A public client's token bound to a key is found only with a proof by that key; one
    // issued unbound is found as before (and what it issues now is bound, if a proof came).
    let mut candidates = Vec::with_capacity(2);
    if let Some(jkt) = jkt.filter(|_| client.is_public()) {
        candidates.push(bound_refresh_hash(state, presented, jkt));
    }
    candidates.push(refresh_hash(state, presented));
    let mut found = None;
    for hash in candidates {
        if let Some(record) = state
            .store
            .find_refresh_token(&hash)
            .await
            .map_err(store_failed)?
        {
            found = Some((hash, record));
            break;
        }
    }
    let (hash, current) = found.ok_or_else(invalid)?;
    // Another client's token is not consumed: the thief must not be able to burn it.
    if current.client != *client.name {
        return Err(invalid());
    }
    let granted = Scope::parse(&current.scope).map_err(|_| OAuthError::ServerError)?;
    let scope = match form.get("scope") {
        Some(text) => {
            let asked = Scope::parse(text).map_err(|e| OAuthError::InvalidScope(e.to_string()))?;
            if !asked.is_subset(&granted) {
                return Err(OAuthError::InvalidScope(
                    "a refresh cannot widen the scope that was granted".into(),
                ));
            }
            asked
        }
        None => granted.clone(),
    };
    if let Some(resource) = form.all("resource").find(|r| *r != current.resource) {
        return Err(OAuthError::InvalidTarget(format!(
            "resource {resource} is not the one this grant is for"
        )));
    }
    let subject = current.subject.clone().unwrap_or_default();
    if !snapshot.users.contains_key(&subject) {
        return Err(OAuthError::InvalidGrant(
            "the user is no longer active".into(),
        ));
    }
    let (body, _, refresh) = issue(
        state,
        snapshot,
        Issue {
            client,
            subject: &subject,
            resource: &current.resource,
            granted: &granted,
            scope: &scope,
            family: Some(current.family.clone()),
            jkt,
        },
        now,
        audit,
    )
    .await?;
    let Some((_, next)) = refresh else {
        return Err(OAuthError::ServerError);
    };
    let grace = ms(state.config.oauth.refresh_reuse_grace);
    match state
        .store
        .rotate_refresh_token(&hash, &next, now, grace)
        .await
        .map_err(store_failed)?
    {
        RefreshOutcome::Rotated => Ok(body),
        RefreshOutcome::Invalid => Err(invalid()),
        RefreshOutcome::Reused => {
            tracing::warn!(client = %client.name, "refresh token reused: its family is revoked");
            revoke_grant(state, &current.family, now).await?;
            Err(OAuthError::InvalidGrant(
                "the refresh token was already used; every token of this grant is revoked".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pkce_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(super::pkce_ok(verifier, challenge));
        assert!(!super::pkce_ok(challenge, challenge));
        assert!(!super::pkce_ok("short", challenge));
    }
}
