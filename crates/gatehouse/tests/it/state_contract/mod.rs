//! The runtime-state contract: what every backend of the `gatehouse::state` traits must do,
//! written against the traits alone so the same tests run against each backend in
//! [`backends`] (as `store_contract` does for the store). A new backend plugs in by adding one
//! entry there.

mod counters;
mod owned;

use gatehouse::{
    Config,
    config::RedisConfig,
    state::{Owner, RuntimeState},
};
use gatehouse_testkit::redis::Redis;
use std::future::Future;

/// One backend under test: its name (for failure messages) and fresh, empty state.
pub struct Backend {
    pub name: &'static str,
    pub state: RuntimeState,
    /// Keeps the store's files alive for the test.
    _dir: tempfile::TempDir,
}

/// Every runtime-state backend this build has: memory, and Redis under a prefix of its own.
async fn backends() -> Vec<Backend> {
    let mut all = Vec::new();
    for name in ["memory", "redis"] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            ..Config::default()
        };
        config.gateway.max_sessions_per_owner = 2;
        if name == "redis" {
            config.redis = Some(RedisConfig {
                url: Some(Redis::shared().url()),
                key_prefix: format!("s{}:", gatehouse::secrets::random_id(8).unwrap()),
                ..RedisConfig::default()
            });
        }
        let store = gatehouse::store::open(&config.database_url())
            .await
            .unwrap();
        let state = gatehouse::state::open(&config, &store).await.unwrap();
        all.push(Backend {
            name,
            state,
            _dir: dir,
        });
    }
    all
}

/// Runs `test` once per backend, each on fresh state.
async fn each_backend<F, Fut>(test: F)
where
    F: Fn(RuntimeState) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends().await {
        // Printed so a failure names the backend it happened on.
        eprintln!("state contract on {}", backend.name);
        test(backend.state.clone()).await;
    }
}

fn client(name: &str) -> Owner<'_> {
    Owner {
        client: Some(name),
        subject: None,
    }
}
