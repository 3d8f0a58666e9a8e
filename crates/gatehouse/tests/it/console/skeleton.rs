//! The console's frame: sign-in, sessions, headers, CSRF and roles.

use super::Browser;
use gatehouse_model::records::AdminRole;

#[tokio::test]
async fn console_without_a_session_redirects_to_sign_in() {
    let mut browser = Browser::start().await;
    for path in ["/console", "/console/servers", "/console/audit"] {
        let page = browser.get(path).await;
        assert_eq!(page.status, 303, "{path}: {}", page.body);
        assert_eq!(page.location(), "/console/sign-in", "{path}");
    }
    let page = browser.post("/console/clients", &[("name", "x")]).await;
    assert_eq!(page.status, 303);
    assert!(
        browser
            .api
            .app
            .store
            .list_clients()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn console_sign_in_with_an_admin_token_opens_a_session_not_holding_the_token() {
    let mut browser = Browser::start().await;
    let token = browser.api.token(AdminRole::Operator).await;
    let answer = browser.sign_in_with(&token).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    assert_eq!(answer.location(), "/console");
    let session = browser.cookie("gatehouse_admin").unwrap().to_owned();
    assert_ne!(session, token, "the pasted token is exchanged, not kept");
    let set_cookie: Vec<&str> = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert!(
        set_cookie.iter().any(|c| c.starts_with("gatehouse_admin=")
            && c.contains("HttpOnly")
            && c.contains("SameSite=Strict")),
        "{set_cookie:?}"
    );
    let overview = browser.get("/console").await;
    assert_eq!(overview.status, 200);
    overview.assert_contains("Signed in as <strong>operator-token</strong> (operator)");

    // The session is an admin token of the same role, recorded as opened by the pasted one.
    let tokens = browser.api.app.store.list_admin_tokens().await.unwrap();
    let opened = tokens
        .iter()
        .find(|t| t.name == "session:operator-token")
        .expect("a session token");
    assert_eq!(opened.role, AdminRole::Operator);
    assert!(opened.expires_at.is_some(), "a session expires");

    // Signing out revokes it: the cookie no longer opens a page.
    let csrf = overview.csrf();
    let out = browser.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert!(browser.cookie("gatehouse_admin").is_none());
    browser.set_cookies(&[("gatehouse_admin", &session)]);
    assert_eq!(browser.get("/console").await.status, 303);
}

#[tokio::test]
async fn console_sign_in_refuses_a_wrong_token_and_a_form_without_its_binding() {
    let mut browser = Browser::start().await;
    let refused = browser
        .sign_in_with("gth_adm_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
        .await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    refused.assert_contains("not valid");
    assert!(browser.cookie("gatehouse_admin").is_none());

    // A form posted from elsewhere carries no binding cookie: refused before the token.
    let token = browser.api.token(AdminRole::Admin).await;
    let form = browser.get("/console/sign-in").await;
    browser.set_cookies(&[]);
    let forged = browser
        .post(
            "/console/sign-in",
            &[("csrf", &form.csrf()), ("token", &token)],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert!(browser.cookie("gatehouse_admin").is_none());
}

#[tokio::test]
async fn console_responses_carry_strict_security_headers() {
    let mut browser = Browser::start().await;
    browser.sign_in(AdminRole::Auditor).await;
    for path in [
        "/console/sign-in",
        "/console",
        "/console/servers",
        "/console/assets/console.css",
        "/console/no-such-page",
    ] {
        let page = browser.get(path).await;
        let csp = page
            .headers
            .get("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"))
            .to_str()
            .unwrap();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "form-action 'self'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(page.headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(page.headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(page.headers["referrer-policy"], "no-referrer", "{path}");
    }
    // No inline script or style on a page: everything comes from /console/assets.
    let page = browser.get("/console").await;
    assert!(!page.body.contains("<script>"), "{}", page.body);
    assert!(!page.body.contains("<style"), "{}", page.body);
    assert!(!page.body.contains(" style="), "{}", page.body);
    let script = browser.get("/console/assets/console.js").await;
    assert_eq!(script.status, 200);
    assert!(
        script.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
}

#[tokio::test]
async fn console_change_without_the_forms_csrf_token_is_refused() {
    let mut browser = Browser::start().await;
    let csrf = browser.sign_in(AdminRole::Admin).await;
    let refused = browser.post("/console/clients", &[("name", "shop")]).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let wrong = browser
        .post("/console/clients", &[("name", "shop"), ("csrf", "forged")])
        .await;
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    assert!(
        browser
            .api
            .app
            .store
            .list_clients()
            .await
            .unwrap()
            .is_empty()
    );
    let made = browser
        .post("/console/clients", &[("name", "shop"), ("csrf", &csrf)])
        .await;
    assert_eq!(made.status, 303, "{}", made.body);
    assert_eq!(browser.api.app.store.list_clients().await.unwrap().len(), 1);
}

#[tokio::test]
async fn console_auditor_cannot_post_a_change_and_sees_no_change_forms() {
    let mut browser = Browser::start().await;
    let csrf = browser.sign_in(AdminRole::Auditor).await;
    let clients = browser.get("/console/clients").await;
    assert_eq!(clients.status, 200);
    assert!(!clients.body.contains("Create client"), "{}", clients.body);
    let refused = browser
        .post("/console/clients", &[("name", "shop"), ("csrf", &csrf)])
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    refused.assert_contains("operator");
    assert!(
        browser
            .api
            .app
            .store
            .list_clients()
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn console_cookies_are_host_prefixed_and_secure_when_the_admin_url_is_https() {
    let api = crate::admin_api::AdminApi::start_with(|config| {
        config.admin.url = Some("https://gatehouse-admin.example.com".into());
    })
    .await;
    let mut browser = Browser::with(api);
    let token = browser.api.token(AdminRole::Auditor).await;
    let answer = browser.sign_in_with(&token).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    let session = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.contains("gatehouse_admin="))
        .expect("a session cookie");
    assert!(session.starts_with("__Host-gatehouse_admin="), "{session}");
    assert!(session.contains("; Secure"), "{session}");
    assert!(session.contains("Path=/;"), "{session}");
    // The browser sends it back under that name, and it opens the console.
    let value = browser.cookie("__Host-gatehouse_admin").unwrap().to_owned();
    browser.set_cookies(&[("__Host-gatehouse_admin", &value)]);
    assert_eq!(browser.get("/console").await.status, 200);
}
