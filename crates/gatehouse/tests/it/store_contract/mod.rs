//! The store contract: what every backend of `gatehouse::store::Store` must do, written against
//! the trait alone so the same tests run unchanged against each backend in [`backends`].
//!
//! A new backend plugs in by adding one entry to [`backends`]; nothing else here changes.
//! Every test gets a fresh, empty (migrated) store per backend.

mod admin_api;
mod audit;
mod catalog;
mod keys;
mod meta;
mod oauth;
mod pins;
mod policy_replace;
mod races;
mod refresh;
mod schema;
mod users;

use gatehouse::store::{DynStore, StoreError};
use gatehouse_model::records::{
    ApiKeyRecord, ClientRecord, ClientSecretRecord, ConnectionRecord, GroupConnectionRecord,
    OAuthClientMetadata, PolicyRecord, ServerRecord, SigningKeyRecord, UserRecord,
};
use std::future::Future;

/// One backend under test: its name (for failure messages) and a fresh empty store.
pub struct Backend {
    pub name: &'static str,
    pub store: DynStore,
    /// Keeps the backend's files alive for the test.
    _dir: Option<tempfile::TempDir>,
}

/// Every backend this build can open. SQLite runs on a file: the store refuses in-memory
/// databases (they would lose the audit trail at exit). PostgreSQL gives each test a fresh
/// database on the test binary's server.
async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("contract.db").display());
    let sqlite = gatehouse::store::open(&url).await.unwrap();
    let postgres = gatehouse::store::open(&crate::helpers::postgres_database())
        .await
        .unwrap();
    vec![
        Backend {
            name: "sqlite (file)",
            store: sqlite,
            _dir: Some(dir),
        },
        Backend {
            name: "postgres",
            store: postgres,
            _dir: None,
        },
    ]
}

/// Runs `test` once per backend, each on a fresh store.
async fn each_backend<F, Fut>(test: F)
where
    F: Fn(DynStore) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends().await {
        // Printed so a failure names the backend it happened on.
        eprintln!("store contract on {}", backend.name);
        test(backend.store.clone()).await;
    }
}

/// Asserts `result` failed as `NotFound` of `kind` naming `name`.
#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, kind: &str, name: &str) {
    match result {
        Err(StoreError::NotFound { kind: k, name: n }) if k == kind && n == name => {}
        other => panic!("expected NotFound {{ {kind}, {name:?} }}, got {other:?}"),
    }
}

/// Asserts `result` failed as `Conflict` of `kind` naming `name`.
#[track_caller]
fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>, kind: &str, name: &str) {
    match result {
        Err(StoreError::Conflict { kind: k, name: n }) if k == kind && n == name => {}
        other => panic!("expected Conflict {{ {kind}, {name:?} }}, got {other:?}"),
    }
}

/// Far enough ahead of the wall clock for anything the store compares with "now".
const FAR_FUTURE: i64 = 4_000_000_000_000;

fn server(name: &str) -> ServerRecord {
    ServerRecord {
        name: name.into(),
        url: format!("http://{name}.internal/mcp"),
        credential_header: Some("authorization".into()),
        credential_sealed: Some(vec![1, 2, 3, 0, 255]),
        upstream_auth: Default::default(),
        allow_anonymous: false,
        allow_unknown_methods: true,
        pin_action: gatehouse_model::pin_action::PinAction::Warn,
        created_at: 1_000,
        stdio: None,
        members: Vec::new(),
    }
}

fn client(name: &str) -> ClientRecord {
    ClientRecord {
        name: name.into(),
        description: format!("the {name} agent"),
        disabled_at: None,
        created_at: 2_000,
        oauth: None,
    }
}

fn oauth_metadata() -> OAuthClientMetadata {
    OAuthClientMetadata {
        token_endpoint_auth_method: "client_secret_basic".into(),
        grant_types: vec!["authorization_code".into(), "refresh_token".into()],
        redirect_uris: vec!["http://127.0.0.1:9/cb".into()],
        application_type: Some("native".into()),
        jwks: None,
        client_name: Some("Agent".into()),
        origin: "cli".into(),
        dpop_bound_access_tokens: false,
    }
}

fn api_key(id: &str, client: &str, created_at: i64) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        client: client.into(),
        label: format!("label {id}"),
        secret_hash: vec![9; 32],
        tools: Some(vec!["read_*".into()]),
        created_at,
        expires_at: None,
        revoked_at: None,
        rotated_from: None,
        last_used_at: None,
    }
}

fn connection(client: &str, server: &str) -> ConnectionRecord {
    ConnectionRecord {
        client: client.into(),
        server: server.into(),
        tools: vec!["*".into()],
        resources: true,
        prompts: false,
        created_at: 3_000,
    }
}

fn policy(id: &str, client: Option<&str>, server: Option<&str>) -> PolicyRecord {
    PolicyRecord {
        id: id.into(),
        kind: "rate_limit".into(),
        client: client.map(Into::into),
        server: server.map(Into::into),
        tools: Some("write_*".into()),
        spec: serde_json::json!({"requests": 10, "per": "1m"}),
        created_at: 4_000,
    }
}

fn client_secret(id: &str, client: &str, created_at: i64) -> ClientSecretRecord {
    ClientSecretRecord {
        id: id.into(),
        client: client.into(),
        secret_hash: vec![7; 32],
        created_at,
        expires_at: None,
        revoked_at: None,
    }
}

fn signing_key(kid: &str, active_at: i64) -> SigningKeyRecord {
    SigningKeyRecord {
        kid: kid.into(),
        alg: "ES256".into(),
        private_sealed: vec![5; 48],
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        created_at: active_at,
        active_at,
        retired_at: None,
    }
}

fn user(id: &str, username: &str) -> UserRecord {
    UserRecord {
        id: id.into(),
        username: username.into(),
        display_name: format!("User {username}"),
        password_hash: Some("$argon2id$v=19$stand-in".into()),
        idp: None,
        idp_subject: None,
        groups: vec!["staff".into()],
        created_at: 5_000,
        disabled_at: None,
        last_login_at: None,
    }
}

fn group_connection(group: &str, server: &str) -> GroupConnectionRecord {
    GroupConnectionRecord {
        group: group.into(),
        server: server.into(),
        tools: vec!["read_*".into()],
        resources: false,
        prompts: true,
        created_at: 6_000,
    }
}
