//! Cost of the API-key check on the request path.
//!
//! `cargo bench -p gatehouse --bench api_key`
//!
//! - `check_valid`: a valid key against tables of 10, 10 000 and 1 000 000 keys: the cost
//!   must not grow with the table (one hash-map lookup, one HMAC, one constant-time compare).
//! - `check_valid_rotating`: the same, cycling over 1 024 different valid keys scattered in
//!   the table, so the lookup is not always served from a hot cache line.
//! - `check_unknown_id`: a well-formed key whose id is not in the table. It must cost the
//!   same as a valid key (the HMAC is computed and compared against a decoy), so timing does
//!   not reveal which ids exist.
//! - `check_wrong_secret`: a known id with a wrong secret (and a valid checksum).
//! - `check_malformed_*`: a key with one character changed (rejected by the checksum, costs
//!   one SHA-256) and a string of the wrong length (rejected before any hashing).
//! - `floor_*`: the primitives alone: HMAC-SHA-256 of `id:secret` under the pepper
//!   (`Keyring::hash_secret`) and the checksum parse.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use divan::{Bencher, black_box};
use gatehouse::{
    identity::api_keys::{self, KeyEntry, KeyTable, MintedKey},
    secrets::Keyring,
    tokens::api_key,
};
use std::sync::{Arc, LazyLock, Mutex, atomic::AtomicI64};

fn main() {
    divan::main();
}

const SIZES: [usize; 3] = [10, 10_000, 1_000_000];
/// Valid keys minted into every table (and cycled over by `check_valid_rotating`).
const MINTED: usize = 1_024;
const NOW_MS: i64 = 1_750_000_000_000;

static RING: LazyLock<Keyring> = LazyLock::new(|| Keyring::from_master(&[0x42; 32]));

struct Fixture {
    table: KeyTable,
    /// Tokens of keys present in the table.
    valid: Vec<String>,
}

/// Tables are built once per size and kept for the whole run (the 1M table is ~250 MB).
static FIXTURES: LazyLock<Mutex<Vec<(usize, &'static Fixture)>>> =
    LazyLock::new(|| Mutex::new(Vec::new()));

fn fixture(size: usize) -> &'static Fixture {
    let mut cache = FIXTURES.lock().unwrap();
    if let Some((_, f)) = cache.iter().find(|(n, _)| *n == size) {
        return f;
    }
    let f: &'static Fixture = Box::leak(Box::new(build(size)));
    cache.push((size, f));
    f
}

fn entry(client: &Arc<str>, secret_hash: [u8; 32]) -> Arc<KeyEntry> {
    Arc::new(KeyEntry {
        client: Arc::clone(client),
        secret_hash,
        expires_at: Some(NOW_MS + 86_400_000),
        narrowing: None,
        last_used: Arc::new(AtomicI64::new(0)),
    })
}

/// A distinct, well-formed 12-character base32 id for filler entry `i` (60 bits). Minted
/// ids are random, so a collision with one of them is vanishingly unlikely (and harmless:
/// the minted key is inserted last and wins).
fn filler_id(i: usize) -> String {
    const BASE32_LOWER: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut v = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 4;
    (0..api_key::ID_LEN)
        .map(|_| {
            let c = BASE32_LOWER[(v & 31) as usize] as char;
            v >>= 5;
            c
        })
        .collect()
}

fn build(size: usize) -> Fixture {
    let ring = &*RING;
    let minted_n = MINTED.min(size);
    let client: Arc<str> = Arc::from("bench-client");
    let mut table = KeyTable::default();
    for i in 0..size - minted_n {
        let mut hash = [0u8; 32];
        hash[..8].copy_from_slice(&(i as u64).to_le_bytes());
        table.insert(Arc::from(filler_id(i)), entry(&client, hash));
    }
    let mut valid = Vec::with_capacity(minted_n);
    for _ in 0..minted_n {
        let MintedKey {
            id,
            token,
            secret_hash,
        } = api_keys::mint(ring).unwrap();
        table.insert(Arc::from(id), entry(&client, secret_hash));
        valid.push(token);
    }
    assert_eq!(table.len(), size, "id collision while building the table");
    for token in &valid {
        assert!(table.check(ring, token, NOW_MS).is_ok());
    }
    Fixture { table, valid }
}

/// A well-formed key (valid checksum) that is in no table.
static UNKNOWN: LazyLock<String> = LazyLock::new(|| api_keys::mint(&RING).unwrap().token);

fn with_valid_checksum(id: &str, secret: &str) -> String {
    let body = format!("{}{id}_{secret}", api_key::PREFIX);
    let sum = api_key::checksum(&body);
    format!("{body}{sum}")
}

#[divan::bench(args = SIZES)]
fn check_valid(bencher: Bencher<'_, '_>, size: usize) {
    let f = fixture(size);
    let token = f.valid[0].as_str();
    bencher.bench(|| {
        f.table
            .check(black_box(&*RING), black_box(token), black_box(NOW_MS))
            .is_ok()
    });
}

#[divan::bench(args = SIZES)]
fn check_valid_rotating(bencher: Bencher<'_, '_>, size: usize) {
    let f = fixture(size);
    let mut i = 0usize;
    bencher.bench_local(|| {
        i = (i + 1) % f.valid.len();
        f.table
            .check(black_box(&*RING), black_box(f.valid[i].as_str()), NOW_MS)
            .is_ok()
    });
}

#[divan::bench(args = SIZES)]
fn check_unknown_id(bencher: Bencher<'_, '_>, size: usize) {
    let f = fixture(size);
    let token = UNKNOWN.as_str();
    assert_eq!(
        f.table.check(&RING, token, NOW_MS).unwrap_err(),
        api_keys::KeyRejection::NotRecognised
    );
    bencher.bench(|| {
        f.table
            .check(black_box(&*RING), black_box(token), black_box(NOW_MS))
            .is_ok()
    });
}

#[divan::bench]
fn check_wrong_secret(bencher: Bencher<'_, '_>) {
    let f = fixture(10_000);
    let (id, _) = api_key::parse(&f.valid[0]).unwrap();
    let token = with_valid_checksum(id, &"A".repeat(api_key::SECRET_LEN));
    assert_eq!(
        f.table.check(&RING, &token, NOW_MS).unwrap_err(),
        api_keys::KeyRejection::NotRecognised
    );
    bencher.bench(|| {
        f.table
            .check(black_box(&*RING), black_box(token.as_str()), NOW_MS)
            .is_ok()
    });
}

/// Right shape, one character changed: rejected by the checksum (one SHA-256, no HMAC).
#[divan::bench]
fn check_malformed_typo(bencher: Bencher<'_, '_>) {
    let f = fixture(10_000);
    let mut bytes = f.valid[0].clone().into_bytes();
    bytes[20] = if bytes[20] == b'a' { b'b' } else { b'a' };
    let token = String::from_utf8(bytes).unwrap();
    assert_eq!(
        f.table.check(&RING, &token, NOW_MS).unwrap_err(),
        api_keys::KeyRejection::Malformed
    );
    bencher.bench(|| {
        f.table
            .check(black_box(&*RING), black_box(token.as_str()), NOW_MS)
            .is_ok()
    });
}

/// Wrong length: rejected before any hashing.
#[divan::bench]
fn check_malformed_garbage(bencher: Bencher<'_, '_>) {
    let f = fixture(10_000);
    let token = "Bearer not-a-gatehouse-key";
    assert_eq!(
        f.table.check(&RING, token, NOW_MS).unwrap_err(),
        api_keys::KeyRejection::Malformed
    );
    bencher.bench(|| {
        f.table
            .check(black_box(&*RING), black_box(token), NOW_MS)
            .is_ok()
    });
}

/// The floor: HMAC-SHA-256 of `id:secret` (56 bytes) under the pepper, nothing else.
#[divan::bench]
fn floor_hmac(bencher: Bencher<'_, '_>) {
    let token = UNKNOWN.as_str();
    let (id, secret) = api_key::parse(token).unwrap();
    let material = format!("{id}:{secret}");
    bencher.bench(|| black_box(&*RING).hash_secret(black_box(material.as_bytes())));
}

/// Shape and checksum only (one SHA-256 over the body).
#[divan::bench]
fn floor_parse(bencher: Bencher<'_, '_>) {
    let token = UNKNOWN.as_str();
    bencher.bench(|| api_key::parse(black_box(token)).is_some());
}
