//! `gatehouse`: run the gateway, try the demo, and manage servers, clients, keys,
//! connections and the audit trail. Thin over the `gatehouse` library.
#![forbid(unsafe_code)]

#[cfg(unix)]
mod arenas;
mod commands;
mod demo;
mod deployment;
mod failure;
mod output;
mod yaml;

use clap::{Parser, Subcommand};
use std::{path::PathBuf, process::ExitCode};

use output::Format;

/// mimalloc rather than glibc malloc: per-thread heaps without arena locks or
/// `malloc_consolidate` (BENCHMARKS.md, "allocator").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Authentication and governance gateway for MCP servers"
)]
struct Cli {
    /// Configuration file (default: ./gatehouse.toml if present).
    #[arg(long, global = true, env = "GATEHOUSE_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (SQLite database and master key); overrides the configuration.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    /// Output format: a table for people, or the same data as JSON or YAML for scripts.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Format::Table)]
    output: Format,
    /// Work on a running Gatehouse through its admin API (its `admin_listen` address, e.g.
    /// https://gatehouse-admin.internal:9091) instead of the local database; the admin token
    /// comes from GATEHOUSE_ADMIN_TOKEN or the profile. Give it before the command: after
    /// it, `--server` names an upstream server (`connections grant --server NAME`).
    #[arg(long, env = "GATEHOUSE_SERVER", value_name = "URL")]
    server: Option<String>,
    /// A profile of the CLI configuration file ($XDG_CONFIG_HOME/gatehouse/cli.toml): its
    /// server and where its admin token is.
    #[arg(long, global = true, env = "GATEHOUSE_PROFILE")]
    profile: Option<String>,
    /// Who makes the changes, as the audit trail records it (default: the account running
    /// the command).
    #[arg(long, global = true, env = "GATEHOUSE_ACTOR")]
    actor: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve(commands::serve::ServeArgs),
    /// Start a throw-away Gatehouse with an example MCP server, a client and a key.
    Demo(demo::DemoArgs),
    /// Upstream MCP servers.
    #[command(subcommand)]
    Servers(Box<commands::servers::ServersCommand>),
    /// Client identities (applications and agents).
    #[command(subcommand)]
    Clients(commands::clients::ClientsCommand),
    /// API keys of clients.
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Connections: which client may use which server, and which tools.
    #[command(subcommand)]
    Connections(commands::connections::ConnectionsCommand),
    /// Policies: rate limits, quotas, IP rules, schedules, argument constraints.
    #[command(subcommand)]
    Policy(commands::policy::PolicyCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// People who sign in so that agents act on their behalf.
    #[command(subcommand)]
    Users(commands::users::UsersCommand),
    /// Tokens of the admin API (`/admin/api/v1` on the admin listener), with their role.
    #[command(subcommand)]
    AdminTokens(commands::admin_tokens::AdminTokensCommand),
    /// What user groups may reach (through agents their members authorize).
    #[command(subcommand)]
    Groups(commands::users::GroupsCommand),
    /// Access-token signing keys of the OAuth authorization server.
    #[command(subcommand)]
    SigningKeys(commands::oauth::SigningKeysCommand),
    /// What the store holds and what each running server (replica) applied (generation,
    /// reload errors).
    Status,
    /// Apply pending schema migrations (SQLite or PostgreSQL), or with --check only list them.
    Migrate(commands::migrate::MigrateArgs),
    /// Write the configuration as a state document (YAML; secrets as references) to keep in
    /// git and `apply` elsewhere.
    Export,
    /// Make the configuration what a state document declares, showing the diff.
    Apply(commands::state::ApplyArgs),
    /// Move a whole store (every record and the audit trail) to another database.
    #[command(subcommand)]
    Database(commands::transfer::DatabaseCommand),
    /// Measure the latency a call through the gateway adds (API key, JWT, introspection,
    /// token acquisition) against calling the upstream directly.
    Bench(Box<commands::bench::BenchArgs>),
    /// Print a shell completion script (bash, zsh or fish) to standard output.
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl Command {
    /// The commands that only run where the database is, before any operator context.
    fn local_only(&self) -> Option<&'static str> {
        match self {
            Command::Serve(_) => Some("serve"),
            Command::Demo(_) => Some("demo"),
            Command::Migrate(_) => Some("migrate"),
            Command::Database(_) => Some("database"),
            Command::Audit(cmd) if cmd.is_offline() => Some("audit verify --bundle"),
            Command::Bench(args) if args.provision => Some("bench --provision"),
            _ => None,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    #[cfg(unix)]
    if matches!(cli.command, Command::Serve(_)) {
        arenas::bound();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let format = cli.output;
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("{}", output::error_text(format, &err));
            ExitCode::from(failure::classify(&err).code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Completions { shell } = cli.command {
        return completions(shell);
    }
    let env = |name: &str| std::env::var(name).ok();
    let target = deployment::selection::select(
        &deployment::selection::Asked {
            server: cli.server.as_deref(),
            profile: cli.profile.as_deref(),
        },
        &env,
    );
    if let (Some(command), Some(_)) = (cli.command.local_only(), &cli.server) {
        return Err(failure::LocalOnly { command }.into());
    }
    if let (Some(command), Some(_)) = (cli.command.local_only(), &cli.profile) {
        return Err(failure::LocalOnly { command }.into());
    }
    let mut config = gatehouse::Config::load(cli.config.as_deref())?;
    if let Some(dir) = cli.data_dir {
        config.data_dir = dir;
    }
    let format = cli.output;
    let command = match cli.command {
        Command::Serve(args) => return commands::serve::run(config, args).await,
        Command::Demo(args) => return demo::run(config, args, format).await,
        Command::Migrate(args) => return commands::migrate::run(config, args, format).await,
        Command::Database(cmd) => return commands::transfer::run(config, cmd).await,
        Command::Bench(args) => {
            return commands::bench::run(config, *args, format, cli.actor).await;
        }
        Command::Audit(cmd) if cmd.is_offline() => return cmd.run_offline(format),
        command => command,
    };
    let ops: Box<dyn deployment::Deployment> = match target? {
        Some(target) => {
            if cli.actor.is_some() {
                eprintln!(
                    "note: --actor (GATEHOUSE_ACTOR) does not apply through --server: the audit \
                     trail names the admin token"
                );
            }
            Box::new(deployment::remote::Remote::connect(target)?)
        }
        None => Box::new(deployment::local::Local::open(config.clone(), cli.actor).await?),
    };
    let ctx = commands::Ctx {
        config,
        format,
        ops,
    };
    let done = match command {
        // Run above, without an operator context.
        Command::Serve(_)
        | Command::Demo(_)
        | Command::Migrate(_)
        | Command::Database(_)
        | Command::Bench(_)
        | Command::Completions { .. } => Ok(ExitCode::SUCCESS),
        Command::Export => commands::state::export(&ctx).await,
        Command::Apply(args) => commands::state::apply(&ctx, args).await,
        Command::Servers(cmd) => cmd.run(&ctx).await,
        Command::Clients(cmd) => cmd.run(&ctx).await,
        Command::Keys(cmd) => cmd.run(&ctx).await,
        Command::Connections(cmd) => cmd.run(&ctx).await,
        Command::Policy(cmd) => cmd.run(&ctx).await,
        Command::Audit(cmd) => cmd.run(&ctx).await,
        Command::Users(cmd) => cmd.run(&ctx).await,
        Command::AdminTokens(cmd) => cmd.run(&ctx).await,
        Command::Groups(cmd) => cmd.run(&ctx).await,
        Command::SigningKeys(cmd) => cmd.run(&ctx).await,
        Command::Status => commands::status::run(&ctx).await,
    };
    ctx.close().await;
    done
}

fn completions(shell: CompletionShell) -> anyhow::Result<ExitCode> {
    use clap::CommandFactory;
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "gatehouse", &mut script);
    output::write_stdout(&String::from_utf8_lossy(&script));
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    fn undocumented(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
        for sub in command.get_subcommands() {
            let path = format!("{path} {}", sub.get_name());
            if sub.get_about().is_none() {
                missing.push(path.clone());
            }
            undocumented(sub, &path, missing);
        }
    }

    #[test]
    fn every_subcommand_has_help_text() {
        let mut missing = Vec::new();
        undocumented(&super::Cli::command(), "gatehouse", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }
}
