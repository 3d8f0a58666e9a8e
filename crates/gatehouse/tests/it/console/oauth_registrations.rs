//! OAuth registrations in the console beyond client credentials: an authorization-code client
//! with redirect URIs (public, PKCE), a private_key_jwt client with its JWKS; what the API
//! refuses is shown beside the field it is about, and nothing is registered.

use super::Browser;
use gatehouse::tokens::keys::SigningKey;
use gatehouse_model::algorithm::Algorithm;
use gatehouse_model::records::{AdminRole, OAuthClientMetadata};
use serde_json::json;

async fn registration(browser: &Browser, client: &str) -> Option<OAuthClientMetadata> {
    browser
        .api
        .app
        .store
        .get_client(client)
        .await
        .unwrap()
        .oauth
}

#[tokio::test]
async fn console_registers_authorization_code_and_private_key_jwt_clients_naming_refused_fields() {
    let mut browser = Browser::start().await;
    for name in ["app", "signer"] {
        gatehouse::admin::create_client(&*browser.api.app.store, name, "")
            .await
            .unwrap();
    }
    let csrf = browser.sign_in(AdminRole::Admin).await;
    let page = browser.get("/console/clients/app").await;
    page.assert_contains(r#"<option value="private_key_jwt">"#);
    page.assert_contains(r#"name="redirect_uris""#);

    // Authorization code without a redirect URI: refused beside the redirect URIs.
    let refused = browser
        .post(
            "/console/clients/app/oauth",
            &[
                ("csrf", &csrf),
                ("grant_types", "authorization_code"),
                ("auth_method", "none"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    refused
        .assert_contains(r#"<p class="field-error" id="oauth-redirect_uris-error" role="alert">"#);
    refused.assert_contains(r#"<option value="none" selected>"#);
    assert!(registration(&browser, "app").await.is_none());

    let registered = browser
        .post(
            "/console/clients/app/oauth",
            &[
                ("csrf", &csrf),
                ("grant_types", "authorization_code"),
                ("grant_types", "refresh_token"),
                ("auth_method", "none"),
                ("redirect_uris", "https://app.example.com/callback\n"),
            ],
        )
        .await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    registered.assert_contains("Registered: client id app, authenticating with none (no secret).");
    let app = registration(&browser, "app").await.unwrap();
    assert_eq!(app.token_endpoint_auth_method, "none");
    assert_eq!(app.grant_types, ["authorization_code", "refresh_token"]);
    assert_eq!(app.redirect_uris, ["https://app.example.com/callback"]);

    // private_key_jwt: keys that are not JSON, then no keys, are refused beside the JWKS.
    let jwks_field = |jwks: &str| {
        vec![
            ("csrf", csrf.clone()),
            ("grant_types", "client_credentials".to_owned()),
            ("auth_method", "private_key_jwt".to_owned()),
            ("jwks", jwks.to_owned()),
        ]
    };
    for jwks in ["{not json", ""] {
        let pairs = jwks_field(jwks);
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let refused = browser.post("/console/clients/signer/oauth", &pairs).await;
        assert_eq!(refused.status, 422, "{jwks:?}: {}", refused.body);
        refused.assert_contains(r#"<p class="field-error" id="oauth-jwks-error" role="alert">"#);
        assert!(registration(&browser, "signer").await.is_none());
    }
    let key = SigningKey::generate(Algorithm::ES256).unwrap();
    let jwks = json!({ "keys": [key.public_jwk()] }).to_string();
    let pairs = jwks_field(&jwks);
    let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let registered = browser.post("/console/clients/signer/oauth", &pairs).await;
    assert_eq!(registered.status, 200, "{}", registered.body);
    registered.assert_contains("authenticating with private_key_jwt (no secret)");
    let signer = registration(&browser, "signer").await.unwrap();
    assert_eq!(signer.token_endpoint_auth_method, "private_key_jwt");
    assert_eq!(signer.jwks.unwrap()["keys"][0], key.public_jwk());
}
