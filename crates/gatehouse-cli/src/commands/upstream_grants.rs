//! `gatehouse users upstream-grants`: people's own tokens at upstream servers (per-user
//! delegated tokens), listed without the tokens and revoked.

use clap::Subcommand;
use std::process::ExitCode;

use super::{Ctx, print, say};
use crate::output::{Format, Table, print_json, time};

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

#[derive(serde::Serialize)]
struct Shown {
    user: String,
    server: String,
    scope: String,
    expires_at: Option<i64>,
    refreshable: bool,
    created_at: i64,
    refreshed_at: Option<i64>,
}

impl UpstreamGrantsCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            UpstreamGrantsCommand::List { user } => {
                let user_id = match &user {
                    Some(name) => Some(
                        ctx.store
                            .find_user_by_username(name)
                            .await?
                            .ok_or_else(|| anyhow::anyhow!("no user {name:?}"))?
                            .id,
                    ),
                    None => None,
                };
                let users = ctx.store.list_users().await?;
                let name_of = |id: &str| {
                    users
                        .iter()
                        .find(|u| u.id == id)
                        .map_or_else(|| id.to_owned(), |u| u.username.clone())
                };
                let shown: Vec<Shown> = ctx
                    .store
                    .list_upstream_grants(user_id.as_deref())
                    .await?
                    .into_iter()
                    .map(|g| Shown {
                        user: name_of(&g.user_id),
                        refreshable: g.refresh_sealed.is_some(),
                        server: g.server,
                        scope: g.scope,
                        expires_at: g.expires_at,
                        created_at: g.created_at,
                        refreshed_at: g.refreshed_at,
                    })
                    .collect();
                if ctx.format == Format::Json {
                    print_json(&shown)?;
                    return Ok(ExitCode::SUCCESS);
                }
                let mut table = Table::new(&["USER", "SERVER", "SCOPE", "EXPIRES", "REFRESHABLE"]);
                for g in &shown {
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
                let grant = ctx
                    .admin
                    .revoke_upstream_grant(ctx.by()?, &username, &server)
                    .await?;
                let told = match ctx.store.get_server(&server).await {
                    Ok(record) => gatehouse::upstream::delegated::revoke_at_upstream_once(
                        &ctx.config.gateway,
                        &ctx.keyring,
                        &record,
                        &grant,
                    )
                    .await
                    .map_err(|e| anyhow::anyhow!("the grant is gone; telling {server}: {e}"))?,
                    Err(_) => false,
                };
                say(
                    ctx.format,
                    &format!(
                        "{username}'s tokens at {server} are forgotten{}",
                        if told {
                            ""
                        } else {
                            " (the server has no per-user settings to tell)"
                        }
                    ),
                );
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
