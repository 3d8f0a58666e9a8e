//! `gatehouse status`: what the store holds, and what the server running on it has applied
//! (its generation, records it could not compile, a failed reload).

use gatehouse::{records::ReloadReport, store::Generation};
use serde::Serialize;
use std::process::ExitCode;

use super::{Ctx, HEARTBEAT_FRESH_MS, print};
use crate::output::{Format, print_json, time};

#[derive(Serialize)]
struct Status {
    data_dir: String,
    /// The store's generation: bumped by every change.
    generation: Generation,
    server: RunningServer,
    /// What the server's last reload reported (kept after it stops).
    reload: Option<ReloadReport>,
    counts: Counts,
}

#[derive(Serialize)]
struct RunningServer {
    /// A heartbeat newer than three seconds.
    running: bool,
    applied_generation: Generation,
    last_heartbeat_ms: Option<i64>,
}

#[derive(Serialize)]
struct Counts {
    servers: usize,
    clients: usize,
    active_api_keys: usize,
    connections: usize,
    policies: usize,
    guardrails: usize,
    users: usize,
}

pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let store = &ctx.store;
    let beat = store.heartbeat().await?;
    let now = gatehouse::now_ms();
    let policies = store.list_policies().await?;
    let guardrails = policies
        .iter()
        .filter(|p| p.kind == gatehouse::guardrails::GUARDRAIL_KIND)
        .count();
    let status = Status {
        data_dir: ctx.config.data_dir.display().to_string(),
        generation: store.generation().await?,
        server: RunningServer {
            running: beat.heartbeat_ms > 0 && now - beat.heartbeat_ms < HEARTBEAT_FRESH_MS,
            applied_generation: beat.applied_generation,
            last_heartbeat_ms: (beat.heartbeat_ms > 0).then_some(beat.heartbeat_ms),
        },
        reload: store.reload_report().await?,
        counts: Counts {
            servers: store.list_servers().await?.len(),
            clients: store.list_clients().await?.len(),
            active_api_keys: store
                .list_api_keys(None)
                .await?
                .iter()
                .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|at| at > now))
                .count(),
            connections: store.list_connections().await?.len(),
            policies: policies.len() - guardrails,
            guardrails,
            users: store.list_users().await?.len(),
        },
    };
    if ctx.format == Format::Json {
        print_json(&status)?;
    } else {
        print(&render(&status));
    }
    Ok(ExitCode::SUCCESS)
}

fn render(status: &Status) -> String {
    let mut out = format!(
        "data directory:  {}\nstore generation: {}\n",
        status.data_dir, status.generation
    );
    let server = &status.server;
    if server.running {
        let state = if server.applied_generation >= status.generation {
            "up to date"
        } else {
            "behind"
        };
        out.push_str(&format!(
            "server:          running, applied generation {} ({state})\n",
            server.applied_generation
        ));
    } else {
        out.push_str(&format!(
            "server:          not running (last heartbeat {})\n",
            time(server.last_heartbeat_ms)
        ));
    }
    match &status.reload {
        Some(report) if !report.is_clean() => {
            if let Some(error) = &report.error {
                out.push_str(&format!("reload error:    {error}\n"));
            }
            if !report.issues.is_empty() {
                out.push_str(&format!(
                    "records that could not be compiled at generation {} (each denies its scope):\n",
                    report.generation
                ));
                for issue in &report.issues {
                    out.push_str(&format!("  {issue}\n"));
                }
            }
        }
        Some(_) => out.push_str("reload:          every record compiled\n"),
        None => out.push_str("reload:          no report yet (no server has run)\n"),
    }
    let c = &status.counts;
    out.push_str(&format!(
        "counts:          {} servers, {} clients, {} active API keys, {} connections, \
         {} policies, {} guardrails, {} users\n",
        c.servers, c.clients, c.active_api_keys, c.connections, c.policies, c.guardrails, c.users
    ));
    out
}
