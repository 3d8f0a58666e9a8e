//! The authorization-code flow (OAuth 2.1 §4.1 with PKCE, RFC 8707 resources, RFC 9207 `iss`)
//! as a browser and a public client see it: sign-in, consent, redeeming the code, the token
//! acting for the user at the gateway, and RFC 7591 dynamic client registration.
//! Refusals (sign-in and consent forgeries, PKCE, redirect URIs, replays, refresh-token reuse,
//! disabled users): `oauth_code_attacks.rs`.
//!
//! The "browser" is a reqwest client that follows no redirects by itself and keeps its
//! cookies by hand (the workspace's reqwest has no cookie store).

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD as B64};
use gatehouse::{
    Config,
    admin::{self, oauth::OAuthRegistration},
    audit::AuditRow,
};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::{
    helpers::{TestApp, call, list_tools, tool_names},
    oauth::{base, gateway, header, json_response, jwt_part, post_form, resource},
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

#[tokio::test]
async fn a_user_signs_in_consents_and_the_client_acts_for_them_at_the_gateway() {
    let Flow {
        app,
        upstream,
        alice,
        ..
    } = flow_setup().await;
    let pkce = pkce();
    let request = Authorize::new(&app, "spa", &pkce);
    let state = request.state();
    let mut browser = Browser::new(&app);

    // Not signed in: to the login page, the validated request sealed along.
    let first = browser.get(&request.url(&app)).await;
    assert_eq!(first.status, 303, "{}", first.body);
    let login_url = first.location();
    assert!(login_url.starts_with("/oauth/login?req="), "{login_url}");
    let login = browser.get(&login_url).await;
    assert_eq!(login.status, 200, "{}", login.body);
    login.assert_hardened();
    assert!(
        login.body.contains("Sign in to continue to spa"),
        "{}",
        login.body
    );
    let nonce = login.sets_cookie("gatehouse_login").unwrap();
    assert!(
        nonce.contains("HttpOnly") && nonce.contains("SameSite=Strict"),
        "{nonce}"
    );

    let signed_in = browser
        .post(
            "/oauth/login",
            &[
                ("req", &login.hidden("req")),
                ("csrf", &login.hidden("csrf")),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let session = signed_in.sets_cookie("gatehouse_session").unwrap();
    for attribute in ["Path=/", "HttpOnly", "SameSite=Lax"] {
        assert!(session.contains(attribute), "{session}");
    }
    assert!(
        !session.contains("Secure"),
        "plain-http loopback: {session}"
    );
    let back = signed_in.location();
    assert!(back.starts_with("/oauth/authorize?req="), "{back}");

    let consent = browser.get(&back).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    consent.assert_hardened();
    let csp = header(&consent.headers, "content-security-policy");
    assert!(
        csp.contains("form-action 'self' http://127.0.0.1:9;"),
        "{csp}"
    );
    for shown in [
        "Allow spa to use",
        "(client <code>spa</code>)",
        "<code>mcp:demo</code>",
        "you go back to <b>127.0.0.1</b>",
        "as alice",
        &resource(&app, "demo"),
    ] {
        assert!(consent.body.contains(shown), "{shown}: {}", consent.body);
    }

    let answer = decide(&mut browser, &consent, "approve").await;
    let params = callback(&app, &answer, Some(&state));
    assert_eq!(
        params.keys().collect::<Vec<_>>(),
        ["code", "iss", "state"],
        "{params:?}"
    );
    let code = &params["code"];
    assert!(code.len() >= 43, "{code}");

    let (status, headers, body) = redeem(&app, As::Public("spa"), code, &pkce.verifier).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    assert_eq!(header(&headers, "pragma"), "no-cache");
    assert_eq!(
        (&body["token_type"], &body["expires_in"], &body["scope"]),
        (&json!("Bearer"), &json!(600), &json!("mcp:demo"))
    );
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| t.starts_with("ghr_")),
        "{body}"
    );
    let token = body["access_token"].as_str().unwrap();
    let claims = jwt_part(token, 1);
    assert_eq!(claims["sub"].as_str(), Some(alice.as_str()));
    assert_eq!(claims["client_id"], "spa");
    assert_eq!(claims["aud"], resource(&app, "demo"));
    assert_eq!(claims["scope"], "mcp:demo");
    assert_eq!(claims["iss"].as_str(), Some(base(&app).as_str()));
    let jti = claims["jti"].as_str().unwrap().to_owned();

    // At the gateway the token carries alice's group grant, not a connection of spa's own.
    let (status, _, message) = gateway(&app, "demo", token, &call("echo")).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["result"]["content"][0]["text"], "called echo");
    assert!(
        upstream
            .received()
            .last()
            .unwrap()
            .headers
            .get("authorization")
            .is_none()
    );
    let (status, _, message) = gateway(&app, "demo", token, &list_tools()).await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(tool_names(&message), ["echo"]);
    let (status, _, message) = gateway(&app, "demo", token, &call("add")).await;
    assert_eq!(status, 403, "{message}");
    assert_eq!(message["error"]["data"]["reason"], "tool_not_granted");
    let (status, _, _) = gateway(&app, "other", token, &call("echo")).await;
    assert_eq!(status, 401, "another audience");

    let rows = audit_until(&app, |rows| {
        rows.iter()
            .any(|r| r.event.rpc_method.as_deref() == Some("oauth/token:authorization_code"))
            && rows
                .iter()
                .filter(|r| r.event.tool.as_deref() == Some("add"))
                .count()
                == 1
    })
    .await;
    let issued = rows
        .iter()
        .find(|r| r.event.rpc_method.as_deref() == Some("oauth/token:authorization_code"))
        .unwrap();
    assert_eq!(
        (
            issued.event.client.as_deref(),
            issued.event.user.as_deref(),
            issued.event.credential_id.as_deref(),
            issued.event.decision.as_str(),
            issued.event.status,
        ),
        (
            Some("spa"),
            Some(alice.as_str()),
            Some(jti.as_str()),
            "allow",
            200
        )
    );
    let calls: Vec<_> = rows
        .iter()
        .filter(|r| {
            r.event.rpc_method.as_deref() == Some("tools/call")
                && r.event.server.as_deref() == Some("demo")
        })
        .map(|r| {
            (
                r.event.tool.clone().unwrap(),
                r.event.client.clone(),
                r.event.user.clone(),
                r.event.credential_id.clone(),
                r.event.decision.as_str(),
                r.event.status,
            )
        })
        .collect();
    let (who, user, cred) = (Some("spa".into()), Some(alice.clone()), Some(jti.clone()));
    assert_eq!(
        calls,
        [
            (
                "echo".into(),
                who.clone(),
                user.clone(),
                cred.clone(),
                "allow",
                200
            ),
            ("add".into(), who, user, cred, "deny", 403),
        ]
    );
    let text = serde_json::to_string(&rows).unwrap();
    assert!(
        !text.contains(token) && !text.contains(code.as_str()),
        "no secrets audited"
    );
}

#[tokio::test]
async fn a_signed_in_browser_goes_straight_to_consent_each_time() {
    let Flow { app, .. } = flow_setup().await;
    let mut browser = Browser::new(&app);
    let pkce = pkce();
    let request = Authorize::new(&app, "spa", &pkce);
    let first = obtain_code(&app, &mut browser, &request).await;

    // Consent is asked again (no silent approval), but sign-in is not.
    let again = Authorize::new(&app, "spa", &pkce);
    let consent = browser.get(&again.url(&app)).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(
        consent.body.contains("Allow spa to use"),
        "{}",
        consent.body
    );
    let answer = decide(&mut browser, &consent, "approve").await;
    let second = callback(&app, &answer, Some(&again.state()))["code"].clone();
    assert_ne!(first, second);
    for code in [first, second] {
        let tokens = Tokens::from(redeem(&app, As::Public("spa"), &code, &pkce.verifier).await);
        assert_eq!(echo_status(&app, &tokens.access).await, 200);
    }
}

#[tokio::test]
async fn a_confidential_client_redeems_with_its_secret_and_a_code_only_client_gets_no_refresh_token()
 {
    let Flow {
        app, webapp_secret, ..
    } = flow_setup().await;
    let mut browser = Browser::new(&app);
    let pkce = pkce();
    let code = obtain_code(&app, &mut browser, &Authorize::new(&app, "webapp", &pkce)).await;
    // Its secret is not optional: client_id alone is invalid_client.
    let (status, _, body) = redeem(&app, As::Public("webapp"), &code, &pkce.verifier).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_client")));
    let code = obtain_code(&app, &mut browser, &Authorize::new(&app, "webapp", &pkce)).await;
    let tokens = Tokens::from(
        redeem(
            &app,
            As::Basic("webapp", &webapp_secret),
            &code,
            &pkce.verifier,
        )
        .await,
    );
    assert_eq!(jwt_part(&tokens.access, 1)["client_id"], "webapp");
    assert!(tokens.refresh.starts_with("ghr_"));
    assert_eq!(echo_status(&app, &tokens.access).await, 200);

    register_code_client(&app, "coder", "none", &["authorization_code"]).await;
    let code = obtain_code(&app, &mut browser, &Authorize::new(&app, "coder", &pkce)).await;
    let tokens = Tokens::from(redeem(&app, As::Public("coder"), &code, &pkce.verifier).await);
    assert!(
        tokens.body.get("refresh_token").is_none(),
        "{}",
        tokens.body
    );
    assert_eq!(echo_status(&app, &tokens.access).await, 200);
}

// ---------------------------------------------------------------------------------------
// Dynamic client registration (RFC 7591)

pub async fn register_dcr(
    app: &TestApp,
    bearer: Option<&str>,
    body: &str,
) -> (u16, HeaderMap, Value) {
    let mut request = app
        .http
        .post(app.url("/oauth/register"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    json_response(request.send().await.unwrap()).await
}

async fn metadata(app: &TestApp) -> Value {
    let response = app
        .http
        .get(app.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn public_registration() -> String {
    json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "client_name": "My Agent",
    })
    .to_string()
}

#[tokio::test]
async fn registration_is_off_by_default() {
    let Flow { app, .. } = flow_setup().await;
    let (status, headers, body) = register_dcr(&app, None, &public_registration()).await;
    assert_eq!(
        (status, &body["error"]),
        (403, &json!("access_denied")),
        "{body}"
    );
    assert!(header(&headers, "content-type").starts_with("application/json"));
    let metadata = metadata(&app).await;
    assert!(
        metadata.get("registration_endpoint").is_none(),
        "{metadata}"
    );
    assert_eq!(
        metadata["authorization_response_iss_parameter_supported"],
        true
    );
    assert_eq!(
        metadata["code_challenge_methods_supported"],
        json!(["S256"])
    );
}

#[tokio::test]
async fn an_openly_registered_public_client_completes_the_flow() {
    let Flow { app, .. } = flow_setup_with(|c| c.oauth.registration = "open".into()).await;
    let metadata = metadata(&app).await;
    assert_eq!(
        metadata["registration_endpoint"],
        format!("{}/oauth/register", base(&app))
    );

    let (status, headers, body) = register_dcr(&app, None, &public_registration()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let client_id = body["client_id"].as_str().unwrap().to_owned();
    assert!(client_id.starts_with("dcr_"), "{client_id}");
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(body["redirect_uris"], json!([REDIRECT]));
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["client_name"], "My Agent");
    assert!(body["client_id_issued_at"].is_i64());
    assert!(body.get("client_secret").is_none(), "public: {body}");

    let pkce = pkce();
    let request = Authorize::new(&app, &client_id, &pkce);
    let mut browser = Browser::new(&app);
    let consent = consent_page(&mut browser, &request.url(&app), "alice", PASSWORD).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(
        consent.body.contains("Allow My Agent to use")
            && consent
                .body
                .contains(&format!("(client <code>{client_id}</code>)")),
        "{}",
        consent.body
    );
    let answer = decide(&mut browser, &consent, "approve").await;
    let code = callback(&app, &answer, Some(&request.state()))["code"].clone();
    let tokens = Tokens::from(redeem(&app, As::Public(&client_id), &code, &pkce.verifier).await);
    assert_eq!(jwt_part(&tokens.access, 1)["client_id"], client_id);
    assert!(tokens.refresh.starts_with("ghr_"));
    assert_eq!(echo_status(&app, &tokens.access).await, 200);
    let (status, _, _) = gateway(&app, "demo", &tokens.access, &call("add")).await;
    assert_eq!(status, 403, "bounded by alice's grant");

    // Anyone may register, so the name it gives is shown escaped.
    let (status, _, body) = register_dcr(
        &app,
        None,
        &json!({
            "redirect_uris": [REDIRECT],
            "token_endpoint_auth_method": "none",
            "client_name": "<img src=x onerror=alert(1)>",
        })
        .to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let sneaky = body["client_id"].as_str().unwrap();
    let consent = browser
        .get(&Authorize::new(&app, sneaky, &pkce).url(&app))
        .await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(
        consent
            .body
            .contains("Allow &lt;img src=x onerror=alert(1)&gt; to use"),
        "{}",
        consent.body
    );
    assert!(!consent.body.contains("<img"), "{}", consent.body);

    // By default a registered client is confidential, with a secret shown once.
    let (status, _, body) = register_dcr(
        &app,
        None,
        &json!({ "redirect_uris": ["https://agent.example/cb"] }).to_string(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
    assert!(body["client_secret"].as_str().unwrap().starts_with("gcs_"));
    assert_eq!(body["client_secret_expires_at"], 0);
}

#[tokio::test]
async fn registration_refuses_bad_metadata() {
    let Flow { app, .. } = flow_setup_with(|c| c.oauth.registration = "open".into()).await;
    let cases = [
        (
            "http on a non-loopback host",
            json!({ "redirect_uris": ["http://agent.example/cb"], "token_endpoint_auth_method": "none" }).to_string(),
            "invalid_redirect_uri",
        ),
        (
            "a fragment",
            json!({ "redirect_uris": ["https://agent.example/cb#x"] }).to_string(),
            "invalid_redirect_uri",
        ),
        (
            "no redirect URI",
            json!({ "redirect_uris": [] }).to_string(),
            "invalid_redirect_uri",
        ),
        (
            "client_credentials",
            json!({ "redirect_uris": [REDIRECT], "grant_types": ["client_credentials"] }).to_string(),
            "invalid_client_metadata",
        ),
        (
            "implicit response type",
            json!({ "redirect_uris": [REDIRECT], "response_types": ["token"] }).to_string(),
            "invalid_client_metadata",
        ),
        (
            "unknown auth method",
            json!({ "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt" }).to_string(),
            "invalid_client_metadata",
        ),
        (
            "duplicate keys",
            format!(
                r#"{{"redirect_uris": ["{REDIRECT}"], "token_endpoint_auth_method": "none", "token_endpoint_auth_method": "client_secret_basic"}}"#
            ),
            "invalid_client_metadata",
        ),
        ("not JSON", "redirect_uris=x".to_owned(), "invalid_client_metadata"),
    ];
    for (label, body, error) in cases {
        let (status, headers, answer) = register_dcr(&app, None, &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(error)),
            "{label}: {answer}"
        );
        assert_eq!(header(&headers, "cache-control"), "no-store", "{label}");
        if label == "http on a non-loopback host" {
            insta::assert_json_snapshot!("invalid_redirect_uri", answer);
        }
    }
    let clients = app.store.list_clients().await.unwrap();
    assert!(
        clients.iter().all(|c| !c.name.starts_with("dcr_")),
        "nothing registered: {clients:?}"
    );
}

#[tokio::test]
async fn token_registration_needs_the_initial_access_token() {
    let secret = "initial-access-token-for-tests";
    let digest = hex::encode(Sha256::digest(secret.as_bytes()));
    let Flow { app, .. } = flow_setup_with(|c| {
        c.oauth.registration = "token".into();
        c.oauth.registration_token_sha256 = Some(digest);
    })
    .await;
    assert!(metadata(&app).await.get("registration_endpoint").is_some());
    let hash = hex::encode(Sha256::digest(secret.as_bytes()));
    for (label, bearer) in [
        ("missing", None),
        ("wrong", Some("initial-access-token-for-test")),
        ("the hash itself", Some(hash.as_str())),
    ] {
        let (status, _, body) = register_dcr(&app, bearer, &public_registration()).await;
        assert_eq!(
            (status, &body["error"]),
            (403, &json!("access_denied")),
            "{label}: {body}"
        );
    }
    let (status, _, body) = register_dcr(&app, Some(secret), &public_registration()).await;
    assert_eq!(status, 201, "{body}");
    assert!(body["client_id"].as_str().unwrap().starts_with("dcr_"));
}
