//! Cost of checking an OAuth access token (a JWT) on the request path.
//!
//! `cargo bench -p gatehouse --bench jwt`
//!
//! - `signature_only`: ring's check of one signature over the token's signing input, nothing
//!   else, for EdDSA (Ed25519), ES256 (P-256) and RS256 (RSA-2048).
//! - `verify_first_sight`: the full `jwt::verify_at` (split, base64url, strict header JSON,
//!   header policy, kid lookup, signature, claims): what a token costs the first time a
//!   process sees it.
//! - `verify_cached`: `TokenCache::verify_at` for a token already among 9 000 cached ones:
//!   SHA-256 of the token, one map lookup under a read lock, and the expectations checked
//!   again on the cached claims (`typ`, `iss`, `aud`, lifetime).
//! - `floor_sha256`: the SHA-256 of the token alone, the part of a cache hit that grows
//!   with the token.
//! - `bearer_hit`: the gateway's steps for a token it has cached (`gateway::bearer`), among
//!   9 000 cached identities, up to the snapshot checks (hash lookups, the same in both):
//!   `peek_first` as of 296e6bb (the unverified `iss` read, a base64 decode and JSON parse,
//!   then the lookup, then the server's scope derived and boxed in a new `Arc`) and
//!   `cache_first` as now (one hash, the lookup, the scope derived once per token).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{Bencher, black_box};
use gatehouse::oauth::{external, tokens::TokenIdentity};
use gatehouse::tokens::{
    jwt::{self, ACCESS_TOKEN_TYP, Expectations},
    keys::{SigningKey, VerificationKey, VerifierSet},
    token_cache::{TokenCache, TokenKey},
};
use gatehouse_model::algorithm::Algorithm;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

fn main() {
    divan::main();
}

const NOW: i64 = 1_750_000_000;
const ISS: &str = "https://gatehouse.example";
const AUD: &str = "https://gatehouse.example/servers/github/mcp";
const ALGS: [&str; 3] = ["EdDSA", "ES256", "RS256"];
const CACHED: usize = 9_000;

fn expect() -> Expectations {
    Expectations::access_token(ISS, AUD)
}

/// A realistic RFC 9068 access token's claims.
fn claims(jti: usize) -> serde_json::Value {
    json!({
        "iss": ISS,
        "sub": "user:3f6c2a9e-8d41-4b7a-9c0e-5a1d2b3c4d5e",
        "aud": AUD,
        "client_id": "mcp-client-7f3a9c",
        "scope": "mcp:tools mcp:resources mcp:prompts",
        "jti": format!("at-{jti:016x}"),
        "iat": NOW - 60,
        "exp": NOW + 3_600,
    })
}

struct Fixture {
    key: VerificationKey,
    set: VerifierSet,
    token: String,
    signing_input: String,
    signature: Vec<u8>,
}

fn build(alg: Algorithm) -> Fixture {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
    let signing = SigningKey::generate(alg).unwrap();
    let mut set = VerifierSet::new();
    set.insert(signing.verification_key());
    let token = jwt::encode(&signing, Some(ACCESS_TOKEN_TYP), &claims(0)).unwrap();
    let (signing_input, signature) = token.rsplit_once('.').unwrap();
    let fixture = Fixture {
        key: signing.verification_key(),
        set,
        signing_input: signing_input.to_owned(),
        signature: B64.decode(signature).unwrap(),
        token,
    };
    assert!(jwt::verify_at(&fixture.token, &fixture.set, &expect(), NOW).is_ok());
    fixture
}

static FIXTURES: LazyLock<Vec<(&'static str, Fixture)>> = LazyLock::new(|| {
    ALGS.iter()
        .map(|name| (*name, build(Algorithm::parse(name).unwrap())))
        .collect()
});

fn fixture(alg: &str) -> &'static Fixture {
    &FIXTURES.iter().find(|(name, _)| *name == alg).unwrap().1
}

#[divan::bench(args = ALGS)]
fn signature_only(bencher: Bencher<'_, '_>, alg: &str) {
    let f = fixture(alg);
    let input = f.signing_input.as_bytes();
    assert!(f.key.verify(input, &f.signature));
    bencher.bench(|| black_box(&f.key).verify(black_box(input), black_box(&f.signature)));
}

#[divan::bench(args = ALGS)]
fn verify_first_sight(bencher: Bencher<'_, '_>, alg: &str) {
    let f = fixture(alg);
    let expect = expect();
    bencher.bench(|| jwt::verify_at(black_box(&f.token), black_box(&f.set), &expect, NOW).is_ok());
}

/// The cache holds `CACHED` tokens (all EdDSA; a hit never touches the signature).
static CACHE: LazyLock<(TokenCache, String)> = LazyLock::new(|| {
    let signing = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let mut set = VerifierSet::new();
    set.insert(signing.verification_key());
    let cache = TokenCache::default();
    let mut probe = String::new();
    for i in 0..CACHED {
        let token = jwt::encode(&signing, Some(ACCESS_TOKEN_TYP), &claims(i)).unwrap();
        cache.verify_at(&token, &set, &expect(), NOW).unwrap();
        if i == CACHED / 2 {
            probe = token;
        }
    }
    assert_eq!(cache.len(), CACHED);
    (cache, probe)
});

#[divan::bench]
fn verify_cached(bencher: Bencher<'_, '_>) {
    let (cache, token) = &*CACHE;
    // An empty key set: only a cache hit can succeed.
    let no_keys = VerifierSet::new();
    let expect = expect();
    assert!(cache.verify_at(token, &no_keys, &expect, NOW).is_ok());
    bencher.bench(|| {
        cache
            .verify_at(black_box(token), black_box(&no_keys), &expect, NOW)
            .is_ok()
    });
}

#[divan::bench]
fn floor_sha256(bencher: Bencher<'_, '_>) {
    let token = &CACHE.1;
    bencher.bench(|| Sha256::digest(black_box(token.as_bytes())));
}

/// `CACHED` identities as the gateway caches them, and one of them to look up.
static IDENTITIES: LazyLock<(TokenCache<TokenIdentity>, String)> = LazyLock::new(|| {
    let signing = SigningKey::generate(Algorithm::EdDSA).unwrap();
    let mut set = VerifierSet::new();
    set.insert(signing.verification_key());
    let cache = TokenCache::default();
    let mut probe = String::new();
    for i in 0..CACHED {
        // Gatehouse's own scope language, which the gateway parses.
        let mut claims = claims(i);
        claims["scope"] = json!("mcp:github mcp:slack:read mcp:jira:tool:create_issue");
        let token = jwt::encode(&signing, Some(ACCESS_TOKEN_TYP), &claims).unwrap();
        let claims = jwt::verify_at(&token, &set, &expect(), NOW).unwrap();
        let identity = TokenIdentity::from_claims(&claims).unwrap();
        cache.insert(&token, std::sync::Arc::new(identity), NOW);
        if i == CACHED / 2 {
            probe = token;
        }
    }
    assert_eq!(cache.len(), CACHED);
    (cache, probe)
});

#[divan::bench(args = ["peek_first", "cache_first"])]
fn bearer_hit(bencher: Bencher<'_, '_>, order: &str) {
    let (cache, token) = &*IDENTITIES;
    let server = "github";
    match order {
        "peek_first" => bencher.bench(|| {
            let token = black_box(token.as_str());
            let own = external::unverified_issuer(token).is_none_or(|iss| iss == ISS);
            let identity = cache.get_at(token, NOW).filter(|_| own).unwrap();
            assert!(identity.exp > NOW);
            std::sync::Arc::new(identity.scope.for_server(black_box(server)))
        }),
        _ => bencher.bench(|| {
            let token = black_box(token.as_str());
            let key = TokenKey::of(token).unwrap();
            let identity = cache.get_keyed_at(&key, NOW).unwrap();
            assert!(identity.exp > NOW);
            identity.scope_for(black_box(server))
        }),
    }
}
