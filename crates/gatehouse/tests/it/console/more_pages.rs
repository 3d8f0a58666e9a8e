//! The console's other pages: the connections matrix and explain, users and groups, signing
//! keys.

use super::Browser;
use gatehouse_model::records::AdminRole;

#[tokio::test]
async fn console_connections_show_the_matrix_and_explain_names_the_deciding_rule() {
    let mut browser = Browser::start().await;
    let app = &browser.api.app;
    app.add_server("demo", "http://127.0.0.1:9/mcp").await;
    app.add_server("other", "http://127.0.0.1:9/mcp").await;
    gatehouse::admin::create_client(&*app.store, "shop", "")
        .await
        .unwrap();
    app.grant("shop", "demo", "echo,search_*").await;
    let csrf = browser.sign_in(AdminRole::Auditor).await;
    let page = browser.get("/console/connections").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains(r#"<a href="/console/clients/shop">shop</a></th><td><a href="/console/connections/shop/demo" aria-label="shop on demo: echo, search_*"><code>echo, search_*</code></a></td><td></td>"#);

    let allowed = browser
        .post(
            "/console/connections/explain",
            &[
                ("csrf", &csrf),
                ("client", "shop"),
                ("server", "demo"),
                ("tool", "search_docs"),
            ],
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.body);
    allowed.assert_contains(r#"Decision: <span class="badge allow">allow</span>"#);
    let denied = browser
        .post(
            "/console/connections/explain",
            &[
                ("csrf", &csrf),
                ("client", "shop"),
                ("server", "demo"),
                ("tool", "delete_all"),
            ],
        )
        .await;
    assert_eq!(denied.status, 200, "{}", denied.body);
    denied.assert_contains(r#"Decision: <span class="badge deny">deny</span>"#);
    denied.assert_contains("Decided by <code>");
    // What was asked stays in the form.
    denied.assert_contains(r#"value="delete_all""#);

    let bad = browser
        .post(
            "/console/connections/explain",
            &[
                ("csrf", &csrf),
                ("client", "shop"),
                ("server", "demo"),
                ("tool", "echo"),
                ("arguments", "{not json"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    bad.assert_contains("arguments: not JSON");
}

#[tokio::test]
async fn console_signing_keys_are_listed_and_only_an_admin_rotates_them() {
    let mut browser = Browser::start().await;
    let before = browser
        .api
        .app
        .store
        .list_signing_keys()
        .await
        .unwrap()
        .len();
    let csrf = browser.sign_in(AdminRole::Auditor).await;
    let page = browser.get("/console/signing-keys").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        !page.body.contains("Rotate the signing key"),
        "{}",
        page.body
    );
    let refused = browser
        .post(
            "/console/signing-keys/rotate",
            &[("csrf", &csrf), ("alg", "ES256")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        browser
            .api
            .app
            .store
            .list_signing_keys()
            .await
            .unwrap()
            .len(),
        before
    );

    let mut admin = Browser::start().await;
    let csrf = admin.sign_in(AdminRole::Admin).await;
    let before = admin.api.app.store.list_signing_keys().await.unwrap().len();
    let rotated = admin
        .post(
            "/console/signing-keys/rotate",
            &[("csrf", &csrf), ("alg", "ES256")],
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    rotated.assert_contains("Rotated: key ");
    let keys = admin.api.app.store.list_signing_keys().await.unwrap();
    assert_eq!(keys.len(), before + 1);
    let newest = keys.iter().max_by_key(|k| k.created_at).unwrap();
    rotated.assert_contains(&newest.kid);
}

#[tokio::test]
async fn console_users_page_lists_users_and_their_groups() {
    let mut browser = Browser::start().await;
    let by = gatehouse::admin::Operator::cli("setup", None).unwrap();
    browser
        .api
        .service()
        .create_user(
            &by,
            "alice",
            "Alice Liddell",
            Some("correct horse battery staple"),
            vec!["finance".into()],
        )
        .await
        .unwrap();
    browser.sign_in(AdminRole::Auditor).await;
    let page = browser.get("/console/users").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains(
        "<td><a href=\"/console/users/alice\">alice</a></td><td>Alice Liddell</td><td>with a password</td><td>finance</td>",
    );
}

#[tokio::test]
async fn console_settings_show_the_configuration_with_secrets_masked() {
    let api = crate::admin_api::AdminApi::start_with(|config| {
        config.admin.url = Some("https://ops:hunter2@admin.example.com/?token=abc".into());
    })
    .await;
    let mut browser = Browser::with(api);
    browser.sign_in(AdminRole::Auditor).await;
    let page = browser.get("/console/settings").await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains("<code>admin_listen</code>");
    page.assert_contains("<code>https://(masked)@admin.example.com/?(masked)</code>");
    assert!(!page.body.contains("hunter2"), "{}", page.body);
    assert!(!page.body.contains("abc"), "{}", page.body);
}

#[tokio::test]
async fn console_audit_verify_reports_an_intact_trail_and_names_an_altered_row() {
    let upstream = crate::scripted_upstream::Upstream::start().await;
    let mut browser = Browser::start().await;
    let app = &browser.api.app;
    app.add_server("demo", &upstream.url()).await;
    let key = app.client_with_key("shop", "demo", "echo").await;
    for _ in 0..3 {
        let answer = app
            .post("demo", Some(&key), &crate::helpers::call("echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let csrf = browser.sign_in(AdminRole::Auditor).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while browser.api.app.audit().await.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the calls were never recorded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let intact = browser
        .post("/console/audit/verify", &[("csrf", &csrf)])
        .await;
    assert_eq!(intact.status, 200, "{}", intact.body);
    intact.assert_contains("The audit trail is intact");

    let seq = browser.api.app.audit().await[1].seq;
    browser
        .api
        .app
        .db()
        .execute(
            &format!("UPDATE audit_events SET decision = 'deny' WHERE seq = {seq}"),
            &[],
        )
        .await;
    let altered = browser
        .post("/console/audit/verify", &[("csrf", &csrf)])
        .await;
    assert_eq!(altered.status, 200, "{}", altered.body);
    altered.assert_contains("The audit trail has been altered");
    altered.assert_contains(&seq.to_string());
}

#[tokio::test]
async fn console_a_rate_limit_added_in_the_console_refuses_with_429_and_the_audit_names_it() {
    let upstream = crate::scripted_upstream::Upstream::start().await;
    let mut browser = Browser::start().await;
    browser.api.app.add_server("demo", &upstream.url()).await;
    let key = browser
        .api
        .app
        .client_with_key("shop", "demo", "echo")
        .await;
    let csrf = browser.sign_in(AdminRole::Operator).await;
    let bad = browser
        .post(
            "/console/policies",
            &[
                ("csrf", &csrf),
                ("id", "burst"),
                ("kind", "rate_limit"),
                ("client", "shop"),
                ("spec", "{requests: 1"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422, "{}", bad.body);
    bad.assert_contains("spec: not JSON");
    bad.assert_contains(r#"value="burst""#);
    let added = browser
        .post(
            "/console/policies",
            &[
                ("csrf", &csrf),
                ("id", "burst"),
                ("kind", "rate_limit"),
                ("client", "shop"),
                ("spec", r#"{"requests": 1, "period": "1h"}"#),
            ],
        )
        .await;
    assert_eq!(added.status, 200, "{}", added.body);
    added.assert_contains("Added burst");
    browser.api.app.reload().await;
    let call = || {
        browser
            .api
            .app
            .post("demo", Some(&key), &crate::helpers::call("echo"))
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    assert_eq!(call().await.unwrap().status(), 429);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let audit = browser
            .get("/console/audit?client=shop&decision=deny")
            .await;
        if audit.body.contains("by <code>policy:burst</code>")
            && audit.body.contains("<dd>429</dd>")
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no event by the rate limit:\n{}",
            audit.body
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn console_a_client_is_registered_for_oauth_with_its_secret_shown_once_then_rotated_and_revoked()
 {
    let mut browser = Browser::start().await;
    gatehouse::admin::create_client(&*browser.api.app.store, "shop", "")
        .await
        .unwrap();
    let csrf = browser.sign_in(AdminRole::Admin).await;
    let page = browser.get("/console/clients/shop").await;
    page.assert_contains("Not registered with the authorization server.");
    let registered = browser
        .post("/console/clients/shop/oauth", &[("csrf", &csrf)])
        .await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    let secret_re = regex::Regex::new(r#"id="secret">([^<]+)<"#).unwrap();
    let first = secret_re
        .captures(&registered.body)
        .expect("the secret on the page")[1]
        .to_owned();
    assert!(first.len() >= 20, "{first}");
    let again = browser.get("/console/clients/shop").await;
    assert!(!again.body.contains(&first), "shown once");

    let rotated = browser
        .post(
            "/console/clients/shop/secrets/rotate",
            &[("csrf", &csrf), ("overlap_seconds", "60")],
        )
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let second = secret_re.captures(&rotated.body).expect("the new secret")[1].to_owned();
    assert_ne!(first, second);
    let secrets = browser
        .api
        .app
        .store
        .list_client_secrets("shop")
        .await
        .unwrap();
    assert_eq!(secrets.len(), 2);
    let old = secrets
        .iter()
        .find(|s| s.expires_at.is_some())
        .expect("the old one expires");
    let revoked = browser
        .post(
            &format!("/console/client-secrets/{}/revoke", old.id),
            &[("csrf", &csrf), ("client", "shop")],
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    revoked.assert_contains("Secret revoked.");
    let secrets = browser
        .api
        .app
        .store
        .list_client_secrets("shop")
        .await
        .unwrap();
    assert!(
        secrets
            .iter()
            .find(|s| s.id == old.id)
            .unwrap()
            .revoked_at
            .is_some()
    );
}
