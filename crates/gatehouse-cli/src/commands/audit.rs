use clap::Subcommand;
use gatehouse::audit::{AuditFilter, AuditRow, Decision, chain};
use std::{process::ExitCode, time::Duration};

use super::{Ctx, print, say};
use crate::output::{Format, Table, print_json, time};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// The most recent events, oldest first.
    Tail {
        #[arg(short = 'n', long, default_value_t = 20)]
        lines: i64,
        /// Keep printing new events as they are written.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Events matching filters, oldest first.
    Query {
        #[arg(long)]
        client: Option<String>,
        #[arg(long)]
        server: Option<String>,
        /// allow, deny or error.
        #[arg(long, value_parser = parse_decision)]
        decision: Option<Decision>,
        /// A duration back from now (`1h`, `7d`) or an RFC 3339 time.
        #[arg(long, value_parser = parse_since)]
        since: Option<i64>,
        #[arg(long, default_value_t = 1000)]
        limit: i64,
    },
    /// Check the hash chain: reports edited and deleted rows; exit code 1 if any.
    Verify,
}

fn parse_decision(text: &str) -> Result<Decision, String> {
    Decision::parse(text).ok_or_else(|| format!("{text:?} is not one of allow, deny, error"))
}

fn parse_since(text: &str) -> Result<i64, String> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let back = gatehouse::duration::parse(text)
        .map_err(|e| format!("{e}; or give an RFC 3339 time such as 2026-11-25T09:00:00Z"))?;
    Ok(gatehouse::now_ms() - i64::try_from(back.as_millis()).unwrap_or(i64::MAX))
}

impl AuditCommand {
    pub async fn run(self, ctx: &Ctx) -> anyhow::Result<ExitCode> {
        match self {
            AuditCommand::Tail { lines, follow } => {
                let filter = AuditFilter {
                    limit: lines.max(1),
                    newest_first: true,
                    ..AuditFilter::default()
                };
                let mut rows = ctx.store.query_audit(&filter).await?;
                rows.reverse();
                render(ctx.format, &rows, true)?;
                if follow {
                    let mut last = rows.last().map_or(0, |r| r.seq);
                    loop {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let filter = AuditFilter {
                            after_seq: Some(last),
                            limit: 1000,
                            ..AuditFilter::default()
                        };
                        let rows = ctx.store.query_audit(&filter).await?;
                        if let Some(row) = rows.last() {
                            last = row.seq;
                            render(ctx.format, &rows, false)?;
                        }
                    }
                }
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Query {
                client,
                server,
                decision,
                since,
                limit,
            } => {
                let filter = AuditFilter {
                    client,
                    server,
                    decision,
                    since_ms: since,
                    after_seq: None,
                    limit: limit.max(1),
                    newest_first: false,
                };
                render(ctx.format, &ctx.store.query_audit(&filter).await?, true)?;
                Ok(ExitCode::SUCCESS)
            }
            AuditCommand::Verify => {
                let report = chain::verify(&*ctx.store, &ctx.keyring).await?;
                if ctx.format == Format::Json {
                    print_json(&report)?;
                } else if report.is_intact() {
                    say(
                        ctx.format,
                        &format!(
                            "audit chain intact: {} events verified",
                            report.rows_checked
                        ),
                    );
                } else {
                    say(
                        ctx.format,
                        &format!("audit chain BROKEN ({} events read):", report.rows_checked),
                    );
                    for problem in &report.problems {
                        say(ctx.format, &format!("  - {problem}"));
                    }
                }
                Ok(if report.is_intact() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            }
        }
    }
}

fn render(format: Format, rows: &[AuditRow], headers: bool) -> anyhow::Result<()> {
    if format == Format::Json {
        return print_json(&rows);
    }
    let mut table = Table::new(&[
        "SEQ", "TIME", "CLIENT", "KEY", "SERVER", "METHOD", "TOOL", "DECISION", "REASON", "STATUS",
        "LATENCY",
    ]);
    for r in rows {
        let e = &r.event;
        table.row(vec![
            r.seq.to_string(),
            time(Some(e.ts_ms)),
            e.client.clone().unwrap_or_else(|| "-".into()),
            e.credential_id.clone().unwrap_or_else(|| "-".into()),
            e.server.clone().unwrap_or_else(|| "-".into()),
            e.rpc_method
                .clone()
                .unwrap_or_else(|| e.http_method.clone()),
            e.tool.clone().unwrap_or_else(|| "-".into()),
            e.decision.as_str().into(),
            e.reason.clone().unwrap_or_else(|| "-".into()),
            e.status.to_string(),
            format!("{:.1}ms", e.latency_us as f64 / 1000.0),
        ]);
    }
    let text = table.render();
    if headers {
        print(&text);
    } else {
        print(
            &text
                .lines()
                .skip(1)
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
        );
    }
    Ok(())
}
