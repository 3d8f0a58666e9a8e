//! Users and groups in the console: a user created (a refusal beside the field it names),
//! edited (display name, groups) and disabled; a group granted a server and revoked.

use super::Browser;
use gatehouse_model::records::{AdminRole, UserRecord};

async fn user(browser: &Browser, username: &str) -> Option<UserRecord> {
    let users = browser.api.app.store.list_users().await.unwrap();
    users.into_iter().find(|u| u.username == username)
}

#[tokio::test]
async fn console_users_are_created_edited_and_disabled_and_groups_granted_servers() {
    let mut browser = Browser::start().await;
    browser
        .api
        .app
        .add_server("demo", "http://127.0.0.1:9/mcp")
        .await;
    let csrf = browser.sign_in(AdminRole::Operator).await;
    let page = browser.get("/console/users").await;
    page.assert_contains("Create a user");
    assert!(
        !page.body.contains(r#"name="password""#),
        "setting a password is for admins: {}",
        page.body
    );

    let refused = browser
        .post(
            "/console/users",
            &[
                ("csrf", &csrf),
                ("username", "Not A Name"),
                ("display_name", "Ann"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    refused.assert_contains(r#"aria-invalid="true" aria-describedby="user-username-error""#);
    refused.assert_contains(r#"<p class="field-error" id="user-username-error" role="alert">"#);
    refused.assert_contains(r#"value="Ann""#);
    assert!(browser.api.app.store.list_users().await.unwrap().is_empty());

    let created = browser
        .post(
            "/console/users",
            &[
                ("csrf", &csrf),
                ("username", "ann"),
                ("display_name", "Ann"),
                ("groups", "eng, ops"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    created.assert_contains("Created ann.");
    created.assert_contains(r#"<a href="/console/users/ann">ann</a>"#);
    assert_eq!(user(&browser, "ann").await.unwrap().groups, ["eng", "ops"]);

    // Edited on the user's page: display name and groups; a bad group is named beside it.
    let detail = browser.get("/console/users/ann").await;
    assert_eq!(detail.status, 200, "{}", detail.body);
    detail.assert_contains(r#"value="eng, ops""#);
    let saved = browser
        .post(
            "/console/users/ann",
            &[
                ("csrf", &csrf),
                ("display_name", "Ann Lee"),
                ("groups", "eng"),
            ],
        )
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    saved.assert_contains("Saved.");
    let ann = user(&browser, "ann").await.unwrap();
    assert_eq!(
        (ann.display_name.as_str(), ann.groups),
        ("Ann Lee", vec!["eng".to_owned()])
    );
    let bad_group = browser
        .post(
            "/console/users/ann",
            &[
                ("csrf", &csrf),
                ("display_name", "Ann Lee"),
                ("groups", "eng, Bad Group!"),
            ],
        )
        .await;
    assert_eq!(bad_group.status, 422, "{}", bad_group.body);
    bad_group.assert_contains(r#"<p class="field-error" id="edit-groups-error" role="alert">"#);
    bad_group.assert_contains(r#"value="eng, Bad Group!""#);
    assert_eq!(user(&browser, "ann").await.unwrap().groups, ["eng"]);

    let disabled = browser
        .post("/console/users/ann/disable", &[("csrf", &csrf)])
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert!(user(&browser, "ann").await.unwrap().disabled_at.is_some());

    // A group granted a server, a bad pattern named beside the tools, then revoked.
    let bad_tools = browser
        .post(
            "/console/groups",
            &[
                ("csrf", &csrf),
                ("group", "eng"),
                ("server", "demo"),
                ("tools", "bad pattern"),
            ],
        )
        .await;
    assert_eq!(bad_tools.status, 422, "{}", bad_tools.body);
    bad_tools.assert_contains(r#"<p class="field-error" id="group-tools-error" role="alert">"#);
    let granted = browser
        .post(
            "/console/groups",
            &[
                ("csrf", &csrf),
                ("group", "eng"),
                ("server", "demo"),
                ("tools", "echo"),
            ],
        )
        .await;
    assert_eq!(granted.status, 200, "{}", granted.body);
    granted.assert_contains("Granted group eng the server demo.");
    let groups = browser
        .api
        .app
        .store
        .list_group_connections()
        .await
        .unwrap();
    assert_eq!(
        (groups[0].group.as_str(), groups[0].tools.clone()),
        ("eng", vec!["echo".to_owned()])
    );
    let revoked = browser
        .post("/console/groups/eng/demo/revoke", &[("csrf", &csrf)])
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.body);
    assert!(
        browser
            .api
            .app
            .store
            .list_group_connections()
            .await
            .unwrap()
            .is_empty()
    );
}
