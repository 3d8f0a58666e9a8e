use clap::Subcommand;
use gatehouse::admin;
use std::process::ExitCode;

use super::{Ctx, print, say, servers::yes_no};
use crate::output::{Table, print_data, time};

#[derive(Subcommand)]
pub enum ConnectionsCommand {
    /// Let a client use a server (replaces an existing grant for the pair).
    Grant {
        #[arg(long)]
        client: String,
        #[arg(long)]
        server: String,
        /// Tool patterns, comma-separated: `*` any run of characters, `?` one; '' for no
        /// tools. Omitted: an existing grant keeps its tools (a new one gets none).
        #[arg(long)]
        tools: Option<String>,
        /// Also grant resources/* methods.
        #[arg(long)]
        resources: bool,
        /// Also grant prompts/* methods.
        #[arg(long)]
        prompts: bool,
    },
    /// Every connection with its tools and method families.
    List,
    /// Take a client's access to a server away.
    Revoke {
        #[arg(long)]
        client: String,
        #[arg(long)]
        server: String,
    },
}

impl ConnectionsCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            ConnectionsCommand::Grant {
                client,
                server,
                tools,
                resources,
                prompts,
            } => {
                let existing = ctx
                    .ops
                    .list_connections()
                    .await?
                    .into_iter()
                    .find(|c| c.client == client && c.server == server);
                let tools = match (tools, existing) {
                    (Some(tools), _) => tools,
                    (None, Some(existing)) => existing.tools.join(","),
                    (None, None) => String::new(),
                };
                if tools.is_empty() {
                    say(
                        ctx.format,
                        "note: no tools granted (pass --tools to grant some)",
                    );
                }
                let new = admin::NewConnection {
                    client: client.clone(),
                    server: server.clone(),
                    tools,
                    resources,
                    prompts,
                };
                let granted = ctx.ops.grant_connection(new).await?;
                show(ctx, &[granted], "granted")
            }
            ConnectionsCommand::List => show(ctx, &ctx.ops.list_connections().await?, ""),
            ConnectionsCommand::Revoke { client, server } => {
                ctx.ops.revoke_connection(&client, &server).await?;
                if ctx.format.is_data() {
                    print_data(
                        ctx.format,
                        &serde_json::json!({ "revoked": { "client": client, "server": server } }),
                    )?;
                } else {
                    say(
                        ctx.format,
                        &format!("connection {client} → {server} revoked"),
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn show(
    ctx: &Ctx,
    connections: &[gatehouse::admin_api::views::Connection],
    verb: &str,
) -> anyhow::Result<ExitCode> {
    if ctx.format.is_data() {
        match connections {
            [one] if !verb.is_empty() => print_data(ctx.format, one)?,
            many => print_data(ctx.format, &many)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "CLIENT",
        "SERVER",
        "TOOLS",
        "RESOURCES",
        "PROMPTS",
        "CREATED",
    ]);
    for c in connections {
        table.row(vec![
            c.client.clone(),
            c.server.clone(),
            if c.tools.is_empty() {
                "(none)".into()
            } else {
                c.tools.join(",")
            },
            yes_no(c.resources),
            yes_no(c.prompts),
            time(Some(c.created_at)),
        ]);
    }
    if !verb.is_empty() {
        say(ctx.format, &format!("connection {verb}:"));
    }
    print(&table.render());
    Ok(ExitCode::SUCCESS)
}
