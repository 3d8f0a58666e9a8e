//! The served OpenAPI document is the committed one, and describes what the router serves.

use super::AdminApi;

const COMMITTED: &str = "../../docs/admin-api.openapi.json";

#[tokio::test]
async fn the_served_document_is_the_committed_one() {
    let api = AdminApi::start().await;
    let response = api
        .app
        .http
        .get(format!("{}/admin/api/openapi.json", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let served = response.text().await.unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED);
    if std::env::var_os("GATEHOUSE_UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &served).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        served == committed,
        "docs/admin-api.openapi.json differs from the document the code generates; rewrite it \
         with `GATEHOUSE_UPDATE_OPENAPI=1 cargo test -p gatehouse --test it \
         admin_api::openapi` and review the diff"
    );
    let doc: serde_json::Value = serde_json::from_str(&served).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
}
