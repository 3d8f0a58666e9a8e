//! `TestCluster`: three in-process replicas sharing one store and one Redis, as a deployment
//! behind a load balancer would. The store is a SQLite file in a shared data directory (one
//! master key for all) unless a URL is given, so a PostgreSQL database plugs in unchanged.

use gatehouse::{Config, config::RedisConfig};
use gatehouse_testkit::redis::Redis;

use crate::helpers::TestApp;

pub struct TestCluster {
    pub replicas: Vec<TestApp>,
    /// The shared data directory (master key, SQLite file).
    _dir: tempfile::TempDir,
}

impl TestCluster {
    /// Three replicas on `store_url` (`None`: a SQLite file) and the test binary's Redis,
    /// under a key prefix of their own.
    pub async fn start(store_url: Option<String>) -> TestCluster {
        Self::start_on(store_url, Redis::shared().url(), |_| {}).await
    }

    pub async fn start_on(
        store_url: Option<String>,
        redis_url: String,
        adjust: impl Fn(&mut Config),
    ) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let store_url =
            store_url.unwrap_or_else(|| format!("sqlite://{}/gatehouse.db", dir.path().display()));
        let prefix = format!("t{}:", gatehouse::secrets::random_id(8).unwrap());
        let mut replicas = Vec::new();
        for n in 0..3 {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let mut config = Config {
                listen: addr,
                public_url: format!("http://{addr}"),
                data_dir: dir.path().to_path_buf(),
                database_url: Some(store_url.clone()),
                replica_id: Some(format!("replica-{n}")),
                redis: Some(RedisConfig {
                    url: Some(redis_url.clone()),
                    key_prefix: prefix.clone(),
                    ..RedisConfig::default()
                }),
                ..Config::default()
            };
            config.audit.durable = true;
            adjust(&mut config);
            replicas.push(TestApp::start_replica(config, listener).await);
        }
        TestCluster {
            replicas,
            _dir: dir,
        }
    }

    /// Every replica applies what the store holds now (instead of waiting for its poll).
    pub async fn reload(&self) {
        for replica in &self.replicas {
            replica.server.state.snapshot.reload().await.unwrap();
        }
    }
}
