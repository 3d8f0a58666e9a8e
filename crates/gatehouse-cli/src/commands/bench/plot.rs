//! `--plot FILE.svg` or `--plot FILE.png`: p50 bars with a p99 tick per scenario, grouped by
//! concurrency. The chart is laid out once as a list of shapes (`chart`), then written as SVG
//! text (`svg`) or rasterised into a PNG (`png.rs`), so both files show the same thing.

use std::fmt::Write;

use super::{report::Report, run::Scenario};

pub const WIDTH: f64 = 960.0;
pub const HEIGHT: f64 = 480.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLOURS: [Rgb; 6] = [
    Rgb(0x4e, 0x79, 0xa7),
    Rgb(0xf2, 0x8e, 0x2b),
    Rgb(0xe1, 0x57, 0x59),
    Rgb(0x76, 0xb7, 0xb2),
    Rgb(0x59, 0xa1, 0x4f),
    Rgb(0xb0, 0x7a, 0xa1),
];
const GRID: Rgb = Rgb(0xdd, 0xdd, 0xdd);
pub const WHITE: Rgb = Rgb(0xff, 0xff, 0xff);
pub const INK: Rgb = Rgb(0x22, 0x22, 0x22);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rgb(pub u8, pub u8, pub u8);

impl std::fmt::Display for Rgb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

/// One thing drawn, in chart units (SVG user units; the PNG scales them).
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    Rect {
        x: f64,
        y: f64,
        w: f64,
        h: f64,
        fill: Rgb,
    },
    Line {
        x1: f64,
        y1: f64,
        x2: f64,
        y2: f64,
        stroke: Rgb,
        width: f64,
    },
    /// `y` is the baseline, as in SVG.
    Text {
        x: f64,
        y: f64,
        size: f64,
        anchor: Anchor,
        text: String,
    },
}

pub fn chart(report: &Report) -> Vec<Shape> {
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
    let mut shapes = vec![
        Shape::Rect {
            x: 0.0,
            y: 0.0,
            w: WIDTH,
            h: HEIGHT,
            fill: WHITE,
        },
        Shape::Text {
            x: LEFT,
            y: 22.0,
            size: 15.0,
            anchor: Anchor::Start,
            text: "gatehouse bench: p50 (bar) and p99 (tick), ms, by concurrency".into(),
        },
    ];
    for step in 0..=4 {
        let ms = scale_max * f64::from(step) / 4.0;
        let at = y(ms);
        shapes.push(Shape::Line {
            x1: LEFT,
            y1: at,
            x2: LEFT + plot_w,
            y2: at,
            stroke: GRID,
            width: 1.0,
        });
        shapes.push(Shape::Text {
            x: LEFT - 6.0,
            y: at + 4.0,
            size: 12.0,
            anchor: Anchor::End,
            text: format!("{ms:.2}"),
        });
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
            let middle = x + bar_w / 2.0 - 1.0;
            shapes.push(Shape::Rect {
                x,
                y: p50,
                w: (bar_w - 2.0).max(1.0),
                h: (TOP + plot_h - p50).max(0.0),
                fill: colour,
            });
            shapes.push(Shape::Line {
                x1: x,
                y1: p99,
                x2: x + bar_w - 2.0,
                y2: p99,
                stroke: colour,
                width: 2.0,
            });
            shapes.push(Shape::Line {
                x1: middle,
                y1: p50,
                x2: middle,
                y2: p99,
                stroke: colour,
                width: 1.0,
            });
        }
        shapes.push(Shape::Text {
            x: LEFT + g as f64 * group_w + group_w / 2.0,
            y: TOP + plot_h + 20.0,
            size: 12.0,
            anchor: Anchor::Middle,
            text: format!("concurrency {concurrency}"),
        });
    }
    for (i, scenario) in scenarios.iter().enumerate() {
        let at = TOP + 10.0 + i as f64 * 20.0;
        shapes.push(Shape::Rect {
            x: WIDTH - RIGHT + 20.0,
            y: at - 10.0,
            w: 12.0,
            h: 12.0,
            fill: colour(*scenario),
        });
        shapes.push(Shape::Text {
            x: WIDTH - RIGHT + 38.0,
            y: at,
            size: 12.0,
            anchor: Anchor::Start,
            text: scenario.name().to_owned(),
        });
    }
    shapes
}

pub fn svg(shapes: &[Shape]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    for shape in shapes {
        let _ = match shape {
            Shape::Rect { x, y, w, h, fill } => write!(
                out,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}"/>"#
            ),
            Shape::Line {
                x1,
                y1,
                x2,
                y2,
                stroke,
                width,
            } => write!(
                out,
                r#"<line x1="{x1:.1}" x2="{x2:.1}" y1="{y1:.1}" y2="{y2:.1}" stroke="{stroke}" stroke-width="{width}"/>"#
            ),
            Shape::Text {
                x,
                y,
                size,
                anchor,
                text,
            } => {
                let anchor = match anchor {
                    Anchor::Start => "start",
                    Anchor::Middle => "middle",
                    Anchor::End => "end",
                };
                write!(
                    out,
                    r#"<text x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}">{}</text>"#,
                    escape(text)
                )
            }
        };
    }
    out.push_str("</svg>\n");
    out
}

/// Scenario names and numbers never need it; a label is text all the same.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn colour(scenario: Scenario) -> Rgb {
    let index = Scenario::ALL
        .iter()
        .position(|s| *s == scenario)
        .unwrap_or(0);
    COLOURS.get(index).copied().unwrap_or(Rgb(0x88, 0x88, 0x88))
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
