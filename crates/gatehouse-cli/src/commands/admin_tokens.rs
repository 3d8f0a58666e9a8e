use clap::Subcommand;
use gatehouse::admin_api::views::AdminToken;
use gatehouse_model::{duration, records::AdminRole};
use std::{process::ExitCode, time::Duration};

use super::{Ctx, print, say};
use crate::output::{Table, print_data, time};

#[derive(Subcommand)]
pub enum AdminTokensCommand {
    /// Create an admin token for the admin API (printed once).
    Create {
        /// What the token is for (e.g. `ci`, `console`).
        #[arg(long)]
        name: String,
        /// `admin`, `operator` (no key material, no admin tokens) or `auditor` (read-only).
        #[arg(long)]
        role: AdminRole,
        /// Lifetime, e.g. 30d or 12h. Default: until revoked.
        #[arg(long, value_parser = duration::parse)]
        expires: Option<Duration>,
    },
    /// Admin tokens (never their secrets), with role, status and last use.
    List,
    /// Revoke an admin token, effective on its next request.
    Revoke { id: String },
}

impl AdminTokensCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            AdminTokensCommand::Create {
                name,
                role,
                expires,
            } => {
                let created = ctx.ops.create_admin_token(&name, role, expires).await?;
                if ctx.format.is_data() {
                    print_data(
                        ctx.format,
                        &serde_json::json!({
                            "token": created.token,
                            "admin_token": created.admin_token,
                        }),
                    )?;
                    return Ok(ExitCode::SUCCESS);
                }
                say(ctx.format, "admin token created:");
                print(&table(std::slice::from_ref(&created.admin_token)).render());
                say(ctx.format, "");
                say(ctx.format, &format!("  {}", created.token));
                say(ctx.format, "");
                say(
                    ctx.format,
                    "Store it now: Gatehouse keeps only a hash and cannot show it again.",
                );
            }
            AdminTokensCommand::List => {
                let tokens = ctx.ops.list_admin_tokens().await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &tokens)?;
                } else {
                    print(&table(&tokens).render());
                }
            }
            AdminTokensCommand::Revoke { id } => {
                let token = ctx.ops.revoke_admin_token(&id).await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &token)?;
                } else {
                    say(ctx.format, "admin token revoked:");
                    print(&table(std::slice::from_ref(&token)).render());
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

fn table(tokens: &[AdminToken]) -> Table {
    let now = gatehouse::now_ms();
    let mut table = Table::new(&["ID", "NAME", "ROLE", "STATUS", "EXPIRES", "LAST USED"]);
    for t in tokens {
        let status = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|at| at <= now) {
            "expired"
        } else {
            "active"
        };
        table.row(vec![
            t.id.clone(),
            t.name.clone(),
            t.role.to_string(),
            status.into(),
            time(t.expires_at),
            time(t.last_used_at),
        ]);
    }
    table
}
