//! DPoP proofs (RFC 9449 §4): a JWT the client signs with its own key for each request,
//! naming the request's method and URL (`htm`, `htu`), when (`iat`), a unique id (`jti`),
//! and for a resource request the access token's hash (`ath`). The key travels in the
//! header (`jwk`); its RFC 7638 thumbprint is what an access token binds to (`cnf.jkt`).
//!
//! This is the format check only; `jti` single use is the edges' (through the replay seam).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::tokens::keys::VerificationKey;
use gatehouse_model::algorithm::Algorithm;

/// The header type every proof must carry.
pub const PROOF_TYP: &str = "dpop+jwt";
/// Asymmetric algorithms Gatehouse verifies proofs with (`dpop_signing_alg_values_supported`).
pub const SIGNING_ALGS: [&str; 5] = ["ES256", "ES384", "EdDSA", "PS256", "RS256"];
/// Larger proofs are refused before any decoding (an RSA-4096 `jwk` needs about 1.5 KiB).
const MAX_PROOF_BYTES: usize = 8 * 1024;
/// Private members a public JWK must not carry (RFC 9449 §4.2: "MUST NOT contain a private key").
const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// What a proof must match.
#[derive(Debug, Clone, Copy)]
pub struct ProofExpectations<'a> {
    /// The request's HTTP method.
    pub method: &'a str,
    /// The URL the request was sent to, as this server's public URL names it.
    pub url: &'a str,
    /// The access token presented with the proof, whose hash `ath` must be.
    pub access_token: Option<&'a str>,
    /// Unix seconds.
    pub now: i64,
    /// How old a proof may be (`iat` in the past), seconds.
    pub max_age_secs: i64,
    /// How far ahead a client's clock may run (`iat` in the future), seconds.
    pub leeway_secs: i64,
}

/// A proof that passed every check but single use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The key's RFC 7638 thumbprint.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
    /// The `nonce` claim, which the edge checks when it hands out nonces (RFC 9449 §8, §9).
    pub nonce: Option<String>,
}

/// Why a proof was refused: a fixed description, never proof contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DpopError {
    #[error("the DPoP proof is not a compact JWS")]
    Malformed,
    #[error("the DPoP proof's typ is not dpop+jwt")]
    Typ,
    #[error("the DPoP proof's alg is not supported")]
    Alg,
    #[error("the DPoP proof's jwk is not a supported public key")]
    Jwk,
    #[error("the DPoP proof's signature does not verify")]
    Signature,
    #[error("the DPoP proof lacks {0}")]
    MissingClaim(&'static str),
    #[error("the DPoP proof's htm is not this request's method")]
    Method,
    #[error("the DPoP proof's htu is not this request's URL")]
    Url,
    #[error("the DPoP proof's iat is outside the accepted window")]
    Stale,
    #[error("the DPoP proof's ath is not the access token's hash")]
    TokenHash,
}

fn decode_object(segment: &str) -> Result<Map<String, Value>, DpopError> {
    let bytes = B64.decode(segment).map_err(|_| DpopError::Malformed)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| DpopError::Malformed)?;
    match gatehouse_model::jsonrpc::strict_value(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(DpopError::Malformed),
    }
}

/// The key named by a proof's header, pinned to the header's algorithm.
fn proof_key(header: &Map<String, Value>) -> Result<VerificationKey, DpopError> {
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .filter(|alg| SIGNING_ALGS.contains(alg))
        .and_then(Algorithm::parse)
        .ok_or(DpopError::Alg)?;
    let mut jwk = header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or(DpopError::Jwk)?
        .clone();
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(DpopError::Jwk);
    }
    // The header's alg decides; a key that does not fit it is refused by `from_jwk`. A fixed
    // kid spares computing the thumbprint twice.
    jwk.insert("alg".into(), Value::from(alg.as_str()));
    jwk.insert("kid".into(), Value::from("dpop"));
    VerificationKey::from_jwk(&Value::Object(jwk)).map_err(|_| DpopError::Jwk)
}

/// `scheme://host[:port]/path` with the scheme and host lower-cased, a default port dropped,
/// and no query or fragment: RFC 9449 §4.3 compares `htu` this way (RFC 3986 §6.2.2, §6.2.3).
pub fn normalize_url(url: &str) -> Option<String> {
    let without_fragment = url.split('#').next().unwrap_or(url);
    let uri: http::Uri = without_fragment.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host().to_ascii_lowercase();
    let port = match (scheme.as_str(), authority.port_u16()) {
        ("https", Some(443)) | ("http", Some(80)) | (_, None) => String::new(),
        (_, Some(port)) => format!(":{port}"),
    };
    let path = match uri.path() {
        "" => "/",
        path => path,
    };
    Some(format!("{scheme}://{host}{port}{path}"))
}

/// The `ath` of an access token: base64url SHA-256 of its ASCII bytes.
pub fn token_hash(access_token: &str) -> String {
    B64.encode(Sha256::digest(access_token.as_bytes()))
}

/// The `WWW-Authenticate` value naming the DPoP scheme and the algorithms it accepts;
/// `description` must be header-safe (Gatehouse's own fixed text).
pub fn challenge(error: &str, description: &str) -> String {
    format!(
        "DPoP error=\"{error}\", error_description=\"{description}\", algs=\"{}\"",
        SIGNING_ALGS.join(" ")
    )
}

/// Checks a proof's form, key, signature and claims against the request.
pub fn verify(proof: &str, expect: &ProofExpectations<'_>) -> Result<Proof, DpopError> {
    if proof.len() > MAX_PROOF_BYTES {
        return Err(DpopError::Malformed);
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(DpopError::Malformed);
    };
    let header = decode_object(header_b64)?;
    if header.get("typ").and_then(Value::as_str) != Some(PROOF_TYP) {
        return Err(DpopError::Typ);
    }
    let key = proof_key(&header)?;
    let signature = B64
        .decode(signature_b64)
        .map_err(|_| DpopError::Malformed)?;
    let signed_len = header_b64.len() + 1 + payload_b64.len();
    if !key.verify(&proof.as_bytes()[..signed_len], &signature) {
        return Err(DpopError::Signature);
    }
    let claims = decode_object(payload_b64)?;
    let text = |name: &'static str| {
        claims
            .get(name)
            .and_then(Value::as_str)
            .ok_or(DpopError::MissingClaim(name))
    };
    let jti = text("jti")?;
    if jti.is_empty() || jti.len() > 256 {
        return Err(DpopError::MissingClaim("jti"));
    }
    if text("htm")? != expect.method {
        return Err(DpopError::Method);
    }
    match (normalize_url(text("htu")?), normalize_url(expect.url)) {
        (Some(given), Some(expected)) if given == expected => {}
        _ => return Err(DpopError::Url),
    }
    let iat = claims
        .get("iat")
        .and_then(Value::as_i64)
        .ok_or(DpopError::MissingClaim("iat"))?;
    if iat < expect.now.saturating_sub(expect.max_age_secs)
        || iat > expect.now.saturating_add(expect.leeway_secs)
    {
        return Err(DpopError::Stale);
    }
    if let Some(token) = expect.access_token {
        let ath = text("ath")?;
        if !bool::from(ath.as_bytes().ct_eq(token_hash(token).as_bytes())) {
            return Err(DpopError::TokenHash);
        }
    }
    Ok(Proof {
        jkt: key.thumbprint(),
        jti: jti.to_owned(),
        iat,
        nonce: claims
            .get("nonce")
            .and_then(Value::as_str)
            .map(str::to_owned),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tokens::keys::SigningKey;
    use serde_json::json;

    const URL: &str = "https://gw.example/demo/mcp";
    const NOW: i64 = 1_800_000_000;

    fn expect(token: Option<&str>) -> ProofExpectations<'_> {
        ProofExpectations {
            method: "POST",
            url: URL,
            access_token: token,
            now: NOW,
            max_age_secs: 300,
            leeway_secs: 60,
        }
    }

    fn sign(key: &SigningKey, header: Value, claims: Value) -> String {
        let signing_input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        let signature = key.sign(signing_input.as_bytes()).unwrap();
        format!("{signing_input}.{}", B64.encode(signature))
    }

    fn header(key: &SigningKey) -> Value {
        let mut jwk = key.public_jwk();
        jwk.as_object_mut().unwrap().remove("kid");
        json!({ "typ": PROOF_TYP, "alg": key.alg().as_str(), "jwk": jwk })
    }

    fn claims(token: Option<&str>) -> Value {
        let mut claims = json!({ "jti": "p-1", "htm": "POST", "htu": URL, "iat": NOW });
        if let Some(token) = token {
            claims["ath"] = json!(token_hash(token));
        }
        claims
    }

    #[test]
    fn a_good_proof_names_its_keys_thumbprint() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA] {
            let key = SigningKey::generate(alg).unwrap();
            let proof = sign(&key, header(&key), claims(Some("at")));
            let checked = verify(&proof, &expect(Some("at"))).unwrap();
            assert_eq!(checked.jkt, key.thumbprint(), "{alg:?}");
            assert_eq!(checked.jti, "p-1");
        }
    }

    #[test]
    fn every_claim_is_checked() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let with = |edit: &dyn Fn(&mut Value)| {
            let mut c = claims(Some("at"));
            edit(&mut c);
            verify(&sign(&key, header(&key), c), &expect(Some("at")))
        };
        assert_eq!(with(&|c| c["htm"] = json!("GET")), Err(DpopError::Method));
        assert_eq!(
            with(&|c| c["htu"] = json!("https://gw.example/other/mcp")),
            Err(DpopError::Url)
        );
        assert!(
            with(&|c| c["htu"] = json!("HTTPS://GW.example:443/demo/mcp?x=1#f")).is_ok(),
            "normalised, without query and fragment"
        );
        assert_eq!(
            with(&|c| c["iat"] = json!(NOW - 301)),
            Err(DpopError::Stale)
        );
        assert_eq!(with(&|c| c["iat"] = json!(NOW + 61)), Err(DpopError::Stale));
        assert_eq!(
            with(&|c| c["ath"] = json!(token_hash("another"))),
            Err(DpopError::TokenHash)
        );
        assert_eq!(
            with(&|c| {
                c.as_object_mut().unwrap().remove("ath");
            }),
            Err(DpopError::MissingClaim("ath"))
        );
        assert_eq!(
            with(&|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
            Err(DpopError::MissingClaim("jti"))
        );
    }

    #[test]
    fn the_header_and_signature_are_strict() {
        let key = SigningKey::generate(Algorithm::ES256).unwrap();
        let good = sign(&key, header(&key), claims(None));
        let mut tampered = good.clone();
        tampered.push('A');
        assert!(verify(&tampered, &expect(None)).is_err());
        let other = SigningKey::generate(Algorithm::ES256).unwrap();
        let mut foreign = header(&key);
        foreign["jwk"] = header(&other)["jwk"].clone();
        assert_eq!(
            verify(&sign(&key, foreign, claims(None)), &expect(None)),
            Err(DpopError::Signature),
            "signed by a key other than the one it names"
        );
        let mut typ = header(&key);
        typ["typ"] = json!("JWT");
        assert_eq!(
            verify(&sign(&key, typ, claims(None)), &expect(None)),
            Err(DpopError::Typ)
        );
        let mut none = header(&key);
        none["alg"] = json!("none");
        assert_eq!(
            verify(&sign(&key, none, claims(None)), &expect(None)),
            Err(DpopError::Alg)
        );
        let mut hmac = header(&key);
        hmac["alg"] = json!("HS256");
        assert_eq!(
            verify(&sign(&key, hmac, claims(None)), &expect(None)),
            Err(DpopError::Alg)
        );
        let mut private = header(&key);
        private["jwk"]["d"] = json!("AAAA");
        assert_eq!(
            verify(&sign(&key, private, claims(None)), &expect(None)),
            Err(DpopError::Jwk)
        );
        let mut mismatched = header(&key);
        mismatched["alg"] = json!("EdDSA");
        assert_eq!(
            verify(&sign(&key, mismatched, claims(None)), &expect(None)),
            Err(DpopError::Jwk),
            "an EC key cannot verify EdDSA"
        );
        assert_eq!(verify("a.b", &expect(None)), Err(DpopError::Malformed));
        assert_eq!(
            verify(&"a".repeat(MAX_PROOF_BYTES + 1), &expect(None)),
            Err(DpopError::Malformed)
        );
    }

    #[test]
    fn urls_normalise_as_rfc3986_says() {
        assert_eq!(
            normalize_url("HTTPS://Gw.Example:443/demo/mcp?q#f").as_deref(),
            Some("https://gw.example/demo/mcp")
        );
        assert_eq!(
            normalize_url("http://127.0.0.1:8080").as_deref(),
            Some("http://127.0.0.1:8080/")
        );
        assert_eq!(normalize_url("not a url"), None);
        assert_eq!(normalize_url("https://u:p@gw.example/x"), None);
    }
}
