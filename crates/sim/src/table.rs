//! The comparison table printed for people.

use crate::metrics::Report;
use std::fmt::Write as _;

fn hours(s: f64) -> String {
    if s < 3600.0 {
        format!("{:.1}m", s / 60.0)
    } else {
        format!("{:.2}h", s / 3600.0)
    }
}

/// One row per policy: the figures the issue compares, with durations in minutes or hours.
pub fn render(reports: &[Report]) -> String {
    let headers = [
        "policy",
        "done",
        "timeout",
        "rejected",
        "preempt",
        "mean JCT",
        "p50 JCT",
        "p99 wait",
        "mean wait",
        "fast-lane p95 wait",
        "util",
        "frag",
        "Jain",
        "MWh",
        "t CO2e",
        "sim s",
    ];
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let fast = r
                .wait_by_class_s
                .get("fast-lane")
                .map_or("-".to_string(), |s| hours(s.p95));
            vec![
                r.policy.clone(),
                r.jobs_completed.to_string(),
                r.jobs_timeout.to_string(),
                r.jobs_rejected.to_string(),
                r.preemptions.to_string(),
                hours(r.jct_s.mean),
                hours(r.jct_s.p50),
                hours(r.wait_s.p99),
                hours(r.wait_s.mean),
                fast,
                format!("{:.3}", r.gpu_utilisation),
                format!("{:.3}", r.fragmentation),
                format!("{:.3}", r.jain_fairness),
                format!("{:.1}", r.energy_kwh / 1000.0),
                format!("{:.1}", r.carbon_kg / 1000.0),
                format!("{:.2}", r.sim_wall_s),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([headers[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("{c:<w$}", w = widths[i])
                } else {
                    format!("{c:>w$}", w = widths[i])
                }
            })
            .collect();
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&mut out, &headers);
    for r in &rows {
        line(&mut out, &r.iter().map(String::as_str).collect::<Vec<_>>());
    }
    out
}
