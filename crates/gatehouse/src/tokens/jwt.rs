//! Compact JWS (RFC 7515) with a deliberately narrow header policy.
//!
//! Verification trusts nothing in the token to choose how it is verified: the key comes
//! from a configured set by exact `kid`, and the algorithm is the one pinned to that key.
//! Headers that carry or point at keys (`jku`, `x5u`, `jwk`, `x5c`) and critical
//! extensions are refused outright, which rules out the classic JWT key-confusion attacks.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use serde::Serialize;
use serde_json::{Map, Value};

use super::keys::{SigningKey, VerifierSet};
use gatehouse_model::{algorithm::Algorithm, jsonrpc::strict_value};

/// Tokens ride in an `Authorization` header; anything larger is not one of ours and is
/// refused before any decoding work.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
pub const DEFAULT_LEEWAY_SECS: i64 = 60;
/// RFC 9068 §2.1.
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Headers naming or embedding a key: honouring any lets the token pick its own verifier.
const KEY_HEADERS: [&str; 4] = ["jku", "x5u", "jwk", "x5c"];

/// Why a token was refused. Messages name the failed check only: never token contents,
/// claim values or key material, so they are safe to log and to return to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLarge,
    #[error("token is not three dot-separated segments")]
    SegmentCount,
    #[error("token segment is not unpadded base64url")]
    Base64,
    #[error("header is not a JSON object without duplicate keys")]
    BadHeader,
    #[error("header has no \"alg\"")]
    MissingAlg,
    #[error("unsecured tokens (alg \"none\") are refused")]
    AlgNone,
    #[error("header {0:?} is refused: keys come only from configuration")]
    ForbiddenHeader(&'static str),
    #[error("critical header extensions are not supported")]
    CriticalHeader,
    #[error("header has no \"kid\"")]
    MissingKid,
    #[error("unknown key id")]
    UnknownKid,
    #[error("algorithm does not match the key")]
    AlgorithmMismatch,
    #[error("unexpected token type")]
    WrongType,
    #[error("signature does not verify")]
    BadSignature,
    #[error("claims are not a JSON object without duplicate keys")]
    BadClaims,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience")]
    WrongAudience,
    #[error("no \"exp\" claim")]
    MissingExp,
    #[error("claim {0:?} is not an integer NumericDate")]
    InvalidNumericDate(&'static str),
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("claims do not serialise to a JSON object")]
    Encode,
    #[error("signing failed")]
    Sign,
}

/// What a token must satisfy besides a good signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectations {
    pub issuer: String,
    pub audience: String,
    /// Required `typ` header, compared per RFC 7515 §4.1.9 (case-insensitive, the
    /// `application/` prefix optional). `None` accepts any or no `typ`.
    pub typ: Option<String>,
    /// Clock skew tolerated on `exp`, `nbf` and `iat`, in seconds.
    pub leeway_secs: i64,
    /// Accept a token without `kid` when `keys` holds exactly one key (client assertions:
    /// some clients sign with their only key and name none).
    pub single_key_without_kid: bool,
}

impl Expectations {
    /// An RFC 9068 access token: `typ` must be `at+jwt`.
    pub fn access_token(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            typ: Some(ACCESS_TOKEN_TYP.to_owned()),
            leeway_secs: DEFAULT_LEEWAY_SECS,
            single_key_without_kid: false,
        }
    }

    pub fn with_leeway(mut self, secs: i64) -> Self {
        self.leeway_secs = secs;
        self
    }

    /// `now < exp + leeway`: shared with the token cache so a cached token expires exactly
    /// when a fresh verification would refuse it.
    pub fn is_live(&self, exp: i64, now: i64) -> bool {
        now < exp.saturating_add(self.leeway_secs)
    }
}

/// The protected header, decoded but not trusted.
#[derive(Debug, Clone, PartialEq)]
pub struct Header(Map<String, Value>);

impl Header {
    pub fn alg(&self) -> Option<&str> {
        self.get_str("alg")
    }

    pub fn kid(&self) -> Option<&str> {
        self.get_str("kid")
    }

    pub fn typ(&self) -> Option<&str> {
        self.get_str("typ")
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    fn get_str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }
}

/// Claims of a token that passed every check.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedClaims {
    kid: String,
    alg: Algorithm,
    typ: Option<String>,
    exp: i64,
    claims: Map<String, Value>,
}

impl VerifiedClaims {
    /// The checks of [`verify_at`] that depend on `expect` or the clock but not on the
    /// signature, so a cache can answer a token verified earlier for any expectations.
    pub fn satisfies(&self, expect: &Expectations, now: i64) -> Result<(), JwtError> {
        if !typ_ok(self.typ.as_deref(), expect) {
            return Err(JwtError::WrongType);
        }
        check_claims(&self.claims, expect, now).map(drop)
    }

    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    pub fn into_claims(self) -> Map<String, Value> {
        self.claims
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.claims.get(name)
    }

    fn get_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn sub(&self) -> Option<&str> {
        self.get_str("sub")
    }

    pub fn client_id(&self) -> Option<&str> {
        self.get_str("client_id")
    }

    /// The space-separated `scope` string (RFC 9068 §2.2.3).
    pub fn scope(&self) -> Option<&str> {
        self.get_str("scope")
    }

    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope().unwrap_or_default().split_ascii_whitespace()
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|s| s == scope)
    }

    pub fn jti(&self) -> Option<&str> {
        self.get_str("jti")
    }

    /// Always present: verification refuses tokens without `exp`.
    pub fn exp(&self) -> i64 {
        self.exp
    }

    pub fn iat(&self) -> Option<i64> {
        self.claims.get("iat").and_then(Value::as_i64)
    }

    /// The header's `typ`, as the issuer wrote it.
    pub fn typ(&self) -> Option<&str> {
        self.typ.as_deref()
    }

    /// The key that signed the token.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }
}

#[derive(Serialize)]
struct EncodeHeader<'a> {
    alg: &'static str,
    kid: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    typ: Option<&'a str>,
}

/// Signs `claims` as a compact JWS whose header carries the key's `alg` and `kid`, and
/// `typ` when given (`Some(ACCESS_TOKEN_TYP)` for access tokens).
pub fn encode<T: Serialize + ?Sized>(
    key: &SigningKey,
    typ: Option<&str>,
    claims: &T,
) -> Result<String, JwtError> {
    let header = EncodeHeader {
        alg: key.alg().as_str(),
        kid: key.kid(),
        typ,
    };
    let header = serde_json::to_vec(&header).map_err(|_| JwtError::Encode)?;
    let payload = serde_json::to_vec(claims).map_err(|_| JwtError::Encode)?;
    if !payload.starts_with(b"{") {
        return Err(JwtError::Encode);
    }
    let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 600);
    B64.encode_string(&header, &mut token);
    token.push('.');
    B64.encode_string(&payload, &mut token);
    let sig = key.sign(token.as_bytes()).map_err(|_| JwtError::Sign)?;
    token.push('.');
    B64.encode_string(&sig, &mut token);
    Ok(token)
}

struct Parts<'a> {
    header: Header,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

fn split(token: &str) -> Result<Parts<'_>, JwtError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwtError::TooLarge);
    }
    let (header, rest) = token.split_once('.').ok_or(JwtError::SegmentCount)?;
    let (payload, signature) = rest.split_once('.').ok_or(JwtError::SegmentCount)?;
    if signature.contains('.') {
        return Err(JwtError::SegmentCount);
    }
    Ok(Parts {
        signing_input: &token[..header.len() + 1 + payload.len()],
        header: decode_json(header, JwtError::BadHeader).map(Header)?,
        payload,
        signature,
    })
}

/// Base64url, then UTF-8 and strict JSON (duplicate keys refused at any depth, so the
/// header and claims checked here are the ones every other parser would read).
fn decode_json(segment: &str, not_object: JwtError) -> Result<Map<String, Value>, JwtError> {
    let bytes = B64.decode(segment).map_err(|_| JwtError::Base64)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| not_object)?;
    match strict_value(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(not_object),
    }
}

/// The header of a token without any verification, e.g. to pick an issuer's key set.
pub fn decode_unverified_header(token: &str) -> Result<Header, JwtError> {
    split(token).map(|parts| parts.header)
}

/// RFC 7515 §4.1.9: media type names are case-insensitive and `application/` may be left out.
fn typ_matches(actual: &str, expected: &str) -> bool {
    fn bare(typ: &str) -> &str {
        match typ.get(..12) {
            Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
            _ => typ,
        }
    }
    bare(actual).eq_ignore_ascii_case(bare(expected))
}

/// Verifies `token` against `keys` and `expect` at the current time.
pub fn verify(
    token: &str,
    keys: &VerifierSet,
    expect: &Expectations,
) -> Result<VerifiedClaims, JwtError> {
    verify_at(token, keys, expect, jiff::Timestamp::now().as_second())
}

/// As [`verify`], with `now` in Unix seconds. Checks run in a fixed order, cheapest and
/// most structural first; the claims are parsed only after the signature verifies.
pub fn verify_at(
    token: &str,
    keys: &VerifierSet,
    expect: &Expectations,
    now: i64,
) -> Result<VerifiedClaims, JwtError> {
    let parts = split(token)?;
    let header = &parts.header;

    let alg = header.alg().ok_or(JwtError::MissingAlg)?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(JwtError::AlgNone);
    }
    if let Some(name) = KEY_HEADERS.into_iter().find(|h| header.0.contains_key(*h)) {
        return Err(JwtError::ForbiddenHeader(name));
    }
    if header.0.contains_key("crit") {
        return Err(JwtError::CriticalHeader);
    }
    let only = (expect.single_key_without_kid && keys.len() == 1)
        .then(|| keys.iter().next())
        .flatten();
    let kid = match (header.kid(), only) {
        (Some(kid), _) => kid,
        (None, Some(key)) => key.kid(),
        (None, None) => return Err(JwtError::MissingKid),
    };
    let key = keys.get(kid).ok_or(JwtError::UnknownKid)?;
    if alg != key.alg().as_str() {
        return Err(JwtError::AlgorithmMismatch);
    }
    if !typ_ok(header.typ(), expect) {
        return Err(JwtError::WrongType);
    }
    let signature = B64.decode(parts.signature).map_err(|_| JwtError::Base64)?;
    if !key.verify(parts.signing_input.as_bytes(), &signature) {
        return Err(JwtError::BadSignature);
    }

    let claims = decode_json(parts.payload, JwtError::BadClaims)?;
    let exp = check_claims(&claims, expect, now)?;
    Ok(VerifiedClaims {
        kid: kid.to_owned(),
        alg: key.alg(),
        typ: header.typ().map(str::to_owned),
        exp,
        claims,
    })
}

fn typ_ok(typ: Option<&str>, expect: &Expectations) -> bool {
    let matches = |expected: &String| typ.is_some_and(|typ| typ_matches(typ, expected));
    expect.typ.as_ref().is_none_or(matches)
}

/// `iss`, `aud` and the lifetime, in that order; returns `exp`.
fn check_claims(
    claims: &Map<String, Value>,
    expect: &Expectations,
    now: i64,
) -> Result<i64, JwtError> {
    if claims.get("iss").and_then(Value::as_str) != Some(expect.issuer.as_str()) {
        return Err(JwtError::WrongIssuer);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == expect.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(&expect.audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(JwtError::WrongAudience);
    }
    let exp = numeric_date(claims, "exp")?.ok_or(JwtError::MissingExp)?;
    if !expect.is_live(exp, now) {
        return Err(JwtError::Expired);
    }
    let horizon = now.saturating_add(expect.leeway_secs);
    if numeric_date(claims, "nbf")?.is_some_and(|nbf| nbf > horizon) {
        return Err(JwtError::NotYetValid);
    }
    if numeric_date(claims, "iat")?.is_some_and(|iat| iat > horizon) {
        return Err(JwtError::IssuedInFuture);
    }
    Ok(exp)
}

/// Integer seconds only: fractional NumericDates are legal JSON but no issuer we accept
/// writes them, and refusing them keeps every comparison exact.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtError> {
    let date = |value: &Value| value.as_i64().ok_or(JwtError::InvalidNumericDate(name));
    claims.get(name).map(date).transpose()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::tokens::keys::tests::key;
    use serde_json::json;

    const NOW: i64 = 1_750_000_000;
    const ISS: &str = "https://gatehouse.example";
    const AUD: &str = "https://mcp.example/mcp";

    fn claims() -> Value {
        json!({
            "iss": ISS, "aud": AUD, "sub": "user-1", "client_id": "client-1",
            "scope": "mcp:tools read", "jti": "j-1", "iat": NOW - 10, "exp": NOW + 300,
        })
    }

    fn set_of(key: &SigningKey) -> VerifierSet {
        let mut set = VerifierSet::new();
        set.insert(key.verification_key());
        set
    }

    /// `header.payload.signature` from raw JSON text, so tests can write what encode won't.
    fn forge(key: &SigningKey, header: &str, payload: &str) -> String {
        let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
        let sig = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(sig))
    }

    fn with_header(key: &SigningKey, name: &str, value: Value) -> String {
        let mut header = json!({"alg": key.alg().as_str(), "kid": key.kid(), "typ": "at+jwt"});
        header[name] = value;
        forge(key, &header.to_string(), &claims().to_string())
    }

    fn with_claim(key: &SigningKey, name: &str, value: Value) -> String {
        let mut claims = claims();
        claims[name] = value;
        encode(key, Some(ACCESS_TOKEN_TYP), &claims).unwrap()
    }

    fn check_with(key: &SigningKey, token: &str, expect: &Expectations) -> Result<(), JwtError> {
        verify_at(token, &set_of(key), expect, NOW).map(drop)
    }

    fn check(key: &SigningKey, token: &str) -> Result<(), JwtError> {
        check_with(key, token, &Expectations::access_token(ISS, AUD))
    }

    #[test]
    fn round_trips_for_every_algorithm() {
        for &alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
            let key = key(alg);
            let token = encode(&key, Some(ACCESS_TOKEN_TYP), &claims()).unwrap();
            let header = decode_unverified_header(&token).unwrap();
            assert_eq!(header.alg(), Some(alg.as_str()));
            assert_eq!(
                (header.kid(), header.typ()),
                (Some(key.kid()), Some("at+jwt"))
            );

            let set = VerifierSet::from_jwks(&json!({"keys": [key.public_jwk()]})).unwrap();
            let expect = Expectations::access_token(ISS, AUD);
            let verified = verify_at(&token, &set, &expect, NOW).unwrap();
            assert_eq!((verified.alg(), verified.kid()), (alg, key.kid()));
            assert_eq!(verified.sub(), Some("user-1"));
            assert_eq!(verified.client_id(), Some("client-1"));
            assert_eq!(verified.scope(), Some("mcp:tools read"));
            assert!(verified.has_scope("read") && !verified.has_scope("write"));
            assert_eq!(verified.jti(), Some("j-1"));
            assert_eq!(
                (verified.exp(), verified.iat()),
                (NOW + 300, Some(NOW - 10))
            );
            assert_eq!(verified.typ(), Some("at+jwt"));
            assert_eq!(&Value::Object(verified.into_claims()), &claims());
        }
        for name in ["none", "HS256", "es256", ""] {
            assert_eq!(Algorithm::parse(name), None);
        }
    }

    /// Every refusal, each with the error of the check that must catch it.
    #[test]
    fn refusals() {
        use JwtError::*;
        let ed = key(Algorithm::EdDSA);
        // A table rustfmt leaves alone: `label: token => expected error;`.
        macro_rules! refuses {
            ($($label:literal: $token:expr => $expected:expr;)+) => {$(
                assert_eq!(check(&ed, &$token), Err($expected), $label);
            )+};
        }
        let h = |name: &str, value: Value| with_header(&ed, name, value);
        let c = |name: &str, value: Value| with_claim(&ed, name, value);
        let kid = ed.kid();
        let std_header = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"at+jwt"}}"#);
        let body = claims().to_string();
        let good = encode(&ed, Some(ACCESS_TOKEN_TYP), &claims()).unwrap();
        let (input, sig) = good.rsplit_once('.').unwrap();
        let (header, rest) = good.split_once('.').unwrap();
        // A last-key-wins parser would read "none", a first-key-wins one EdDSA.
        let twice = format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"at+jwt","alg":"none"}}"#);
        let unsecured = B64.encode(format!(r#"{{"alg":"none","kid":"{kid}"}}"#));
        // The classic confusion: HMAC "signed" with the public key as the HMAC secret.
        let hs_header = format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"at+jwt"}}"#);
        let hs_input = format!("{}.{}", B64.encode(hs_header), B64.encode(&body));
        let public = serde_json::to_vec(&ed.public_jwk()).unwrap();
        let hmac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public);
        let tag = B64.encode(ring::hmac::sign(&hmac, hs_input.as_bytes()));
        let mut flipped = B64.decode(sig).unwrap();
        flipped[3] ^= 1;
        let admin = c("sub", json!("admin"));
        let dup = format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{NOW},"sub":"a","sub":"b"}}"#);
        let mut no_exp = claims();
        no_exp.as_object_mut().unwrap().remove("exp");

        refuses! {
            "oversized": c("pad", json!("x".repeat(MAX_TOKEN_LEN))) => TooLarge;
            "two segments": input => SegmentCount;
            "four segments": format!("{good}.x") => SegmentCount;
            "empty": "" => SegmentCount;
            "padding": format!("{header}=.{rest}") => Base64;
            "standard alphabet": format!("+{header}.{rest}") => Base64;
            "space": format!("{header} .{rest}") => Base64;
            "signature": format!("{input}.!!") => Base64;
            "header array": format!("{}.{rest}", B64.encode("[1]")) => BadHeader;
            "header not utf-8": format!("{}.{rest}", B64.encode([0xff, 0xfe])) => BadHeader;
            "duplicate header key": forge(&ed, &twice, &body) => BadHeader;
            "alg none": format!("{unsecured}.{}.", B64.encode(&body)) => AlgNone;
            "alg NoNe": h("alg", json!("NoNe")) => AlgNone;
            "alg missing": forge(&ed, &format!(r#"{{"kid":"{kid}"}}"#), &body) => MissingAlg;
            "jku": h("jku", json!("https://evil.example/jwks")) => ForbiddenHeader("jku");
            "x5u": h("x5u", json!("https://evil.example/cert")) => ForbiddenHeader("x5u");
            "jwk": h("jwk", ed.public_jwk()) => ForbiddenHeader("jwk");
            "x5c": h("x5c", json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOC"])) => ForbiddenHeader("x5c");
            "crit": h("crit", json!(["exp"])) => CriticalHeader;
            "kid missing": forge(&ed, r#"{"alg":"EdDSA","typ":"at+jwt"}"#, &body) => MissingKid;
            "kid not a string": h("kid", json!(7)) => MissingKid;
            "kid unknown": h("kid", json!("nope")) => UnknownKid;
            "kid path": h("kid", json!("../../etc/passwd")) => UnknownKid;
            "kid url": h("kid", json!("https://evil.example/jwks.json")) => UnknownKid;
            "kid empty": h("kid", json!("")) => UnknownKid;
            "HS256 with the public key": format!("{hs_input}.{tag}") => AlgorithmMismatch;
            "RS256 on an Ed key": h("alg", json!("RS256")) => AlgorithmMismatch;
            "typ JWT": h("typ", json!("JWT")) => WrongType;
            "typ application/jwt": h("typ", json!("application/jwt")) => WrongType;
            "typ missing": encode(&ed, None, &claims()).unwrap() => WrongType;
            "flipped byte": format!("{input}.{}", B64.encode(&flipped)) => BadSignature;
            "spliced": format!("{}.{sig}", admin.rsplit_once('.').unwrap().0) => BadSignature;
            "impostor key": forge(&key(Algorithm::EdDSA), &std_header, &body) => BadSignature;
            "claims array": forge(&ed, &std_header, "[]") => BadClaims;
            "duplicate claim": forge(&ed, &std_header, &dup) => BadClaims;
            "wrong iss": c("iss", json!("https://evil.example")) => WrongIssuer;
            "wrong aud": c("aud", json!("https://other.example/mcp")) => WrongAudience;
            "aud list": c("aud", json!(["https://other.example"])) => WrongAudience;
            "no exp": encode(&ed, Some(ACCESS_TOKEN_TYP), &no_exp).unwrap() => MissingExp;
            "fractional exp": c("exp", json!(1.5e9)) => InvalidNumericDate("exp");
            "string exp": c("exp", json!("1750000300")) => InvalidNumericDate("exp");
            "expired": c("exp", json!(NOW - 61)) => Expired;
            "nbf ahead": c("nbf", json!(NOW + 61)) => NotYetValid;
            "iat ahead": c("iat", json!(NOW + 61)) => IssuedInFuture;
        }

        let rs = key(Algorithm::RS256);
        let ps = encode(&key(Algorithm::PS256), Some(ACCESS_TOKEN_TYP), &claims()).unwrap();
        assert_eq!(
            check(&rs, &ps),
            Err(AlgorithmMismatch),
            "same key, other alg"
        );
        for alg in [Algorithm::ES256, Algorithm::RS256] {
            let key = key(alg);
            let token = encode(&key, Some(ACCESS_TOKEN_TYP), &claims()).unwrap();
            let (input, sig) = token.rsplit_once('.').unwrap();
            let mut sig = B64.decode(sig).unwrap();
            sig[3] ^= 1;
            let tampered = format!("{input}.{}", B64.encode(&sig));
            assert_eq!(check(&key, &tampered), Err(BadSignature), "{alg:?}");
        }
    }

    #[test]
    fn tolerated_variations_are_accepted() {
        let ed = key(Algorithm::EdDSA);
        let expect = Expectations::access_token(ISS, AUD);
        let strict = expect.clone().with_leeway(0);
        let any_typ = Expectations {
            typ: None,
            ..strict.clone()
        };
        let untyped = encode(&ed, None, &claims()).unwrap();
        let cases = [
            (with_header(&ed, "typ", json!("AT+JWT")), &expect),
            (
                with_header(&ed, "typ", json!("application/at+jwt")),
                &expect,
            ),
            (
                with_header(&ed, "typ", json!("Application/AT+jwt")),
                &expect,
            ),
            (
                with_claim(&ed, "aud", json!(["https://other.example", AUD])),
                &expect,
            ),
            (with_claim(&ed, "exp", json!(NOW - 59)), &expect),
            (with_claim(&ed, "nbf", json!(NOW + 59)), &expect),
            (with_claim(&ed, "iat", json!(NOW + 59)), &expect),
            (untyped, &any_typ),
        ];
        for (token, expect) in cases {
            assert_eq!(check_with(&ed, &token, expect), Ok(()), "{token}");
        }
        let late = with_claim(&ed, "exp", json!(NOW - 59));
        assert_eq!(check_with(&ed, &late, &strict), Err(JwtError::Expired));
    }

    #[test]
    fn encode_refuses_non_object_claims() {
        let key = key(Algorithm::EdDSA);
        assert_eq!(encode(&key, None, &[1, 2]), Err(JwtError::Encode));
    }
}
