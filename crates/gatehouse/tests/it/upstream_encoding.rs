//! Gatehouse asks every upstream for an uncompressed body, with or without response rules,
//! so it can read all it relays: the audit trail follows how an SSE stream ended even when
//! the client accepts gzip. An upstream that compresses anyway is refused, rules or not.

use crate::{
    canned_upstream::{Canned, CannedUpstream, canned},
    helpers::{ACCEPT, TestApp, call, rpc_message},
    scripted_upstream::Upstream,
};
use gatehouse_model::audit::{AuditRow, Decision, Outcome};
use serde_json::json;
use std::time::Duration;

/// Polls the trail until `count` events are there (a response's event is written when its
/// body ends, which may be after the client read it).
async fn events(app: &TestApp, count: usize) -> Vec<AuditRow> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let rows = app.audit().await;
        if rows.len() >= count {
            return rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {count} audit events, found {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A gateway in front of `upstream`; `*` grants every tool, so no response rule applies to
/// a call and its answer is relayed as it is.
async fn in_front_of(url: &str) -> (TestApp, String) {
    let app = TestApp::start().await;
    app.add_server("demo", url).await;
    let key = app.client_with_key("agent", "demo", "*").await;
    (app, key)
}

#[tokio::test]
async fn every_request_asks_the_upstream_for_identity_whatever_the_client_accepts() {
    let upstream = Upstream::start().await;
    let (app, key) = in_front_of(&upstream.url()).await;
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {} });
    let response = app
        .post("demo", Some(&key), &init)
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    // A call relayed as JSON, one relayed as SSE, the session's stream and its end.
    for want_sse in [false, true] {
        let mut request = app
            .post("demo", Some(&key), &call("echo"))
            .header("accept-encoding", "gzip")
            .header("mcp-session-id", &session);
        if want_sse {
            request = request.header("x-test-want-sse", "1");
        }
        assert_eq!(request.send().await.unwrap().status(), 200);
    }
    let stream = app
        .http
        .get(app.mcp("demo"))
        .bearer_auth(&key)
        .header("accept", "text/event-stream")
        .header("accept-encoding", "gzip;q=1, identity;q=0")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    stream.text().await.unwrap();
    let end = app
        .http
        .delete(app.mcp("demo"))
        .bearer_auth(&key)
        .header("accept", ACCEPT)
        .header("accept-encoding", "deflate")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(end.status(), 200);

    let received = upstream.received();
    assert_eq!(received.len(), 5, "{received:?}");
    for r in &received {
        let asked: Vec<_> = r.headers.get_all("accept-encoding").iter().collect();
        assert_eq!(asked, ["identity"], "{} {}", r.http_method, r.body);
    }
}

/// Ends cleanly at the HTTP level, inside an event: the client never dispatches the answer.
const CUT_INSIDE_AN_EVENT: &str = ": primed\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"res";

#[tokio::test]
async fn an_sse_stream_cut_inside_an_event_is_recorded_when_the_client_accepts_gzip() {
    // Compression middleware: gzip when the request accepts it, as it is otherwise.
    let upstream = CannedUpstream::start(Canned {
        gzip_when_accepted: true,
        ..canned(200, "text/event-stream", CUT_INSIDE_AN_EVENT)
    })
    .await;
    let (app, key) = in_front_of(&upstream.url).await;
    let response = app
        .post("demo", Some(&key), &call("echo"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("content-encoding").is_none());
    assert_eq!(
        response.text().await.unwrap(),
        CUT_INSIDE_AN_EVENT,
        "relayed as it is, byte for byte"
    );
    assert_eq!(upstream.accept_encodings(), [Some("identity".to_owned())]);

    let rows = events(&app, 1).await;
    assert_eq!(rows.len(), 1, "one event per request: {rows:?}");
    let e = &rows[0].event;
    assert_eq!(
        (e.decision, e.outcome, e.reason.as_deref(), e.response_bytes),
        (
            Decision::Error,
            Some(Outcome::UpstreamTruncated),
            Some("upstream_truncated"),
            Some(CUT_INSIDE_AN_EVENT.len() as u64)
        )
    );
}

#[tokio::test]
async fn an_upstream_that_compresses_anyway_is_refused_without_rules_too() {
    for content_type in ["text/event-stream", "application/json"] {
        // Labelled gzip whatever was asked; the bytes need not be gzip, nothing reads them.
        let upstream = CannedUpstream::start(Canned {
            headers: vec![("content-type", content_type), ("content-encoding", "gzip")],
            ..canned(200, content_type, CUT_INSIDE_AN_EVENT)
        })
        .await;
        let (app, key) = in_front_of(&upstream.url).await;
        let response = app
            .post("demo", Some(&key), &call("echo"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .unwrap();
        assert!(
            response.headers().get("content-encoding").is_none(),
            "{content_type}"
        );
        let (status, _, body) = rpc_message(response).await;
        assert_eq!(status, 502, "{content_type}");
        assert_eq!(
            body["error"]["data"]["reason"], "upstream_encoding_unfilterable",
            "{content_type}"
        );
        assert!(
            !body
                .to_string()
                .contains("jsonrpc\\\":\\\"2.0\\\",\\\"id\\\":3"),
            "{content_type}: nothing of the unread body is passed on"
        );

        let rows = events(&app, 1).await;
        assert_eq!(rows.len(), 1, "{content_type}: {rows:?}");
        let e = &rows[0].event;
        assert_eq!(
            (
                e.decision,
                e.reason.as_deref(),
                e.status,
                e.upstream_status,
                e.tool.as_deref()
            ),
            (
                Decision::Error,
                Some("upstream_encoding_unfilterable"),
                502,
                Some(200),
                Some("echo")
            ),
            "{content_type}: the call reached the upstream and the trail says how it ended"
        );
        assert_eq!(
            e.outcome, None,
            "{content_type}: nothing of the upstream's body was relayed"
        );
    }
}
