//! Every operation of the OpenAPI document, with each role's token, none, an expired one and
//! a revoked one: the outcome matches the role table. An operation without a role, or a role
//! table entry the document lacks, fails here.

use super::{AdminApi, answer};
use gatehouse::admin::Operator;
use gatehouse::admin_api::roles;
use gatehouse_model::records::AdminRole;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;

/// `(method, path template)` of every operation the document describes.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            all.push((method.to_ascii_uppercase(), path.clone()));
        }
    }
    all
}

#[tokio::test]
async fn every_operation_enforces_its_role_for_every_kind_of_caller() {
    // Bad tokens are failures; the walk makes many from one address.
    let api = AdminApi::start_with(|config| config.http.login_max_failures = 10_000).await;
    let doc = gatehouse::admin_api::openapi::document();
    let listed = operations(&doc);
    let documented: BTreeSet<(String, String)> = listed.iter().cloned().collect();
    let tabled: BTreeSet<(String, String)> = roles::OPERATIONS
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(
        documented, tabled,
        "the document and the role table list the same operations"
    );

    let by = Operator::cli("setup", None).unwrap();
    let mut tokens = Vec::new();
    for role in AdminRole::ALL {
        tokens.push((role, api.token(role).await));
    }
    let expired = api
        .service()
        .with_clock(|| 0)
        .create_admin_token(
            &by,
            "expired",
            AdminRole::Admin,
            Some(std::time::Duration::from_secs(1)),
        )
        .await
        .unwrap()
        .token;
    let revoked = api
        .service()
        .create_admin_token(&by, "revoked", AdminRole::Admin, None)
        .await
        .unwrap();
    api.service()
        .revoke_admin_token(&by, &revoked.record.id)
        .await
        .unwrap();

    for (method, template) in &listed {
        let needed = roles::required(&method.parse().unwrap(), template)
            .unwrap_or_else(|| panic!("{method} {template} has no role"));
        let role_in_doc = &doc["paths"][template][method.to_ascii_lowercase()]["x-gatehouse-role"];
        assert_eq!(role_in_doc, needed.as_str(), "{method} {template}");
        let path = template
            .replace("{name}", "no-such-name")
            .replace("{id}", "no-such-id")
            .replace("{client}", "no-such-client")
            .replace("{server}", "no-such-server")
            .replace("{username}", "no-such-user")
            .replace("{group}", "no-such-group");
        let method: Method = method.parse().unwrap();
        let send = |token: Option<&str>| {
            let request = api.request(method.clone(), &path, token);
            if matches!(method, Method::POST | Method::PUT | Method::PATCH) {
                request.json(&json!({}))
            } else {
                request
            }
        };
        let (status, body) = answer(send(None)).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("unauthenticated")),
            "{method} {path}"
        );
        let (status, body) = answer(send(Some(&expired))).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("token_expired")),
            "{method} {path}"
        );
        let (status, body) = answer(send(Some(&revoked.token))).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (401, Some("token_not_recognised")),
            "{method} {path}"
        );
        for (role, token) in &tokens {
            let (status, body) = answer(send(Some(token))).await;
            if *role < needed {
                assert_eq!(
                    (status, body["code"].as_str()),
                    (403, Some("forbidden")),
                    "{role} on {method} {path}"
                );
            } else {
                assert!(
                    ![401, 403, 429].contains(&status) && status < 500,
                    "{role} on {method} {path}: {status} {body}"
                );
            }
        }
    }
}
