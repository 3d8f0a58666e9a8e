//! Operator sign-in on the admin listener through an OpenID provider (a stand-in on loopback
//! serving discovery, keys, an authorization endpoint that signs in whoever the test names,
//! and a token endpoint issuing ID tokens): groups map to a role, a person with no mapped
//! group is refused (and recorded), a cookie-authenticated change needs its CSRF token, an
//! expired session is refused, and signing out ends the session.

use axum::{
    Json, Router,
    extract::Query,
    response::Redirect,
    routing::{get, post},
};
use gatehouse::{
    config::{AdminSignInConfig, IdentityProviderConfig},
    tokens::{jwt, keys::SigningKey},
};
use gatehouse_model::algorithm::Algorithm;
use parking_lot::Mutex;
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use std::{collections::HashMap, sync::Arc};

use crate::helpers::{Bind, TestApp};

#[derive(Default)]
struct Provider {
    /// Who the next sign-in is: `sub`, `email`, `groups`.
    next: Value,
    /// code → (nonce, claims).
    codes: HashMap<String, (String, Value)>,
}

struct Standin {
    issuer: String,
    shared: Arc<Mutex<Provider>>,
}

async fn standin() -> Standin {
    let key = Arc::new(SigningKey::generate(Algorithm::ES256).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let shared = Arc::new(Mutex::new(Provider::default()));
    let discovery = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
    });
    let jwks = json!({ "keys": [key.public_jwk()] });
    let authorize = {
        let shared = shared.clone();
        move |Query(q): Query<HashMap<String, String>>| async move {
            let mut provider = shared.lock();
            let code = format!("code-{}", provider.codes.len());
            let claims = provider.next.clone();
            provider
                .codes
                .insert(code.clone(), (q["nonce"].clone(), claims));
            Redirect::to(&format!(
                "{}?code={code}&state={}",
                q["redirect_uri"], q["state"]
            ))
        }
    };
    let token = {
        let (shared, issuer) = (shared.clone(), issuer.clone());
        move |body: String| async move {
            let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect();
            let (nonce, person) = shared.lock().codes.remove(&form["code"]).unwrap();
            let now = gatehouse::now_ms() / 1000;
            let mut claims = json!({
                "iss": issuer, "aud": "gatehouse", "nonce": nonce, "iat": now, "exp": now + 300,
            });
            for (name, value) in person.as_object().unwrap() {
                claims[name] = value.clone();
            }
            Json(
                json!({ "id_token": jwt::encode(&key, None, &claims).unwrap(), "token_type": "Bearer" }),
            )
        }
    };
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
        .route("/jwks", get(move || async move { Json(jwks) }))
        .route("/authorize", get(authorize))
        .route("/token", post(token));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Standin { issuer, shared }
}

struct Console {
    app: TestApp,
    admin: String,
    /// The admin listener's URL as browsers reach it (`admin_url`).
    public: String,
    /// The session cookie's name.
    cookie: &'static str,
    idp: Standin,
    /// No redirects followed, cookies handled by the test.
    browser: reqwest::Client,
}

async fn console() -> Console {
    console_at(None).await
}

/// A console whose admin listener browsers reach at `admin_url` (default: the listener).
async fn console_at(admin_url: Option<&str>) -> Console {
    let idp = standin().await;
    let port = gatehouse_testkit::process::free_loopback_port().unwrap();
    let admin = format!("http://127.0.0.1:{port}");
    let public = admin_url.map_or(admin.clone(), str::to_owned);
    let issuer = idp.issuer.clone();
    let app = TestApp::start_with(|config| {
        config.admin_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
        let provider: IdentityProviderConfig = serde_json::from_value(json!({
            "name": "corp",
            "issuer": issuer,
            "client_id": "gatehouse",
            // The stand-in does not check the client secret; any set variable will do.
            "client_secret_env": "PATH",
        }))
        .unwrap();
        config.oauth.providers = vec![provider];
        config.admin.sign_in = Some(
            serde_json::from_value::<AdminSignInConfig>(json!({
                "provider": "corp",
                "groups_claim": "groups",
                "group_roles": {"platform-admins": "admin", "sre": "operator", "security": "auditor"},
                "session_lifetime": "1h",
                "admin_url": admin_url,
            }))
            .unwrap(),
        );
    })
    .await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let cookie = if public.starts_with("https://") {
        "__Host-gatehouse_admin"
    } else {
        "gatehouse_admin"
    };
    Console {
        app,
        admin,
        public,
        cookie,
        idp,
        browser,
    }
}

/// `name=value` of each `Set-Cookie` a response carries.
fn cookies(response: &reqwest::Response) -> HashMap<String, String> {
    response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next()?.split_once('='))
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect()
}

struct SignedIn {
    status: StatusCode,
    page: String,
    cookies: HashMap<String, String>,
    set_cookie: Vec<String>,
}

impl Console {
    /// The whole browser round trip for a person with `groups`.
    async fn sign_in(&self, email: &str, groups: &[&str]) -> SignedIn {
        self.idp.shared.lock().next =
            json!({ "sub": format!("sub-{email}"), "email": email, "groups": groups });
        let start = self
            .browser
            .get(format!("{}/admin/sign-in", self.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(start.status(), StatusCode::SEE_OTHER);
        let binding = cookies(&start)["gatehouse_admin_sign_in"].clone();
        let to_provider = start.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        let back = self.browser.get(to_provider).send().await.unwrap();
        let callback = back.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            callback.starts_with(&format!("{}/admin/callback?", self.public)),
            "{callback}"
        );
        // The test reaches the listener directly, wherever browsers would.
        let answer = self
            .browser
            .get(callback.replacen(&self.public, &self.admin, 1))
            .header(header::COOKIE, format!("gatehouse_admin_sign_in={binding}"))
            .send()
            .await
            .unwrap();
        let set_cookie = answer
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        SignedIn {
            status: answer.status(),
            cookies: cookies(&answer),
            set_cookie,
            page: answer.text().await.unwrap(),
        }
    }

    fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        session: &SignedIn,
    ) -> reqwest::RequestBuilder {
        self.browser
            .request(method, format!("{}/admin/api/v1{path}", self.admin))
            .header(
                header::COOKIE,
                format!("{}={}", self.cookie, session.cookies[self.cookie]),
            )
    }

    async fn operator_actions(&self) -> Vec<(String, String)> {
        self.app
            .audit()
            .await
            .into_iter()
            .filter_map(|row| row.event.operator)
            .map(|op| (op.action, op.actor))
            .collect()
    }
}

#[tokio::test]
async fn groups_map_to_a_role_and_the_cookie_authenticates_the_admin_api() {
    let console = console().await;
    let session = console.sign_in("sam@corp.example", &["eng", "sre"]).await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.page);
    assert!(session.page.contains("operator"), "{}", session.page);
    let cookie = session
        .set_cookie
        .iter()
        .find(|c| c.starts_with("gatehouse_admin="))
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=3600"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }

    let (status, whoami) =
        crate::admin_api::answer(console.api(reqwest::Method::GET, "/whoami", &session)).await;
    assert_eq!(status, 200, "{whoami}");
    assert_eq!(whoami["role"], json!("operator"), "{whoami}");
    let (status, _) =
        crate::admin_api::answer(console.api(reqwest::Method::GET, "/admin-tokens", &session))
            .await;
    assert_eq!(status, 403, "an operator cannot list admin tokens");

    let admin = console
        .sign_in("ada@corp.example", &["platform-admins", "security"])
        .await;
    let (_, whoami) =
        crate::admin_api::answer(console.api(reqwest::Method::GET, "/whoami", &admin)).await;
    assert_eq!(whoami["role"], json!("admin"), "the highest mapped role");

    let actions = console.operator_actions().await;
    assert!(
        actions.contains(&(
            "admin_session.sign_in".into(),
            "oidc:corp:sub-sam@corp.example".into()
        )),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_person_without_a_mapped_group_is_refused_and_recorded() {
    let console = console().await;
    let refused = console.sign_in("eve@corp.example", &["eng"]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.page.contains("none of your groups"),
        "{}",
        refused.page
    );
    assert!(
        !refused.cookies.contains_key("gatehouse_admin"),
        "no session"
    );
    assert!(
        console
            .app
            .store
            .list_admin_tokens()
            .await
            .unwrap()
            .is_empty()
    );
    let actions = console.operator_actions().await;
    assert!(
        actions.contains(&(
            "admin_session.refuse".into(),
            "oidc:corp:sub-eve@corp.example".into()
        )),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_change_by_cookie_needs_the_csrf_token_and_a_bearer_token_does_not() {
    let console = console().await;
    let session = console.sign_in("sam@corp.example", &["sre"]).await;
    let body = json!({"name": "agent"});
    let (status, problem) = crate::admin_api::answer(
        console
            .api(reqwest::Method::POST, "/clients", &session)
            .json(&body),
    )
    .await;
    assert_eq!(
        (status, problem["code"].clone()),
        (403, json!("csrf_failed")),
        "{problem}"
    );
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("snapshots");
    settings.bind(|| insta::assert_json_snapshot!("admin_api_csrf_failed", problem));
    let (status, _) = crate::admin_api::answer(
        console
            .api(reqwest::Method::POST, "/clients", &session)
            .header("X-CSRF-Token", "forged")
            .json(&body),
    )
    .await;
    assert_eq!(status, 403, "a wrong token is refused too");
    assert!(console.app.store.list_clients().await.unwrap().is_empty());

    let csrf = session.cookies["gatehouse_admin_csrf"].clone();
    let (status, created) = crate::admin_api::answer(
        console
            .api(reqwest::Method::POST, "/clients", &session)
            .header("X-CSRF-Token", &csrf)
            .json(&body),
    )
    .await;
    assert_eq!(status, 201, "{created}");

    let token = session.cookies["gatehouse_admin"].clone();
    let (status, _) = crate::admin_api::answer(
        console
            .browser
            .post(format!("{}/admin/api/v1/clients", console.admin))
            .bearer_auth(token)
            .json(&json!({"name": "other"})),
    )
    .await;
    assert_eq!(status, 201, "a bearer token needs no CSRF token");
}

#[tokio::test]
async fn an_expired_session_is_refused() {
    let console = console().await;
    let session = console.sign_in("sam@corp.example", &["sre"]).await;
    let (status, _) =
        crate::admin_api::answer(console.api(reqwest::Method::GET, "/whoami", &session)).await;
    assert_eq!(status, 200);
    let expired = console
        .app
        .db()
        .execute(
            "UPDATE admin_tokens SET expires_at = $1 WHERE name = $2",
            &[Bind::Int(1), Bind::Text("session:sam@corp.example".into())],
        )
        .await;
    assert_eq!(expired, 1);
    let (status, problem) =
        crate::admin_api::answer(console.api(reqwest::Method::GET, "/whoami", &session)).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (401, json!("token_expired")),
        "{problem}"
    );
}

#[tokio::test]
async fn signing_out_ends_the_session_everywhere() {
    let console = console().await;
    let session = console.sign_in("sam@corp.example", &["sre"]).await;
    let sign_out = |csrf: Option<&str>| {
        let mut request = console
            .browser
            .post(format!("{}/admin/sign-out", console.admin))
            .header(
                header::COOKIE,
                format!("gatehouse_admin={}", session.cookies["gatehouse_admin"]),
            );
        if let Some(csrf) = csrf {
            request = request.header("X-CSRF-Token", csrf);
        }
        request.send()
    };
    assert_eq!(
        sign_out(None).await.unwrap().status(),
        StatusCode::FORBIDDEN,
        "CSRF token needed"
    );
    let (status, _) =
        crate::admin_api::answer(console.api(reqwest::Method::GET, "/whoami", &session)).await;
    assert_eq!(status, 200, "still signed in");

    let out = sign_out(Some(&session.cookies["gatehouse_admin_csrf"]))
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::OK);
    assert_eq!(
        cookies(&out)["gatehouse_admin"],
        "",
        "the cookie is cleared"
    );
    let (status, problem) =
        crate::admin_api::answer(console.api(reqwest::Method::GET, "/whoami", &session)).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (401, json!("token_not_recognised")),
        "{problem}"
    );
    let actions = console.operator_actions().await;
    assert!(
        actions
            .iter()
            .any(|(action, _)| action == "admin_session.sign_out"),
        "{actions:?}"
    );
}

#[tokio::test]
async fn forged_callbacks_are_refused_and_throttle_the_address() {
    let console = console().await;
    let limit = console.app.config.http.login_max_failures;
    for _ in 0..limit {
        let forged = console
            .browser
            .get(format!(
                "{}/admin/callback?code=x&state=forged",
                console.admin
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    }
    assert!(
        console
            .app
            .store
            .list_admin_tokens()
            .await
            .unwrap()
            .is_empty()
    );
    let throttled = console
        .browser
        .get(format!("{}/admin/sign-in", console.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(
        throttled.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "after {limit} failures the address is throttled"
    );
}

#[tokio::test]
async fn over_https_the_session_cookie_is_host_prefixed_and_secure() {
    let console = console_at(Some("https://gatehouse-admin.example")).await;
    let session = console.sign_in("sam@corp.example", &["sre"]).await;
    assert_eq!(session.status, StatusCode::OK, "{}", session.page);
    let cookie = session
        .set_cookie
        .iter()
        .find(|c| c.starts_with("__Host-gatehouse_admin="))
        .expect("a __Host- session cookie");
    for attribute in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    let (status, whoami) =
        crate::admin_api::answer(console.api(reqwest::Method::GET, "/whoami", &session)).await;
    assert_eq!(
        (status, whoami["role"].clone()),
        (200, json!("operator")),
        "{whoami}"
    );
    let unprefixed = console
        .browser
        .get(format!("{}/admin/api/v1/whoami", console.admin))
        .header(
            header::COOKIE,
            format!("gatehouse_admin={}", session.cookies[console.cookie]),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        unprefixed.status(),
        StatusCode::UNAUTHORIZED,
        "over https only the prefixed cookie counts"
    );
}
