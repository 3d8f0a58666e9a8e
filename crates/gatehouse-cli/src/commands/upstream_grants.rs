//! `gatehouse users upstream-grants`: people's own tokens at upstream servers (per-user
//! delegated tokens), listed without the tokens and revoked.

use clap::Subcommand;
use std::process::ExitCode;

use super::{Ctx, print, say};
use crate::output::{Table, print_data, time};

#[derive(Subcommand)]
pub enum UpstreamGrantsCommand {
    /// The servers people connected their own accounts at (never the tokens).
    List {
        /// Only this person's.
        #[arg(long)]
        user: Option<String>,
    },
    /// Forget a person's tokens at a server, telling the server's revocation endpoint when
    /// one is configured; their next call asks them to connect again.
    Revoke { username: String, server: String },
}

impl UpstreamGrantsCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            UpstreamGrantsCommand::List { user } => {
                let all = ctx.ops.list_upstream_grants(user.as_deref()).await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &all)?;
                    return Ok(ExitCode::SUCCESS);
                }
                let mut table = Table::new(&["USER", "SERVER", "SCOPE", "EXPIRES", "REFRESHABLE"]);
                for g in &all {
                    table.row(vec![
                        g.user.clone(),
                        g.server.clone(),
                        g.scope.clone(),
                        time(g.expires_at),
                        super::servers::yes_no(g.refreshable),
                    ]);
                }
                print(&table.render());
            }
            UpstreamGrantsCommand::Revoke { username, server } => {
                ctx.ops.revoke_upstream_grant(&username, &server).await?;
                if ctx.format.is_data() {
                    print_data(
                        ctx.format,
                        &serde_json::json!({ "revoked": { "user": username, "server": server } }),
                    )?;
                }
                say(
                    ctx.format,
                    &format!(
                        "{username}'s tokens at {server} are forgotten (its revocation endpoint, \
                         when the server's per-user settings name one, was told)"
                    ),
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
