//! Operator commands. Each works on a [`Deployment`]: the local database or a running server
//! through its admin API (`--server`, docs/cli.md), and never asks which.

pub mod admin_tokens;
pub mod audit;
pub mod bench;
pub mod clients;
pub mod connections;
pub mod keys;
pub mod migrate;
pub mod oauth;
mod operator_events;
mod pin_diff;
pub mod policy;
pub mod serve;
pub mod servers;
pub mod state;
pub mod status;
pub mod transfer;
pub mod upstream_grants;
pub mod users;

use gatehouse::Config;

use crate::{
    deployment::{Deployment, local::Local},
    failure::LocalOnly,
    output::Format,
};

pub struct Ctx {
    pub config: Config,
    pub format: Format,
    /// Where the command's reads and changes go.
    pub ops: Box<dyn Deployment>,
}

impl Ctx {
    /// The local database, for a command that only runs where it is.
    pub fn local(&self, command: &'static str) -> anyhow::Result<&Local> {
        self.ops.local().ok_or_else(|| LocalOnly { command }.into())
    }

    /// Lets the local audit writer finish (each change already waited for its event's commit).
    pub async fn close(self) {
        self.ops.close().await;
    }
}

pub use crate::deployment::local::create_data_dir;

/// Prints a line for people (suppressed in JSON and YAML modes, where stdout must stay
/// parseable).
pub fn say(format: Format, text: &str) {
    if format == Format::Table {
        crate::output::write_stdout(&format!("{text}\n"));
    }
}

pub fn print(text: &str) {
    crate::output::write_stdout(text);
}
