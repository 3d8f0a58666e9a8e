//! Registration as the MCP authorization specification ranks it: metadata documents first,
//! under a domain trust policy, with a warning when a self-registered client answers on this
//! machine; dynamic registration off unless asked for; no `offline_access` at the resource.

use serde_json::json;

use crate::{
    helpers::{TestApp, call},
    oauth::{get_json, header},
    oauth_browser::{Authorize, Browser, Flow, PASSWORD, consent_page, flow_setup, pkce},
    oauth_cimd::{authorize_url, document_host, no_redirects},
};

async fn app_trusting_hosts(cert: &str, hosts: &[&str]) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert).unwrap();
    let app = TestApp::start_with(|c| {
        c.gateway.upstream_ca_files = vec![ca];
        c.oauth.client_metadata_allow_private = true;
        c.oauth.client_metadata_hosts = hosts.iter().map(|h| (*h).to_owned()).collect();
    })
    .await;
    app.add_server("demo", "http://127.0.0.1:9/mcp").await;
    (app, dir)
}

#[tokio::test]
async fn metadata_documents_are_fetched_only_from_trusted_hosts() {
    let (client_id, cert) = document_host(None).await;
    let (app, _ca) = app_trusting_hosts(&cert, &["*.example.com"]).await;
    let response = no_redirects()
        .get(authorize_url(&app, &client_id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    let page = response.text().await.unwrap();
    assert!(page.contains("not trusted"), "{page}");
    assert!(app.store.get_client(&client_id).await.is_err());

    let (app, _ca) = app_trusting_hosts(&cert, &["localhost"]).await;
    let response = no_redirects()
        .get(authorize_url(&app, &client_id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "a trusted host's client proceeds");
    assert!(app.store.get_client(&client_id).await.is_ok());
}

#[tokio::test]
async fn a_bad_host_pattern_is_refused_at_startup() {
    let mut config = gatehouse::config::Config::default();
    config.oauth.client_metadata_hosts = vec!["*.com".into()];
    let err = config.validate().unwrap_err().to_string();
    assert!(err.contains("client_metadata_hosts"), "{err}");
}

#[tokio::test]
async fn consent_warns_when_a_self_registered_client_answers_on_this_machine() {
    let Flow { app, .. } = flow_setup().await;
    let mut browser = Browser::new(&app);
    let request = Authorize::new(&app, "spa", &pkce());
    let consent = consent_page(&mut browser, &request.url(&app), "alice", PASSWORD).await;
    assert!(
        !consent.body.contains("Warning:"),
        "an operator-registered client is not warned about: {}",
        consent.body
    );
    let mut metadata = app.store.get_client("spa").await.unwrap().oauth.unwrap();
    for origin in ["cimd", "dcr"] {
        metadata.origin = origin.into();
        app.store
            .set_client_oauth("spa", Some(&metadata))
            .await
            .unwrap();
        app.reload().await;
        let again = Authorize::new(&app, "spa", &pkce());
        let consent = browser.get(&again.url(&app)).await;
        assert_eq!(consent.status, 200, "{}", consent.body);
        assert!(
            consent.body.contains("Warning:") && consent.body.contains("your own computer"),
            "{origin}: {}",
            consent.body
        );
    }
}

#[tokio::test]
async fn offline_access_is_never_advertised_or_asked_for_by_the_resource() {
    let upstream = crate::scripted_upstream::Upstream::start().await;
    let app = TestApp::start().await;
    app.add_server("demo", &upstream.url()).await;
    let (status, _, prm) = get_json(
        &app,
        &app.url("/.well-known/oauth-protected-resource/demo/mcp"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !prm["scopes_supported"]
            .to_string()
            .contains("offline_access"),
        "{prm}"
    );
    assert_eq!(
        prm["scopes_supported"],
        json!(["mcp:demo", "mcp:demo:read"])
    );
    for credential in [None, Some("not-a-key")] {
        let response = app
            .post("demo", credential, &call("echo"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let challenge = header(response.headers(), "www-authenticate");
        assert!(challenge.contains("scope=\"mcp:demo\""), "{challenge}");
        assert!(!challenge.contains("offline_access"), "{challenge}");
    }
}

#[tokio::test]
async fn dynamic_registration_is_off_unless_configured() {
    let config = gatehouse::config::Config::default();
    assert_eq!(
        config.oauth.registration,
        gatehouse_model::registration_mode::RegistrationMode::Off
    );
    assert!(
        config.oauth.client_metadata_documents,
        "metadata documents are on"
    );
}
