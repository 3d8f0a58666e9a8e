//! An admin registers a local program (stdio) in the console: its arguments one per line, the
//! connection tested at once (the program started and asked for its tools). An operator sees
//! no program fields, and a program posted anyway is refused with the API's 403.

use super::Browser;
use gatehouse_model::records::AdminRole;

#[tokio::test]
async fn console_an_admin_registers_a_stdio_program_and_sees_its_tools() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("child.py");
    std::fs::write(&script, crate::stdio::CHILD).unwrap();
    let script = script.to_str().unwrap().to_owned();
    let mut browser = Browser::start().await;
    let csrf = browser.sign_in(AdminRole::Admin).await;
    let form = browser.get("/console/servers").await;
    form.assert_contains(r#"<label for="command">Command</label>"#);
    let args = format!("-u\r\n{script}\r\n");
    let page = browser
        .post(
            "/console/servers",
            &[
                ("csrf", &csrf),
                ("name", "local"),
                ("url", ""),
                ("command", "python3"),
                ("args", &args),
                ("pin_action", "block"),
            ],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains("Reachable. It lists 5 tool(s):");
    page.assert_contains("<strong>echo</strong>");
    let stored = browser.api.app.store.get_server("local").await.unwrap();
    let stdio = serde_json::to_value(&stored).unwrap();
    assert_eq!(
        stdio["stdio"]["args"],
        serde_json::json!(["-u", script]),
        "{stdio}"
    );

    browser.set_cookies(&[]);
    let csrf = browser.sign_in(AdminRole::Operator).await;
    let form = browser.get("/console/servers").await;
    assert!(!form.body.contains(r#"name="command""#), "{}", form.body);
    let refused = browser
        .post(
            "/console/servers",
            &[("csrf", &csrf), ("name", "other"), ("command", "python3")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    refused.assert_contains("admin");
    assert!(browser.api.app.store.get_server("other").await.is_err());
}
