//! A stdio server's fields on the admin API (ADR 0006 §3): accepted from the `admin` role
//! only, since whoever sets them runs a program on the gateway's host; the environment's
//! values are write-only.

use serde::{Deserialize, Serialize};
use std::{collections::BTreeMap, time::Duration};
use utoipa::ToSchema;

use super::{auth::Caller, problem::ApiError};
use crate::{admin::NewStdio, context::AppState};
use gatehouse_model::records::{AdminRole, StdioLimits, StdioSettings};

/// A local program spoken to over stdin/stdout.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StdioInput {
    /// The program (allowed by the configuration's `[gateway] stdio_commands`, if set).
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    /// The program's environment besides `PATH` (values write-only, sealed at rest).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    /// `shared` (default: one program for every client) or `per_principal`.
    pub sharing: Option<String>,
    /// `per_principal` only: programs at most.
    pub max_children: Option<u32>,
    /// `per_principal` only: a program unused this many seconds is stopped.
    pub idle_timeout_secs: Option<u64>,
    #[serde(default)]
    pub limits: LimitsInput,
}

/// Operating-system limits (applied with `prlimit`; a server with limits does not start
/// where it is missing).
#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsInput {
    pub memory_bytes: Option<u64>,
    pub open_files: Option<u64>,
    pub processes: Option<u64>,
    pub cpu_seconds: Option<u64>,
}

/// A stdio server's settings as shown: the environment's names, never its values.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StdioView {
    pub command: String,
    pub args: Vec<String>,
    pub env_names: Vec<String>,
    pub cwd: Option<String>,
    pub sharing: String,
    pub max_children: Option<u32>,
    pub idle_timeout_secs: Option<u64>,
    pub limits: LimitsInput,
}

impl From<&StdioSettings> for StdioView {
    fn from(s: &StdioSettings) -> Self {
        StdioView {
            command: s.command.clone(),
            args: s.args.clone(),
            env_names: s.env_names.clone(),
            cwd: s.cwd.clone(),
            sharing: s.sharing.as_str().to_owned(),
            max_children: s.max_children,
            idle_timeout_secs: s.idle_timeout_secs,
            limits: LimitsInput {
                memory_bytes: s.limits.memory_bytes,
                open_files: s.limits.open_files,
                processes: s.limits.processes,
                cpu_seconds: s.limits.cpu_seconds,
            },
        }
    }
}

/// Refused unless the caller is an admin: adding or changing a stdio server starts a program.
pub fn require_admin(caller: &Caller) -> Result<(), ApiError> {
    if caller.role < AdminRole::Admin {
        return Err(ApiError::Forbidden {
            needed: AdminRole::Admin,
        });
    }
    Ok(())
}

/// The admin layer's input, with the configuration's allow-list.
pub fn new_stdio(state: &AppState, input: StdioInput) -> NewStdio {
    NewStdio {
        command: input.command,
        args: input.args,
        env: input.env.into_iter().collect(),
        cwd: input.cwd,
        sharing: input.sharing,
        max_children: input.max_children,
        idle_timeout: input.idle_timeout_secs.map(Duration::from_secs),
        limits: StdioLimits {
            memory_bytes: input.limits.memory_bytes,
            open_files: input.limits.open_files,
            processes: input.limits.processes,
            cpu_seconds: input.limits.cpu_seconds,
        },
        allowed_commands: state.config.gateway.stdio_commands.clone(),
    }
}
