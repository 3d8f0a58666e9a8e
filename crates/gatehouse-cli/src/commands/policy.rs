use clap::Subcommand;
use gatehouse::admin;
use serde_json::Value;
use std::{net::IpAddr, process::ExitCode};

use super::{Ctx, print, say};
use crate::{
    deployment::ExplainQuestion,
    failure,
    output::{Table, print_data, time},
};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Attach a policy (docs/policies.md lists the kinds and their specs).
    Add {
        /// A name for the rule; it appears in denials and the audit trail.
        id: String,
        /// arguments, ip, country, schedule, quota, rate-limit, or guardrail.
        #[arg(long)]
        kind: String,
        /// The kind's settings as JSON, e.g. '{"requests": 60, "period": "1m"}'.
        #[arg(long)]
        spec: String,
        /// Only for this client (default: every client).
        #[arg(long)]
        client: Option<String>,
        /// Only on this server (default: every server).
        #[arg(long)]
        server: Option<String>,
        /// Only for tool calls matching this pattern.
        #[arg(long)]
        tools: Option<String>,
    },
    /// Add every policy of a JSON file (an array of {id, kind, client, server, tools, spec});
    /// nothing is added unless all of them are valid.
    Import { file: std::path::PathBuf },
    /// Every policy and guardrail with its scope and spec.
    List,
    /// Delete a policy (and its quota counters) or a guardrail.
    Remove { id: String },
    /// The decision a request would get and the rule that makes it (policies, then request
    /// guardrails over --args); calls nothing.
    Explain {
        /// The calling client (or give --key).
        #[arg(long, required_unless_present = "key")]
        client: Option<String>,
        /// An API key id: its client, its tool narrowing and per-key counters apply.
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        server: String,
        #[arg(long)]
        tool: Option<String>,
        /// The caller's address (default 127.0.0.1).
        #[arg(long, default_value = "127.0.0.1")]
        ip: IpAddr,
        /// When (RFC 3339, default now).
        #[arg(long)]
        at: Option<jiff::Timestamp>,
        /// Tool arguments as JSON.
        #[arg(long)]
        args: Option<String>,
    },
}

impl PolicyCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            PolicyCommand::Add {
                id,
                kind,
                spec,
                client,
                server,
                tools,
            } => {
                let new = admin::NewPolicy {
                    id: id.clone(),
                    kind,
                    client,
                    server,
                    tools,
                    spec,
                };
                let added = ctx.ops.add_policy(new).await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &added)?;
                } else {
                    say(ctx.format, "policy added:");
                    print(&table(std::slice::from_ref(&added)).render());
                }
                Ok(ExitCode::SUCCESS)
            }
            PolicyCommand::Import { file } => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                let all = ctx.ops.import_policies(&text).await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &all)?;
                } else {
                    say(
                        ctx.format,
                        &format!("imported {}; policies now:", file.display()),
                    );
                    print(&table(&all).render());
                }
                Ok(ExitCode::SUCCESS)
            }
            PolicyCommand::List => {
                let all = ctx.ops.list_policies().await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &all)?;
                } else {
                    print(&table(&all).render());
                }
                Ok(ExitCode::SUCCESS)
            }
            PolicyCommand::Remove { id } => {
                ctx.ops.remove_policy(&id).await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &serde_json::json!({ "removed": id }))?;
                } else {
                    say(ctx.format, &format!("policy {id} removed"));
                }
                Ok(ExitCode::SUCCESS)
            }
            PolicyCommand::Explain {
                client,
                key,
                server,
                tool,
                ip,
                at,
                args,
            } => {
                let arguments: Option<Value> = args
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--args is not valid JSON: {e}"))?;
                let answer = ctx
                    .ops
                    .explain(ExplainQuestion {
                        client,
                        key,
                        server,
                        tool,
                        ip,
                        at: at.map(|at| at.to_string()),
                        arguments,
                    })
                    .await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &answer)?;
                } else {
                    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
                    let mut t = Table::new(&["STAGE", "RULE", "OUTCOME", "DETAIL"]);
                    for step in answer["steps"].as_array().into_iter().flatten() {
                        t.row(vec![
                            text(&step["stage"]),
                            text(&step["rule"]),
                            text(&step["outcome"]),
                            text(&step["detail"]),
                        ]);
                    }
                    print(&t.render());
                    let by = answer["decided_by"]
                        .as_str()
                        .map(|d| format!(" (by {d})"))
                        .unwrap_or_default();
                    say(
                        ctx.format,
                        &format!("decision: {}{by}", text(&answer["decision"]).to_uppercase()),
                    );
                }
                Ok(if answer["decision"] == "allow" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(failure::DENIED)
                })
            }
        }
    }
}

fn table(policies: &[gatehouse::admin_api::views::Policy]) -> Table {
    let mut t = Table::new(&["ID", "KIND", "CLIENT", "SERVER", "TOOLS", "SPEC", "CREATED"]);
    for p in policies {
        t.row(vec![
            p.id.clone(),
            p.kind.clone(),
            p.client.clone().unwrap_or_else(|| "*".into()),
            p.server.clone().unwrap_or_else(|| "*".into()),
            p.tools.clone().unwrap_or_else(|| "*".into()),
            p.spec.to_string(),
            time(Some(p.created_at)),
        ]);
    }
    t
}
