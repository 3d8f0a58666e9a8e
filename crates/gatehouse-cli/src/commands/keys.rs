use clap::Subcommand;
use gatehouse::{
    admin,
    admin_api::views::{ApiKey, CreatedApiKey},
};
use gatehouse_model::duration;
use std::{process::ExitCode, time::Duration};

use super::{Ctx, print, say};
use crate::output::{Format, Table, print_data, time};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a client. The key is printed once and never again.
    Create {
        #[arg(long)]
        client: String,
        /// A note to tell keys apart (e.g. where it is deployed).
        #[arg(long, default_value = "")]
        label: String,
        /// Lifetime, e.g. 30d or 12h. Default: no expiry.
        #[arg(long, value_parser = duration::parse)]
        expires_in: Option<Duration>,
        /// Narrow the key to these tool patterns (comma-separated), within the connection.
        #[arg(long)]
        tools: Option<String>,
    },
    /// API keys (never their secrets), with status and last use.
    List {
        /// Only this client's keys.
        #[arg(long)]
        client: Option<String>,
    },
    /// Issue a successor key; the old one stays valid only for the overlap.
    Rotate {
        key_id: String,
        #[arg(long, value_parser = duration::parse, default_value = "1h")]
        overlap: Duration,
    },
    /// Revoke a key, effective on the next request.
    Revoke { key_id: String },
}

impl KeysCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            KeysCommand::Create {
                client,
                label,
                expires_in,
                tools,
            } => {
                let new = admin::NewKey {
                    client,
                    label,
                    expires_in,
                    tools,
                };
                let created = ctx.ops.create_key(new).await?;
                show_created(ctx.format, &created, "created")
            }
            KeysCommand::List { client } => {
                let keys = ctx.ops.list_keys(client.as_deref()).await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &keys)?;
                } else {
                    print(&table(&keys).render());
                }
                Ok(ExitCode::SUCCESS)
            }
            KeysCommand::Rotate { key_id, overlap } => {
                let created = ctx.ops.rotate_key(&key_id, overlap).await?;
                say(
                    ctx.format,
                    &format!("key {key_id} stays valid for {}s more", overlap.as_secs()),
                );
                show_created(ctx.format, &created, "rotated")
            }
            KeysCommand::Revoke { key_id } => {
                let revoked = ctx.ops.revoke_key(&key_id).await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &revoked)?;
                } else {
                    say(ctx.format, &format!("key {key_id} revoked"));
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn status(key: &ApiKey) -> &'static str {
    if key.revoked_at.is_some() {
        "revoked"
    } else if key.expires_at.is_some_and(|at| at <= gatehouse::now_ms()) {
        "expired"
    } else {
        "active"
    }
}

fn table(keys: &[ApiKey]) -> Table {
    let mut table = Table::new(&[
        "ID",
        "CLIENT",
        "STATUS",
        "LABEL",
        "TOOLS",
        "EXPIRES",
        "LAST USED",
        "CREATED",
    ]);
    for k in keys {
        table.row(vec![
            k.id.clone(),
            k.client.clone(),
            status(k).into(),
            k.label.clone(),
            k.tools
                .as_ref()
                .map_or("(connection)".into(), |t| t.join(",")),
            time(k.expires_at),
            time(k.last_used_at),
            time(Some(k.created_at)),
        ]);
    }
    table
}

fn show_created(format: Format, created: &CreatedApiKey, verb: &str) -> anyhow::Result<ExitCode> {
    if format.is_data() {
        print_data(format, created)?;
        return Ok(ExitCode::SUCCESS);
    }
    say(format, &format!("key {verb}:"));
    print(&table(std::slice::from_ref(&created.key)).render());
    say(format, "");
    say(format, &format!("  {}", created.token));
    say(format, "");
    say(
        format,
        "Store it now: Gatehouse keeps only a hash and cannot show it again.",
    );
    Ok(ExitCode::SUCCESS)
}
