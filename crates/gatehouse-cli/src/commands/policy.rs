use clap::Subcommand;
use gatehouse::{
    admin::{
        self,
        explain::{AsKey, Question, explain_as},
    },
    policy::geo::GeoDb,
    snapshot::SnapshotHandle,
};
use gatehouse_model::tool_pattern::ToolPattern;
use std::{net::IpAddr, process::ExitCode, sync::Arc};

use super::{Ctx, print, say};
use crate::output::{Format, Table, print_json, time};

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
                let generation = ctx.admin.add_policy(ctx.by()?, new, &ctx.config).await?;
                ctx.applied(generation).await?;
                let added: Vec<_> = ctx
                    .store
                    .list_policies()
                    .await?
                    .into_iter()
                    .filter(|p| p.id == id)
                    .collect();
                if ctx.format == Format::Json {
                    if let Some(one) = added.first() {
                        print_json(one)?;
                    }
                } else {
                    say(ctx.format, "policy added:");
                    print(&table(&added).render());
                }
                Ok(ExitCode::SUCCESS)
            }
            PolicyCommand::Import { file } => {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                let generation = ctx
                    .admin
                    .import_policies(ctx.by()?, &text, &ctx.config)
                    .await?;
                ctx.applied(generation).await?;
                let all = ctx.store.list_policies().await?;
                if ctx.format == Format::Json {
                    print_json(&all)?;
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
                let all = ctx.store.list_policies().await?;
                if ctx.format == Format::Json {
                    print_json(&all)?;
                } else {
                    print(&table(&all).render());
                }
                Ok(ExitCode::SUCCESS)
            }
            PolicyCommand::Remove { id } => {
                let generation = ctx.admin.remove_policy(ctx.by()?, &id).await?;
                ctx.applied(generation).await?;
                if ctx.format == Format::Json {
                    print_json(&serde_json::json!({ "removed": id }))?;
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
                let arguments: Option<serde_json::Value> = args
                    .as_deref()
                    .map(serde_json::from_str)
                    .transpose()
                    .map_err(|e| anyhow::anyhow!("--args is not valid JSON: {e}"))?;
                let geo = match &ctx.config.policy.geoip_database {
                    Some(path) => {
                        Some(Arc::new(GeoDb::open(path).map_err(|e| anyhow::anyhow!(e))?))
                    }
                    None => None,
                };
                let handle = SnapshotHandle::load_with_geo(
                    ctx.store.clone(),
                    Arc::new(ctx.keyring.clone()),
                    String::new(),
                    geo,
                )
                .await?;
                let snapshot = handle.current();
                let key = match &key {
                    Some(id) => Some(ctx.store.get_api_key(id).await?),
                    None => None,
                };
                if let Some(record) = &key {
                    if record.revoked_at.is_some() {
                        anyhow::bail!("key {} is revoked", record.id);
                    }
                    if client.as_ref().is_some_and(|c| *c != record.client) {
                        anyhow::bail!("key {} belongs to client {}", record.id, record.client);
                    }
                }
                let client = match (&key, client) {
                    (Some(record), _) => record.client.clone(),
                    (None, Some(client)) => client,
                    (None, None) => anyhow::bail!("give --client or --key"),
                };
                let narrowing = match key.as_ref().and_then(|k| k.tools.as_ref()) {
                    Some(tools) => Some(
                        tools
                            .iter()
                            .map(|t| ToolPattern::parse(t))
                            .collect::<Result<Vec<_>, _>>()?,
                    ),
                    None => None,
                };
                let question = Question {
                    client: &client,
                    server: &server,
                    tool: tool.as_deref(),
                    ip,
                    at: at.unwrap_or_else(jiff::Timestamp::now),
                    arguments: arguments.as_ref(),
                };
                let as_key = key.as_ref().map(|k| AsKey {
                    id: &k.id,
                    narrowing: narrowing.as_deref(),
                });
                let answer = explain_as(&snapshot, &question, as_key);
                if ctx.format == Format::Json {
                    print_json(&answer)?;
                } else {
                    let mut t = Table::new(&["STAGE", "RULE", "OUTCOME", "DETAIL"]);
                    for step in &answer.steps {
                        t.row(vec![
                            step.stage.clone(),
                            step.rule.clone().unwrap_or_else(|| "-".into()),
                            step.outcome.into(),
                            step.detail.clone(),
                        ]);
                    }
                    print(&t.render());
                    let by = answer
                        .decided_by
                        .as_deref()
                        .map(|d| format!(" (by {d})"))
                        .unwrap_or_default();
                    say(
                        ctx.format,
                        &format!("decision: {}{by}", answer.decision.to_uppercase()),
                    );
                }
                Ok(if answer.decision == "allow" {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(3)
                })
            }
        }
    }
}

fn table(policies: &[gatehouse_model::records::PolicyRecord]) -> Table {
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
