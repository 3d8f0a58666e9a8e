//! `gatehouse status`: what the store holds, and what the servers (replicas) running on it
//! have applied (their generations, records they could not compile, a failed reload).

use gatehouse::replicas::is_live;
use gatehouse_model::records::{Generation, ReloadReport, ReplicaHeartbeat};
use serde::Serialize;
use std::process::ExitCode;

use super::{Ctx, print};
use crate::output::{print_data, time};

#[derive(Serialize)]
struct Status {
    data_dir: String,
    /// The store's generation: bumped by every change.
    generation: Generation,
    server: RunningServer,
    /// Every heartbeat row: the running replicas and those that stopped reporting.
    replicas: Vec<Replica>,
    /// What the server's last reload reported (kept after it stops).
    reload: Option<ReloadReport>,
    counts: Counts,
}

/// The replicas taken together.
#[derive(Serialize)]
struct RunningServer {
    /// Some replica has a heartbeat newer than three seconds.
    running: bool,
    /// The lowest generation the running replicas have applied (none when none runs).
    applied_generation: Option<Generation>,
    /// The most recent heartbeat of any replica.
    last_heartbeat_ms: Option<i64>,
}

#[derive(Serialize)]
struct Replica {
    replica_id: String,
    /// A heartbeat newer than three seconds; the CLI waits only for these.
    live: bool,
    applied_generation: Generation,
    last_heartbeat_ms: i64,
    started_ms: i64,
    version: String,
    listen: String,
}

impl Replica {
    fn from(row: ReplicaHeartbeat, now: i64) -> Self {
        Self {
            live: is_live(&row, now),
            replica_id: row.replica_id,
            applied_generation: row.applied_generation,
            last_heartbeat_ms: row.heartbeat_ms,
            started_ms: row.started_ms,
            version: row.version,
            listen: row.listen,
        }
    }
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
    let store = &ctx.local("status")?.store;
    let now = gatehouse::now_ms();
    let replicas: Vec<Replica> = store
        .list_replicas()
        .await?
        .into_iter()
        .map(|row| Replica::from(row, now))
        .collect();
    let live = || replicas.iter().filter(|r| r.live);
    let policies = store.list_policies().await?;
    let guardrails = policies
        .iter()
        .filter(|p| p.kind == gatehouse::guardrails::GUARDRAIL_KIND)
        .count();
    let status = Status {
        data_dir: ctx.config.data_dir.display().to_string(),
        generation: store.generation().await?,
        server: RunningServer {
            running: live().next().is_some(),
            applied_generation: live().map(|r| r.applied_generation).min(),
            last_heartbeat_ms: replicas.iter().map(|r| r.last_heartbeat_ms).max(),
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
        replicas,
    };
    if ctx.format.is_data() {
        print_data(ctx.format, &status)?;
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
    let state = |applied: Generation| {
        if applied >= status.generation {
            "up to date"
        } else {
            "behind"
        }
    };
    match server.applied_generation {
        Some(lowest) => {
            let running = status.replicas.iter().filter(|r| r.live).count();
            out.push_str(&format!(
                "server:          running ({running} replica(s)), applied generation {lowest} \
                 ({})\n",
                state(lowest)
            ));
        }
        None => out.push_str(&format!(
            "server:          not running (last heartbeat {})\n",
            time(server.last_heartbeat_ms)
        )),
    }
    for replica in &status.replicas {
        // Debug quoting: a row written into the database by hand cannot smuggle in control
        // characters.
        let id = format!("{:?}", replica.replica_id);
        if replica.live {
            out.push_str(&format!(
                "  replica {id}: running, applied generation {} ({}), listening on {:?}, \
                 version {:?}, up since {}\n",
                replica.applied_generation,
                state(replica.applied_generation),
                replica.listen,
                replica.version,
                time(Some(replica.started_ms))
            ));
        } else {
            out.push_str(&format!(
                "  replica {id}: no heartbeat since {} (not waited for)\n",
                time(Some(replica.last_heartbeat_ms))
            ));
        }
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
