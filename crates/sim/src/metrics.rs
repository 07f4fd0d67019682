//! What a simulation measured, per policy.

use serde::Serialize;
use std::collections::BTreeMap;

/// Mean and percentiles (nearest rank) of a set of durations, in seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Stats {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

impl Stats {
    pub fn of(values: &mut [u64]) -> Stats {
        if values.is_empty() {
            return Stats::default();
        }
        values.sort_unstable();
        let n = values.len();
        let rank = |q: f64| values[((q * n as f64).ceil() as usize).clamp(1, n) - 1] as f64;
        Stats {
            count: n as u64,
            mean: values.iter().map(|&v| v as f64).sum::<f64>() / n as f64,
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
        }
    }
}

/// Jain's fairness index of `xs`: 1 when all equal, 1/n when one takes everything.
pub fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let squares: f64 = xs.iter().map(|x| x * x).sum();
    if xs.is_empty() || squares == 0.0 {
        return 1.0;
    }
    sum * sum / (xs.len() as f64 * squares)
}

/// One point of the time series behind the plots.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub t_s: u64,
    pub queued: u64,
    pub utilisation: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub policy: String,
    pub trace: String,
    pub cluster_gpus: u64,
    pub jobs_total: u64,
    pub jobs_completed: u64,
    /// Stopped at their walltime.
    pub jobs_timeout: u64,
    pub jobs_rejected: u64,
    /// Rows of the trace skipped as bad.
    pub rows_skipped: u64,
    pub preemptions: u64,
    pub makespan_s: u64,
    /// Job completion time: end minus submission, for jobs that ran to an end.
    pub jct_s: Stats,
    /// Time spent waiting (not running) between submission and end.
    pub wait_s: Stats,
    /// mean of max(1, JCT / max(runtime, 10 s)).
    pub bounded_slowdown: f64,
    /// Busy GPU time over all GPUs' time during the makespan (0-1).
    pub gpu_utilisation: f64,
    /// Share of GPU time left idle while jobs waited in the queue (0-1): free GPUs that no
    /// waiting job could use.
    pub fragmentation: f64,
    /// Jain's index over accounts of served GPU time / (GPUs x time in the system).
    pub jain_fairness: f64,
    pub wait_by_class_s: BTreeMap<String, Stats>,
    pub wait_by_org_type_s: BTreeMap<String, Stats>,
    /// Jobs of the guaranteed classes (fast-lane, playground) that started later than the
    /// bound `aifactory` promises them (counted for every policy, for comparison).
    pub start_bound_misses: BTreeMap<String, u64>,
    /// Facility energy during the makespan (idle and busy GPUs, PUE included).
    pub energy_kwh: f64,
    pub carbon_kg: f64,
    pub energy_cost_eur: f64,
    pub offered_load: f64,
    pub sim_wall_s: f64,
    pub engine_passes: u64,
    pub backfilled: u64,
    pub deferred_for_energy: u64,
    /// Start-time forecasts against the real starts, with `SimOptions::forecast_every`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<crate::forecast_eval::ForecastReport>,
    #[serde(skip)]
    pub series: Vec<Sample>,
    /// Completion times and waits of finished jobs by class, for the CDF plots.
    #[serde(skip)]
    pub jct_by_class: BTreeMap<String, Vec<u64>>,
    #[serde(skip)]
    pub wait_by_class: BTreeMap<String, Vec<u64>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let s = Stats::of(&mut v);
        assert_eq!((s.p50, s.p95, s.p99, s.mean), (50.0, 95.0, 99.0, 50.5));
        assert_eq!(Stats::of(&mut []).count, 0);
        assert_eq!(Stats::of(&mut [7]).p99, 7.0);
    }

    #[test]
    fn jain_index_bounds() {
        assert!((jain(&[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-12);
        assert!((jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
        assert_eq!(jain(&[]), 1.0);
    }
}
