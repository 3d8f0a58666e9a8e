//! Cost of checking a DPoP proof (RFC 9449), the work a DPoP-bound token adds to each request
//! on top of the cached-token path a bearer token takes.
//!
//! `cargo bench -p gatehouse --bench dpop`
//!
//! - `verify_proof`: `tokens::dpop::verify` for a proof by an ES256 (P-256) or EdDSA
//!   (Ed25519) key: split, base64url, strict header and claims JSON, the `jwk` read into a key
//!   pinned to the header's `alg`, the signature, `htm`, `htu` (both normalised), the `iat`
//!   window, `ath` (SHA-256 of the access token), and the key's RFC 7638 thumbprint. The
//!   replay check (one insert into the replay seam) is not included.
//! - `token_hash`: the `ath` alone, SHA-256 of a typical access token.
//! - `thumbprint`: the key's RFC 7638 thumbprint alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use divan::{Bencher, black_box};
use gatehouse::tokens::{
    dpop::{self, ProofExpectations},
    keys::SigningKey,
};
use gatehouse_model::algorithm::Algorithm;
use serde_json::json;

fn main() {
    divan::main();
}

const NOW: i64 = 1_750_000_000;
const URL: &str = "https://gatehouse.example/github/mcp";
/// About the size of an EdDSA-signed access token Gatehouse issues.
const TOKEN: &str = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0.eyJpc3MiOiJodHRwczovL2dhdGVob3VzZS5leGFtcGxlIiwic3ViIjoic3ZjIiwiYXVkIjoiaHR0cHM6Ly9nYXRlaG91c2UuZXhhbXBsZS9naXRodWIvbWNwIiwiY2xpZW50X2lkIjoic3ZjIiwic2NvcGUiOiJtY3A6Z2l0aHViIiwiaWF0IjoxNzUwMDAwMDAwLCJuYmYiOjE3NTAwMDAwMDAsImV4cCI6MTc1MDAwMDYwMCwianRpIjoiYXQtMSIsImNuZiI6eyJqa3QiOiJhYmMifX0.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl";

fn alg(name: &str) -> Algorithm {
    Algorithm::parse(name).unwrap()
}

fn proof(key: &SigningKey) -> String {
    let mut jwk = key.public_jwk();
    jwk.as_object_mut().unwrap().remove("kid");
    let header = json!({ "typ": "dpop+jwt", "alg": key.alg().as_str(), "jwk": jwk });
    let claims = json!({
        "jti": "e1j3V_bKic8-LAEB", "htm": "POST", "htu": URL, "iat": NOW,
        "ath": dpop::token_hash(TOKEN),
    });
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let signature = key.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", B64.encode(signature))
}

#[divan::bench(args = ["ES256", "EdDSA"])]
fn verify_proof(bencher: Bencher<'_, '_>, name: &str) {
    let key = SigningKey::generate(alg(name)).unwrap();
    let proof = proof(&key);
    let expect = ProofExpectations {
        method: "POST",
        url: URL,
        access_token: Some(TOKEN),
        now: NOW,
        max_age_secs: 300,
        leeway_secs: 60,
    };
    assert_eq!(dpop::verify(&proof, &expect).unwrap().jkt, key.thumbprint());
    bencher.bench_local(|| dpop::verify(black_box(&proof), black_box(&expect)));
}

#[divan::bench]
fn token_hash(bencher: Bencher<'_, '_>) {
    bencher.bench_local(|| dpop::token_hash(black_box(TOKEN)));
}

#[divan::bench(args = ["ES256", "EdDSA"])]
fn thumbprint(bencher: Bencher<'_, '_>, name: &str) {
    let key = SigningKey::generate(alg(name)).unwrap().verification_key();
    bencher.bench_local(|| black_box(&key).thumbprint());
}
