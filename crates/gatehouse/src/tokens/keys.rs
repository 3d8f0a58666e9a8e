//! Key material for signed tokens: Gatehouse's own signing keys, public keys as JWKs, and
//! the set of keys a verifier accepts, looked up by `kid`.
//!
//! Every key is pinned to exactly one algorithm. A token names its algorithm in a header
//! the attacker writes, so the key, not the token, decides how a signature is checked.

use std::collections::HashMap;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use ring::{
    rand::SystemRandom,
    signature::{
        self, EcdsaKeyPair, EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, RsaEncoding,
        RsaKeyPair, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey,
    },
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use gatehouse_model::algorithm::Algorithm;

/// Size of generated RSA keys: the common floor for RS256, and ring signs up to 4096.
pub const RSA_GENERATED_BITS: usize = 2048;
const RSA_MIN_BITS: usize = 2048;
/// ring verifies RSA signatures up to 8192-bit moduli; larger keys could never verify.
const RSA_MAX_BITS: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed")]
    Generate,
    /// ring's reason is a fixed description such as "InvalidEncoding", never key bytes.
    #[error("private key rejected: {0}")]
    Rejected(String),
    #[error("signing failed")]
    Sign,
    #[error("invalid JWK: {0}")]
    InvalidJwk(&'static str),
    #[error("unsupported JWK: {0}")]
    UnsupportedJwk(&'static str),
    #[error("RSA modulus of {0} bits is outside 2048..=8192")]
    RsaKeySize(usize),
    #[error("JWK \"use\" is not \"sig\"")]
    NotSignatureKey,
    #[error("a JWKS is an object with a \"keys\" array")]
    InvalidJwks,
}

/// The public half of a key, in the encodings JWKs use (raw big-endian, no leading zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Public {
    Ed25519(Vec<u8>),
    /// Uncompressed SEC1 point `04 || x || y`, the form ring verifies against.
    Ec {
        crv: &'static str,
        point: Vec<u8>,
    },
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
}

impl Public {
    fn ec_coordinates(point: &[u8]) -> (&[u8], &[u8]) {
        let coords = point.get(1..).unwrap_or_default();
        coords.split_at(coords.len() / 2)
    }

    /// The required members in lexicographic order, which is RFC 7638's canonical form
    /// whether serde_json's map sorts keys or keeps insertion order.
    fn jwk_members(&self) -> Value {
        match self {
            Public::Ed25519(x) => json!({"crv": "Ed25519", "kty": "OKP", "x": B64.encode(x)}),
            Public::Ec { crv, point } => {
                let (x, y) = Self::ec_coordinates(point);
                json!({"crv": crv, "kty": "EC", "x": B64.encode(x), "y": B64.encode(y)})
            }
            Public::Rsa { n, e } => json!({"e": B64.encode(e), "kty": "RSA", "n": B64.encode(n)}),
        }
    }

    /// RFC 7638: SHA-256 of the canonical members, no whitespace (which `to_string` emits).
    fn thumbprint(&self) -> String {
        B64.encode(Sha256::digest(self.jwk_members().to_string()))
    }

    fn fits(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Public::Ed25519(_) => alg == EdDSA,
            Public::Ec { crv, .. } => {
                (*crv == "P-256" && alg == ES256) || (*crv == "P-384" && alg == ES384)
            }
            Public::Rsa { .. } => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
        }
    }

    /// The algorithm assumed for a JWK that names none: the only one its curve allows, and
    /// RS256 for RSA because that is what issuers omitting `alg` use in practice.
    fn default_alg(&self) -> Algorithm {
        match self {
            Public::Ed25519(_) => Algorithm::EdDSA,
            Public::Ec { crv: "P-384", .. } => Algorithm::ES384,
            Public::Ec { .. } => Algorithm::ES256,
            Public::Rsa { .. } => Algorithm::RS256,
        }
    }
}

fn rsa_bits(n: &[u8]) -> usize {
    match n.first() {
        Some(first) => (n.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
        None => 0,
    }
}

fn rsa_verification(alg: Algorithm) -> Option<&'static RsaParameters> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

fn rsa_signing(alg: Algorithm) -> Option<&'static dyn RsaEncoding> {
    Some(match alg {
        Algorithm::RS256 => &signature::RSA_PKCS1_SHA256,
        Algorithm::RS384 => &signature::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &signature::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &signature::RSA_PSS_SHA256,
        Algorithm::PS384 => &signature::RSA_PSS_SHA384,
        Algorithm::PS512 => &signature::RSA_PSS_SHA512,
        _ => return None,
    })
}

/// ring's fixed-width (JWS-style `r || s`) signing parameters and the JWK curve name.
fn ecdsa_signing(alg: Algorithm) -> Option<(&'static EcdsaSigningAlgorithm, &'static str)> {
    match alg {
        Algorithm::ES256 => Some((&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256")),
        Algorithm::ES384 => Some((&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384")),
        _ => None,
    }
}

fn with_metadata(mut jwk: Value, kid: &str, alg: Algorithm) -> Value {
    jwk["kid"] = kid.into();
    jwk["alg"] = alg.as_str().into();
    jwk["use"] = "sig".into();
    jwk
}

enum Pair {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
}

/// One of Gatehouse's own private keys, pinned to one algorithm.
pub struct SigningKey {
    kid: String,
    alg: Algorithm,
    /// ring cannot re-export a parsed key, so the encoding is kept for `to_pkcs8_der`.
    pkcs8: Vec<u8>,
    pair: Pair,
    public: Public,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh key whose `kid` is its RFC 7638 thumbprint.
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let der = match (alg, ecdsa_signing(alg)) {
            (Algorithm::EdDSA, _) => Ed25519KeyPair::generate_pkcs8(&rng),
            (_, Some((params, _))) => EcdsaKeyPair::generate_pkcs8(params, &rng),
            _ => return Self::from_pkcs8_der(alg, None, &generate_rsa_pkcs8()?),
        }
        .map_err(|_| KeyError::Generate)?;
        Self::from_pkcs8_der(alg, None, der.as_ref())
    }

    /// Loads a stored key. `kid: None` derives the RFC 7638 thumbprint, which is what
    /// `generate` assigned, so a key stored without its kid gets the same one back.
    pub fn from_pkcs8_der(alg: Algorithm, kid: Option<&str>, der: &[u8]) -> Result<Self, KeyError> {
        let rejected = |e: ring::error::KeyRejected| KeyError::Rejected(e.to_string());
        let (pair, public) = match alg {
            // "maybe_unchecked" also accepts v1 PKCS#8 (no embedded public key), which is
            // what most other tools write for Ed25519.
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?;
                let public = Public::Ed25519(pair.public_key().as_ref().to_vec());
                (Pair::Ed25519(pair), public)
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let (params, crv) = ecdsa_signing(alg).ok_or(KeyError::Generate)?;
                let pair = EcdsaKeyPair::from_pkcs8(params, der, &SystemRandom::new())
                    .map_err(rejected)?;
                let point = pair.public_key().as_ref().to_vec();
                (Pair::Ecdsa(pair), Public::Ec { crv, point })
            }
            _ => {
                let pair = RsaKeyPair::from_pkcs8(der).map_err(rejected)?;
                let RsaPublicKeyComponents { n, e } =
                    RsaPublicKeyComponents::<Vec<u8>>::from(pair.public());
                let bits = rsa_bits(&n);
                if bits < RSA_MIN_BITS {
                    return Err(KeyError::RsaKeySize(bits));
                }
                (Pair::Rsa(pair), Public::Rsa { n, e })
            }
        };
        let kid = kid.map_or_else(|| public.thumbprint(), str::to_owned);
        Ok(Self {
            kid,
            alg,
            pkcs8: der.to_vec(),
            pair,
            public,
        })
    }

    /// Loads a PKCS #8 key of whichever kind it is: Ed25519 (EdDSA), P-256 (ES256), P-384
    /// (ES384) or RSA (RS256); `kid` is its thumbprint. For keys an operator hands in.
    pub fn from_pkcs8_any(der: &[u8]) -> Result<Self, KeyError> {
        let mut last = KeyError::Generate;
        for alg in [
            Algorithm::EdDSA,
            Algorithm::ES256,
            Algorithm::ES384,
            Algorithm::RS256,
        ] {
            match Self::from_pkcs8_der(alg, None, der) {
                Ok(key) => return Ok(key),
                Err(err) => last = err,
            }
        }
        Err(last)
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The private key as PKCS#8 DER, for the caller to encrypt before storing it.
    pub fn to_pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    pub fn thumbprint(&self) -> String {
        self.public.thumbprint()
    }

    /// The public JWK to publish: key members plus `kid`, `alg` and `use: "sig"`.
    pub fn public_jwk(&self) -> Value {
        with_metadata(self.public.jwk_members(), &self.kid, self.alg)
    }

    pub fn verification_key(&self) -> VerificationKey {
        VerificationKey {
            kid: self.kid.clone(),
            alg: self.alg,
            public: self.public.clone(),
        }
    }

    /// The JWS signature (fixed-width `r || s` for ECDSA, per RFC 7518 §3.4).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Pair::Ecdsa(pair) => pair
                .sign(&rng, message)
                .map(|sig| sig.as_ref().to_vec())
                .map_err(|_| KeyError::Sign),
            Pair::Rsa(pair) => {
                let padding = rsa_signing(self.alg).ok_or(KeyError::Sign)?;
                let mut sig = vec![0; pair.public().modulus_len()];
                pair.sign(padding, &rng, message, &mut sig)
                    .map_err(|_| KeyError::Sign)?;
                Ok(sig)
            }
        }
    }
}

/// ring cannot generate RSA keys; the `rsa` crate does only this, ring does the signing.
fn generate_rsa_pkcs8() -> Result<Vec<u8>, KeyError> {
    use rsa::pkcs8::EncodePrivateKey as _;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_GENERATED_BITS)
        .map_err(|_| KeyError::Generate)?;
    let der = key.to_pkcs8_der().map_err(|_| KeyError::Generate)?;
    Ok(der.as_bytes().to_vec())
}

/// A public key that verifies signatures of exactly one algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerificationKey {
    kid: String,
    alg: Algorithm,
    public: Public,
}

fn b64_member(jwk: &Map<String, Value>, name: &'static str) -> Result<Vec<u8>, KeyError> {
    let text = jwk
        .get(name)
        .and_then(Value::as_str)
        .ok_or(KeyError::InvalidJwk(name))?;
    B64.decode(text).map_err(|_| KeyError::InvalidJwk(name))
}

impl VerificationKey {
    /// Reads a public JWK. Private members (`d`, `p`, ...) are ignored and never output.
    /// Without `kid` the key gets its thumbprint; without `alg`, see `Public::default_alg`.
    pub fn from_jwk(jwk: &Value) -> Result<Self, KeyError> {
        let jwk = jwk
            .as_object()
            .ok_or(KeyError::InvalidJwk("not an object"))?;
        // A SPIFFE trust bundle marks the keys that sign JWT-SVIDs `jwt-svid` (SPIFFE Trust
        // Domain and Bundle §4.2.1); its `x509-svid` keys stay out like `enc` ones.
        if let Some(usage) = jwk.get("use")
            && !matches!(usage.as_str(), Some("sig" | "jwt-svid"))
        {
            return Err(KeyError::NotSignatureKey);
        }
        let kty = jwk
            .get("kty")
            .and_then(Value::as_str)
            .ok_or(KeyError::InvalidJwk("kty"))?;
        let crv = || {
            jwk.get("crv")
                .and_then(Value::as_str)
                .ok_or(KeyError::InvalidJwk("crv"))
        };
        let public = match kty {
            "OKP" => {
                if crv()? != "Ed25519" {
                    return Err(KeyError::UnsupportedJwk("OKP curve"));
                }
                let x = b64_member(jwk, "x")?;
                if x.len() != signature::ED25519_PUBLIC_KEY_LEN {
                    return Err(KeyError::InvalidJwk("x"));
                }
                Public::Ed25519(x)
            }
            "EC" => {
                let (crv, len) = match crv()? {
                    "P-256" => ("P-256", 32),
                    "P-384" => ("P-384", 48),
                    _ => return Err(KeyError::UnsupportedJwk("EC curve")),
                };
                let (x, y) = (b64_member(jwk, "x")?, b64_member(jwk, "y")?);
                if x.len() != len || y.len() != len {
                    return Err(KeyError::InvalidJwk("EC coordinates"));
                }
                let mut point = Vec::with_capacity(1 + 2 * len);
                point.push(0x04);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Public::Ec { crv, point }
            }
            "RSA" => {
                // ring wants big-endian integers without leading zeros; some encoders add one.
                let strip = |mut v: Vec<u8>| {
                    let zeros = v.iter().take_while(|b| **b == 0).count();
                    v.drain(..zeros);
                    v
                };
                let n = strip(b64_member(jwk, "n")?);
                let e = strip(b64_member(jwk, "e")?);
                let bits = rsa_bits(&n);
                if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
                    return Err(KeyError::RsaKeySize(bits));
                }
                // ring refuses even exponents, 1, and anything above 2^33 - 1 at verify time;
                // refusing them here reports a bad key rather than a bad signature later.
                if e.is_empty() || e.len() > 5 || e.last().is_some_and(|b| b & 1 == 0) || e == [1] {
                    return Err(KeyError::InvalidJwk("e"));
                }
                Public::Rsa { n, e }
            }
            _ => return Err(KeyError::UnsupportedJwk("kty")),
        };
        let alg = match jwk.get("alg") {
            None => public.default_alg(),
            Some(alg) => alg
                .as_str()
                .and_then(Algorithm::parse)
                .ok_or(KeyError::UnsupportedJwk("alg"))?,
        };
        if !public.fits(alg) {
            return Err(KeyError::InvalidJwk("alg does not fit the key type"));
        }
        let kid = match jwk.get("kid") {
            None => public.thumbprint(),
            Some(kid) => kid.as_str().ok_or(KeyError::InvalidJwk("kid"))?.to_owned(),
        };
        Ok(Self { kid, alg, public })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    pub fn thumbprint(&self) -> String {
        self.public.thumbprint()
    }

    pub fn to_jwk(&self) -> Value {
        with_metadata(self.public.jwk_members(), &self.kid, self.alg)
    }

    /// Checks `signature` over `message` with this key's pinned algorithm.
    pub fn verify(&self, message: &[u8], sig: &[u8]) -> bool {
        match &self.public {
            Public::Ed25519(x) => UnparsedPublicKey::new(&signature::ED25519, x)
                .verify(message, sig)
                .is_ok(),
            Public::Ec { point, .. } => {
                let params = match self.alg {
                    Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
                    Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return false,
                };
                UnparsedPublicKey::new(params, point)
                    .verify(message, sig)
                    .is_ok()
            }
            Public::Rsa { n, e } => rsa_verification(self.alg).is_some_and(|params| {
                RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }),
        }
    }
}

/// The keys a verifier accepts, by `kid`. Lookup is an exact map lookup and nothing else:
/// a `kid` is never a path, URL or pattern.
#[derive(Debug, Clone, Default)]
pub struct VerifierSet {
    keys: HashMap<String, VerificationKey>,
}

impl VerifierSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a key, returning the one it replaced under the same `kid`.
    pub fn insert(&mut self, key: VerificationKey) -> Option<VerificationKey> {
        self.keys.insert(key.kid.clone(), key)
    }

    pub fn remove(&mut self, kid: &str) -> Option<VerificationKey> {
        self.keys.remove(kid)
    }

    pub fn get(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.get(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &VerificationKey> {
        self.keys.values()
    }

    /// The usable keys of a published JWKS. Issuers publish encryption keys and key types
    /// Gatehouse does not support next to their signing keys, so such entries are skipped
    /// rather than failing the whole set; so are keys without `kid` (a token could not name
    /// them) and repeated kids (first one wins, so a later entry cannot shadow it).
    pub fn from_jwks(jwks: &Value) -> Result<Self, KeyError> {
        Self::read_jwks(jwks, false)
    }

    /// The keys a client registers for `private_key_jwt`. Unlike a remote issuer's set, a key
    /// without `kid` is kept, named by its RFC 7638 thumbprint: common tools write JWKS
    /// without one, and the client's assertions may leave `kid` out (every key is tried).
    pub fn from_registered_jwks(jwks: &Value) -> Result<Self, KeyError> {
        Self::read_jwks(jwks, true)
    }

    fn read_jwks(jwks: &Value, name_unnamed: bool) -> Result<Self, KeyError> {
        let entries = jwks
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(KeyError::InvalidJwks)?;
        let mut set = Self::new();
        for jwk in entries {
            if !name_unnamed && jwk.get("kid").and_then(Value::as_str).is_none() {
                continue;
            }
            match VerificationKey::from_jwk(jwk) {
                Ok(key) => {
                    if !set.keys.contains_key(&key.kid) {
                        set.insert(key);
                    }
                }
                Err(error) => tracing::debug!(%error, "JWKS entry skipped"),
            }
        }
        Ok(set)
    }

    /// `{"keys": [...]}` for publishing, ordered by `kid` so the document is stable.
    pub fn jwks(&self) -> Value {
        let mut keys: Vec<&VerificationKey> = self.keys.values().collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        json!({ "keys": keys.into_iter().map(VerificationKey::to_jwk).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
pub(crate) mod tests {
    use super::*;
    use std::sync::LazyLock;

    /// RSA generation is slow in debug builds: every test shares one key.
    pub(crate) static RSA_DER: LazyLock<Vec<u8>> = LazyLock::new(|| generate_rsa_pkcs8().unwrap());

    pub(crate) fn key(alg: Algorithm) -> SigningKey {
        match alg {
            Algorithm::EdDSA | Algorithm::ES256 | Algorithm::ES384 => {
                SigningKey::generate(alg).unwrap()
            }
            _ => SigningKey::from_pkcs8_der(alg, None, &RSA_DER).unwrap(),
        }
    }

    const RFC7638_N: &str = concat!(
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc",
        "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQ",
        "R0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bF",
        "TWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
    );

    #[test]
    fn thumbprint_matches_rfc7638_example() {
        let jwk =
            json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"});
        let key = VerificationKey::from_jwk(&jwk).unwrap();
        assert_eq!(
            key.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        assert_eq!(key.kid(), "2011-04-29");
        // Without a kid, the thumbprint is the kid.
        let bare =
            VerificationKey::from_jwk(&json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB"})).unwrap();
        assert_eq!(bare.kid(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
        assert_eq!(bare.alg(), Algorithm::RS256);
    }

    #[test]
    fn generated_keys_round_trip_through_pkcs8_and_jwk() {
        for &alg in Algorithm::ALL {
            let signing = key(alg);
            assert_eq!(signing.kid(), signing.thumbprint());
            let reloaded = SigningKey::from_pkcs8_der(alg, None, signing.to_pkcs8_der()).unwrap();
            assert_eq!(reloaded.kid(), signing.kid());

            let jwk = signing.public_jwk();
            assert_eq!(
                (&jwk["use"], &jwk["alg"]),
                (&json!("sig"), &json!(alg.as_str()))
            );
            assert!(jwk.get("d").is_none());
            let verifier = VerificationKey::from_jwk(&jwk).unwrap();
            assert_eq!(verifier, signing.verification_key());
            assert_eq!(verifier.to_jwk(), jwk);

            let sig = reloaded.sign(b"message").unwrap();
            assert!(verifier.verify(b"message", &sig), "{alg:?}");
            assert!(!verifier.verify(b"messagf", &sig), "{alg:?}");
        }
        let ed = key(Algorithm::EdDSA).public_jwk();
        assert_eq!((&ed["kty"], &ed["crv"]), (&json!("OKP"), &json!("Ed25519")));
        let ec = key(Algorithm::ES256).public_jwk();
        assert_eq!((&ec["kty"], &ec["crv"]), (&json!("EC"), &json!("P-256")));
        assert!(ec["x"].is_string() && ec["y"].is_string());
        let rsa = key(Algorithm::RS256).public_jwk();
        assert_eq!((&rsa["kty"], &rsa["e"]), (&json!("RSA"), &json!("AQAB")));
    }

    #[test]
    fn private_members_are_ignored_and_never_output() {
        let mut jwk = key(Algorithm::EdDSA).public_jwk();
        jwk["d"] = json!("c2VjcmV0");
        let key = VerificationKey::from_jwk(&jwk).unwrap();
        assert!(key.to_jwk().get("d").is_none());
    }

    #[test]
    fn bad_jwks_are_refused() {
        use KeyError::*;
        // A table rustfmt leaves alone: `jwk => expected error;`.
        macro_rules! refused {
            ($($jwk:tt => $expected:expr;)+) => {$(
                let jwk = json!($jwk);
                assert_eq!(VerificationKey::from_jwk(&jwk), Err($expected), "{jwk}");
            )+};
        }
        let small = B64.encode([0xffu8; 128]); // 1024 bits
        let n = RFC7638_N;
        refused! {
            {"kty": "RSA", "n": small, "e": "AQAB"} => RsaKeySize(1024);
            {"kty": "RSA", "n": n, "e": "AQI"} => InvalidJwk("e");
            {"kty": "RSA", "n": n, "e": "AQAB", "alg": "HS256"} => UnsupportedJwk("alg");
            {"kty": "RSA", "n": n, "e": "AQAB", "alg": "ES256"}
                => InvalidJwk("alg does not fit the key type");
            {"kty": "RSA", "n": n, "e": "AQAB", "use": "enc"} => NotSignatureKey;
            {"kty": "RSA", "n": "not base64!", "e": "AQAB"} => InvalidJwk("n");
            {"kty": "oct", "k": "AAAA"} => UnsupportedJwk("kty");
            {"kty": "OKP", "crv": "X25519", "x": "AAAA"} => UnsupportedJwk("OKP curve");
            {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"} => InvalidJwk("x");
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"} => UnsupportedJwk("EC curve");
            {"kty": "EC", "crv": "P-256", "x": "AAAA", "y": "AAAA"} => InvalidJwk("EC coordinates");
            ["not", "an", "object"] => InvalidJwk("not an object");
        }
    }

    #[test]
    fn from_jwks_keeps_only_usable_signature_keys() {
        let ed = key(Algorithm::EdDSA);
        let ec = key(Algorithm::ES256);
        let mut enc = ec.public_jwk();
        enc["use"] = json!("enc");
        enc["kid"] = json!("enc-key");
        let mut no_kid = key(Algorithm::EdDSA).public_jwk();
        no_kid.as_object_mut().unwrap().remove("kid");
        let mut shadow = key(Algorithm::EdDSA).public_jwk();
        shadow["kid"] = json!(ed.kid());
        let jwks = json!({"keys": [
            ed.public_jwk(),
            ec.public_jwk(),
            {"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "kid": "2011-04-29"},
            enc,
            no_kid,
            {"kty": "oct", "k": "AAAA", "kid": "symmetric"},
            shadow,
        ]});
        let set = VerifierSet::from_jwks(&jwks).unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(set.get(ed.kid()), Some(&ed.verification_key()));
        assert_eq!(set.get(ec.kid()).unwrap().alg(), Algorithm::ES256);
        assert_eq!(set.get("2011-04-29").unwrap().alg(), Algorithm::RS256);
        assert!(set.get("enc-key").is_none() && set.get("symmetric").is_none());

        let republished = VerifierSet::from_jwks(&set.jwks()).unwrap();
        assert_eq!(republished.jwks(), set.jwks());
        let not_a_jwks = VerifierSet::from_jwks(&json!([])).unwrap_err();
        assert_eq!(not_a_jwks, KeyError::InvalidJwks);
    }

    #[test]
    fn a_registered_jwks_keeps_keys_without_kid_under_their_thumbprint() {
        // What PyJWT, jose and most key tools write: no kid, key_ops instead of use.
        let unnamed = json!({"kty": "RSA", "n": RFC7638_N, "e": "AQAB", "key_ops": ["verify"]});
        let jwks = json!({"keys": [unnamed]});
        assert!(VerifierSet::from_jwks(&jwks).unwrap().is_empty());
        let registered = VerifierSet::from_registered_jwks(&jwks).unwrap();
        assert_eq!(registered.len(), 1);
        // RFC 7638 §3.1's example key and its thumbprint.
        let key = registered
            .get("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
            .unwrap();
        assert_eq!(key.alg(), Algorithm::RS256);
    }

    #[test]
    fn a_spiffe_bundle_gives_its_jwt_svid_keys_only() {
        let svid = key(Algorithm::ES256);
        let mut jwt_svid = svid.public_jwk();
        jwt_svid["use"] = json!("jwt-svid");
        let mut x509 = key(Algorithm::ES256).public_jwk();
        x509["use"] = json!("x509-svid");
        x509["kid"] = json!("x509");
        let set = VerifierSet::from_jwks(&json!({"keys": [jwt_svid, x509]})).unwrap();
        assert_eq!(set.len(), 1);
        assert!(set.get(svid.kid()).is_some() && set.get("x509").is_none());
    }
}
