//! `GET /admin/api/v1/state` and `POST /admin/api/v1/state/apply`: the round trip between
//! two deployments over HTTP, dry runs, secrets sent with the document, roles.

use super::{AdminApi, answer};
use gatehouse::admin::{NewConnection, NewServer, Operator};
use gatehouse_model::records::AdminRole;
use serde_json::{Value, json};

const CREDENTIAL: &str = "Bearer upstream-secret-value-1234";

async fn furnish(api: &AdminApi) {
    let admin = api.service();
    let by = Operator::cli("setup", None).unwrap();
    admin
        .add_server(
            &by,
            NewServer {
                name: "github".into(),
                url: "https://mcp.example.com/mcp".into(),
                credential: Some(format!("Authorization: {CREDENTIAL}")),
                ..NewServer::default()
            },
        )
        .await
        .unwrap();
    admin.create_client(&by, "agent", "").await.unwrap();
    admin
        .grant_connection(
            &by,
            NewConnection {
                client: "agent".into(),
                server: "github".into(),
                tools: "search_*".into(),
                ..NewConnection::default()
            },
        )
        .await
        .unwrap();
}

fn secrets() -> Value {
    json!({ "env:GATEHOUSE_SERVER_GITHUB_CREDENTIAL": CREDENTIAL })
}

#[tokio::test]
async fn a_deployment_exported_over_http_is_reproduced_by_applying_it_to_another() {
    let a = AdminApi::start().await;
    furnish(&a).await;
    let a_token = a.token(AdminRole::Admin).await;
    let (status, exported) = answer(a.get("/admin/api/v1/state", &a_token)).await;
    assert_eq!(status, 200, "{exported}");
    assert!(
        !exported.to_string().contains("upstream-secret-value"),
        "{exported}"
    );

    let b = AdminApi::start().await;
    let b_token = b.token(AdminRole::Admin).await;
    let body = json!({ "state": exported, "secrets": secrets() });
    let (status, dry) =
        answer(b.post("/admin/api/v1/state/apply?dry_run=true", &b_token, &body)).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(dry["dry_run"], json!(true));
    assert_eq!(dry["applied"], json!(0));
    assert_eq!(dry["changes"].as_array().unwrap().len(), 3, "{dry}");
    assert!(
        b.app.store.list_servers().await.unwrap().is_empty(),
        "a dry run changes nothing"
    );

    let (status, applied) = answer(b.post("/admin/api/v1/state/apply", &b_token, &body)).await;
    assert_eq!(status, 200, "{applied}");
    assert_eq!(applied["applied"], json!(3), "{applied}");
    assert_eq!(applied["changes"][0]["op"], json!("create"));
    assert_eq!(applied["changes"][0]["kind"], json!("server"));
    assert!(applied["generation"].as_i64().is_some());

    let (_, reproduced) = answer(b.get("/admin/api/v1/state", &b_token)).await;
    assert_eq!(reproduced, exported, "B exports what A exported");
    let (status, again) = answer(b.post("/admin/api/v1/state/apply", &b_token, &body)).await;
    assert_eq!(status, 200);
    assert_eq!(
        again["changes"],
        json!([]),
        "an unchanged document changes nothing"
    );
    assert_eq!(again["applied"], json!(0));
}

#[tokio::test]
async fn the_state_is_yaml_when_asked_and_admin_tokens_are_for_admins_only() {
    let api = AdminApi::start().await;
    furnish(&api).await;
    let admin = api.token(AdminRole::Admin).await;
    let auditor = api.token(AdminRole::Auditor).await;
    let response = api
        .get("/admin/api/v1/state", &admin)
        .header("Accept", "application/yaml")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/yaml");
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with("apiVersion: gatehouse/v1\nkind: State\n"),
        "{text}"
    );
    assert!(
        text.contains("admin_tokens:\n- name: admin-token\n  role: admin"),
        "{text}"
    );

    let (status, seen) = answer(api.get("/admin/api/v1/state", &auditor)).await;
    assert_eq!(status, 200);
    assert!(seen.get("admin_tokens").is_none(), "{seen}");
    assert!(seen["servers"]["github"].is_object());
}

#[tokio::test]
async fn applying_needs_the_admin_role_and_a_value_for_every_reference() {
    let a = AdminApi::start().await;
    furnish(&a).await;
    let admin = a.token(AdminRole::Admin).await;
    let operator = a.token(AdminRole::Operator).await;
    let (_, exported) = answer(a.get("/admin/api/v1/state", &admin)).await;

    let b = AdminApi::start().await;
    let b_admin = b.token(AdminRole::Admin).await;
    let b_operator = b.token(AdminRole::Operator).await;
    let body = json!({ "state": exported, "secrets": secrets() });
    let (status, problem) = answer(b.post("/admin/api/v1/state/apply", &b_operator, &body)).await;
    assert_eq!((status, problem["code"].clone()), (403, json!("forbidden")));
    let _ = operator;

    let without = json!({ "state": body["state"] });
    let (status, problem) = answer(b.post("/admin/api/v1/state/apply", &b_admin, &without)).await;
    assert_eq!(status, 422, "{problem}");
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path("../snapshots");
    settings.bind(|| insta::assert_json_snapshot!("admin_api_unresolved_reference", problem));
    assert_eq!(problem["code"], json!("unresolved_reference"));
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("server github, field credential.value"),
        "{detail}"
    );
    assert!(
        detail.contains("env:GATEHOUSE_SERVER_GITHUB_CREDENTIAL"),
        "{detail}"
    );
    assert!(
        b.app.store.list_servers().await.unwrap().is_empty(),
        "nothing was written"
    );

    let mut inline = body.clone();
    inline["state"]["servers"]["github"]["credential"]["value"] = json!(CREDENTIAL);
    let (status, problem) = answer(b.post("/admin/api/v1/state/apply", &b_admin, &inline)).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (400, json!("malformed")),
        "{problem}"
    );
    assert!(
        !problem.to_string().contains("upstream-secret-value"),
        "{problem}"
    );

    let mut invalid = body.clone();
    invalid["state"]["servers"]["github"]["url"] = json!("gopher://x");
    let (status, problem) = answer(b.post("/admin/api/v1/state/apply", &b_admin, &invalid)).await;
    assert_eq!(
        (status, problem["code"].clone()),
        (422, json!("invalid")),
        "{problem}"
    );
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("server github, field url")
    );
}

#[tokio::test]
async fn an_operator_token_cannot_create_a_program_through_a_state_document() {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let admin = api.token(AdminRole::Admin).await;
    let body = json!({
        "state": {
            "apiVersion": "gatehouse/v1",
            "kind": "State",
            "servers": {"local": {"stdio": {"command": "npx", "env": {"API_KEY": "env:KEY"}}}},
        },
        "secrets": {"env:KEY": "program-key-value"},
    });
    let (status, problem) = answer(api.post("/admin/api/v1/state/apply", &operator, &body)).await;
    assert_eq!((status, problem["code"].clone()), (403, json!("forbidden")));
    assert!(
        api.app.store.list_servers().await.unwrap().is_empty(),
        "nothing was written"
    );

    let (status, applied) = answer(api.post("/admin/api/v1/state/apply", &admin, &body)).await;
    assert_eq!(status, 200, "{applied}");
    let stored = api.app.store.get_server("local").await.unwrap();
    assert_eq!(stored.stdio.unwrap().env_names, ["API_KEY"]);
    assert!(
        !applied.to_string().contains("program-key-value"),
        "{applied}"
    );
}
