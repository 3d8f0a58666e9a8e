//! `gatehouse status`: what the store holds, and what the servers (replicas) running on it
//! have applied (their generations, records they could not compile, a failed reload).

use gatehouse::admin_api::views::Status;
use gatehouse_model::records::Generation;
use std::process::ExitCode;

use super::{Ctx, print};
use crate::output::{print_data, time};

pub async fn run(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let status = ctx.ops.status().await?;
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
