//! Operator commands. Each opens the store in the data directory, changes or reads it, and
//! (for changes) waits until a running server on the same store has applied the change.

pub mod audit;
pub mod clients;
pub mod connections;
pub mod keys;
pub mod oauth;
pub mod policy;
pub mod serve;
pub mod servers;
pub mod users;

use gatehouse::{
    Config,
    secrets::Keyring,
    store::{self, DynStore, Generation},
};
use std::time::{Duration, Instant};

use crate::output::Format;

pub struct Ctx {
    pub config: Config,
    pub store: DynStore,
    pub keyring: Keyring,
    pub format: Format,
}

impl Ctx {
    pub async fn open(config: Config, format: Format) -> anyhow::Result<Self> {
        gatehouse::secrets::create_private_dir(&config.data_dir)
            .map_err(|e| anyhow::anyhow!("data directory {}: {e}", config.data_dir.display()))?;
        let keyring = Keyring::load_or_create(&config.data_dir)?;
        let store = store::open(&config.database_url()).await?;
        Ok(Self {
            config,
            store,
            keyring,
            format,
        })
    }

    /// If a server is running on this store (recent heartbeat), wait until it has applied
    /// `generation`, so "revoked" means revoked by the time the command returns.
    pub async fn applied(&self, generation: Generation) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let beat = self.store.heartbeat().await?;
            let alive = gatehouse::now_ms() - beat.heartbeat_ms < 3_000;
            if !alive || beat.applied_generation >= generation {
                return Ok(());
            }
            if Instant::now() > deadline {
                eprintln!("warning: the running server has not applied this change yet");
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Prints a line for people (suppressed in JSON mode, where stdout must stay parseable).
#[allow(clippy::print_stdout)]
pub fn say(format: Format, text: &str) {
    if format == Format::Table {
        println!("{text}");
    }
}

#[allow(clippy::print_stdout)]
pub fn print(text: &str) {
    print!("{text}");
}
