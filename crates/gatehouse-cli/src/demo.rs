//! `gatehouse demo`: everything needed to see Gatehouse work, in one command.
//!
//! Starts the bundled example MCP server and a Gatehouse in front of it on a fresh SQLite
//! data directory, provisions a client, a connection (every demo tool but one) and an API
//! key, makes an allowed, a denied and an unauthenticated call itself, shows the audit
//! trail, and prints the same calls as `curl` commands to try by hand. The web console is
//! on an admin listener of its own, with a one-day admin token printed to sign in with, so
//! the calls can be watched in the audit view from the first minute.

use bytes::Bytes;
use gatehouse::{Config, admin};
use gatehouse_example_server::{DEMO_TOOLS, ExampleServer, UNGRANTED_DEMO_TOOL};
use gatehouse_model::audit::AuditFilter;
use http_body_util::{BodyExt, Full};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use std::{net::SocketAddr, path::Path, process::ExitCode};
use tokio_util::sync::CancellationToken;

use crate::{
    commands::{print, serve},
    output::{Format, print_data},
};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Where the gateway listens (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the admin listener (the web console at /console, /metrics) listens.
    #[arg(long, default_value = "127.0.0.1:9464")]
    admin_listen: SocketAddr,
    /// Start, run the three example calls, print the results and exit (for scripts and CI).
    #[arg(long)]
    once: bool,
}

const SERVER: &str = "demo";
const CLIENT: &str = "demo-agent";

pub async fn run(mut config: Config, args: DemoArgs, format: Format) -> anyhow::Result<ExitCode> {
    serve::init_tracing(&Config {
        log: gatehouse::config::LogConfig {
            filter: "warn".into(),
            ..Default::default()
        },
        ..Config::default()
    });
    let explicit_dir = config.data_dir != Config::default().data_dir;
    if !explicit_dir {
        config.data_dir = std::env::temp_dir().join("gatehouse-demo");
    }
    // A demo starts from nothing; never wipe a directory the user named.
    if !explicit_dir && config.data_dir.exists() {
        std::fs::remove_dir_all(&config.data_dir)?;
    }
    gatehouse::secrets::create_private_dir(&config.data_dir)?;

    let cancel = CancellationToken::new();
    let upstream =
        ExampleServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), cancel.clone()).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot listen on {}: {e} (try --listen 127.0.0.1:0)",
                args.listen
            )
        })?;
    let addr = listener.local_addr()?;
    config.listen = addr;
    config.public_url = format!("http://{addr}");
    config.admin_listen = Some(args.admin_listen);

    let keyring = gatehouse::secrets::Keyring::load_or_create(&config.data_dir)?;
    let store = gatehouse::store::open(&config.database_url()).await?;
    admin::add_server(
        &*store,
        &keyring,
        admin::NewServer {
            name: SERVER.into(),
            url: upstream.mcp_url(),
            ..admin::NewServer::default()
        },
    )
    .await?;
    admin::create_client(&*store, CLIENT, "created by gatehouse demo").await?;
    let granted: Vec<&str> = DEMO_TOOLS
        .iter()
        .copied()
        .filter(|t| *t != UNGRANTED_DEMO_TOOL)
        .collect();
    admin::grant_connection(
        &*store,
        admin::NewConnection {
            client: CLIENT.into(),
            server: SERVER.into(),
            tools: granted.join(","),
            resources: true,
            prompts: true,
        },
    )
    .await?;
    let key = admin::create_key(
        &*store,
        &keyring,
        admin::NewKey {
            client: CLIENT.into(),
            label: "demo".into(),
            ..admin::NewKey::default()
        },
    )
    .await?;

    let registered = admin::oauth::register_client(
        &store,
        &keyring,
        CLIENT,
        admin::oauth::OAuthRegistration {
            grant_types: vec!["client_credentials".into()],
            ..admin::oauth::OAuthRegistration::default()
        },
    )
    .await?;
    let client_secret = registered.client_secret.unwrap_or_default();
    let admin_token = console_token(&store, &config.data_dir).await?;

    let data_dir = config.data_dir.clone();
    let admin_listen = args.admin_listen;
    let server = gatehouse::app::start_with(
        config,
        store.clone(),
        std::sync::Arc::new(keyring),
        Some(listener),
    )
    .await
    .map_err(|e| match e {
        gatehouse::app::StartError::Bind { addr, source } if addr == admin_listen => {
            anyhow::anyhow!("cannot listen on {addr}: {source} (try --admin-listen 127.0.0.1:0)")
        }
        other => other.into(),
    })?;
    let console = server
        .admin_addr
        .map(|addr| format!("http://{addr}/console"))
        .unwrap_or_default();
    let gateway = format!("{}/{SERVER}/mcp", server.local_url());
    let calls = [
        (
            "granted tool",
            Some(&key.token),
            "echo",
            r#"{"text":"hello from the demo"}"#,
        ),
        (
            "tool not granted",
            Some(&key.token),
            UNGRANTED_DEMO_TOOL,
            r#"{"table":"customers"}"#,
        ),
        ("no API key", None, "echo", r#"{"text":"anyone there?"}"#),
    ];
    let access_token = fetch_token(&server.local_url(), &client_secret, &gateway).await?;
    let calls = [
        calls[0],
        calls[1],
        calls[2],
        (
            "OAuth access token",
            Some(&access_token),
            "echo",
            r#"{"text":"hello with a token"}"#,
        ),
    ];
    let mut results = Vec::new();
    for (what, token, tool, arguments) in calls {
        let (status, body) = call(&gateway, token.map(String::as_str), tool, arguments).await?;
        results.push(
            serde_json::json!({ "call": what, "tool": tool, "status": status, "body": body }),
        );
    }
    // Let the audit writer catch up before reading the trail back.
    server.state.snapshot.flush_usage().await;
    // The calls and the token request.
    let audit = wait_for_audit(&*store, calls.len() + 1).await?;

    if format.is_data() {
        print_data(
            format,
            &serde_json::json!({
                "gateway": gateway,
                "upstream": upstream.mcp_url(),
                "client": CLIENT,
                "granted_tools": granted,
                "api_key": key.token,
                "client_secret": client_secret,
                "token_endpoint": format!("{}/oauth/token", server.local_url()),
                "console": console,
                "admin_token": admin_token,
                "data_dir": data_dir,
                "calls": results,
                "audit_events": audit,
            }),
        )?;
    } else {
        print(&banner(&Banner {
            gateway: &gateway,
            upstream: &upstream.mcp_url(),
            granted: &granted,
            token: &key.token,
            client_secret: &client_secret,
            data_dir: &data_dir,
            results: &results,
            console: &console,
            admin_token: &admin_token,
        }));
    }
    if !args.once {
        serve::shutdown_signal().await;
    }
    server.shutdown().await;
    cancel.cancel();
    upstream.shutdown().await;
    let all_as_expected = results.iter().map(|r| r["status"].as_u64()).eq([
        Some(200),
        Some(403),
        Some(401),
        Some(200),
    ]);
    Ok(if all_as_expected {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// An admin token for the console, made through the admin service like
/// `gatehouse admin-tokens create`, so its creation is in the operator trail too.
async fn console_token(
    store: &gatehouse::store::DynStore,
    data_dir: &Path,
) -> anyhow::Result<String> {
    let keyring = gatehouse::secrets::Keyring::load_or_create(data_dir)?;
    let (admin, writer) =
        admin::AdminService::with_own_writer(store.clone(), std::sync::Arc::new(keyring));
    let by = admin::Operator::cli("gatehouse demo", None)?;
    let created = admin
        .create_admin_token(
            &by,
            "demo-console",
            gatehouse_model::records::AdminRole::Admin,
            Some(std::time::Duration::from_secs(24 * 3600)),
        )
        .await;
    writer.close().await;
    Ok(created?.token)
}

async fn wait_for_audit(
    store: &dyn gatehouse::store::Store,
    expected: usize,
) -> anyhow::Result<usize> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let rows = store
            .query_audit(&AuditFilter {
                limit: 100,
                // The calls' events, not the creation of the console's admin token.
                kind: Some(gatehouse_model::audit::EventKind::Request),
                ..AuditFilter::default()
            })
            .await?;
        if rows.len() >= expected || std::time::Instant::now() > deadline {
            return Ok(rows.len());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A client-credentials access token for the demo server, as the printed curl gets one.
async fn fetch_token(base: &str, secret: &str, resource: &str) -> anyhow::Result<String> {
    use base64::Engine;
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "client_credentials")
        .append_pair("resource", resource)
        .finish();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT}:{secret}"));
    let request = http::Request::post(format!("{base}/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("authorization", format!("Basic {basic}"))
        .body(Full::new(Bytes::from(body)))?;
    let response = client.request(request).await?;
    let bytes = response.into_body().collect().await?.to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes)?;
    json["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("the token endpoint answered {json}"))
}

/// One stateless-era `tools/call` (no session needed), as the printed curl makes it.
async fn call(
    url: &str,
    token: Option<&str>,
    tool: &str,
    arguments: &str,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut request = http_request(url, tool, arguments);
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let response = client.request(request).await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let bytes = response.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    // An SSE answer carries the JSON-RPC message in its last `data:` line.
    let json_text = if content_type.starts_with("text/event-stream") {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .unwrap_or("null")
            .to_owned()
    } else {
        text.into_owned()
    };
    Ok((
        status,
        serde_json::from_str(&json_text).unwrap_or(serde_json::Value::Null),
    ))
}

fn call_body(tool: &str, arguments: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    )
}

fn http_request(url: &str, tool: &str, arguments: &str) -> http::Request<Full<Bytes>> {
    let mut request = http::Request::new(Full::new(Bytes::from(call_body(tool, arguments))));
    *request.method_mut() = http::Method::POST;
    if let Ok(uri) = url.parse() {
        *request.uri_mut() = uri;
    }
    let headers = request.headers_mut();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        "accept",
        http::HeaderValue::from_static("application/json, text/event-stream"),
    );
    headers.insert(
        "mcp-protocol-version",
        http::HeaderValue::from_static("2026-07-28"),
    );
    headers.insert("mcp-method", http::HeaderValue::from_static("tools/call"));
    if let Ok(name) = http::HeaderValue::try_from(tool) {
        headers.insert("mcp-name", name);
    }
    request
}

fn curl(url: &str, token: Option<&str>, tool: &str, arguments: &str) -> String {
    let auth = token.map_or(String::new(), |t| {
        // Double quotes, so a shell variable (`$TOKEN`) expands; tokens have no `"` or `$`.
        format!(" \\\n     -H \"Authorization: Bearer {t}\"")
    });
    format!(
        "curl -s {url}{auth} \\\n     -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\\n     -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: {tool}' \\\n     -d '{}'",
        call_body(tool, arguments)
    )
}

/// What the demo prints for a person (`-o json` prints the same as data).
struct Banner<'a> {
    gateway: &'a str,
    upstream: &'a str,
    granted: &'a [&'a str],
    token: &'a str,
    client_secret: &'a str,
    data_dir: &'a Path,
    results: &'a [serde_json::Value],
    console: &'a str,
    admin_token: &'a str,
}

fn banner(banner: &Banner<'_>) -> String {
    let Banner {
        gateway,
        upstream,
        granted,
        token,
        client_secret,
        data_dir,
        results,
        console,
        admin_token,
    } = *banner;
    let dir = data_dir.display();
    let mut out = String::new();
    out.push_str("\nGatehouse demo\n==============\n");
    out.push_str(&format!("  gateway    {gateway}\n"));
    out.push_str(&format!(
        "  upstream   {upstream}  (bundled example MCP server)\n"
    ));
    out.push_str(&format!(
        "  client     {CLIENT}, granted {} (not {UNGRANTED_DEMO_TOOL})\n",
        granted.join(", ")
    ));
    out.push_str(&format!("  API key    {token}\n"));
    out.push_str(&format!(
        "  OAuth      client_id {CLIENT}, client_secret {client_secret}\n"
    ));
    out.push_str(&format!("  data dir   {dir}\n"));
    out.push_str(&format!(
        "  console    {console}  (sign in with the admin token {admin_token}; valid one day)\n\n"
    ));
    out.push_str("Four calls made just now:\n");
    for r in results {
        let detail = r["body"]["result"]["content"][0]["text"]
            .as_str()
            .or_else(|| r["body"]["error"]["message"].as_str())
            .unwrap_or("");
        out.push_str(&format!(
            "  {:<19} {:<15} HTTP {}  {detail}\n",
            r["call"].as_str().unwrap_or(""),
            r["tool"].as_str().unwrap_or(""),
            r["status"]
        ));
    }
    out.push_str("\nTry them yourself:\n\n# 1. granted tool: 200\n");
    out.push_str(&curl(gateway, Some(token), "echo", r#"{"text":"hello"}"#));
    out.push_str(&format!(
        "\n\n# 2. tool not granted: 403\n{}",
        curl(
            gateway,
            Some(token),
            UNGRANTED_DEMO_TOOL,
            r#"{"table":"customers"}"#
        )
    ));
    out.push_str(&format!(
        "\n\n# 3. no API key: 401\n{}",
        curl(gateway, None, "echo", r#"{"text":"hi"}"#)
    ));
    let base = gateway
        .trim_end_matches(&format!("/{SERVER}/mcp"))
        .to_owned();
    out.push_str(&format!(
        "\n\n# 4. OAuth 2.1: a short-lived access token (client credentials), then the call\nTOKEN=$(curl -s -u '{CLIENT}:{client_secret}' {base}/oauth/token \\\n     -d grant_type=client_credentials -d resource={gateway} \\\n     | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')\n{}",
        curl(gateway, Some("$TOKEN"), "echo", r#"{"text":"hello"}"#)
    ));
    out.push_str(&format!(
        "\n\n# The audit trail (another terminal; from a checkout use `cargo run --release --` for `gatehouse`):\ngatehouse --data-dir {dir} audit tail\ngatehouse --data-dir {dir} audit verify\n"
    ));
    out.push_str(&format!(
        "\n# An MCP client: the MCP Inspector's CLI lists only the granted tools\nnpx -y @modelcontextprotocol/inspector --cli {gateway} --transport http \\\n    --header 'Authorization: Bearer {token}' --method tools/list\n"
    ));
    out.push_str("\nGatehouse is running. Press Ctrl-C to stop.\n");
    out
}
