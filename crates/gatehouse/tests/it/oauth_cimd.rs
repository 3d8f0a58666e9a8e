//! Client ID Metadata Documents: an `https://` client id is fetched (fenced against SSRF),
//! checked, and recorded as a public authorization-code client.

use axum::{Router, routing::get};

use crate::{helpers::TestApp, tls::tls_server};

const REDIRECT: &str = "http://127.0.0.1:9/cb";

/// A document host on https://localhost; `client_id` in the document is `own` unless given.
pub async fn document_host(claimed: Option<&'static str>) -> (String, String) {
    let port_cell = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let cell = port_cell.clone();
    let app = Router::new().route(
        "/client.json",
        get(move || {
            let cell = cell.clone();
            async move {
                let own = format!(
                    "https://localhost:{}/client.json",
                    cell.get().copied().unwrap_or(0)
                );
                (
                    [("cache-control", "max-age=300")],
                    axum::Json(serde_json::json!({
                        "client_id": claimed.map(str::to_owned).unwrap_or(own),
                        "client_name": "Notebook Agent",
                        "redirect_uris": [REDIRECT],
                    })),
                )
            }
        }),
    );
    let (port, cert) = tls_server(app).await;
    port_cell.set(port).unwrap();
    (format!("https://localhost:{port}/client.json"), cert)
}

pub fn authorize_url(app: &TestApp, client_id: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("code_challenge", &"a".repeat(43))
        .append_pair("code_challenge_method", "S256")
        .append_pair("state", "s1")
        .append_pair("resource", &app.url("/demo/mcp"))
        .finish();
    app.url(&format!("/oauth/authorize?{query}"))
}

async fn app_trusting(cert: &str, allow_private: bool) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, cert).unwrap();
    let app = TestApp::start_with(|c| {
        c.gateway.upstream_ca_files = vec![ca];
        c.oauth.client_metadata_allow_private = allow_private;
    })
    .await;
    app.add_server("demo", "http://127.0.0.1:9/mcp").await;
    (app, dir)
}

pub fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_metadata_document_registers_its_client() {
    let (client_id, cert) = document_host(None).await;
    let (app, _ca) = app_trusting(&cert, true).await;
    let metadata: serde_json::Value =
        reqwest::get(app.url("/.well-known/oauth-authorization-server"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    assert_eq!(metadata["client_id_metadata_document_supported"], true);

    let response = no_redirects()
        .get(authorize_url(&app, &client_id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/oauth/login?req="), "{location}");
    let client = app.store.get_client(&client_id).await.unwrap();
    let oauth = client.oauth.unwrap();
    assert_eq!(oauth.origin, "cimd");
    assert_eq!(oauth.token_endpoint_auth_method, "none");
    assert_eq!(oauth.redirect_uris, [REDIRECT]);
    assert_eq!(oauth.client_name.as_deref(), Some("Notebook Agent"));
    // The login page names the client from its document.
    let login = no_redirects().get(app.url(location)).send().await.unwrap();
    assert!(login.text().await.unwrap().contains("Notebook Agent"));
}

#[tokio::test]
async fn private_hosts_are_refused_by_default() {
    let (client_id, cert) = document_host(None).await;
    let (app, _ca) = app_trusting(&cert, false).await;
    let response = no_redirects()
        .get(authorize_url(&app, &client_id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    let page = response.text().await.unwrap();
    assert!(page.contains("public address"), "{page}");
    assert!(app.store.get_client(&client_id).await.is_err());
}

#[tokio::test]
async fn a_document_claiming_another_id_is_refused() {
    let (client_id, cert) = document_host(Some("https://elsewhere.example/client.json")).await;
    let (app, _ca) = app_trusting(&cert, true).await;
    let response = no_redirects()
        .get(authorize_url(&app, &client_id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("location").is_none());
    assert!(response.text().await.unwrap().contains("not its own URL"));
    assert!(app.store.get_client(&client_id).await.is_err());
}
