//! RFC 7591 dynamic client registration: off by default, open, or gated by an initial access
//! token; what a registered client may ask for; the flow with a registered client.

use gatehouse_model::registration_mode::RegistrationMode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{
    helpers::{TestApp, call},
    oauth::{base, gateway, header, json_response, jwt_part},
};

use crate::oauth_browser::*;

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
    let Flow { app, .. } = flow_setup_with(|c| c.oauth.registration = RegistrationMode::Open).await;
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
    let Flow { app, .. } = flow_setup_with(|c| c.oauth.registration = RegistrationMode::Open).await;
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
        (
            "a web client (SEP-837) with a private-use scheme",
            json!({ "redirect_uris": ["com.example.app:/cb"], "application_type": "web", "token_endpoint_auth_method": "none" }).to_string(),
            "invalid_redirect_uri",
        ),
        (
            "an unknown application_type",
            json!({ "redirect_uris": [REDIRECT], "application_type": "tv" }).to_string(),
            "invalid_client_metadata",
        ),
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
        c.oauth.registration = RegistrationMode::Token;
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
