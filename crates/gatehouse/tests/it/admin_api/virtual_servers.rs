//! Virtual servers through the API (ADR 0006 §4): members instead of an upstream, checked
//! when given, and a member cannot be removed from under the server that names it.

use super::{AdminApi, answer};
use gatehouse_model::records::AdminRole;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_virtual_server_is_created_with_members_shown_and_changed() {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    for name in ["files", "search"] {
        let (status, body) = answer(api.post(
            "/admin/api/v1/servers",
            &operator,
            &json!({"name": name, "url": format!("http://127.0.0.1:1/{name}")}),
        ))
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, created) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "tools", "members": ["search", "files"]}),
    ))
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["members"], json!(["search", "files"]));
    assert_eq!(created["url"], "virtual://tools");

    let (status, shown) = answer(api.get("/admin/api/v1/servers/tools", &operator)).await;
    assert_eq!(status, 200);
    assert_eq!(shown["members"], json!(["search", "files"]));

    let (status, changed) = answer(
        api.request(
            Method::PATCH,
            "/admin/api/v1/servers/tools",
            Some(&operator),
        )
        .json(&json!({"members": ["files"]})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["members"], json!(["files"]));
    // An HTTP server's view has no members at all.
    let (_, files) = answer(api.get("/admin/api/v1/servers/files", &operator)).await;
    assert!(files.get("members").is_none(), "{files}");
}

#[tokio::test]
async fn members_must_exist_must_not_nest_and_cannot_be_removed_while_named() {
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    let (status, _) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "files", "url": "http://127.0.0.1:1/mcp"}),
    ))
    .await;
    assert_eq!(status, 201);
    for (body, says) in [
        (
            json!({"name": "tools", "members": ["files", "nope"]}),
            "\"nope\" is not a server",
        ),
        (
            json!({"name": "tools", "members": ["files", "files"]}),
            "named twice",
        ),
        (
            json!({"name": "tools", "members": ["files"], "url": "http://127.0.0.1:1/mcp"}),
            "not a url",
        ),
    ] {
        let (status, refused) = answer(api.post("/admin/api/v1/servers", &operator, &body)).await;
        assert_eq!(status, 422, "{body}: {refused}");
        assert!(
            refused["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{body}: {refused}"
        );
    }
    let (status, _) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "tools", "members": ["files"]}),
    ))
    .await;
    assert_eq!(status, 201);
    let (status, refused) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "outer", "members": ["tools"]}),
    ))
    .await;
    assert_eq!(status, 422);
    assert!(
        refused["detail"].as_str().unwrap().contains("do not nest"),
        "{refused}"
    );
    let (status, refused) = answer(
        api.request(
            Method::PATCH,
            "/admin/api/v1/servers/files",
            Some(&operator),
        )
        .json(&json!({"members": ["tools"]})),
    )
    .await;
    assert_eq!(status, 422, "{refused}");

    let (status, refused) = answer(api.request(
        Method::DELETE,
        "/admin/api/v1/servers/files",
        Some(&operator),
    ))
    .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("member of virtual server \"tools\""),
        "{refused}"
    );
    assert!(api.app.store.get_server("files").await.is_ok(), "kept");
    // Once no virtual server names it, it goes.
    let (status, _) = answer(api.request(
        Method::DELETE,
        "/admin/api/v1/servers/tools",
        Some(&operator),
    ))
    .await;
    assert_eq!(status, 204);
    let (status, _) = answer(api.request(
        Method::DELETE,
        "/admin/api/v1/servers/files",
        Some(&operator),
    ))
    .await;
    assert_eq!(status, 204);
}

/// test-connection of a virtual server probes each member: the tools of those that answer
/// under the names the gateway lists them by, and each member's reachability.
#[tokio::test]
async fn test_connection_of_a_virtual_server_probes_each_member() {
    let upstream = crate::scripted_upstream::Upstream::start().await;
    let api = AdminApi::start().await;
    let operator = api.token(AdminRole::Operator).await;
    for (name, url) in [
        ("files", upstream.url()),
        ("down", "http://127.0.0.1:1/mcp".to_owned()),
    ] {
        let (status, body) = answer(api.post(
            "/admin/api/v1/servers",
            &operator,
            &json!({"name": name, "url": url}),
        ))
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = answer(api.post(
        "/admin/api/v1/servers",
        &operator,
        &json!({"name": "tools", "members": ["files", "down"]}),
    ))
    .await;
    assert_eq!(status, 201, "{body}");

    let (status, tested) = answer(api.post(
        "/admin/api/v1/servers/tools/test-connection",
        &operator,
        &json!({}),
    ))
    .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["reachable"], true, "one member answered: {tested}");
    let names: Vec<&str> = tested["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"files__echo"), "{names:?}");
    assert!(names.iter().all(|n| n.starts_with("files__")), "{names:?}");
    let members = tested["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{tested}");
    assert_eq!(members[0]["server"], "files");
    assert_eq!(members[0]["reachable"], true);
    assert!(members[0]["error"].is_null());
    assert_eq!(members[1]["server"], "down");
    assert_eq!(members[1]["reachable"], false);
    assert!(members[1]["error"].is_string(), "{tested}");
    assert_eq!(tested["error"], "members not reachable: down");
    assert!(
        api.app.store.list_tool_pins().await.unwrap().is_empty(),
        "nothing was pinned"
    );
}
