//! Operator commands. Each opens the store in the data directory, changes or reads it, and
//! (for changes) waits until every server running on the same store has applied the change.

pub mod admin_tokens;
pub mod audit;
pub mod clients;
pub mod connections;
pub mod keys;
pub mod migrate;
pub mod oauth;
mod operator_events;
pub mod policy;
pub mod serve;
pub mod servers;
pub mod status;
pub mod transfer;
pub mod upstream_grants;
pub mod users;

use gatehouse::{
    Config,
    admin::{AdminService, Operator, OwnWriter},
    replicas,
    secrets::Keyring,
    store::{self, DynStore},
};
use gatehouse_model::records::{Generation, ReplicaHeartbeat};
use std::{sync::Arc, time::Duration};

use crate::output::Format;

/// How long a change may take to reach a running server (it polls every 250 ms by default).
const APPLY_WAIT: Duration = Duration::from_secs(5);

pub struct Ctx {
    pub config: Config,
    /// For reads; every change goes through `admin`, which records it in the audit trail.
    pub store: DynStore,
    pub keyring: Keyring,
    pub format: Format,
    pub admin: AdminService,
    writer: OwnWriter,
    operator: Result<Operator, String>,
}

impl Ctx {
    /// `actor` names who makes the changes (default: the account running the command).
    pub async fn open(
        config: Config,
        format: Format,
        actor: Option<String>,
    ) -> anyhow::Result<Self> {
        create_data_dir(&config)?;
        let keyring = Keyring::load_or_create(&config.data_dir)?;
        let store =
            store::open_sized(&config.database_url(), config.database_max_connections).await?;
        let (mut admin, writer) =
            AdminService::with_own_writer(store.clone(), Arc::new(keyring.clone()));
        // With `[redis]`, each change reaches the replicas at once, not at their next poll.
        if let Some(announce) = gatehouse::state::announcer(&config)? {
            admin = admin.with_announcer(announce);
        }
        Ok(Self {
            config,
            store,
            keyring,
            format,
            admin,
            writer,
            operator: operator(actor),
        })
    }

    /// Who makes this command's changes; an error only for a command that changes something.
    pub fn by(&self) -> anyhow::Result<&Operator> {
        self.operator
            .as_ref()
            .map_err(|why| anyhow::anyhow!("{why}"))
    }

    /// Lets the audit writer finish (each change already waited for its event's commit).
    pub async fn close(self) {
        self.writer.close().await;
    }

    /// Waits until every replica running on this store (recent heartbeat) has applied
    /// `generation`, so "revoked" means revoked everywhere by the time the command returns.
    /// A change some live replica has not applied within the wait is an error: the command
    /// must not report what is not true. Replicas that stopped reporting are not waited for.
    pub async fn applied(&self, generation: Generation) -> anyhow::Result<()> {
        let progress = replicas::wait_until_applied(&*self.store, generation, APPLY_WAIT).await?;
        if !progress.stale.is_empty() {
            eprintln!(
                "note: not waiting for replica(s) without a heartbeat for over {} s: {}",
                replicas::LIVE_WITHIN_MS / 1_000,
                names(&progress.stale, |r| format!("{:?}", r.replica_id))
            );
        }
        if !progress.complete() {
            let live = progress.applied.len() + progress.behind.len();
            anyhow::bail!(
                "the change is stored (generation {generation}) but {} of {live} running \
                 replica(s) {} not applied it within {}s: {}; see `gatehouse status`",
                progress.behind.len(),
                if progress.behind.len() == 1 {
                    "has"
                } else {
                    "have"
                },
                APPLY_WAIT.as_secs(),
                names(&progress.behind, |r| format!(
                    "{:?} runs generation {}",
                    r.replica_id, r.applied_generation
                ))
            );
        }
        if !progress.applied.is_empty() {
            self.warn_about_unloadable_records(generation).await;
        }
        Ok(())
    }

    /// Records the server could not compile deny their scope: say so after every change.
    async fn warn_about_unloadable_records(&self, generation: Generation) {
        let Ok(Some(report)) = self.store.reload_report().await else {
            return;
        };
        if report.generation < generation || report.issues.is_empty() {
            return;
        }
        eprintln!(
            "warning: the running server could not compile {} stored record(s); each denies \
             its scope until fixed (`gatehouse status`)",
            report.issues.len()
        );
    }
}

/// The operator of this command, on this host.
fn operator(actor: Option<String>) -> Result<Operator, String> {
    let account = whoami::username().map_err(|e| e.to_string());
    let actor = actor_name(actor, account, |name| std::env::var(name).ok())?;
    Operator::cli(&actor, whoami::hostname().ok()).map_err(|e| format!("--actor: {e}"))
}

/// `--actor` (or `GATEHOUSE_ACTOR`), else the account running the command, else (an account
/// without a name, as in a container run under an arbitrary uid) the login the environment
/// names.
fn actor_name(
    explicit: Option<String>,
    account: Result<String, String>,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    if let Some(actor) = explicit {
        return Ok(actor);
    }
    account.or_else(|why| {
        ["USER", "LOGNAME"]
            .into_iter()
            .find_map(|name| env(name).filter(|v| !v.is_empty()))
            .ok_or_else(|| {
                format!("cannot tell which account runs this command ({why}): pass --actor NAME")
            })
    })
}

/// Creates the data directory if needed and, when it does, names it: the default is relative
/// to the current directory, so a command run elsewhere would silently start a fresh store.
pub fn create_data_dir(config: &Config) -> anyhow::Result<()> {
    let dir = &config.data_dir;
    let existed = dir.exists();
    gatehouse::secrets::create_private_dir(dir)
        .map_err(|e| anyhow::anyhow!("data directory {}: {e}", dir.display()))?;
    if !existed {
        let shown = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        eprintln!(
            "note: created the data directory {} (choose another with --data-dir or data_dir)",
            shown.display()
        );
    }
    Ok(())
}

fn names(rows: &[ReplicaHeartbeat], name: impl Fn(&ReplicaHeartbeat) -> String) -> String {
    rows.iter().map(name).collect::<Vec<_>>().join(", ")
}

/// Prints a line for people (suppressed in JSON mode, where stdout must stay parseable).
pub fn say(format: Format, text: &str) {
    if format == Format::Table {
        crate::output::write_stdout(&format!("{text}\n"));
    }
}

pub fn print(text: &str) {
    crate::output::write_stdout(text);
}

#[cfg(test)]
mod tests {
    use super::actor_name;

    #[test]
    fn the_actor_is_named_or_the_account_or_the_login() {
        let no_env = |_: &str| None;
        let named = actor_name(Some("alice".into()), Ok("root".into()), no_env);
        assert_eq!(named.unwrap(), "alice");
        assert_eq!(actor_name(None, Ok("root".into()), no_env).unwrap(), "root");
        let login = |name: &str| (name == "LOGNAME").then(|| "deploy".to_owned());
        assert_eq!(
            actor_name(None, Err("no entry".into()), login).unwrap(),
            "deploy"
        );
        let err = actor_name(None, Err("no entry".into()), no_env).unwrap_err();
        assert!(err.contains("--actor"), "{err}");
    }
}
