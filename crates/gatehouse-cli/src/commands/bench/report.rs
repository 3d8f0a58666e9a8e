//! What a bench prints: one row per scenario and concurrency (a table, or the same as JSON),
//! and the gateway's CPU time, read from `/proc/PID/stat` when its process id is given.

use serde::Serialize;

use super::run::{Outcome, Scenario};
use crate::output::Table;

#[derive(Debug, Serialize)]
pub struct Report {
    pub gateway: String,
    pub upstream: String,
    pub server: String,
    pub tool: String,
    pub requests_limit: u64,
    pub duration_limit_ms: u64,
    /// Whether `cpu_us_per_request` was measured (the gateway's process id was given).
    pub cpu_measured: bool,
    pub rows: Vec<Row>,
    pub skipped: Vec<Skipped>,
    pub notes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub scenario: Scenario,
    pub concurrency: usize,
    pub requests: u64,
    pub errors: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    pub requests_per_second: f64,
    /// For a call through the gateway: its p50 less the direct p50 at the same concurrency;
    /// for a token request or an introspection: its whole p50, which a request needing one
    /// adds.
    pub added_p50_us: Option<i64>,
    /// The gateway process's CPU time (user + system) over the run, per request.
    pub cpu_us_per_request: Option<f64>,
    pub first_error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub scenario: Scenario,
    pub reason: String,
}

impl Row {
    pub fn new(
        scenario: Scenario,
        concurrency: usize,
        outcome: &Outcome,
        cpu_ticks: Option<(u64, u64)>,
    ) -> Self {
        let requests = outcome.latencies.len();
        let seconds = outcome.elapsed.as_secs_f64();
        let cpu_us_per_request = cpu_ticks.and_then(|(ticks, per_second)| {
            (requests > 0 && per_second > 0)
                .then(|| ticks as f64 * 1e6 / per_second as f64 / requests as f64)
        });
        Row {
            scenario,
            concurrency,
            requests,
            errors: outcome.errors,
            p50_us: outcome.latencies.value_at_quantile(0.50),
            p99_us: outcome.latencies.value_at_quantile(0.99),
            max_us: outcome.latencies.max(),
            requests_per_second: if seconds > 0.0 {
                requests as f64 / seconds
            } else {
                0.0
            },
            added_p50_us: None,
            cpu_us_per_request,
            first_error: outcome.first_error.clone(),
        }
    }
}

impl Report {
    /// Fills in each row's added latency from the direct row of its concurrency.
    pub fn compare_with_direct(&mut self) {
        let direct: Vec<(usize, u64)> = self
            .rows
            .iter()
            .filter(|r| r.scenario == Scenario::Direct && r.requests > 0)
            .map(|r| (r.concurrency, r.p50_us))
            .collect();
        for row in &mut self.rows {
            let p50 = i64::try_from(row.p50_us).unwrap_or(i64::MAX);
            row.added_p50_us = if row.requests == 0 {
                None
            } else if row.scenario.through_gateway() {
                direct
                    .iter()
                    .find(|(c, _)| *c == row.concurrency)
                    .map(|(_, d)| p50 - i64::try_from(*d).unwrap_or(i64::MAX))
            } else if row.scenario == Scenario::Direct {
                None
            } else {
                Some(p50)
            };
        }
    }

    pub fn errors(&self) -> u64 {
        self.rows.iter().map(|r| r.errors).sum()
    }

    pub fn table(&self) -> String {
        let mut table = Table::new(&[
            "SCENARIO",
            "CONC",
            "REQUESTS",
            "P50 MS",
            "P99 MS",
            "REQ/S",
            "ADDED P50 MS",
            "CPU µS/REQ",
            "ERRORS",
        ]);
        let mut rows: Vec<&Row> = self.rows.iter().collect();
        let order = |s: Scenario| Scenario::ALL.iter().position(|x| *x == s);
        rows.sort_by_key(|r| (order(r.scenario), r.concurrency));
        for row in rows {
            table.row(vec![
                row.scenario.name().into(),
                row.concurrency.to_string(),
                row.requests.to_string(),
                ms(row.p50_us),
                ms(row.p99_us),
                format!("{:.0}", row.requests_per_second),
                row.added_p50_us.map_or("-".into(), |us| {
                    format!(
                        "{}{}",
                        if us >= 0 { "+" } else { "-" },
                        ms(us.unsigned_abs())
                    )
                }),
                row.cpu_us_per_request
                    .map_or("-".into(), |us| format!("{us:.0}")),
                row.errors.to_string(),
            ]);
        }
        let mut out = table.render();
        out.push_str(
            "ADDED P50: through the gateway, p50 less the direct p50 at the same concurrency; \
             token and introspect, the whole call (what a request needing one adds).\n",
        );
        for skipped in &self.skipped {
            out.push_str(&format!(
                "skipped {}: {}\n",
                skipped.scenario.name(),
                skipped.reason
            ));
        }
        for note in &self.notes {
            out.push_str(&format!("note: {note}\n"));
        }
        for row in self.rows.iter().filter(|r| r.errors > 0) {
            out.push_str(&format!(
                "errors in {} at concurrency {}: {} (first: {})\n",
                row.scenario.name(),
                row.concurrency,
                row.errors,
                row.first_error.as_deref().unwrap_or("-")
            ));
        }
        out
    }
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// A process's CPU time so far (user + system, every thread, in clock ticks), from
/// `/proc/PID/stat`.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| anyhow::anyhow!("cannot read the CPU time of process {pid}: {e}"))?;
    parse_cpu_ticks(&stat)
        .ok_or_else(|| anyhow::anyhow!("/proc/{pid}/stat has no CPU times: {stat:?}"))
}

/// `utime` and `stime` are fields 14 and 15; the command name (field 2, in parentheses) may
/// hold spaces, so the fields are counted after its closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Clock ticks per second, the unit of `/proc/PID/stat`'s CPU times.
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_times_are_read_past_a_command_name_with_spaces_and_parentheses() {
        let stat = "4242 (gate house) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 70 0 0 20 0 4 0 123 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(320));
        assert_eq!(parse_cpu_ticks("4242 (short) S 1"), None);
    }
}
