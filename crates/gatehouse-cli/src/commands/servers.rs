use clap::Subcommand;
use gatehouse::admin;
use gatehouse::admin_api::views::Server;
use std::process::ExitCode;

use super::{Ctx, print, say};
use crate::output::{Format, Table, print_data, time};

#[derive(Subcommand)]
pub enum ServersCommand {
    /// Register an upstream MCP server (Streamable HTTP), mounted at /{name}/mcp.
    Add {
        name: String,
        /// The upstream MCP endpoint, e.g. http://127.0.0.1:9090/mcp.
        #[arg(long)]
        url: String,
        /// Credential injected upstream, as 'Header-Name: value'. Stored encrypted, never shown.
        #[arg(long)]
        credential: Option<String>,
        /// Let callers without a credential through (still audited).
        #[arg(long)]
        allow_anonymous: bool,
        /// Forward methods the MCP specification does not define (refused by default).
        #[arg(long)]
        allow_unknown_methods: bool,
        /// When a tool's definition changes: block (hold it until approved), warn, or off.
        #[arg(long, default_value = "block")]
        pin_action: String,
    },
    /// Change a server's upstream URL or injected credential (connections stay).
    Update {
        name: String,
        /// The new upstream MCP endpoint.
        #[arg(long)]
        url: Option<String>,
        /// The new credential injected upstream, as 'Header-Name: value'.
        #[arg(long, conflicts_with = "no_credential")]
        credential: Option<String>,
        /// Stop injecting a credential.
        #[arg(long)]
        no_credential: bool,
    },
    /// The server's pinned tool definitions and any changes waiting for approval.
    Tools { name: String },
    /// Approve changed or held tool definitions (all pending ones, or those named).
    ApproveTools {
        name: String,
        #[arg(long = "tool")]
        tools: Vec<String>,
    },
    /// Discard changed or held tool definitions (all pending ones, or those named): each tool
    /// keeps its approved definition and stays held while the server serves another.
    RejectTools {
        name: String,
        #[arg(long = "tool")]
        tools: Vec<String>,
    },
    /// Every upstream server with its settings (never the credential).
    List,
    /// One server's settings.
    Show { name: String },
    /// Remove a server and its connections.
    Remove { name: String },
}

impl ServersCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            ServersCommand::Add {
                name,
                url,
                credential,
                allow_anonymous,
                allow_unknown_methods,
                pin_action,
            } => {
                let new = admin::NewServer {
                    name: name.clone(),
                    url,
                    credential,
                    allow_anonymous,
                    allow_unknown_methods,
                    pin_action: Some(pin_action),
                };
                let server = ctx.ops.add_server(new).await?;
                show(ctx.format, &[server], "added", true)
            }
            ServersCommand::Update {
                name,
                url,
                credential,
                no_credential,
            } => {
                if url.is_none() && credential.is_none() && !no_credential {
                    anyhow::bail!("nothing to change: pass --url, --credential or --no-credential");
                }
                let update = admin::ServerUpdate {
                    url,
                    credential: if no_credential {
                        Some(None)
                    } else {
                        credential.map(Some)
                    },
                };
                let server = ctx.ops.update_server(&name, update).await?;
                show(ctx.format, &[server], "updated", true)
            }
            ServersCommand::List => show(ctx.format, &ctx.ops.list_servers().await?, "", false),
            ServersCommand::Show { name } => {
                show(ctx.format, &[ctx.ops.get_server(&name).await?], "", true)
            }
            ServersCommand::Tools { name } => {
                let pins = ctx.ops.tool_pins(&name).await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &pins)?;
                } else {
                    let mut table = Table::new(&[
                        "TOOL",
                        "STATUS",
                        "REASON",
                        "APPROVED HASH",
                        "FIRST SEEN",
                        "UPDATED",
                    ]);
                    for p in &pins {
                        let status = match (&p.approved_hash, &p.pending_hash) {
                            (_, Some(_)) => "pending approval",
                            (Some(_), None) => "approved",
                            (None, None) => "unknown",
                        };
                        table.row(vec![
                            p.tool.clone(),
                            status.into(),
                            p.pending_reason.clone().unwrap_or_else(|| "-".into()),
                            p.approved_hash
                                .as_deref()
                                .map_or("-".into(), |h| h.chars().take(12).collect()),
                            time(Some(p.first_seen)),
                            time(Some(p.updated_at)),
                        ]);
                    }
                    print(&table.render());
                }
                Ok(ExitCode::SUCCESS)
            }
            ServersCommand::ApproveTools { name, tools } => {
                let approved = ctx.ops.approve_tools(&name, &tools).await?;
                if ctx.format.is_data() {
                    print_data(
                        ctx.format,
                        &serde_json::json!({ "server": name, "approved": approved }),
                    )?;
                } else {
                    say(
                        ctx.format,
                        &format!("{approved} tool definition(s) of {name} approved"),
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            ServersCommand::RejectTools { name, tools } => {
                let rejected = ctx.ops.reject_tools(&name, &tools).await?;
                if ctx.format.is_data() {
                    print_data(
                        ctx.format,
                        &serde_json::json!({ "server": name, "rejected": rejected }),
                    )?;
                } else {
                    say(
                        ctx.format,
                        &format!("{rejected} tool definition(s) of {name} rejected"),
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            ServersCommand::Remove { name } => {
                ctx.ops.remove_server(&name).await?;
                say(
                    ctx.format,
                    &format!("server {name} removed (with its connections)"),
                );
                if ctx.format.is_data() {
                    print_data(ctx.format, &serde_json::json!({ "removed": name }))?;
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn show(format: Format, servers: &[Server], verb: &str, single: bool) -> anyhow::Result<ExitCode> {
    if format.is_data() {
        match servers {
            [one] if single => print_data(format, one)?,
            many => print_data(format, &many)?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "NAME",
        "URL",
        "CREDENTIAL",
        "ANONYMOUS",
        "UNKNOWN METHODS",
        "CREATED",
    ]);
    for s in servers {
        table.row(vec![
            s.name.clone(),
            s.url.clone(),
            s.credential_header
                .as_ref()
                .map_or("-".into(), |h| format!("{h}: ****")),
            yes_no(s.allow_anonymous),
            yes_no(s.allow_unknown_methods),
            time(Some(s.created_at)),
        ]);
    }
    if !verb.is_empty() {
        say(format, &format!("server {verb}:"));
    }
    print(&table.render());
    Ok(ExitCode::SUCCESS)
}

pub fn yes_no(value: bool) -> String {
    if value { "yes" } else { "no" }.into()
}
