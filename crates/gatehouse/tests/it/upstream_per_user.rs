//! Per-user delegated tokens (ADR 0006 §5): a person's first call to a server that needs their
//! own authorization is answered with a URL elicitation; the link leads the signed-in person
//! through the upstream's OAuth flow (code + PKCE) against a scripted authorization server,
//! and their next calls reach the upstream with their own token only.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    extract::{Query, State},
    response::{IntoResponse, Redirect},
    routing::{get, post},
};
use base64::Engine;
use gatehouse::{
    admin::{self, upstream_auth::NewUpstreamAuth},
    oauth::{
        session,
        tokens::{MintRequest, mint},
    },
};
use gatehouse_model::{
    scope::Scope,
    upstream_auth::{UpstreamAuthSpec, UpstreamClientAuth},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    helpers::{TestApp, call, rpc_message},
    scripted_upstream::Upstream,
};

/// A code's PKCE challenge, redirect URI and the person who signed in at the upstream.
type IssuedCode = (String, String, String);

/// The upstream's authorization server: codes bound to a PKCE challenge, tokens named after
/// the person who signed in there (`at-{login}-{n}`), refresh and revocation recorded.
#[derive(Clone, Default)]
pub struct SaasAuthServer {
    codes: Arc<Mutex<HashMap<String, IssuedCode>>>,
    refresh: Arc<Mutex<HashMap<String, String>>>,
    pub token_forms: Arc<Mutex<Vec<HashMap<String, String>>>>,
    pub revoked: Arc<Mutex<Vec<HashMap<String, String>>>>,
    /// Lifetime given to access tokens; 0: none stated.
    pub expires_in: Arc<Mutex<i64>>,
    /// When set, refresh requests are refused.
    pub refuse_refresh: Arc<Mutex<bool>>,
    /// When set, refresh requests are counted and wait for a permit.
    pub hold_refresh: Arc<Mutex<Option<Arc<tokio::sync::Semaphore>>>>,
    pub refreshes_arrived: Arc<std::sync::atomic::AtomicUsize>,
    issued: Arc<Mutex<usize>>,
}

pub async fn authorize(
    State(server): State<SaasAuthServer>,
    Query(query): Query<HashMap<String, String>>,
) -> impl IntoResponse {
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["code_challenge_method"], "S256");
    let code = format!("code-{}", server.codes.lock().unwrap().len() + 1);
    server.codes.lock().unwrap().insert(
        code.clone(),
        (
            query["code_challenge"].clone(),
            query["redirect_uri"].clone(),
            // The person signs in at the upstream; the test says who.
            query["login"].clone(),
        ),
    );
    let state = form_urlencoded::byte_serialize(query["state"].as_bytes()).collect::<String>();
    Redirect::to(&format!(
        "{}?code={code}&state={state}",
        query["redirect_uri"]
    ))
}

pub async fn token(State(server): State<SaasAuthServer>, body: String) -> axum::response::Response {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    server.token_forms.lock().unwrap().push(form.clone());
    let login = match form["grant_type"].as_str() {
        "authorization_code" => {
            let Some((challenge, redirect_uri, login)) =
                server.codes.lock().unwrap().remove(&form["code"])
            else {
                return invalid_grant();
            };
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(form["code_verifier"].as_bytes()));
            if computed != challenge || redirect_uri != form["redirect_uri"] {
                return invalid_grant();
            }
            login
        }
        "refresh_token" => {
            server
                .refreshes_arrived
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let gate = server.hold_refresh.lock().unwrap().clone();
            if let Some(gate) = gate {
                let _permit = gate.acquire().await.unwrap();
            }
            if *server.refuse_refresh.lock().unwrap() {
                return invalid_grant();
            }
            match server.refresh.lock().unwrap().get(&form["refresh_token"]) {
                Some(login) => login.clone(),
                None => return invalid_grant(),
            }
        }
        _ => return invalid_grant(),
    };
    let n = {
        let mut issued = server.issued.lock().unwrap();
        *issued += 1;
        *issued
    };
    let refresh_token = format!("rt-{login}-{n}");
    server
        .refresh
        .lock()
        .unwrap()
        .insert(refresh_token.clone(), login.clone());
    let mut answer = json!({
        "access_token": format!("at-{login}-{n}"),
        "token_type": "Bearer",
        "refresh_token": refresh_token,
        "scope": "files",
    });
    let expires_in = *server.expires_in.lock().unwrap();
    if expires_in > 0 {
        answer["expires_in"] = json!(expires_in);
    }
    axum::Json(answer).into_response()
}

fn invalid_grant() -> axum::response::Response {
    (
        http::StatusCode::BAD_REQUEST,
        axum::Json(json!({ "error": "invalid_grant" })),
    )
        .into_response()
}

async fn revoke(State(server): State<SaasAuthServer>, body: String) -> &'static str {
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    server.revoked.lock().unwrap().push(form);
    ""
}

pub struct Setup {
    pub app: TestApp,
    pub upstream: Upstream,
    pub saas: SaasAuthServer,
    pub saas_url: String,
    pub ids: HashMap<&'static str, String>,
    /// The agent's own API key, acting for nobody.
    pub agent_key: String,
}

/// Gatehouse with `files` reached per person through the SaaS's authorization server, and
/// Ann and Bob in a group granted `echo`.
pub async fn setup() -> Setup {
    let app = TestApp::start_with(|config| {
        config.admin_listen = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let upstream = Upstream::start().await;
    let saas = SaasAuthServer::default();
    *saas.expires_in.lock().unwrap() = 3600;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let saas_url = format!("http://{}", listener.local_addr().unwrap());
    let routes = Router::new()
        .route("/authorize", get(authorize))
        .route("/token", post(token))
        .route("/revoke", post(revoke))
        .with_state(saas.clone());
    tokio::spawn(async move { axum::serve(listener, routes).await.unwrap() });
    app.add_server_with(admin::NewServer {
        name: "files".into(),
        url: upstream.url(),
        upstream_auth: Some(NewUpstreamAuth {
            spec: UpstreamAuthSpec::PerUser {
                authorization_endpoint: format!("{saas_url}/authorize"),
                token_endpoint: format!("{saas_url}/token"),
                revocation_endpoint: Some(format!("{saas_url}/revoke")),
                client_id: "gatehouse".into(),
                auth_method: UpstreamClientAuth::ClientSecretPost,
                scope: Some("files".into()),
                resource: Some(upstream.url()),
                issuer: None,
                registration: Default::default(),
                redirect_uri: None,
            },
            secret: Some("s3cret".into()),
        }),
        ..Default::default()
    })
    .await;
    let agent_key = app.client_with_key("agent", "files", "echo").await;
    admin::users::grant_group(&app.store, "staff", "files", "echo", false, false)
        .await
        .unwrap();
    let mut ids = HashMap::new();
    for name in ["ann", "bob"] {
        let (user, _) = admin::users::create_user(&app.store, name, "", None, vec!["staff".into()])
            .await
            .unwrap();
        ids.insert(name, user.id);
    }
    app.reload().await;
    Setup {
        app,
        upstream,
        saas,
        saas_url,
        ids,
        agent_key,
    }
}

/// An access token the person delegated to their agent.
pub fn person_token(app: &TestApp, user_id: &str) -> String {
    let snapshot = app.server.state.snapshot.current();
    let base = app.url("");
    let base = base.trim_end_matches('/');
    mint(
        &snapshot.oauth.signing,
        &MintRequest {
            issuer: base,
            subject: user_id,
            client_id: "agent",
            audiences: &[format!("{base}/files/mcp")],
            scope: &Scope::parse("mcp:files").unwrap(),
            ttl_secs: 300,
            now_ms: gatehouse::now_ms(),
            grant: None,
            jkt: None,
        },
    )
    .unwrap()
    .token
}

/// The person's Gatehouse sign-in session cookie in their browser.
pub fn session_cookie(app: &TestApp, user_id: &str) -> String {
    let value = session::seal(
        &app.server.state.keyring,
        "session",
        &user_id,
        gatehouse::now_ms() + 60_000,
    );
    format!("gatehouse_session={value}")
}

/// A browser that follows no redirects by itself.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn location(response: &reqwest::Response) -> String {
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// The link of a -32042 answer.
pub fn elicitation_url(body: &Value) -> String {
    assert_eq!(body["error"]["code"], -32042, "{body}");
    let elicitation = &body["error"]["data"]["elicitations"][0];
    assert_eq!(elicitation["mode"], "url");
    elicitation["url"].as_str().unwrap().to_owned()
}

/// Plays the person's browser from the link to the callback: signed in to Gatehouse as
/// `cookie`, signing in at the upstream as `login`. The callback's response.
pub async fn connect(link: &str, cookie: &str, login: &str) -> reqwest::Response {
    let browser = browser();
    let to_upstream = browser
        .get(link)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        to_upstream.status(),
        303,
        "{}",
        to_upstream.text().await.unwrap()
    );
    let binding = to_upstream.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let at_upstream = browser
        .get(format!("{}&login={login}", location(&to_upstream)))
        .send()
        .await
        .unwrap();
    assert!(at_upstream.status().is_redirection());
    browser
        .get(location(&at_upstream))
        .header("cookie", format!("{cookie}; {binding}"))
        .send()
        .await
        .unwrap()
}

pub async fn call_as(setup: &Setup, person: &str) -> (u16, Value) {
    let token = person_token(&setup.app, &setup.ids[person]);
    let (status, _, body) = rpc_message(
        setup
            .app
            .post("files", Some(&token), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    (status, body)
}

pub fn authorizations(upstream: &Upstream) -> Vec<String> {
    upstream
        .received()
        .iter()
        .map(|r| r.headers["authorization"].to_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_person_without_a_grant_is_asked_to_connect_and_the_upstream_is_not_reached() {
    let setup = setup().await;
    let (status, body) = call_as(&setup, "ann").await;
    assert_eq!(status, 200, "{body}");
    let link = elicitation_url(&body);
    assert!(
        link.starts_with(&setup.app.url("/oauth/upstream/connect?ticket=")),
        "{link}"
    );
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&link),
        "a client without URL elicitation shows the link in the message"
    );
    let mut shown = body.clone();
    shown["error"]["data"]["elicitations"][0]["url"] = json!("<link>");
    shown["error"]["data"]["elicitations"][0]["elicitationId"] = json!("<id>");
    shown["error"]["message"] = json!("<message with the link>");
    insta::assert_json_snapshot!("upstream_consent_required", shown);

    // 2026-07-28: the same question as an input_required result.
    let token = person_token(&setup.app, &setup.ids["ann"]);
    let (status, _, body) = rpc_message(
        setup
            .app
            .post_stateless("files", Some(&token), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["result"]["resultType"], "input_required", "{body}");
    let requests = body["result"]["inputRequests"].as_object().unwrap();
    assert_eq!(requests.len(), 1);
    let request = requests.values().next().unwrap();
    assert_eq!(request["method"], "elicitation/create");
    assert_eq!(request["params"]["mode"], "url");
    assert!(
        request["params"]["url"]
            .as_str()
            .unwrap()
            .contains("/oauth/upstream/connect?ticket=")
    );

    // A 2026-07-28 method that cannot answer input_required (and -32042 is retired there):
    // refused, the link in the error.
    let (status, _, body) = rpc_message(
        setup
            .app
            .post_stateless("files", Some(&token), &crate::helpers::list_tools())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], -32012);
    assert_eq!(body["error"]["data"]["reason"], "upstream_consent_required");
    assert!(
        body["error"]["data"]["elicitations"][0]["url"]
            .as_str()
            .unwrap()
            .contains("/oauth/upstream/connect?ticket=")
    );

    // The agent's own key acts for nobody.
    let (status, _, body) = rpc_message(
        setup
            .app
            .post("files", Some(&setup.agent_key), &call("echo"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["data"]["reason"], "upstream_needs_user");
    assert_eq!(setup.upstream.hits(), 0, "nothing reached the upstream");
    let audit = setup.app.audit().await;
    assert!(
        audit
            .iter()
            .any(|row| row.event.reason.as_deref() == Some("upstream_consent_required")),
        "the refusal is audited"
    );
}

#[tokio::test]
async fn two_people_connect_their_own_accounts_and_each_reaches_the_upstream_as_themselves() {
    let setup = setup().await;
    for person in ["ann", "bob"] {
        let (_, body) = call_as(&setup, person).await;
        let link = elicitation_url(&body);
        let done = connect(
            &link,
            &session_cookie(&setup.app, &setup.ids[person]),
            person,
        )
        .await;
        assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
    }
    for person in ["ann", "bob", "ann"] {
        let (status, body) = call_as(&setup, person).await;
        assert_eq!(status, 200, "{person}: {body}");
    }
    assert_eq!(
        authorizations(&setup.upstream),
        ["Bearer at-ann-1", "Bearer at-bob-2", "Bearer at-ann-1"]
    );
    let forms = setup.saas.token_forms.lock().unwrap().clone();
    assert_eq!(forms.len(), 2, "one code redeemed per person");
    assert_eq!(forms[0]["grant_type"], "authorization_code");
    assert_eq!(forms[0]["client_secret"], "s3cret");
    assert_eq!(
        forms[0]["redirect_uri"],
        setup.app.url("/oauth/upstream/callback")
    );
    // Sealed at rest: the row does not hold the token in the clear.
    let grant = setup
        .app
        .store
        .get_upstream_grant(&setup.ids["ann"], "files")
        .await
        .unwrap()
        .unwrap();
    assert!(!grant.access_sealed.windows(8).any(|w| w == b"at-ann-1"));
    assert!(grant.refresh_sealed.is_some());
    assert!(grant.expires_at.is_some());
}

#[tokio::test]
async fn a_link_serves_only_its_own_person_signed_in_in_the_browser_that_started_it() {
    let setup = setup().await;
    let (_, body) = call_as(&setup, "ann").await;
    let link = elicitation_url(&body);
    let browser = browser();
    let bob = session_cookie(&setup.app, &setup.ids["bob"]);
    let refused = browser
        .get(&link)
        .header("cookie", &bob)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403, "Ann's link in Bob's browser");
    let signed_out = browser.get(&link).send().await.unwrap();
    assert_eq!(signed_out.status(), 401, "nobody signed in");

    // A ticket past its ten minutes.
    let expired = session::seal(
        &setup.app.server.state.keyring,
        "upstream-connect-ticket",
        &json!({ "user": setup.ids["ann"], "server": "files" }),
        gatehouse::now_ms() - 1,
    );
    let ann = session_cookie(&setup.app, &setup.ids["ann"]);
    let stale = browser
        .get(
            setup
                .app
                .url(&format!("/oauth/upstream/connect?ticket={expired}")),
        )
        .header("cookie", &ann)
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 400, "an expired ticket");

    // Ann starts; the callback URL is then opened in a browser without her binding cookie.
    let to_upstream = browser
        .get(&link)
        .header("cookie", &ann)
        .send()
        .await
        .unwrap();
    assert_eq!(to_upstream.status(), 303);
    let at_upstream = browser
        .get(format!("{}&login=mallory", location(&to_upstream)))
        .send()
        .await
        .unwrap();
    let callback = location(&at_upstream);
    let elsewhere = browser
        .get(&callback)
        .header("cookie", &ann)
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 403, "another browser");
    assert!(setup.saas.token_forms.lock().unwrap().is_empty());
    assert!(
        setup
            .app
            .store
            .get_upstream_grant(&setup.ids["ann"], "files")
            .await
            .unwrap()
            .is_none()
    );
    let _ = &setup.saas_url;
}

/// Moves the person's grant in time: issued `age_ms` ago, expiring `expires_in_ms` from now.
pub async fn age_grant(setup: &Setup, person: &str, age_ms: i64, expires_in_ms: i64) {
    let store = &setup.app.store;
    let mut grant = store
        .get_upstream_grant(&setup.ids[person], "files")
        .await
        .unwrap()
        .unwrap();
    let now = gatehouse::now_ms();
    grant.created_at = now - age_ms;
    grant.refreshed_at = None;
    grant.expires_at = Some(now + expires_in_ms);
    store.put_upstream_grant(&grant).await.unwrap();
}

pub async fn connected(setup: &Setup, person: &str) {
    let (_, body) = call_as(setup, person).await;
    let link = elicitation_url(&body);
    let done = connect(
        &link,
        &session_cookie(&setup.app, &setup.ids[person]),
        person,
    )
    .await;
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());
}

#[tokio::test]
async fn a_token_near_its_end_is_refreshed_and_an_expired_one_that_cannot_be_asks_again() {
    let setup = setup().await;
    connected(&setup, "ann").await;
    // 90 % of its life gone, still live: refreshed before the call.
    age_grant(&setup, "ann", 9_000_000, 1_000_000).await;
    let (status, body) = call_as(&setup, "ann").await;
    assert_eq!(status, 200, "{body}");
    let forms = setup.saas.token_forms.lock().unwrap().clone();
    let refresh = forms.last().unwrap();
    assert_eq!(refresh["grant_type"], "refresh_token");
    assert_eq!(refresh["refresh_token"], "rt-ann-1");
    assert_eq!(refresh["client_secret"], "s3cret");
    // The new token is kept: the next call does not refresh again.
    let (status, _) = call_as(&setup, "ann").await;
    assert_eq!(status, 200);
    assert_eq!(setup.saas.token_forms.lock().unwrap().len(), forms.len());
    assert_eq!(
        authorizations(&setup.upstream),
        ["Bearer at-ann-2", "Bearer at-ann-2"]
    );

    // The refresh is refused while the token still lives: the current token is used.
    *setup.saas.refuse_refresh.lock().unwrap() = true;
    age_grant(&setup, "ann", 9_000_000, 1_000_000).await;
    let (status, _) = call_as(&setup, "ann").await;
    assert_eq!(status, 200);
    assert_eq!(
        authorizations(&setup.upstream).last().unwrap(),
        "Bearer at-ann-2"
    );

    // Expired and not refreshable: the person is asked to connect again.
    age_grant(&setup, "ann", 9_000_000, -1).await;
    let hits = setup.upstream.hits();
    let (status, body) = call_as(&setup, "ann").await;
    assert_eq!(status, 200);
    elicitation_url(&body);
    assert_eq!(
        setup.upstream.hits(),
        hits,
        "not called with an expired token"
    );
}

#[tokio::test]
async fn a_person_disconnects_on_their_page_and_the_upstream_is_told() {
    let setup = setup().await;
    connected(&setup, "ann").await;
    connected(&setup, "bob").await;
    let ann = session_cookie(&setup.app, &setup.ids["ann"]);
    let browser = browser();
    let page = browser
        .get(setup.app.url("/oauth/upstream/grants"))
        .header("cookie", &ann)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("a disconnect form")
        .to_owned();
    let post = |cookie: &str, csrf: &str| {
        browser
            .post(setup.app.url("/oauth/upstream/revoke"))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("server", "files")
                    .append_pair("csrf", csrf)
                    .finish(),
            )
            .send()
    };
    let bob = session_cookie(&setup.app, &setup.ids["bob"]);
    let forged = post(&bob, &csrf).await.unwrap();
    assert_eq!(forged.status(), 403, "Ann's form token in Bob's session");
    let done = post(&ann, &csrf).await.unwrap();
    assert_eq!(done.status(), 200, "{}", done.text().await.unwrap());

    let revoked = setup.saas.revoked.lock().unwrap().clone();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["token"], "rt-ann-1");
    assert_eq!(revoked[0]["token_type_hint"], "refresh_token");
    let (_, body) = call_as(&setup, "ann").await;
    elicitation_url(&body);
    let (status, _) = call_as(&setup, "bob").await;
    assert_eq!(status, 200, "Bob's grant stays");
    assert_eq!(
        authorizations(&setup.upstream),
        ["Bearer at-bob-2"],
        "only Bob reached the upstream"
    );
}

#[tokio::test]
async fn an_operator_lists_and_revokes_a_persons_grant_and_the_upstream_is_told() {
    use gatehouse::admin::{AdminService, Operator};
    use gatehouse_model::records::AdminRole;
    let setup = setup().await;
    connected(&setup, "ann").await;
    connected(&setup, "bob").await;
    let app = &setup.app;
    let admin = AdminService::new(
        app.store.clone(),
        app.keyring.clone(),
        app.server.state.audit.clone(),
    );
    let by = Operator::cli("setup", None).unwrap();
    let token = admin
        .create_admin_token(&by, "ops", AdminRole::Operator, None)
        .await
        .unwrap()
        .token;
    let base = format!("http://{}", app.server.admin_addr.unwrap());
    let (status, listed) = crate::admin_api::answer(
        app.http
            .get(format!("{base}/admin/api/v1/users/ann/upstream-grants"))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["items"][0]["server"], "files");
    assert_eq!(listed["items"][0]["refreshable"], true);
    assert!(!listed.to_string().contains("at-ann"), "no token shown");

    let (status, body) = crate::admin_api::answer(
        app.http
            .delete(format!(
                "{base}/admin/api/v1/users/ann/upstream-grants/files"
            ))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let revoked = setup.saas.revoked.lock().unwrap().clone();
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["token"], "rt-ann-1");
    let (status, _) = crate::admin_api::answer(
        app.http
            .delete(format!(
                "{base}/admin/api/v1/users/ann/upstream-grants/files"
            ))
            .bearer_auth(&token),
    )
    .await;
    assert_eq!(status, 404, "already gone");
    let (_, body) = call_as(&setup, "ann").await;
    elicitation_url(&body);
    let (status, _) = call_as(&setup, "bob").await;
    assert_eq!(status, 200, "Bob's grant stays");
    let trail = serde_json::to_string(&app.audit().await).unwrap();
    assert!(trail.contains("user.upstream_grant.revoke"), "audited");
    assert!(!trail.contains("rt-ann-1"), "no token in the trail");
}
