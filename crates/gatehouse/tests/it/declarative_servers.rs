//! Every kind of server in a state document: a local program (stdio) with its environment,
//! upstream tokens (client credentials, token exchange with a private key) and the identity
//! header. Exported with references only, reproduced elsewhere, planned field by field, and
//! a program changed only by those allowed to choose what runs.

use std::{collections::BTreeMap, time::Duration};

use crate::helpers::TestApp;
use gatehouse::admin::{
    AdminService, NewServer, NewStdio, Operator,
    declarative::{self, ApplyError, Options, State, SuppliedResolver},
    upstream_auth::NewUpstreamAuth,
};
use gatehouse_model::{
    records::{Sharing, StdioLimits},
    upstream_auth::{UpstreamAuthSpec, UpstreamClientAuth},
};

const API_KEY: &str = "program-api-key-0a1b2c3d";
const CLIENT_SECRET: &str = "token-client-secret-4e5f6a7b";

fn service(app: &TestApp) -> AdminService {
    AdminService::new(
        app.store.clone(),
        app.keyring.clone(),
        app.server.state.audit.clone(),
    )
}

fn ops() -> Operator {
    Operator::cli("ops", None).unwrap()
}

fn private_key_pem() -> String {
    use base64::Engine;
    let key =
        gatehouse::tokens::keys::SigningKey::generate(gatehouse_model::algorithm::Algorithm::ES256)
            .unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(key.to_pkcs8_der());
    format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n")
}

/// One server of each kind; returns the private key the token-exchange server holds.
async fn furnish(app: &TestApp) -> String {
    let admin = service(app);
    let by = ops();
    admin
        .add_server(
            &by,
            NewServer {
                name: "local".into(),
                stdio: Some(NewStdio {
                    command: "npx".into(),
                    args: vec!["-y".into(), "some-mcp-server".into()],
                    env: vec![
                        ("API_KEY".into(), API_KEY.into()),
                        ("REGION".into(), "eu".into()),
                    ],
                    cwd: Some("/srv/mcp".into()),
                    sharing: Some("per_principal".into()),
                    max_children: Some(4),
                    idle_timeout: Some(Duration::from_secs(300)),
                    limits: StdioLimits {
                        memory_bytes: Some(256 << 20),
                        open_files: Some(128),
                        ..StdioLimits::default()
                    },
                    allowed_commands: None,
                }),
                pin_action: Some("warn".into()),
                ..NewServer::default()
            },
        )
        .await
        .unwrap();
    admin
        .add_server(
            &by,
            NewServer {
                name: "saas".into(),
                url: "https://saas.example/mcp".into(),
                upstream_auth: Some(NewUpstreamAuth {
                    spec: UpstreamAuthSpec::ClientCredentials {
                        token_endpoint: "https://saas.example/oauth/token".into(),
                        client_id: "gatehouse".into(),
                        auth_method: UpstreamClientAuth::ClientSecretPost,
                        scope: Some("read write".into()),
                        resource: Some("https://saas.example/mcp".into()),
                    },
                    secret: Some(CLIENT_SECRET.into()),
                }),
                ..NewServer::default()
            },
        )
        .await
        .unwrap();
    let pem = private_key_pem();
    admin
        .add_server(
            &by,
            NewServer {
                name: "tenant".into(),
                url: "https://tenant.example/mcp".into(),
                upstream_auth: Some(NewUpstreamAuth {
                    spec: UpstreamAuthSpec::TokenExchange {
                        token_endpoint: "https://idp.example/token".into(),
                        client_id: "gatehouse-exchange".into(),
                        auth_method: UpstreamClientAuth::PrivateKeyJwt,
                        scope: None,
                        resource: None,
                    },
                    secret: Some(pem.clone()),
                }),
                identity_header: Some("X-Gatehouse-Identity".into()),
                ..NewServer::default()
            },
        )
        .await
        .unwrap();
    admin
        .add_server(
            &by,
            NewServer {
                name: "internal".into(),
                url: "http://127.0.0.1:9/mcp".into(),
                identity_header: Some("X-Caller".into()),
                ..NewServer::default()
            },
        )
        .await
        .unwrap();
    pem
}

async fn export(app: &TestApp) -> State {
    declarative::export(&*app.store, gatehouse::now_ms())
        .await
        .unwrap()
}

fn text(state: &State) -> String {
    declarative::to_yaml(state).unwrap()
}

fn values(pem: &str, api_key: &str) -> SuppliedResolver {
    SuppliedResolver::new(BTreeMap::from([
        (
            "env:GATEHOUSE_SERVER_LOCAL_ENV_API_KEY".to_owned(),
            api_key.to_owned(),
        ),
        (
            "env:GATEHOUSE_SERVER_LOCAL_ENV_REGION".to_owned(),
            "eu".to_owned(),
        ),
        (
            "env:GATEHOUSE_SERVER_SAAS_UPSTREAM_SECRET".to_owned(),
            CLIENT_SECRET.to_owned(),
        ),
        (
            "env:GATEHOUSE_SERVER_TENANT_UPSTREAM_PRIVATE_KEY".to_owned(),
            pem.to_owned(),
        ),
    ]))
}

const LOCAL_OPERATOR: Options = Options {
    dry_run: false,
    prune: false,
    programs: true,
};

async fn apply(
    app: &TestApp,
    state: State,
    resolver: &SuppliedResolver,
    options: Options,
) -> Result<declarative::Outcome, ApplyError> {
    declarative::apply(&service(app), &ops(), &app.config, state, resolver, options).await
}

#[tokio::test]
async fn every_kind_of_server_round_trips_and_the_second_apply_plans_nothing() {
    let a = TestApp::start().await;
    let pem = furnish(&a).await;
    let document = text(&export(&a).await);
    for secret in [API_KEY, CLIENT_SECRET, "PRIVATE KEY"] {
        assert!(!document.contains(secret), "{document}");
    }
    assert!(
        document.contains("API_KEY: env:GATEHOUSE_SERVER_LOCAL_ENV_API_KEY"),
        "{document}"
    );

    let b = TestApp::start().await;
    let outcome = apply(
        &b,
        declarative::parse(&document).unwrap(),
        &values(&pem, API_KEY),
        LOCAL_OPERATOR,
    )
    .await
    .unwrap();
    assert_eq!(outcome.applied, 4, "{}", declarative::render(&outcome.plan));
    assert_eq!(
        text(&export(&b).await),
        document,
        "B exports what A exported"
    );

    let local = b.store.get_server("local").await.unwrap();
    let stdio = local.stdio.unwrap();
    assert_eq!(
        (stdio.sharing, stdio.max_children, stdio.idle_timeout_secs),
        (Sharing::PerPrincipal, Some(4), Some(300))
    );
    let admin = service(&b);
    let env = serde_json::json!({"API_KEY": API_KEY, "REGION": "eu"}).to_string();
    assert!(admin.stdio_env_is("local", &env).await.unwrap());
    assert!(
        admin
            .upstream_secret_is("saas", CLIENT_SECRET)
            .await
            .unwrap()
    );
    assert!(admin.upstream_secret_is("tenant", &pem).await.unwrap());
    assert_eq!(
        b.store
            .get_server("tenant")
            .await
            .unwrap()
            .upstream_auth
            .identity_header
            .as_deref(),
        Some("x-gatehouse-identity")
    );

    let generation = b.store.generation().await.unwrap();
    let again = apply(
        &b,
        declarative::parse(&document).unwrap(),
        &values(&pem, API_KEY),
        Options {
            prune: true,
            ..LOCAL_OPERATOR
        },
    )
    .await
    .unwrap();
    assert!(
        again.plan.is_empty(),
        "{}",
        declarative::render(&again.plan)
    );
    assert_eq!(b.store.generation().await.unwrap(), generation);
}

#[tokio::test]
async fn a_changed_environment_value_is_one_field_and_is_applied() {
    let a = TestApp::start().await;
    let pem = furnish(&a).await;
    let document = export(&a).await;
    let outcome = apply(
        &a,
        document,
        &values(&pem, "a-rotated-program-key"),
        LOCAL_OPERATOR,
    )
    .await
    .unwrap();
    let [change] = outcome.plan.changes.as_slice() else {
        panic!("{}", declarative::render(&outcome.plan));
    };
    assert_eq!(change.name, "local");
    let fields: Vec<&str> = change.fields.iter().map(|f| f.field.as_ref()).collect();
    assert_eq!(fields, ["stdio.env"]);
    let rendered = declarative::render(&outcome.plan);
    assert!(!rendered.contains("a-rotated-program-key"), "{rendered}");
    assert!(!rendered.contains(API_KEY), "{rendered}");
    let env = serde_json::json!({"API_KEY": "a-rotated-program-key", "REGION": "eu"}).to_string();
    assert!(service(&a).stdio_env_is("local", &env).await.unwrap());
    assert_eq!(
        a.store.get_server("local").await.unwrap().url,
        "stdio://local",
        "still a program"
    );
}

#[tokio::test]
async fn a_program_is_created_or_changed_only_when_the_caller_may_choose_programs() {
    let a = TestApp::start().await;
    let pem = furnish(&a).await;
    let document = export(&a).await;
    let b = TestApp::start().await;
    let err = apply(
        &b,
        document.clone(),
        &values(&pem, API_KEY),
        Options::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ApplyError::NeedsAdmin(_)), "{err}");
    assert!(err.to_string().contains("server local"), "{err}");
    assert!(
        b.store.list_servers().await.unwrap().is_empty(),
        "nothing written"
    );

    // Changing the program of an existing one is refused too; other servers are not programs.
    let err = apply(
        &a,
        document,
        &values(&pem, "another-program-key"),
        Options::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ApplyError::NeedsAdmin(_)), "{err}");
    let env = serde_json::json!({"API_KEY": API_KEY, "REGION": "eu"}).to_string();
    assert!(service(&a).stdio_env_is("local", &env).await.unwrap());
}

#[tokio::test]
async fn a_command_outside_the_configured_allow_list_is_refused_before_any_write() {
    let a = TestApp::start().await;
    let pem = furnish(&a).await;
    let document = export(&a).await;
    let b = TestApp::start_with(|c| c.gateway.stdio_commands = Some(vec!["uvx".into()])).await;
    let err = apply(&b, document, &values(&pem, API_KEY), LOCAL_OPERATOR)
        .await
        .unwrap_err();
    assert!(matches!(err, ApplyError::Invalid(_)), "{err}");
    assert!(
        err.to_string()
            .contains("server local, field stdio.command: command \"npx\" is not allowed"),
        "{err}"
    );
    assert!(
        b.store.list_servers().await.unwrap().is_empty(),
        "nothing written"
    );
}

#[tokio::test]
async fn a_wrong_secret_field_for_the_auth_method_is_refused() {
    let a = TestApp::start().await;
    let pem = furnish(&a).await;
    let mut document = export(&a).await;
    let tenant = document
        .servers
        .as_mut()
        .unwrap()
        .get_mut("tenant")
        .unwrap();
    let auth = tenant.upstream_auth.as_mut().unwrap();
    auth.secret = auth.private_key.take();
    let b = TestApp::start().await;
    let err = apply(&b, document, &values(&pem, API_KEY), LOCAL_OPERATOR)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains(
            "server tenant, field upstream_auth: private_key_jwt takes private_key (and no secret)"
        ),
        "{err}"
    );
    assert!(
        b.store.list_servers().await.unwrap().is_empty(),
        "nothing written"
    );
}
