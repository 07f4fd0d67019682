//! SVG charts, written by hand (a few lines of markup; no plotting crate needed): queue
//! length and GPU utilisation over time for every policy, and CDFs of JCT and wait per class.

use crate::driver::class_order;
use crate::metrics::Report;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const W: f64 = 820.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A line chart of several series; `log_x` plots x on a log scale (for CDFs of durations).
pub fn line_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
    log_x: bool,
) -> String {
    let tx = |x: f64| if log_x { x.max(1.0).log10() } else { x };
    let pts = series.iter().flat_map(|s| s.1.iter());
    let (mut x0, mut x1, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, 0.0f64);
    for &(x, y) in pts {
        x0 = x0.min(tx(x));
        x1 = x1.max(tx(x));
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= 0.0 {
        y1 = 1.0;
    }
    let px = |x: f64| LEFT + (tx(x) - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y1 * (H - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/>
<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>
<text x="{}" y="{}" text-anchor="middle">{}</text>
<text x="16" y="{}" text-anchor="middle" transform="rotate(-90 16 {})">{}</text>
"##,
        (W - RIGHT + LEFT) / 2.0,
        escape(title),
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM,
        (W - RIGHT + LEFT) / 2.0,
        H - 12.0,
        escape(x_label),
        (H - BOTTOM + TOP) / 2.0,
        (H - BOTTOM + TOP) / 2.0,
        escape(y_label)
    );
    for i in 0..=4 {
        let fx = x0 + (x1 - x0) * f64::from(i) / 4.0;
        let label = if log_x {
            human_seconds(10f64.powf(fx))
        } else {
            compact(fx)
        };
        let x = LEFT + f64::from(i) / 4.0 * (W - LEFT - RIGHT);
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            H - BOTTOM + 16.0,
            escape(&label)
        );
        let fy = y1 * f64::from(i) / 4.0;
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><line x1="{LEFT}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#ddd"/>"##,
            LEFT - 6.0,
            py(fy) + 4.0,
            compact(fy),
            py(fy),
            W - RIGHT,
            py(fy)
        );
    }
    for (i, (name, points)) in series.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let path: Vec<String> = points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
            path.join(" ")
        );
        let ly = TOP + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{colour}" stroke-width="3"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            W - RIGHT + 12.0,
            W - RIGHT + 32.0,
            W - RIGHT + 38.0,
            ly + 4.0,
            escape(name)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn compact(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn human_seconds(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.0}s")
    } else if s < 3600.0 {
        format!("{:.0}m", s / 60.0)
    } else if s < 86400.0 {
        format!("{:.1}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86400.0)
    }
}

/// Empirical CDF, thinned to at most ~400 points.
fn cdf(values: &[u64]) -> Vec<(f64, f64)> {
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    let step = (n / 400).max(1);
    let mut out: Vec<(f64, f64)> = (0..n)
        .step_by(step)
        .map(|i| (v[i] as f64, (i + 1) as f64 / n as f64))
        .collect();
    if let Some(&last) = v.last() {
        out.push((last as f64, 1.0));
    }
    out
}

/// Writes `queue.svg`, `utilisation.svg` and per policy `jct-cdf-<policy>.svg` and
/// `wait-cdf-<policy>.svg` into `dir`; returns the files written.
pub fn write_plots(dir: &Path, reports: &[Report]) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut put = |name: String, svg: String| -> std::io::Result<()> {
        let path = dir.join(name);
        std::fs::write(&path, svg)?;
        written.push(path);
        Ok(())
    };
    let over_time = |f: fn(&crate::metrics::Sample) -> f64| -> Vec<(String, Vec<(f64, f64)>)> {
        reports
            .iter()
            .map(|r| {
                (
                    r.policy.clone(),
                    r.series.iter().map(|s| (s.t_s as f64 / 3600.0, f(s))).collect(),
                )
            })
            .collect()
    };
    put(
        "queue.svg".into(),
        line_chart(
            "Jobs waiting in the queue",
            "time since first submission (h)",
            "jobs",
            &over_time(|s| s.queued as f64),
            false,
        ),
    )?;
    put(
        "utilisation.svg".into(),
        line_chart(
            "GPU utilisation",
            "time since first submission (h)",
            "busy share of GPUs",
            &over_time(|s| s.utilisation),
            false,
        ),
    )?;
    for r in reports {
        for (what, data) in [("jct", &r.jct_by_class), ("wait", &r.wait_by_class)] {
            let series: Vec<(String, Vec<(f64, f64)>)> = class_order()
                .filter_map(|c| data.get(c).map(|v| (c.to_string(), cdf(v))))
                .collect();
            let title = format!(
                "{} CDF by class, {}",
                if what == "jct" { "Job completion time" } else { "Wait" },
                r.policy
            );
            put(
                format!("{what}-cdf-{}.svg", r.policy),
                line_chart(&title, "seconds (log scale)", "share of jobs", &series, true),
            )?;
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_well_formed_svg_with_every_series() {
        let svg = line_chart(
            "t <1>",
            "x",
            "y",
            &[("a&b".into(), vec![(0.0, 1.0), (2.0, 3.0)]), ("c".into(), vec![])],
            false,
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t &lt;1&gt;") && svg.contains("a&amp;b"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        let log = line_chart("cdf", "s", "share", &[("x".into(), cdf(&[1, 10, 100, 1000]))], true);
        assert!(
            log.contains("16.7m") || log.contains("1000") || log.contains("17m"),
            "{log}"
        );
    }
}
