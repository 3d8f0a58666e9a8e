//! DPoP at both edges (RFC 9449): the token endpoint binds the tokens it issues to the key of
//! a proof (`cnf.jkt`), and the gateway checks the proof that must come with a bound token on
//! every request. The format checks are `tokens/dpop.rs`; here are the request's proof header,
//! the time window, and single use of each proof's `jti` across replicas.

use http::{HeaderMap, HeaderName};

use crate::{
    AppState,
    tokens::dpop::{self, DpopError, Proof, ProofExpectations},
};

pub use crate::tokens::dpop::{SIGNING_ALGS, challenge};

const DPOP_HEADER: HeaderName = HeaderName::from_static("dpop");
/// How old a proof may be: RFC 9449 leaves it to the server; five minutes is what the MCP
/// DPoP proposal and its conformance scenarios use.
pub const MAX_PROOF_AGE_SECS: i64 = 300;

/// Why a request's proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofRefusal {
    #[error("{0}")]
    Invalid(DpopError),
    #[error("more than one DPoP header")]
    Repeated,
    #[error("the DPoP proof was already used")]
    Replayed,
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
            max_age_secs: MAX_PROOF_AGE_SECS,
            leeway_secs: leeway,
        },
    )
    .map_err(ProofRefusal::Invalid)?;
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
        .saturating_add(MAX_PROOF_AGE_SECS)
        .saturating_add(leeway);
    if state.client_assertions.first_use(&id, until, now).await {
        Ok(())
    } else {
        Err(ProofRefusal::Replayed)
    }
}
