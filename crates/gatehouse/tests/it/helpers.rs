//! `TestApp`: a real Gatehouse on 127.0.0.1:0 with its own data directory.

use gatehouse::{
    Config, RunningServer, admin,
    secrets::Keyring,
    store::{self, DynStore},
};
use gatehouse_model::audit::{AuditFilter, AuditRow};
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::sync::Arc;

pub struct TestApp {
    pub server: RunningServer,
    pub config: Config,
    pub store: DynStore,
    pub keyring: Arc<Keyring>,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

/// Builds a server's runtime state from its configuration and store.
type RuntimeFor = dyn FnOnce(&Config, &DynStore) -> gatehouse::state::RuntimeState;

pub const ACCEPT: &str = "application/json, text/event-stream";

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::start_on(tempfile::tempdir().unwrap(), adjust).await
    }

    /// [`TestApp::start_with`] on a data directory that already exists (its master key).
    pub async fn start_on(dir: tempfile::TempDir, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = Config {
            listen: addr,
            public_url: format!("http://{addr}"),
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.database_url = test_database_url();
        // Responses return only once their audit event is committed: tests read it at once.
        config.audit.durable = true;
        // A test that leaves a stream open should not wait the default 30 s to stop.
        config.shutdown.drain_timeout = std::time::Duration::from_secs(5);
        adjust(&mut config);
        Self::start_in(dir, config, listener, None).await
    }

    /// A server on `listener` with `config` as given (data directory, store, `[redis]`): one
    /// replica of a [`crate::cluster::TestCluster`].
    pub async fn start_replica(config: Config, listener: tokio::net::TcpListener) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, config, listener, None).await
    }

    /// A server keeping its runtime state in the backends `runtime` builds.
    pub async fn start_with_runtime(
        runtime: impl FnOnce(&Config, &DynStore) -> gatehouse::state::RuntimeState + 'static,
    ) -> TestApp {
        Self::start_with_runtime_and(runtime, |_| {}).await
    }

    /// As [`TestApp::start_with_runtime`], with `adjust` applied to the configuration first.
    pub async fn start_with_runtime_and(
        runtime: impl FnOnce(&Config, &DynStore) -> gatehouse::state::RuntimeState + 'static,
        adjust: impl FnOnce(&mut Config),
    ) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = Config {
            listen: addr,
            public_url: format!("http://{addr}"),
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.database_url = test_database_url();
        config.audit.durable = true;
        adjust(&mut config);
        Self::start_in(dir, config, listener, Some(Box::new(runtime))).await
    }

    async fn start_in(
        dir: tempfile::TempDir,
        config: Config,
        listener: tokio::net::TcpListener,
        runtime: Option<Box<RuntimeFor>>,
    ) -> TestApp {
        let keyring = Arc::new(Keyring::load_or_create(&config.data_dir).unwrap());
        let store = store::open(&config.database_url()).await.unwrap();
        let runtime = match runtime {
            Some(build) => build(&config, &store),
            // What `[redis]` names, as `gatehouse serve` would open it.
            None => gatehouse::state::open(&config, &store).await.unwrap(),
        };
        let server = gatehouse::app::start_with_state(
            config.clone(),
            store.clone(),
            keyring.clone(),
            Some(listener),
            runtime,
        )
        .await
        .unwrap();
        TestApp {
            server,
            config,
            store,
            keyring,
            http: reqwest::Client::new(),
            dir,
        }
    }

    /// The server's database, for tests that change rows behind the store's back.
    pub fn db(&self) -> TestDb {
        TestDb {
            url: self.config.database_url(),
            _dir: None,
        }
    }

    /// Stops the server (flushing counters and the audit trail) and starts a new one on the
    /// same data directory.
    pub async fn restart(self) -> TestApp {
        let TestApp {
            server,
            config,
            dir,
            ..
        } = self;
        server.shutdown().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let config = Config {
            listen: addr,
            public_url: format!("http://{addr}"),
            ..config
        };
        Self::start_in(dir, config, listener, None).await
    }

    /// As [`TestApp::restart`], listening at the same address again, so `public_url` (and the
    /// callback registered at upstreams) stays the same.
    pub async fn restart_at_same_address(self) -> TestApp {
        let TestApp {
            server,
            config,
            dir,
            ..
        } = self;
        server.shutdown().await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(config.listen).await {
                Ok(listener) => break listener,
                Err(e) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "{} stayed taken after shutdown: {e}",
                        config.listen
                    );
                    tokio::task::yield_now().await;
                }
            }
        };
        Self::start_in(dir, config, listener, None).await
    }

    pub async fn policy(
        &self,
        id: &str,
        kind: &str,
        spec: serde_json::Value,
        scope: (Option<&str>, Option<&str>, Option<&str>),
    ) {
        let (client, server, tools) = scope;
        admin::add_policy(
            &*self.store,
            admin::NewPolicy {
                id: id.into(),
                kind: kind.into(),
                client: client.map(Into::into),
                server: server.map(Into::into),
                tools: tools.map(Into::into),
                spec: spec.to_string(),
            },
        )
        .await
        .unwrap();
        self.reload().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.local_url())
    }

    pub fn mcp(&self, server: &str) -> String {
        self.url(&format!("/{server}/mcp"))
    }

    /// Applies store changes to the running server now (the poller would within 250 ms).
    pub async fn reload(&self) {
        self.server.state.snapshot.reload().await.unwrap();
    }

    pub async fn add_server(&self, name: &str, url: &str) {
        self.add_server_with(admin::NewServer {
            name: name.into(),
            url: url.into(),
            ..Default::default()
        })
        .await;
    }

    pub async fn add_server_with(&self, new: admin::NewServer) {
        admin::add_server(&*self.store, &self.keyring, new)
            .await
            .unwrap();
        self.reload().await;
    }

    /// Creates `client` with a connection to `server` granting `tools`, and returns a key.
    pub async fn client_with_key(&self, client: &str, server: &str, tools: &str) -> String {
        admin::create_client(&*self.store, client, "")
            .await
            .unwrap();
        self.grant(client, server, tools).await;
        self.key(client, None).await
    }

    pub async fn grant(&self, client: &str, server: &str, tools: &str) {
        admin::grant_connection(
            &*self.store,
            admin::NewConnection {
                client: client.into(),
                server: server.into(),
                tools: tools.into(),
                resources: true,
                prompts: false,
            },
        )
        .await
        .unwrap();
        self.reload().await;
    }

    pub async fn key(&self, client: &str, tools: Option<&str>) -> String {
        let created = admin::create_key(
            &*self.store,
            &self.keyring,
            admin::NewKey {
                client: client.into(),
                tools: tools.map(Into::into),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        self.reload().await;
        created.token
    }

    pub fn post(&self, server: &str, key: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
        let mut request = self
            .http
            .post(self.mcp(server))
            .header("content-type", "application/json")
            .header("accept", ACCEPT)
            .body(body.to_string());
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request
    }

    /// A 2026-07-28 request: the version header and the routing headers that era requires
    /// (`Mcp-Method`, and `Mcp-Name` for a method that names its target).
    pub fn post_stateless(
        &self,
        server: &str,
        key: Option<&str>,
        body: &Value,
    ) -> reqwest::RequestBuilder {
        let mut request = self
            .post(server, key, body)
            .header("mcp-protocol-version", "2026-07-28");
        if let Some(method) = body["method"].as_str() {
            request = request.header("mcp-method", method);
            let name = match method {
                "tools/call" | "prompts/get" => body["params"]["name"].as_str(),
                "resources/read" => body["params"]["uri"].as_str(),
                _ => None,
            };
            if let Some(name) = name {
                request = request.header("mcp-name", name);
            }
        }
        request
    }

    /// The trail, once the requests in flight have written their events (a response's event
    /// is written when its body ends, which may be after the client saw the head).
    pub async fn audit(&self) -> Vec<AuditRow> {
        self.server
            .state
            .audit
            .settled(std::time::Duration::from_secs(5))
            .await;
        self.store
            .query_audit(&AuditFilter {
                limit: 1_000,
                ..AuditFilter::default()
            })
            .await
            .unwrap()
    }
}

pub fn call(tool: &str) -> Value {
    serde_json::json!({ "jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": { "name": tool, "arguments": {} } })
}

pub fn list_tools() -> Value {
    serde_json::json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/list" })
}

/// The JSON-RPC message of a response, whether sent as JSON or as SSE (last data event).
pub async fn rpc_message(response: reqwest::Response) -> (u16, HeaderMap, Value) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let is_sse = headers
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("text/event-stream"));
    let json = if is_sse {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .map(str::trim)
            .rfind(|l| l.starts_with('{'))
            .unwrap_or("null")
            .to_owned()
    } else {
        text
    };
    (
        status,
        headers,
        serde_json::from_str(&json).unwrap_or(Value::Null),
    )
}

pub fn tool_names(message: &Value) -> Vec<String> {
    message["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

/// A fresh database on the test binary's PostgreSQL server, migrated (copied from a template
/// migrated once); its URL.
pub fn postgres_database() -> String {
    gatehouse_testkit::postgres::Postgres::shared().database("gatehouse_template", |url| {
        let url = url.to_owned();
        // Its own runtime on its own thread: the caller may be inside a test's runtime.
        std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(gatehouse::store::migrate(&url, false))
                .unwrap();
        })
        .join()
        .unwrap();
    })
}

/// The backend the `it` suite runs on: `GATEHOUSE_TEST_STORE=sqlite` (the default) or
/// `postgres` (`scripts/test-all.sh` runs the suite once with each).
pub fn test_store() -> gatehouse::store::Backend {
    match std::env::var("GATEHOUSE_TEST_STORE").as_deref() {
        Err(_) | Ok("" | "sqlite") => gatehouse::store::Backend::Sqlite,
        Ok("postgres") => gatehouse::store::Backend::Postgres,
        Ok(other) => panic!("GATEHOUSE_TEST_STORE={other:?}: use sqlite or postgres"),
    }
}

/// `database_url` for a test server: none (the data directory's SQLite file) or a fresh
/// PostgreSQL database.
pub fn test_database_url() -> Option<String> {
    match test_store() {
        gatehouse::store::Backend::Sqlite => None,
        gatehouse::store::Backend::Postgres => Some(postgres_database()),
    }
}

/// A value bound to a `$N` placeholder by [`TestDb::execute`].
pub enum Bind {
    Int(i64),
    Text(String),
}

impl From<i64> for Bind {
    fn from(v: i64) -> Self {
        Bind::Int(v)
    }
}

impl From<&str> for Bind {
    fn from(v: &str) -> Self {
        Bind::Text(v.to_owned())
    }
}

impl From<String> for Bind {
    fn from(v: String) -> Self {
        Bind::Text(v)
    }
}

/// A database of the suite's backend, for tests that use stores of their own or change rows
/// behind the store's back (tampering, corrupt records).
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A new empty database (a file in a temporary directory, or a PostgreSQL database).
    pub fn new() -> TestDb {
        match test_store() {
            gatehouse::store::Backend::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                TestDb {
                    url: format!("sqlite://{}", dir.path().join("g.db").display()),
                    _dir: Some(dir),
                }
            }
            gatehouse::store::Backend::Postgres => TestDb {
                url: postgres_database(),
                _dir: None,
            },
        }
    }

    /// A store of its own on the database: its own connections, as another process has.
    pub async fn open(&self) -> DynStore {
        store::open(&self.url).await.unwrap()
    }

    /// Runs one statement (`$N` placeholders) on a connection of its own, or without binds
    /// several separated by `;`; rows touched.
    pub async fn execute(&self, sql: &str, binds: &[Bind]) -> u64 {
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            if binds.is_empty() {
                let done = sqlx::raw_sql(sql).execute(&pool).await.unwrap();
                pool.close().await;
                return done.rows_affected();
            }
            let mut query = sqlx::query(sql);
            for bind in binds {
                query = match bind {
                    Bind::Int(v) => query.bind(*v),
                    Bind::Text(v) => query.bind(v.clone()),
                };
            }
            let done = query.execute(&pool).await.unwrap().rows_affected();
            pool.close().await;
            done
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            if binds.is_empty() {
                // The simple protocol, which takes several statements at once.
                let done = sqlx::raw_sql(sql).execute(&pool).await.unwrap();
                pool.close().await;
                return done.rows_affected();
            }
            let mut query = sqlx::query(sql);
            for bind in binds {
                query = match bind {
                    Bind::Int(v) => query.bind(*v),
                    Bind::Text(v) => query.bind(v.clone()),
                };
            }
            let done = query.execute(&pool).await.unwrap().rows_affected();
            pool.close().await;
            done
        }
    }
}
