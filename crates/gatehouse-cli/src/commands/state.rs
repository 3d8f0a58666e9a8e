//! `gatehouse export` and `gatehouse apply`: the deployment's configuration as a state
//! document teams keep in git (docs/gitops.md). Secret references (`env:NAME`, `file:PATH`)
//! are resolved here, from this process's environment and files.

use anyhow::Context;
use gatehouse::admin::declarative::{self, ApplyError, LocalResolver, Options};
use std::{io::Read, path::PathBuf, process::ExitCode};

use super::{Ctx, print};
use crate::output::{Format, print_json};

/// `--exit-code` with `--dry-run`: the plan is not empty.
const CHANGES_PENDING: u8 = 2;

#[derive(clap::Args, Debug)]
pub struct ApplyArgs {
    /// The state document (`-`: standard input).
    #[arg(long, short = 'f')]
    file: PathBuf,
    /// Show the changes, make none.
    #[arg(long)]
    dry_run: bool,
    /// Also delete what the file's sections no longer name (clients and users are disabled,
    /// admin tokens revoked). Sections the file leaves out are never touched.
    #[arg(long)]
    prune: bool,
    /// With --dry-run: exit 2 when there are changes to make, 0 when there are none.
    #[arg(long, requires = "dry_run")]
    exit_code: bool,
}

/// Writes the state document: YAML, or JSON with `-o json`.
pub async fn export(ctx: &Ctx) -> anyhow::Result<ExitCode> {
    let state = declarative::export(&*ctx.store, gatehouse::now_ms()).await?;
    let left_out: Vec<String> = ctx
        .store
        .list_servers()
        .await?
        .into_iter()
        .filter(|s| !declarative::declared_server(s))
        .map(|s| s.name)
        .collect();
    if !left_out.is_empty() {
        eprintln!(
            "note: left out server(s) {} (a local program, upstream tokens or an identity \
             header are not in the gatehouse/v1 document yet; `apply` leaves them alone)",
            left_out.join(", ")
        );
    }
    if ctx.format == Format::Json {
        print_json(&state)?;
    } else {
        print(&declarative::to_yaml(&state).map_err(anyhow::Error::msg)?);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn apply(ctx: &Ctx, args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let text = read(&args.file)?;
    let state =
        declarative::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let options = Options {
        dry_run: args.dry_run,
        prune: args.prune,
    };
    let outcome = match declarative::apply(
        &ctx.admin,
        ctx.by()?,
        &ctx.config,
        state,
        &LocalResolver,
        options,
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(ApplyError::Incomplete(incomplete)) => {
            // What was made stands: let the replicas have it before saying what failed.
            if let Some(generation) = incomplete.generation {
                ctx.applied(generation).await?;
            }
            anyhow::bail!("{incomplete}");
        }
        Err(err) => anyhow::bail!("{}: nothing was changed: {err}", args.file.display()),
    };
    if let Some(generation) = outcome.generation {
        ctx.applied(generation).await?;
    }
    if ctx.format == Format::Json {
        print_json(&outcome)?;
    } else {
        print(&declarative::render(&outcome.plan));
        let count = outcome.plan.changes.len();
        let summary = if count == 0 {
            "no changes".to_owned()
        } else if args.dry_run {
            format!("dry run: {count} change(s) planned, none made")
        } else {
            format!("applied {} change(s)", outcome.applied)
        };
        print(&format!("{summary}\n"));
    }
    if args.exit_code && !outcome.plan.is_empty() {
        return Ok(ExitCode::from(CHANGES_PENDING));
    }
    Ok(ExitCode::SUCCESS)
}

fn read(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading standard input")?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}
