//! Workload identity federation: a machine authenticates with the token its platform already
//! gave it (a Kubernetes service-account token, a GitHub Actions or GitLab CI OIDC token, a
//! SPIFFE JWT-SVID), presented as a `client_assertion` or as the `assertion` of the jwt-bearer
//! grant. The token must come from an `[[oauth.workload_issuers]]` entry, verify with that
//! issuer's keys, be meant for Gatehouse (`audience`), and match one of the issuer's rules,
//! which names the Gatehouse client it is. No secret is registered anywhere.
//!
//! Each token works once (`jti`, through the replay seam client assertions use, shared across
//! replicas with `[redis]`), so one captured on its way here cannot be redeemed again.

use serde_json::Value;
use std::sync::Arc;

use crate::{
    AppState,
    config::WorkloadIssuerConfig,
    error::AssertionRefusal,
    identity::oauth_clients::OAuthClient,
    oauth::external::{keys_of, unverified_claim},
    snapshot::Snapshot,
    tokens::jwt::{self, Expectations, JwtError},
};
use gatehouse_model::records::OAuthClientMetadata;

/// A verified workload token, mapped.
#[derive(Debug)]
pub struct Workload {
    /// The Gatehouse client the matching rule names.
    pub client: String,
    /// `{issuer name}:{sub}`, for the log.
    pub subject: String,
}

/// The workload issuer whose `iss` this is, if any.
pub fn issuer_of<'a>(state: &'a AppState, assertion: &str) -> Option<&'a WorkloadIssuerConfig> {
    let iss = unverified_claim(assertion, "iss")?;
    state
        .config
        .oauth
        .workload_issuers
        .iter()
        .find(|w| w.issuer == iss)
}

/// Why a `JwtError` refuses the assertion.
pub fn refusal(error: JwtError) -> AssertionRefusal {
    match error {
        JwtError::WrongIssuer => AssertionRefusal::UntrustedIssuer,
        JwtError::WrongAudience => AssertionRefusal::WrongAudience,
        JwtError::Expired => AssertionRefusal::Expired,
        JwtError::NotYetValid | JwtError::IssuedInFuture => AssertionRefusal::NotYetValid,
        JwtError::MissingExp => AssertionRefusal::MissingClaim("exp"),
        JwtError::MissingKid
        | JwtError::UnknownKid
        | JwtError::AlgorithmMismatch
        | JwtError::BadSignature => AssertionRefusal::BadSignature,
        _ => AssertionRefusal::Malformed,
    }
}

/// Verifies `assertion` as a workload token and maps it onto a client of `snapshot` that
/// `expected` accepts (the client the request otherwise names); marks its `jti` used, last,
/// so a token refused for any other reason keeps its single use.
pub async fn verify(
    state: &AppState,
    snapshot: &Snapshot,
    assertion: &str,
    now: i64,
    expected: impl Fn(&str) -> bool,
) -> Result<Workload, AssertionRefusal> {
    let (workload, use_once) = verify_unspent(state, snapshot, assertion, now, expected).await?;
    use_once.spend(state, now).await?;
    Ok(workload)
}

/// The single use of a verified workload token, not yet spent: the token endpoint spends it
/// once the rest of the request (its DPoP proof) has passed, so a request refused for
/// another reason leaves the token usable.
#[derive(Debug)]
pub struct UseOnce {
    key: String,
    until: i64,
}

impl UseOnce {
    pub async fn spend(&self, state: &AppState, now: i64) -> Result<(), AssertionRefusal> {
        match state
            .client_assertions
            .first_use(&self.key, self.until, now)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => Err(AssertionRefusal::Replayed),
            Err(crate::state::Unavailable) => Err(AssertionRefusal::Unavailable),
        }
    }
}

/// [`verify`] without spending the token's single use.
pub async fn verify_unspent(
    state: &AppState,
    snapshot: &Snapshot,
    assertion: &str,
    now: i64,
    expected: impl Fn(&str) -> bool,
) -> Result<(Workload, UseOnce), AssertionRefusal> {
    let header = jwt::decode_unverified_header(assertion).map_err(refusal)?;
    // Explicit typing (RFC 8725 §3.11): an access token or an ID-JAG of the same issuer is
    // not a workload's credential, whatever its claims say.
    if header.typ().is_some_and(|typ| {
        let bare = typ.to_ascii_lowercase();
        let bare = bare.trim_start_matches("application/");
        bare == "at+jwt" || bare == super::jwt_bearer::ID_JAG_TYP
    }) {
        return Err(AssertionRefusal::WrongType);
    }
    let issuer = issuer_of(state, assertion).ok_or(AssertionRefusal::UntrustedIssuer)?;
    let audience = issuer
        .audience
        .clone()
        .unwrap_or_else(|| format!("{}/oauth/token", state.config.public_base()));
    let leeway = i64::try_from(state.config.oauth.clock_skew.as_secs()).unwrap_or(60);
    let expect = Expectations {
        issuer: issuer.issuer.clone(),
        audience,
        typ: None,
        leeway_secs: leeway,
        single_key_without_kid: false,
    };
    let cache_key = format!("workload:{}", issuer.name);
    let keys = |force| {
        keys_of(
            state,
            &cache_key,
            &issuer.issuer,
            issuer.jwks_uri.as_deref(),
            force,
        )
    };
    let unavailable = |error: String| {
        tracing::warn!(issuer = %issuer.name, %error, "workload issuer keys unavailable");
        AssertionRefusal::Unavailable
    };
    let verified = match jwt::verify_at(
        assertion,
        &keys(false).await.map_err(unavailable)?.keys,
        &expect,
        now,
    ) {
        Err(JwtError::UnknownKid) => {
            let fresh = keys(true).await.map_err(unavailable)?;
            jwt::verify_at(assertion, &fresh.keys, &expect, now)
        }
        other => other,
    }
    .map_err(refusal)?;
    let claims = verified.claims();
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let sub = text("sub").ok_or(AssertionRefusal::MissingClaim("sub"))?;
    let jti = text("jti").ok_or(AssertionRefusal::MissingClaim("jti"))?;
    if verified.iat().is_none() {
        return Err(AssertionRefusal::MissingClaim("iat"));
    }
    let rule = issuer
        .rules
        .iter()
        .find(|rule| rule.matches(sub, text))
        .ok_or(AssertionRefusal::UnmappedSubject)?;
    if !snapshot.clients.contains_key(rule.client.as_str()) {
        return Err(AssertionRefusal::UnknownClient);
    }
    if !expected(&rule.client) {
        return Err(AssertionRefusal::WrongClient);
    }
    let use_once = UseOnce {
        key: format!("workload\u{0}{}\u{0}{jti}", issuer.issuer),
        until: verified.exp() + leeway,
    };
    let workload = Workload {
        client: rule.client.clone(),
        subject: format!("{}:{sub}", issuer.name),
    };
    tracing::info!(client = %workload.client, workload = %workload.subject, "workload token verified");
    Ok((workload, use_once))
}

/// The OAuth client a workload is: its registration when it has one (so its settings, such
/// as requiring DPoP, still apply), otherwise a confidential client that authenticates only
/// this way.
pub fn client_for(snapshot: &Snapshot, workload: &Workload) -> Arc<OAuthClient> {
    if let Some(registered) = snapshot.oauth.clients.get(&workload.client) {
        return registered.clone();
    }
    Arc::new(OAuthClient {
        name: Arc::from(workload.client.as_str()),
        metadata: OAuthClientMetadata {
            token_endpoint_auth_method: "workload_identity".into(),
            grant_types: vec![
                "client_credentials".into(),
                super::jwt_bearer::GRANT_TYPE.into(),
            ],
            redirect_uris: Vec::new(),
            application_type: None,
            jwks: None,
            client_name: None,
            origin: "workload".into(),
            dpop_bound_access_tokens: false,
        },
        secrets: Vec::new(),
        keys: None,
    })
}
