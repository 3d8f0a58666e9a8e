//! A per-user upstream whose authorization server Gatehouse finds and registers at itself
//! (ADR 0006 §5, "As built"): RFC 9728 resource metadata to the issuer, RFC 8414 metadata with
//! its issuer and PKCE S256 checked, then Gatehouse's client metadata document or RFC 7591
//! registration, each proven against a stand-in authorization server whose abilities are
//! switched per test; and the operator's errors when it cannot be used.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use axum::{
    Router,
    extract::{Query, State},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use gatehouse::admin;
use gatehouse_model::records::AdminRole;
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    admin_api::{AdminApi, answer},
    helpers::{TestApp, call, rpc_message},
    scripted_upstream::Upstream,
    upstream_per_user::{
        SaasAuthServer, authorizations, connect, elicitation_url, person_token, session_cookie,
    },
};

/// What the stand-in authorization server offers, switched per test.
#[derive(Clone)]
struct Abilities {
    metadata_document: bool,
    registration: bool,
    s256: bool,
    /// The issuer its metadata names; `None`: its own.
    claimed_issuer: Option<String>,
    /// The registration endpoint refuses (until switched off).
    refuse_registration: bool,
    /// Token endpoint methods listed; `none` absent makes Gatehouse ask for a secret.
    auth_methods: Vec<&'static str>,
}

impl Default for Abilities {
    fn default() -> Self {
        Abilities {
            metadata_document: false,
            registration: false,
            s256: true,
            claimed_issuer: None,
            refuse_registration: false,
            auth_methods: vec!["none", "client_secret_post"],
        }
    }
}

#[derive(Clone)]
struct StandIn {
    base: String,
    abilities: Arc<Mutex<Abilities>>,
    saas: SaasAuthServer,
    metadata_fetches: Arc<AtomicUsize>,
    resource_fetches: Arc<AtomicUsize>,
    /// Registration requests, in order.
    registrations: Arc<Mutex<Vec<Value>>>,
    /// Registered clients: id → redirect URIs.
    clients: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// Metadata documents fetched at authorization, by URL.
    documents_fetched: Arc<Mutex<Vec<String>>>,
}

async fn metadata(State(s): State<StandIn>) -> Response {
    s.metadata_fetches.fetch_add(1, Ordering::SeqCst);
    let a = s.abilities.lock().unwrap().clone();
    let mut body = json!({
        "issuer": a.claimed_issuer.clone().unwrap_or_else(|| s.base.clone()),
        "authorization_endpoint": format!("{}/authorize", s.base),
        "token_endpoint": format!("{}/token", s.base),
        "revocation_endpoint": format!("{}/revoke", s.base),
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": if a.s256 { json!(["S256"]) } else { json!(["plain"]) },
        "token_endpoint_auth_methods_supported": a.auth_methods,
    });
    if a.metadata_document {
        body["client_id_metadata_document_supported"] = json!(true);
    }
    if a.registration {
        body["registration_endpoint"] = json!(format!("{}/register", s.base));
    }
    axum::Json(body).into_response()
}

async fn resource_metadata(State(s): State<StandIn>) -> Response {
    s.resource_fetches.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({
        "resource": format!("{}/mcp", s.base),
        "authorization_servers": [s.base],
    }))
    .into_response()
}

/// An MCP server whose resource metadata is not at a well-known URL: its 401 names it.
async fn challenge(State(s): State<StandIn>) -> Response {
    let value = format!(
        r#"Bearer error="invalid_token", resource_metadata="{}/meta/hidden""#,
        s.base
    );
    (
        http::StatusCode::UNAUTHORIZED,
        [(http::header::WWW_AUTHENTICATE, value)],
    )
        .into_response()
}

async fn hidden_resource_metadata(State(s): State<StandIn>) -> Response {
    s.resource_fetches.fetch_add(1, Ordering::SeqCst);
    axum::Json(json!({
        "resource": format!("{}/hidden/mcp", s.base),
        "authorization_servers": [s.base],
    }))
    .into_response()
}

async fn register(State(s): State<StandIn>, axum::Json(request): axum::Json<Value>) -> Response {
    s.registrations.lock().unwrap().push(request.clone());
    if s.abilities.lock().unwrap().refuse_registration {
        return (
            http::StatusCode::BAD_REQUEST,
            axum::Json(json!({
                "error": "invalid_client_metadata",
                "error_description": "registration is closed today"
            })),
        )
            .into_response();
    }
    let id = format!("dyn-{}", s.registrations.lock().unwrap().len());
    let redirect_uris: Vec<String> = request["redirect_uris"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    s.clients.lock().unwrap().insert(id.clone(), redirect_uris);
    let method = request["token_endpoint_auth_method"].as_str().unwrap();
    let mut answer = json!({ "client_id": id, "token_endpoint_auth_method": method });
    if method != "none" {
        answer["client_secret"] = json!(format!("{id}-secret"));
    }
    (http::StatusCode::CREATED, axum::Json(answer)).into_response()
}

/// The authorization endpoint: a client id that is a URL is fetched as a client metadata
/// document, which must name itself and the redirect URI; a registered one must have
/// registered the redirect URI. Then the person signs in as in the pre-registered case.
async fn authorize(
    State(s): State<StandIn>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let client_id = &query["client_id"];
    let redirect_uri = &query["redirect_uri"];
    let allowed = if client_id.starts_with("http") {
        s.documents_fetched.lock().unwrap().push(client_id.clone());
        let document: Value = reqwest::get(client_id).await.unwrap().json().await.unwrap();
        document["client_id"] == json!(client_id)
            && document["redirect_uris"]
                .as_array()
                .unwrap()
                .contains(&json!(redirect_uri))
    } else {
        s.clients
            .lock()
            .unwrap()
            .get(client_id)
            .is_some_and(|uris| uris.contains(redirect_uri))
    };
    if !allowed {
        return (
            http::StatusCode::BAD_REQUEST,
            "unknown client or redirect_uri",
        )
            .into_response();
    }
    crate::upstream_per_user::authorize(State(s.saas.clone()), Query(query))
        .await
        .into_response()
}

async fn token(State(s): State<StandIn>, body: String) -> Response {
    crate::upstream_per_user::token(State(s.saas.clone()), body).await
}

async fn stand_in(abilities: Abilities) -> StandIn {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let saas = SaasAuthServer::default();
    *saas.expires_in.lock().unwrap() = 3600;
    let s = StandIn {
        base,
        abilities: Arc::new(Mutex::new(abilities)),
        saas,
        metadata_fetches: Arc::default(),
        resource_fetches: Arc::default(),
        registrations: Arc::default(),
        clients: Arc::default(),
        documents_fetched: Arc::default(),
    };
    let routes = Router::new()
        .route("/.well-known/oauth-authorization-server", get(metadata))
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(resource_metadata),
        )
        .route("/register", post(register))
        .route("/hidden/mcp", post(challenge))
        .route("/meta/hidden", get(hidden_resource_metadata))
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .with_state(s.clone());
    tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
    s
}

struct Setup {
    api: AdminApi,
    operator: String,
    upstream: Upstream,
    ann: String,
}

/// Gatehouse with its admin API, an upstream, and Ann (staff, granted `echo` on `files`).
async fn gatehouse() -> Setup {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let upstream = Upstream::start().await;
    Setup {
        api,
        operator,
        upstream,
        ann: String::new(),
    }
}

impl Setup {
    async fn add(&self, name: &str, url: &str, upstream_auth: Value) -> (u16, Value) {
        answer(self.api.post(
            "/admin/api/v1/servers",
            &self.operator,
            &json!({ "name": name, "url": url, "upstream_auth": upstream_auth }),
        ))
        .await
    }

    /// Ann, granted `echo` on `files`.
    async fn with_ann(mut self) -> Self {
        // The agent Ann delegates to.
        self.api.app.client_with_key("agent", "files", "echo").await;
        let store = &self.api.app.store;
        admin::users::grant_group(store, "staff", "files", "echo", false, false)
            .await
            .unwrap();
        let (user, _) = admin::users::create_user(store, "ann", "", None, vec!["staff".into()])
            .await
            .unwrap();
        self.ann = user.id;
        self.api.app.reload().await;
        self
    }
}

/// Ann calls, is asked to connect, connects as `ann` at the upstream, calls again.
async fn ann_connects_and_calls(app: &TestApp, ann: &str) -> Value {
    let token = person_token(app, ann);
    let ask = || async {
        rpc_message(
            app.post("files", Some(&token), &call("echo"))
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let (status, _, body) = ask().await;
    assert_eq!(status, 200, "{body}");
    let link = elicitation_url(&body);
    let page = connect(&link, &session_cookie(app, ann), "ann").await;
    assert_eq!(page.status(), 200, "{}", page.text().await.unwrap());
    let (status, _, body) = ask().await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_client_metadata_document_names_gatehouse_and_its_callback() {
    let app = TestApp::start().await;
    let document: Value = app
        .http
        .get(app.url("/oauth/upstream/client-metadata.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        document["client_id"],
        app.url("/oauth/upstream/client-metadata.json")
    );
    assert_eq!(
        document["redirect_uris"],
        json!([app.url("/oauth/upstream/callback")])
    );
    assert_eq!(document["token_endpoint_auth_method"], "none");
    assert_eq!(
        document["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
}

#[tokio::test]
async fn an_issuer_that_takes_metadata_documents_gets_gatehouses_url_as_client_id() {
    let saas = stand_in(Abilities {
        metadata_document: true,
        registration: true,
        ..Abilities::default()
    })
    .await;
    let setup = gatehouse().await;
    let url = setup.upstream.url();
    let (status, server) = setup
        .add(
            "files",
            &url,
            json!({ "kind": "per_user", "issuer": saas.base, "scope": "files" }),
        )
        .await;
    assert_eq!(status, 201, "{server}");
    let app = &setup.api.app;
    let document_url = app.url("/oauth/upstream/client-metadata.json");
    let auth = &server["upstream_auth"];
    assert_eq!(auth["registration"], "metadata_document");
    assert_eq!(auth["client_id"], json!(document_url));
    assert_eq!(auth["auth_method"], "none");
    assert_eq!(auth["issuer"], json!(saas.base));
    assert_eq!(
        auth["authorization_endpoint"],
        json!(format!("{}/authorize", saas.base))
    );
    assert_eq!(
        auth["token_endpoint"],
        json!(format!("{}/token", saas.base))
    );
    assert!(
        saas.registrations.lock().unwrap().is_empty(),
        "a metadata document is preferred to registration"
    );
    let setup = setup.with_ann().await;
    let app = &setup.api.app;
    let body = ann_connects_and_calls(app, &setup.ann).await;
    assert!(body.get("result").is_some(), "{body}");
    assert_eq!(
        *saas.documents_fetched.lock().unwrap(),
        std::slice::from_ref(&document_url),
        "the authorization server read Gatehouse's document"
    );
    let forms = saas.saas.token_forms.lock().unwrap().clone();
    assert_eq!(forms[0]["client_id"], document_url);
    assert!(!forms[0].contains_key("client_secret"), "a public client");
    assert_eq!(authorizations(&setup.upstream), ["Bearer at-ann-1"]);
}

#[tokio::test]
async fn a_resource_names_its_authorization_server_and_metadata_is_fetched_once_per_issuer() {
    let saas = stand_in(Abilities {
        metadata_document: true,
        ..Abilities::default()
    })
    .await;
    let setup = gatehouse().await;
    // Nothing named: the server's own URL's protected-resource metadata.
    let (status, first) = setup
        .add(
            "files",
            &format!("{}/mcp", saas.base),
            json!({ "kind": "per_user" }),
        )
        .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["upstream_auth"]["issuer"], json!(saas.base));
    assert_eq!(
        first["upstream_auth"]["resource"],
        json!(format!("{}/mcp", saas.base)),
        "the resource the metadata states is the one asked for"
    );
    // The MCP resource named, the server elsewhere.
    let (status, second) = setup
        .add(
            "docs",
            &setup.upstream.url(),
            json!({ "kind": "per_user", "resource": format!("{}/mcp", saas.base) }),
        )
        .await;
    assert_eq!(status, 201, "{second}");
    assert_eq!(second["upstream_auth"]["issuer"], json!(saas.base));
    // Metadata not at a well-known URL: the 401 to an unauthenticated initialize names it.
    let (status, third) = setup
        .add(
            "hidden",
            &format!("{}/hidden/mcp", saas.base),
            json!({ "kind": "per_user" }),
        )
        .await;
    assert_eq!(status, 201, "{third}");
    assert_eq!(third["upstream_auth"]["issuer"], json!(saas.base));
    assert_eq!(
        third["upstream_auth"]["resource"],
        json!(format!("{}/hidden/mcp", saas.base))
    );
    assert_eq!(saas.resource_fetches.load(Ordering::SeqCst), 3);
    assert_eq!(
        saas.metadata_fetches.load(Ordering::SeqCst),
        1,
        "the issuer's metadata is kept between servers"
    );
}

#[tokio::test]
async fn dynamic_registration_is_sent_once_kept_sealed_and_reused_after_an_update_and_a_restart() {
    let saas = stand_in(Abilities {
        registration: true,
        // No `none`: Gatehouse asks for a secret sent in the form.
        auth_methods: vec!["client_secret_post"],
        ..Abilities::default()
    })
    .await;
    let setup = gatehouse().await;
    let url = setup.upstream.url();
    let (status, server) = setup
        .add(
            "files",
            &url,
            json!({ "kind": "per_user", "issuer": saas.base }),
        )
        .await;
    assert_eq!(status, 201, "{server}");
    let auth = &server["upstream_auth"];
    assert_eq!(auth["registration"], "dynamic");
    assert_eq!(auth["client_id"], "dyn-1");
    assert_eq!(auth["auth_method"], "client_secret_post");
    assert!(!server.to_string().contains("dyn-1-secret"));
    let sent = saas.registrations.lock().unwrap()[0].clone();
    assert_eq!(sent["token_endpoint_auth_method"], "client_secret_post");
    assert_eq!(
        sent["redirect_uris"],
        json!([setup.api.app.url("/oauth/upstream/callback")])
    );
    let stored = setup.api.app.store.get_server("files").await.unwrap();
    let sealed = stored
        .upstream_auth
        .secret_sealed
        .expect("the secret, sealed");
    assert!(!sealed.windows(6).any(|w| w == b"secret"));

    // Discovery again (a scope added): the registration is the same client.
    let (status, updated) = answer(
        setup
            .api
            .request(
                Method::PATCH,
                "/admin/api/v1/servers/files",
                Some(&setup.operator),
            )
            .json(&json!({ "upstream_auth": { "kind": "per_user", "issuer": saas.base, "scope": "files" } })),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["upstream_auth"]["client_id"], "dyn-1");
    assert_eq!(updated["upstream_auth"]["scope"], "files");

    let setup = setup.with_ann().await;
    let Setup {
        api, upstream, ann, ..
    } = setup;
    let app = api.app.restart_at_same_address().await;
    let body = ann_connects_and_calls(&app, &ann).await;
    assert!(body.get("result").is_some(), "{body}");
    assert_eq!(
        saas.registrations.lock().unwrap().len(),
        1,
        "registered once, reused after the update and the restart"
    );
    let forms = saas.saas.token_forms.lock().unwrap().clone();
    assert_eq!(forms[0]["client_id"], "dyn-1");
    assert_eq!(forms[0]["client_secret"], "dyn-1-secret");
    assert_eq!(authorizations(&upstream), ["Bearer at-ann-1"]);

    // Another public_url: the registration no longer fits; the person is told, not sent.
    let moved = app.restart().await;
    let token = person_token(&moved, &ann);
    moved
        .store
        .delete_upstream_grant(&ann, "files")
        .await
        .unwrap();
    let (_, _, body) = rpc_message(
        moved
            .post("files", Some(&token), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let link = elicitation_url(&body);
    let page = crate::upstream_per_user::browser()
        .get(&link)
        .header("cookie", session_cookie(&moved, &ann))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 503);
    assert!(page.text().await.unwrap().contains("register it again"));
}

#[tokio::test]
async fn a_registration_refused_is_the_operators_error_and_nothing_is_kept_until_a_retry_works() {
    let saas = stand_in(Abilities {
        registration: true,
        refuse_registration: true,
        ..Abilities::default()
    })
    .await;
    let setup = gatehouse().await;
    let url = setup.upstream.url();
    let (status, problem) = setup
        .add(
            "files",
            &url,
            json!({ "kind": "per_user", "issuer": saas.base }),
        )
        .await;
    assert_eq!(status, 502, "{problem}");
    assert_eq!(problem["code"], "upstream_authorization_server");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("registering at"), "{detail}");
    assert!(detail.contains("registration is closed today"), "{detail}");
    assert!(
        setup.api.app.store.get_server("files").await.is_err(),
        "nothing stored"
    );

    saas.abilities.lock().unwrap().refuse_registration = false;
    let (status, server) = setup
        .add(
            "files",
            &url,
            json!({ "kind": "per_user", "issuer": saas.base }),
        )
        .await;
    assert_eq!(status, 201, "{server}");
    assert_eq!(server["upstream_auth"]["registration"], "dynamic");
    assert_eq!(
        server["upstream_auth"]["auth_method"], "none",
        "a public client"
    );
}

#[tokio::test]
async fn an_unusable_authorization_server_is_refused_with_what_it_lacks() {
    let setup = gatehouse().await;
    let url = setup.upstream.url();
    let cases = [
        (
            Abilities {
                metadata_document: true,
                claimed_issuer: Some("https://impostor.example".into()),
                ..Abilities::default()
            },
            "names issuer",
        ),
        (
            Abilities {
                metadata_document: true,
                s256: false,
                ..Abilities::default()
            },
            "S256",
        ),
        (
            Abilities::default(),
            "supports neither client ID metadata documents nor dynamic client registration",
        ),
    ];
    let mut last = None;
    for (abilities, expected) in cases {
        let saas = stand_in(abilities).await;
        let (status, problem) = setup
            .add(
                "files",
                &url,
                json!({ "kind": "per_user", "issuer": saas.base }),
            )
            .await;
        assert_eq!(status, 502, "{problem}");
        assert_eq!(problem["code"], "upstream_authorization_server");
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{expected}: {detail}");
        last = Some(saas);
    }
    let last = last.unwrap();
    // An issuer with no metadata at all, and a pre-registered client there: still refused.
    let (status, problem) = setup
        .add(
            "files",
            &url,
            json!({ "kind": "per_user", "issuer": format!("{}/tenant", last.base), "client_id": "pre" }),
        )
        .await;
    assert_eq!(status, 502, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no authorization server metadata"),
        "{problem}"
    );
    assert!(setup.api.app.store.list_servers().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_pre_registered_client_id_comes_before_what_the_server_offers() {
    let saas = stand_in(Abilities {
        metadata_document: true,
        registration: true,
        ..Abilities::default()
    })
    .await;
    let setup = gatehouse().await;
    let (status, server) = setup
        .add(
            "files",
            &setup.upstream.url(),
            json!({
                "kind": "per_user", "issuer": saas.base, "client_id": "gatehouse",
                "auth_method": "client_secret_post", "client_secret": "pre-s3cret"
            }),
        )
        .await;
    assert_eq!(status, 201, "{server}");
    assert_eq!(server["upstream_auth"]["registration"], "pre_registered");
    assert_eq!(server["upstream_auth"]["client_id"], "gatehouse");
    assert!(saas.registrations.lock().unwrap().is_empty());
}

#[tokio::test]
async fn servers_found_by_discovery_round_trip_through_the_state_document_without_registering_again()
 {
    use gatehouse::admin::{
        AdminService, Operator,
        declarative::{self, Options, SuppliedResolver},
    };
    let dynamic = stand_in(Abilities {
        registration: true,
        auth_methods: vec!["client_secret_post"],
        ..Abilities::default()
    })
    .await;
    let document_taker = stand_in(Abilities {
        metadata_document: true,
        ..Abilities::default()
    })
    .await;
    let a = gatehouse().await;
    let url = a.upstream.url();
    for (name, saas) in [("files", &dynamic), ("docs", &document_taker)] {
        let (status, server) = a
            .add(
                name,
                &url,
                json!({ "kind": "per_user", "issuer": saas.base }),
            )
            .await;
        assert_eq!(status, 201, "{server}");
    }
    let export = |app: &TestApp| {
        let store = app.store.clone();
        async move {
            declarative::to_yaml(
                &declarative::export(&*store, gatehouse::now_ms())
                    .await
                    .unwrap(),
            )
            .unwrap()
        }
    };
    let document = export(&a.api.app).await;
    assert!(document.contains("registration: dynamic"), "{document}");
    assert!(
        document.contains("registration: metadata_document"),
        "{document}"
    );
    assert!(
        document.contains("secret: env:GATEHOUSE_SERVER_FILES_UPSTREAM_SECRET"),
        "{document}"
    );
    assert!(
        !document.contains("GATEHOUSE_SERVER_DOCS_UPSTREAM_SECRET"),
        "a public client names no secret: {document}"
    );
    assert!(!document.contains("dyn-1-secret"));

    let b = TestApp::start().await;
    let service = AdminService::new(
        b.store.clone(),
        b.keyring.clone(),
        b.server.state.audit.clone(),
    );
    let by = Operator::cli("gitops", None).unwrap();
    let resolver = SuppliedResolver::new(std::collections::BTreeMap::from([(
        "env:GATEHOUSE_SERVER_FILES_UPSTREAM_SECRET".to_owned(),
        "dyn-1-secret".to_owned(),
    )]));
    let options = Options {
        dry_run: false,
        prune: false,
        programs: false,
    };
    let outcome = declarative::apply(
        &service,
        &by,
        &b.config,
        declarative::parse(&document).unwrap(),
        &resolver,
        options,
    )
    .await
    .unwrap();
    assert_eq!(outcome.applied, 2, "{}", declarative::render(&outcome.plan));
    // A's admin token aside (made for its API), B holds what A held.
    let servers = |text: &str| text.split("\nclients:").next().unwrap().to_owned();
    assert_eq!(
        servers(&export(&b).await),
        servers(&document),
        "B exports the servers A exported"
    );
    assert!(
        service
            .upstream_secret_is("files", "dyn-1-secret")
            .await
            .unwrap()
    );
    let again = declarative::apply(
        &service,
        &by,
        &b.config,
        declarative::parse(&document).unwrap(),
        &resolver,
        options,
    )
    .await
    .unwrap();
    assert!(
        again.plan.is_empty(),
        "{}",
        declarative::render(&again.plan)
    );
    assert_eq!(
        dynamic.registrations.lock().unwrap().len(),
        1,
        "applying the document keeps the registration it names"
    );
}
