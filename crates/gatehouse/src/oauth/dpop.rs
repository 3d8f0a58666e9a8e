//! DPoP at both edges (RFC 9449): the token endpoint binds the tokens it issues to the key of
//! a proof (`cnf.jkt`), and the gateway checks the proof that must come with a bound token on
//! every request. The format checks are `tokens/dpop.rs`; here are the request's proof header,
//! the time window, and single use of each proof's `jti` across replicas.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use http::{HeaderMap, HeaderName};
use subtle::ConstantTimeEq;

use crate::{
    AppState,
    tokens::dpop::{self, DpopError, Proof, ProofExpectations},
};

pub use crate::tokens::dpop::{SIGNING_ALGS, challenge};

const DPOP_HEADER: HeaderName = HeaderName::from_static("dpop");
/// How old a proof may be (`oauth.dpop_proof_max_age`): RFC 9449 leaves it to the server;
/// five minutes, the default and the most allowed, is what the MCP DPoP proposal and its
/// conformance scenarios use.
fn max_proof_age(state: &AppState) -> i64 {
    i64::try_from(state.config.oauth.dpop_proof_max_age.as_secs()).unwrap_or(300)
}

/// Why a request's proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofRefusal {
    #[error("{0}")]
    Invalid(DpopError),
    #[error("more than one DPoP header")]
    Repeated,
    #[error("the DPoP proof was already used")]
    Replayed,
    /// Nonces are required and the proof has none, or a stale one: the client retries with
    /// this one.
    #[error("the DPoP proof needs a current nonce")]
    UseNonce(String),
    /// The replay cache (Redis in a cluster) did not answer: a proof whose single use cannot
    /// be checked is refused, never let through.
    #[error("the DPoP replay check is unavailable")]
    Unavailable,
}

/// The request's DPoP proof, checked against `method`, `url` and (at a resource) the access
/// token; `None` when the request carries none.
pub async fn check_request(
    state: &AppState,
    headers: &HeaderMap,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    now: i64,
) -> Result<Option<Proof>, ProofRefusal> {
    let mut values = headers.get_all(DPOP_HEADER).iter();
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(value), None) => value,
        (Some(_), Some(_)) => return Err(ProofRefusal::Repeated),
    };
    let proof = value
        .to_str()
        .map_err(|_| ProofRefusal::Invalid(DpopError::Malformed))?;
    let leeway = i64::try_from(state.config.oauth.clock_skew.as_secs()).unwrap_or(60);
    let checked = dpop::verify(
        proof,
        &ProofExpectations {
            method,
            url,
            access_token,
            now,
            max_age_secs: max_proof_age(state),
            leeway_secs: leeway,
        },
    )
    .map_err(ProofRefusal::Invalid)?;
    if state.config.oauth.dpop_nonce
        && !checked
            .nonce
            .as_deref()
            .is_some_and(|nonce| nonce_is_current(state, nonce, now))
    {
        return Err(ProofRefusal::UseNonce(current_nonce(state, now)));
    }
    first_use(state, &checked, leeway, now).await?;
    Ok(Some(checked))
}

/// The one place a proof's `jti` meets the replay seam: remembered (per key) until the proof
/// could no longer pass the `iat` window, so a copy is refused on every replica.
async fn first_use(
    state: &AppState,
    proof: &Proof,
    leeway: i64,
    now: i64,
) -> Result<(), ProofRefusal> {
    let id = format!("dpop\u{0}{}\u{0}{}", proof.jkt, proof.jti);
    let until = proof
        .iat
        .saturating_add(max_proof_age(state))
        .saturating_add(leeway);
    match state.dpop_proofs.first_use(&id, until, now).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(ProofRefusal::Replayed),
        Err(crate::state::Unavailable) => Err(ProofRefusal::Unavailable),
    }
}

/// How long one nonce is handed out; a nonce stays good for this window and the next, so a
/// client that just got one is never refused at a window's edge.
const NONCE_WINDOW_SECS: i64 = 300;

/// A nonce every replica computes alike, without shared state: the window's number and a
/// keyed hash of it under the master key.
fn nonce_for_window(state: &AppState, window: i64) -> String {
    let mac = state
        .keyring
        .hash_secret(format!("dpop-nonce:{window}").as_bytes());
    format!("{window}.{}", B64.encode(&mac[..18]))
}

/// The nonce to hand out now.
pub fn current_nonce(state: &AppState, now: i64) -> String {
    nonce_for_window(state, now.div_euclid(NONCE_WINDOW_SECS))
}

fn nonce_is_current(state: &AppState, nonce: &str, now: i64) -> bool {
    let Some(window) = nonce
        .split_once('.')
        .and_then(|(window, _)| window.parse::<i64>().ok())
    else {
        return false;
    };
    let current = now.div_euclid(NONCE_WINDOW_SECS);
    (window == current || window == current - 1)
        && bool::from(
            nonce
                .as_bytes()
                .ct_eq(nonce_for_window(state, window).as_bytes()),
        )
}
