//! `--plot FILE.svg`: p50 bars with a p99 tick per scenario, grouped by concurrency. SVG,
//! written as text: a PNG with labels would need a font rasteriser and an image encoder in
//! the binary, for one chart.

use std::fmt::Write;

use super::{report::Report, run::Scenario};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#b07aa1",
];

pub fn svg(report: &Report) -> String {
    let mut concurrencies: Vec<usize> = report.rows.iter().map(|r| r.concurrency).collect();
    concurrencies.sort_unstable();
    concurrencies.dedup();
    let scenarios: Vec<Scenario> = Scenario::ALL
        .into_iter()
        .filter(|s| report.rows.iter().any(|r| r.scenario == *s))
        .collect();
    let top_ms = report
        .rows
        .iter()
        .map(|r| r.p99_us as f64 / 1000.0)
        .fold(0.0_f64, f64::max);
    let scale_max = nice_ceiling(top_ms);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let y = |ms: f64| TOP + plot_h - (ms / scale_max * plot_h);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        out,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="22" font-size="15">gatehouse bench: p50 (bar) and p99 (tick), ms, by concurrency</text>"#
    );
    for step in 0..=4 {
        let ms = scale_max * f64::from(step) / 4.0;
        let at = y(ms);
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{at:.1}" y2="{at:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{ms:.2}</text>"##,
            LEFT + plot_w,
            LEFT - 6.0,
            at + 4.0
        );
    }
    let group_w = plot_w / concurrencies.len().max(1) as f64;
    let bar_w = group_w * 0.8 / scenarios.len().max(1) as f64;
    for (g, concurrency) in concurrencies.iter().enumerate() {
        let group_x = LEFT + g as f64 * group_w + group_w * 0.1;
        for (i, scenario) in scenarios.iter().enumerate() {
            let Some(row) = report
                .rows
                .iter()
                .find(|r| r.scenario == *scenario && r.concurrency == *concurrency)
            else {
                continue;
            };
            let x = group_x + i as f64 * bar_w;
            let p50 = y(row.p50_us as f64 / 1000.0);
            let p99 = y(row.p99_us as f64 / 1000.0);
            let colour = colour(*scenario);
            let _ = write!(
                out,
                r#"<rect x="{x:.1}" y="{p50:.1}" width="{:.1}" height="{:.1}" fill="{colour}"/><line x1="{:.1}" x2="{:.1}" y1="{p99:.1}" y2="{p99:.1}" stroke="{colour}" stroke-width="2"/><line x1="{:.1}" x2="{:.1}" y1="{p50:.1}" y2="{p99:.1}" stroke="{colour}"/>"#,
                (bar_w - 2.0).max(1.0),
                (TOP + plot_h - p50).max(0.0),
                x,
                x + bar_w - 2.0,
                x + bar_w / 2.0 - 1.0,
                x + bar_w / 2.0 - 1.0,
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">concurrency {concurrency}</text>"#,
            LEFT + g as f64 * group_w + group_w / 2.0,
            TOP + plot_h + 20.0
        );
    }
    for (i, scenario) in scenarios.iter().enumerate() {
        let at = TOP + 10.0 + i as f64 * 20.0;
        let _ = write!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="12" height="12" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            WIDTH - RIGHT + 20.0,
            at - 10.0,
            colour(*scenario),
            WIDTH - RIGHT + 38.0,
            at,
            scenario.name()
        );
    }
    out.push_str("</svg>\n");
    out
}

fn colour(scenario: Scenario) -> &'static str {
    let index = Scenario::ALL
        .iter()
        .position(|s| *s == scenario)
        .unwrap_or(0);
    COLOURS.get(index).copied().unwrap_or("#888")
}

/// The next of 1, 2 or 5 times a power of ten at or above `value`, so the axis reads well.
fn nice_ceiling(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|c| *c >= value)
        .unwrap_or(10.0 * power)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_axis_ends_at_a_round_number_above_the_highest_p99() {
        assert_eq!(nice_ceiling(0.37), 0.5);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
    }
}
