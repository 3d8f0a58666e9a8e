//! A scripted browser and the helpers of the authorization-code tests (`oauth_code.rs`,
//! `oauth_code_attacks.rs`, `oauth_registration.rs`): a user, a client, PKCE, sign-in,
//! consent, redeeming codes and refreshing.
//!
//! The "browser" is a reqwest client that follows no redirects by itself and keeps its
//! cookies by hand (the workspace's reqwest has no cookie store).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use gatehouse::{
    Config,
    admin::{self, oauth::OAuthRegistration},
};
use gatehouse_model::audit::AuditRow;
use reqwest::header::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::{
    helpers::{TestApp, call},
    oauth::{base, gateway, header, post_form, resource},
    scripted_upstream::Upstream,
};

pub const REDIRECT: &str = "http://127.0.0.1:9/cb";
pub const PASSWORD: &str = "alice-password-1234";

pub struct Flow {
    pub app: TestApp,
    pub upstream: Upstream,
    /// Alice's user id (`usr_…`): group `analysts`, which may call `echo` on `demo`.
    pub alice: String,
    /// Secret of `webapp`, a confidential (client_secret_basic) code client.
    pub webapp_secret: String,
}

/// Servers `demo` and `other`; user `alice` in `analysts` (granted `echo` on `demo` only);
/// public client `spa` and confidential client `webapp`, both with the authorization-code
/// and refresh-token grants and the redirect URI [`REDIRECT`]. No client has a connection of
/// its own: everything they reach is the user's.
pub async fn flow_setup() -> Flow {
    flow_setup_with(|_| {}).await
}

pub async fn flow_setup_with(adjust: impl FnOnce(&mut Config)) -> Flow {
    let upstream = Upstream::start().await;
    let app = TestApp::start_with(adjust).await;
    for server in ["demo", "other"] {
        app.add_server(server, &upstream.url()).await;
    }
    let (alice, _) = admin::users::create_user(
        &app.store,
        "alice",
        "Alice",
        Some(PASSWORD),
        vec!["analysts".into()],
    )
    .await
    .unwrap();
    admin::users::grant_group(&app.store, "analysts", "demo", "echo", true, false)
        .await
        .unwrap();
    let grants = ["authorization_code", "refresh_token"];
    register_code_client(&app, "spa", "none", &grants).await;
    let webapp_secret = register_code_client(&app, "webapp", "client_secret_basic", &grants)
        .await
        .unwrap();
    app.reload().await;
    Flow {
        app,
        upstream,
        alice: alice.id,
        webapp_secret,
    }
}

/// Creates `name` and registers it for the code flow with [`REDIRECT`]; its secret, if any.
pub async fn register_code_client(
    app: &TestApp,
    name: &str,
    method: &str,
    grant_types: &[&str],
) -> Option<String> {
    admin::create_client(&*app.store, name, "").await.unwrap();
    let registered = admin::oauth::register_client(
        &app.store,
        &app.keyring,
        name,
        OAuthRegistration {
            grant_types: grant_types.iter().map(|g| (*g).to_owned()).collect(),
            auth_method: Some(method.into()),
            redirect_uris: vec![REDIRECT.into()],
            native: false,
            jwks: None,
            require_dpop: false,
        },
    )
    .await
    .unwrap();
    app.reload().await;
    registered.client_secret
}

// ---------------------------------------------------------------------------------------
// PKCE and the authorization request

pub struct Pkce {
    pub verifier: String,
    pub challenge: String,
}

/// A fresh RFC 7636 S256 pair.
pub fn pkce() -> Pkce {
    let verifier = gatehouse::secrets::random_base62(64).unwrap();
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// The query of an authorization request, valid unless a test changes it.
#[derive(Clone)]
pub struct Authorize {
    params: Vec<(String, String)>,
}

impl Authorize {
    /// `response_type=code`, S256 challenge, [`REDIRECT`], a `state` that needs encoding,
    /// `resource` = demo's MCP URL, no scope.
    pub fn new(app: &TestApp, client: &str, pkce: &Pkce) -> Self {
        let state = format!("st/{} &x=1", gatehouse::secrets::random_base62(12).unwrap());
        let params = [
            ("response_type", "code"),
            ("client_id", client),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("state", &state),
            ("resource", &resource(app, "demo")),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        Self { params }
    }

    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.params.retain(|(n, _)| n != name);
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn without(mut self, name: &str) -> Self {
        self.params.retain(|(n, _)| n != name);
        self
    }

    pub fn state(&self) -> String {
        self.params
            .iter()
            .find(|(n, _)| n == "state")
            .map(|(_, v)| v.clone())
            .unwrap()
    }

    pub fn url(&self, app: &TestApp) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.params)
            .finish();
        app.url(&format!("/oauth/authorize?{query}"))
    }
}

// ---------------------------------------------------------------------------------------
// The browser

pub struct Page {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> String {
        header(&self.headers, "location")
    }

    /// The value of the hidden input `name`.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no hidden input {name}: {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&")
    }

    /// The whole `Set-Cookie` line for cookie `name`, if the response sets it.
    pub fn sets_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// Every browser-flow page refuses framing (clickjacking of consent) and caching.
    pub fn assert_hardened(&self) {
        let csp = header(&self.headers, "content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(header(&self.headers, "x-frame-options"), "DENY");
        assert_eq!(header(&self.headers, "cache-control"), "no-store");
        assert!(header(&self.headers, "content-type").starts_with("text/html"));
    }
}

pub struct Browser {
    http: reqwest::Client,
    base: String,
    pub cookies: BTreeMap<String, String>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base(app),
            cookies: BTreeMap::new(),
        }
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.base)
        } else {
            url.to_owned()
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let url = self.absolute(url);
        let request = self.http.get(&url);
        self.send(&url, request).await
    }

    pub async fn post(&mut self, url: &str, params: &[(&str, &str)]) -> Page {
        let url = self.absolute(url);
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params)
            .finish();
        let request = self
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(&url, request).await
    }

    async fn send(&mut self, url: &str, mut request: reqwest::RequestBuilder) -> Page {
        assert!(
            url.starts_with(&self.base),
            "the browser only visits Gatehouse: {url}"
        );
        if !self.cookies.is_empty() {
            let jar: Vec<String> = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect();
            request = request.header("cookie", jar.join("; "));
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for line in headers.get_all("set-cookie") {
            let line = line.to_str().unwrap();
            let mut parts = line.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            let expired = parts.any(|attr| attr.eq_ignore_ascii_case("max-age=0"));
            if expired {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let body = response.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }
}

/// Follows an authorization request to the consent page, signing in as `username` on the way
/// if the browser has no session. A redirect to the client is returned as it is.
pub async fn consent_page(
    browser: &mut Browser,
    url: &str,
    username: &str,
    password: &str,
) -> Page {
    let first = browser.get(url).await;
    if first.status != 303 || !first.location().starts_with("/oauth/login?") {
        return first;
    }
    let login = browser.get(&first.location()).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let signed_in = browser
        .post(
            "/oauth/login",
            &[
                ("req", &login.hidden("req")),
                ("csrf", &login.hidden("csrf")),
                ("username", username),
                ("password", password),
            ],
        )
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let back = signed_in.location();
    assert!(back.starts_with("/oauth/authorize?req="), "{back}");
    browser.get(&back).await
}

/// Posts the consent form of `consent` with `decision`.
pub async fn decide(browser: &mut Browser, consent: &Page, decision: &str) -> Page {
    assert_eq!(consent.status, 200, "{}", consent.body);
    browser
        .post(
            "/oauth/authorize",
            &[
                ("req", &consent.hidden("req")),
                ("csrf", &consent.hidden("csrf")),
                ("decision", decision),
            ],
        )
        .await
}

/// The parameters of a `303` to the client's redirect URI, which must carry `iss` (RFC 9207)
/// and exactly the request's `state`, each once.
pub fn callback(app: &TestApp, page: &Page, state: Option<&str>) -> BTreeMap<String, String> {
    assert_eq!(page.status, 303, "{}", page.body);
    let location = page.location();
    let query = location
        .strip_prefix(&format!("{REDIRECT}?"))
        .unwrap_or_else(|| panic!("not a redirect to the client: {location}"));
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let params: BTreeMap<String, String> = pairs.iter().cloned().collect();
    assert_eq!(params.len(), pairs.len(), "a parameter repeats: {location}");
    assert_eq!(
        params.get("iss").map(String::as_str),
        Some(base(app).as_str()),
        "iss: {location}"
    );
    assert_eq!(
        params.get("state").map(String::as_str),
        state,
        "state: {location}"
    );
    params
}

/// The `error` of a redirect to the client (which carries no code).
pub fn redirect_error(app: &TestApp, page: &Page, state: &str) -> String {
    let params = callback(app, page, Some(state));
    assert!(!params.contains_key("code"), "{params:?}");
    assert!(params.contains_key("error_description"), "{params:?}");
    params
        .get("error")
        .cloned()
        .unwrap_or_else(|| panic!("no error: {params:?}"))
}

/// Signs in as alice (if needed), approves, and returns the code.
pub async fn obtain_code(app: &TestApp, browser: &mut Browser, request: &Authorize) -> String {
    let consent = consent_page(browser, &request.url(app), "alice", PASSWORD).await;
    let answer = decide(browser, &consent, "approve").await;
    let params = callback(app, &answer, Some(&request.state()));
    params["code"].clone()
}

// ---------------------------------------------------------------------------------------
// The token endpoint

#[derive(Clone, Copy)]
pub enum As<'a> {
    /// A public client: `client_id` in the body, no secret.
    Public(&'a str),
    /// HTTP Basic.
    Basic(&'a str, &'a str),
}

pub async fn token_request(
    app: &TestApp,
    client: As<'_>,
    params: &[(&str, &str)],
) -> (u16, HeaderMap, Value) {
    match client {
        As::Public(id) => {
            let mut all = vec![("client_id", id)];
            all.extend_from_slice(params);
            post_form(app, "/oauth/token", None, &all).await
        }
        As::Basic(id, secret) => post_form(app, "/oauth/token", Some((id, secret)), params).await,
    }
}

pub async fn redeem(
    app: &TestApp,
    client: As<'_>,
    code: &str,
    verifier: &str,
) -> (u16, HeaderMap, Value) {
    token_request(
        app,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", REDIRECT),
        ],
    )
    .await
}

pub async fn refresh(
    app: &TestApp,
    client: As<'_>,
    token: &str,
    extra: &[(&str, &str)],
) -> (u16, HeaderMap, Value) {
    let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    params.extend_from_slice(extra);
    token_request(app, client, &params).await
}

/// `(status, error)` of a refusal.
pub fn refusal(answer: &(u16, HeaderMap, Value)) -> (u16, String) {
    let (status, _, body) = answer;
    (*status, body["error"].as_str().unwrap_or("").to_owned())
}

pub fn invalid_grant() -> (u16, String) {
    (400, "invalid_grant".to_owned())
}

pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub body: Value,
}

impl Tokens {
    pub fn from(answer: (u16, HeaderMap, Value)) -> Tokens {
        let (status, headers, body) = answer;
        assert_eq!(status, 200, "{body}");
        assert_eq!(header(&headers, "cache-control"), "no-store");
        Tokens {
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap_or("").to_owned(),
            body,
        }
    }
}

/// The whole flow for `spa` with `request`: tokens.
pub async fn spa_tokens(
    app: &TestApp,
    browser: &mut Browser,
    request: &Authorize,
    pkce: &Pkce,
) -> Tokens {
    let code = obtain_code(app, browser, request).await;
    Tokens::from(redeem(app, As::Public("spa"), &code, &pkce.verifier).await)
}

/// The whole flow for the confidential `webapp` (its secret in HTTP Basic): tokens.
pub async fn webapp_tokens(
    app: &TestApp,
    browser: &mut Browser,
    pkce: &Pkce,
    secret: &str,
) -> Tokens {
    let code = obtain_code(app, browser, &Authorize::new(app, "webapp", pkce)).await;
    Tokens::from(redeem(app, As::Basic("webapp", secret), &code, &pkce.verifier).await)
}

/// Status of `tools/call echo` on `demo` with `token`.
pub async fn echo_status(app: &TestApp, token: &str) -> u16 {
    gateway(app, "demo", token, &call("echo")).await.0
}

/// Audit rows once `ready` holds for them (some events are written after the response).
pub async fn audit_until(app: &TestApp, ready: impl Fn(&[AuditRow]) -> bool) -> Vec<AuditRow> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rows = app.audit().await;
        if ready(&rows) {
            return rows;
        }
        assert!(Instant::now() < deadline, "audit events missing: {rows:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The flow
