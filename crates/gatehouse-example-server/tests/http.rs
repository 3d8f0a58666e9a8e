//! End-to-end checks over raw HTTP: the server is started on an ephemeral loopback port and
//! spoken to with plain JSON-RPC POSTs, as a gateway in front of it would.

use std::{net::SocketAddr, time::Duration};

use gatehouse_example_server::{DEMO_TOOLS, UNGRANTED_DEMO_TOOL, spawn};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const PROTOCOL_VERSION: &str = "2025-11-25";
const TIMEOUT: Duration = Duration::from_secs(10);

struct Client {
    http: reqwest::Client,
    url: String,
    session: Option<String>,
}

impl Client {
    async fn start(cancel: &CancellationToken) -> TestResult<Self> {
        let addr: SocketAddr = spawn("127.0.0.1:0".parse()?, cancel.clone()).await?;
        assert!(addr.ip().is_loopback() && addr.port() != 0);
        let http = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        Ok(Self {
            http,
            url: format!("http://{addr}/mcp"),
            session: None,
        })
    }

    fn post(&self, body: &Value) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .json(body);
        if let Some(session) = &self.session {
            request = request
                .header("mcp-session-id", session)
                .header("mcp-protocol-version", PROTOCOL_VERSION);
        }
        request
    }

    /// Send a request and return the JSON-RPC response with the same id (from JSON or SSE).
    async fn request(&self, id: u64, method: &str, params: Value) -> TestResult<Value> {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let response = self.post(&body).send().await?.error_for_status()?;
        let text = response.text().await?;
        find_response(&text, id).ok_or_else(|| format!("no response {id} in {text:?}").into())
    }

    async fn initialize(&mut self) -> TestResult<Value> {
        let body = json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": "gatehouse-example-server-test", "version": "0"}
            }
        });
        let response = self.post(&body).send().await?.error_for_status()?;
        let session = response
            .headers()
            .get("mcp-session-id")
            .ok_or("initialize response has no Mcp-Session-Id")?
            .to_str()?
            .to_owned();
        let text = response.text().await?;
        let result = find_response(&text, 1).ok_or("no initialize response")?;
        self.session = Some(session);

        let initialized = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let status = self.post(&initialized).send().await?.status();
        assert_eq!(status, reqwest::StatusCode::ACCEPTED);
        Ok(result)
    }
}

/// The JSON-RPC message with `id` in a JSON body or an SSE body.
fn find_response(body: &str, id: u64) -> Option<Value> {
    let mut candidates: Vec<Value> = serde_json::from_str(body).ok().into_iter().collect();
    candidates.extend(
        body.lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str(data.trim()).ok()),
    );
    candidates.into_iter().find(|message| message["id"] == id)
}

#[tokio::test]
async fn initialize_returns_a_session_id() -> TestResult {
    let cancel = CancellationToken::new();
    let mut client = Client::start(&cancel).await?;
    let response = client.initialize().await?;
    cancel.cancel();

    assert!(client.session.as_deref().is_some_and(|s| !s.is_empty()));
    let result = &response["result"];
    assert_eq!(result["protocolVersion"], PROTOCOL_VERSION);
    assert_eq!(result["serverInfo"]["name"], "gatehouse-example-server");
    assert_eq!(result["capabilities"]["resources"]["subscribe"], true);
    Ok(())
}

#[tokio::test]
async fn tools_list_lists_the_demo_tools_and_calls_work() -> TestResult {
    let cancel = CancellationToken::new();
    let mut client = Client::start(&cancel).await?;
    client.initialize().await?;

    let listed = client.request(2, "tools/list", json!({})).await?;
    let names: Vec<&str> = listed["result"]["tools"]
        .as_array()
        .ok_or("tools/list result has no tools")?
        .iter()
        .filter_map(|tool| tool["name"].as_str())
        .collect();
    for tool in DEMO_TOOLS {
        assert!(names.contains(tool), "{tool} missing from {names:?}");
    }
    assert!(names.contains(&"test_simple_text"));

    let echo = client
        .request(
            3,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hello"}}),
        )
        .await?;
    assert_eq!(echo["result"]["content"][0]["text"], "hello");

    let sum = client
        .request(
            4,
            "tools/call",
            json!({"name": "add", "arguments": {"a": 2, "b": 40}}),
        )
        .await?;
    assert_eq!(sum["result"]["content"][0]["text"], "42");

    let deleted = client
        .request(
            5,
            "tools/call",
            json!({"name": UNGRANTED_DEMO_TOOL, "arguments": {"table": "users"}}),
        )
        .await?;
    assert_eq!(
        deleted["result"]["content"][0]["text"],
        "deleted all records from users"
    );
    cancel.cancel();
    Ok(())
}

#[tokio::test]
async fn foreign_host_headers_are_rejected() -> TestResult {
    let cancel = CancellationToken::new();
    let client = Client::start(&cancel).await?;
    let body = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                   "clientInfo": {"name": "rebinding", "version": "0"}}
    });
    let status = client
        .post(&body)
        .header("host", "evil.example.com")
        .header("origin", "http://evil.example.com")
        .send()
        .await?
        .status();
    cancel.cancel();
    assert_eq!(status, reqwest::StatusCode::FORBIDDEN);
    Ok(())
}
