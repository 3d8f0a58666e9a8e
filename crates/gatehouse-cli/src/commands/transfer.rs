//! `gatehouse database export` and `gatehouse database import`: move a deployment between stores (SQLite to
//! PostgreSQL, or back) as JSON lines, every table and the whole audit trail with its hashes,
//! so every chain still verifies after the move. Secrets stay hashed or sealed: the
//! destination needs the same master key (move `master.key` or `GATEHOUSE_MASTER_KEY` with
//! the file, which is as sensitive as the database).

use anyhow::{Context, bail};
use gatehouse::{Config, audit::chain, secrets::Keyring, store};
use serde_json::Value;
use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::ExitCode,
};

#[derive(clap::Subcommand, Debug)]
pub enum DatabaseCommand {
    /// Write every record and the whole audit trail to standard output as JSON lines (to move
    /// the store to another database with `database import`).
    Export,
    /// Read what `database export` wrote into this (new, empty) store, then verify the audit
    /// trail.
    Import(ImportArgs),
}

pub async fn run(config: Config, command: DatabaseCommand) -> anyhow::Result<ExitCode> {
    match command {
        DatabaseCommand::Export => export(config).await,
        DatabaseCommand::Import(args) => import(config, args).await,
    }
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The file `gatehouse database export` wrote (`-` or none: standard input).
    file: Option<PathBuf>,
}

pub async fn export(config: Config) -> anyhow::Result<ExitCode> {
    let url = config.database_url();
    let backend = store::Backend::of(&url)?;
    let store = store::open(&url).await?;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    store::transfer::export(&*store, backend, &mut out).await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn import(config: Config, args: ImportArgs) -> anyhow::Result<ExitCode> {
    let reader: Box<dyn BufRead + Send> = match &args.file {
        Some(path) if path.as_os_str() != "-" => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?,
        )),
        _ => Box::new(BufReader::new(std::io::stdin())),
    };
    super::create_data_dir(&config)?;
    let keyring = Keyring::load_or_create(&config.data_dir)?;
    let store = store::open(&config.database_url()).await?;
    let counts = store::transfer::import(&*store, reader).await?;
    let report = chain::verify(&*store, &keyring).await?;
    let rows: u64 = counts.values().filter_map(Value::as_u64).sum();
    eprintln!(
        "imported {rows} rows ({} audit events); audit verify: {} chain(s), {} rows checked",
        counts
            .get("audit_events")
            .and_then(Value::as_u64)
            .unwrap_or(0),
        report.chains.len(),
        report.rows_checked
    );
    if !report.is_intact() {
        bail!(
            "the imported audit trail does not verify ({} problem(s)); is this data \
             directory's master key the source's? `gatehouse audit verify` lists them",
            report.problems.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
