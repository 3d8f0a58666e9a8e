//! Validating a stdio server's settings (ADR 0006 §1–3) and sealing its environment, for
//! `add_server` and `update_server`.

use std::time::Duration;

use super::{AdminError, AdminResult};
use crate::{secrets::Keyring, snapshot::stdio::env_context};
use gatehouse_model::records::{
    Sharing, StdioLimits, StdioSettings, command_allowed, valid_env_name,
};

/// A stdio server as an operator gives it.
#[derive(Debug, Clone, Default)]
pub struct NewStdio {
    pub command: String,
    pub args: Vec<String>,
    /// `(name, value)`; the values are sealed, only the names are kept in the clear.
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    /// `shared` (default) or `per_principal`.
    pub sharing: Option<String>,
    pub max_children: Option<u32>,
    pub idle_timeout: Option<Duration>,
    pub limits: StdioLimits,
    /// `[gateway] stdio_commands` of the configuration in force (`None`: any command).
    pub allowed_commands: Option<Vec<String>>,
}

/// The URL a stdio server's row carries: it names the server, never a network address.
pub fn stdio_url(server: &str) -> String {
    format!("stdio://{server}")
}

/// Checks `new` and seals its environment for `server`.
pub fn settings(keyring: &Keyring, server: &str, new: NewStdio) -> AdminResult<StdioSettings> {
    if new.command.trim().is_empty() {
        return Err(AdminError::Invalid("a stdio server needs a command".into()));
    }
    if let Some(allowed) = &new.allowed_commands
        && !command_allowed(allowed, &new.command)
    {
        return Err(AdminError::Invalid(format!(
            "command {:?} is not allowed: the configuration's [gateway] stdio_commands \
             lists {allowed:?}",
            new.command
        )));
    }
    let mut env = serde_json::Map::new();
    for (name, value) in new.env {
        if !valid_env_name(&name) {
            return Err(AdminError::Invalid(format!(
                "environment variable name {name:?} is not valid (letters, digits, _; not \
                 starting with a digit)"
            )));
        }
        if env.insert(name.clone(), value.into()).is_some() {
            return Err(AdminError::Invalid(format!(
                "environment variable {name:?} is given twice"
            )));
        }
    }
    let sharing = match new.sharing.as_deref() {
        None => Sharing::Shared,
        Some(text) => text.parse().map_err(AdminError::Invalid)?,
    };
    if sharing == Sharing::Shared && (new.max_children.is_some() || new.idle_timeout.is_some()) {
        return Err(AdminError::Invalid(
            "max_children and idle_timeout apply to sharing = per_principal only".into(),
        ));
    }
    if new.max_children == Some(0) {
        return Err(AdminError::Invalid(
            "max_children must be at least 1".into(),
        ));
    }
    let env_names: Vec<String> = env.keys().cloned().collect();
    let env_sealed = if env.is_empty() {
        None
    } else {
        let plain = serde_json::to_vec(&env).map_err(|e| AdminError::Invalid(e.to_string()))?;
        Some(keyring.encrypt(&plain, &env_context(server))?)
    };
    Ok(StdioSettings {
        command: new.command,
        args: new.args,
        env_names,
        env_sealed,
        cwd: new.cwd.filter(|c| !c.is_empty()),
        sharing,
        max_children: new.max_children,
        idle_timeout_secs: new.idle_timeout.map(|d| d.as_secs().max(1)),
        limits: new.limits,
    })
}
