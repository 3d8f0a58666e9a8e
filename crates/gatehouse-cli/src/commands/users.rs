//! `gatehouse users` and `gatehouse groups`: people who sign in through the authorization
//! server, and what their groups may reach.

use clap::Subcommand;
use std::{io::BufRead, process::ExitCode};

use super::{Ctx, print, say, servers::yes_no};
use crate::output::{Table, print_data, time};

fn split_groups(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The first line of standard input: passwords never go on the command line (shell history,
/// process listings).
fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

#[derive(Subcommand)]
pub enum UsersCommand {
    /// Create a user. Local users read their password from standard input.
    Add {
        username: String,
        #[arg(long, default_value = "")]
        display_name: String,
        /// Comma-separated groups.
        #[arg(long, default_value = "")]
        groups: String,
        /// Read a password from the first line of standard input (a local user).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Every user with their groups and status.
    List,
    /// Change a user's profile (the display name shown on consent pages).
    Update {
        username: String,
        #[arg(long)]
        display_name: String,
    },
    /// Replace a user's groups.
    SetGroups {
        username: String,
        #[arg(long)]
        groups: String,
    },
    /// Set a local user's password (first line of standard input).
    SetPassword { username: String },
    /// Disable a user: their tokens stop working on the next request.
    Disable { username: String },
    /// Enable a disabled user again.
    Enable { username: String },
    /// People's own tokens at upstream servers (per-user delegated tokens).
    #[command(subcommand)]
    UpstreamGrants(super::upstream_grants::UpstreamGrantsCommand),
}

impl UsersCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            UsersCommand::Add {
                username,
                display_name,
                groups,
                password_stdin,
            } => {
                let password = if password_stdin {
                    Some(read_password()?)
                } else {
                    None
                };
                let user = ctx
                    .ops
                    .create_user(&username, &display_name, password, split_groups(&groups))
                    .await?;
                say(ctx.format, "user created:");
                show(ctx, &[user])
            }
            UsersCommand::List => show(ctx, &ctx.ops.list_users().await?),
            UsersCommand::Update {
                username,
                display_name,
            } => show(ctx, &[ctx.ops.update_user(&username, &display_name).await?]),
            UsersCommand::SetGroups { username, groups } => {
                let user = ctx
                    .ops
                    .set_user_groups(&username, split_groups(&groups))
                    .await?;
                show(ctx, &[user])
            }
            UsersCommand::SetPassword { username } => {
                let password = read_password()?;
                ctx.ops.set_user_password(&username, &password).await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &serde_json::json!({ "password_set": username }))?;
                }
                say(ctx.format, &format!("password of {username} changed"));
                Ok(ExitCode::SUCCESS)
            }
            UsersCommand::Disable { username } => enable(ctx, &username, false).await,
            UsersCommand::Enable { username } => enable(ctx, &username, true).await,
            UsersCommand::UpstreamGrants(command) => command.run(ctx).await,
        }
    }
}

async fn enable(ctx: &Ctx, username: &str, enabled: bool) -> anyhow::Result<ExitCode> {
    let user = ctx.ops.set_user_enabled(username, enabled).await?;
    show(ctx, &[user])
}

fn show(ctx: &Ctx, users: &[gatehouse::admin_api::views::User]) -> anyhow::Result<ExitCode> {
    if ctx.format.is_data() {
        print_data(ctx.format, &users)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "USERNAME",
        "ID",
        "STATUS",
        "GROUPS",
        "SIGN-IN",
        "LAST SIGN-IN",
    ]);
    for u in users {
        table.row(vec![
            u.username.clone(),
            u.id.clone(),
            if u.disabled_at.is_some() {
                "disabled"
            } else {
                "active"
            }
            .into(),
            u.groups.join(","),
            match (&u.idp, u.local) {
                (Some(idp), _) => idp.clone(),
                (None, true) => "password".into(),
                (None, false) => "-".into(),
            },
            time(u.last_login_at),
        ]);
    }
    print(&table.render());
    Ok(ExitCode::SUCCESS)
}

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// Let members of a group reach a server through agents they authorize.
    Grant {
        group: String,
        #[arg(long)]
        server: String,
        /// Tool patterns, comma-separated. Empty: no tools.
        #[arg(long, default_value = "")]
        tools: String,
        #[arg(long)]
        resources: bool,
        #[arg(long)]
        prompts: bool,
    },
    /// What every group may reach.
    List,
    /// Take a group's access to a server away.
    Revoke {
        group: String,
        #[arg(long)]
        server: String,
    },
}

impl GroupsCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            GroupsCommand::Grant {
                group,
                server,
                tools,
                resources,
                prompts,
            } => {
                let granted = ctx
                    .ops
                    .grant_group(&group, &server, &tools, resources, prompts)
                    .await?;
                if ctx.format.is_data() {
                    print_data(ctx.format, &granted)?;
                    return Ok(ExitCode::SUCCESS);
                }
                say(ctx.format, &format!("group {group} may use {server}"));
            }
            GroupsCommand::Revoke { group, server } => {
                ctx.ops.revoke_group(&group, &server).await?;
                if ctx.format.is_data() {
                    print_data(
                        ctx.format,
                        &serde_json::json!({ "revoked": { "group": group, "server": server } }),
                    )?;
                }
                say(
                    ctx.format,
                    &format!("group {group} may no longer use {server}"),
                );
                return Ok(ExitCode::SUCCESS);
            }
            GroupsCommand::List => {}
        }
        let all = ctx.ops.list_group_connections().await?;
        if ctx.format.is_data() {
            print_data(ctx.format, &all)?;
            return Ok(ExitCode::SUCCESS);
        }
        let mut table = Table::new(&["GROUP", "SERVER", "TOOLS", "RESOURCES", "PROMPTS"]);
        for c in &all {
            table.row(vec![
                c.group.clone(),
                c.server.clone(),
                c.tools.join(","),
                yes_no(c.resources),
                yes_no(c.prompts),
            ]);
        }
        print(&table.render());
        Ok(ExitCode::SUCCESS)
    }
}
