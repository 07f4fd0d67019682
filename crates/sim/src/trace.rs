//! A workload to replay: jobs with their submit time and true runtime, the cluster that
//! came with them (if any), and the rows that could not be read.

use domain::{Cluster, JobSpec, Seconds};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq)]
pub struct TraceJob {
    /// Index in `Trace::jobs`; dependencies refer to it.
    pub id: u64,
    pub submit: Seconds,
    /// How long the job runs when it gets its GPUs (it is stopped at its walltime).
    pub runtime_s: Seconds,
    pub spec: JobSpec,
}

/// A row that was skipped, with its line number (1-based, header included) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BadRow {
    pub line: u64,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Trace {
    pub name: String,
    /// Sorted by submit time (stable: ties keep file order).
    pub jobs: Vec<TraceJob>,
    pub cluster: Option<Cluster>,
    /// Rows skipped; only the first `MAX_KEPT_BAD_ROWS` are kept, `bad_rows_total` counts all.
    pub bad_rows: Vec<BadRow>,
    pub bad_rows_total: u64,
    /// Rows left out on purpose (CPU-only tasks, never-scheduled tasks), by reason.
    pub excluded: Vec<(String, u64)>,
}

pub const MAX_KEPT_BAD_ROWS: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("cannot read {path}")]
    Io { path: String, source: std::io::Error },
    #[error("line {line}: {reason}")]
    BadRow { line: u64, reason: String },
    #[error("{0}")]
    Format(String),
}

/// Collects bad rows: fails on the first in strict mode, else counts and skips.
#[derive(Debug)]
pub(crate) struct RowSink {
    strict: bool,
    pub bad: Vec<BadRow>,
    pub total: u64,
    excluded: Vec<(String, u64)>,
}

impl RowSink {
    pub fn new(strict: bool) -> RowSink {
        RowSink {
            strict,
            bad: Vec::new(),
            total: 0,
            excluded: Vec::new(),
        }
    }

    pub fn bad(&mut self, line: u64, reason: impl Into<String>) -> Result<(), TraceError> {
        let reason = reason.into();
        if self.strict {
            return Err(TraceError::BadRow { line, reason });
        }
        self.total += 1;
        if self.bad.len() < MAX_KEPT_BAD_ROWS {
            self.bad.push(BadRow { line, reason });
        }
        Ok(())
    }

    pub fn exclude(&mut self, reason: &str) {
        match self.excluded.iter_mut().find(|(r, _)| r == reason) {
            Some((_, n)) => *n += 1,
            None => self.excluded.push((reason.to_string(), 1)),
        }
    }

    pub fn finish(self, name: String, mut jobs: Vec<TraceJob>, cluster: Option<Cluster>) -> Trace {
        sort_and_renumber(&mut jobs);
        Trace {
            name,
            jobs,
            cluster,
            bad_rows: self.bad,
            bad_rows_total: self.total,
            excluded: self.excluded,
        }
    }
}

/// Sorts by submit time (stable) and renumbers ids, rewriting dependencies to match.
pub(crate) fn sort_and_renumber(jobs: &mut [TraceJob]) {
    if jobs.windows(2).all(|w| w[0].submit <= w[1].submit) && jobs.iter().enumerate().all(|(i, j)| j.id == i as u64) {
        return;
    }
    jobs.sort_by_key(|j| j.submit);
    let mut new_id = vec![0u64; jobs.len()];
    for (i, j) in jobs.iter().enumerate() {
        new_id[j.id as usize] = i as u64;
    }
    for (i, j) in jobs.iter_mut().enumerate() {
        j.id = i as u64;
        for d in &mut j.spec.depends_on {
            d.0 = new_id[d.0 as usize];
        }
    }
}

impl Trace {
    /// GPU-seconds demanded divided by the cluster's GPUs times the arrival span.
    pub fn offered_load(&self, cluster_gpus: u64) -> f64 {
        let (Some(first), Some(last)) = (self.jobs.first(), self.jobs.last()) else {
            return 0.0;
        };
        let span = (last.submit - first.submit).max(1) as f64;
        let demand: f64 = self
            .jobs
            .iter()
            .map(|j| j.spec.gpus.total_milli() as f64 / 1000.0 * j.runtime_s.min(j.spec.walltime_s) as f64)
            .sum();
        demand / (cluster_gpus.max(1) as f64 * span)
    }

    /// Rescales arrival times around the first one, keeping order and relative gaps, so
    /// that the offered load becomes `target`. Returns the load reached (rounding to whole
    /// seconds moves it slightly).
    pub fn scale_to_load(&mut self, cluster_gpus: u64, target: f64) -> Result<f64, TraceError> {
        if !(target.is_finite() && target > 0.0) {
            return Err(TraceError::Format(format!(
                "--load must be a positive number, got {target}"
            )));
        }
        let current = self.offered_load(cluster_gpus);
        if current <= 0.0 {
            return Err(TraceError::Format(
                "the trace has no arrival span or no demand, so its load cannot be scaled".into(),
            ));
        }
        let factor = current / target;
        let first = self.jobs[0].submit;
        for j in &mut self.jobs {
            j.submit = first + ((j.submit - first) as f64 * factor).round() as Seconds;
        }
        Ok(self.offered_load(cluster_gpus))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::{GpuRequest, JobId};

    fn job(id: u64, submit: u64, gpus: u32, runtime: u64) -> TraceJob {
        TraceJob {
            id,
            submit,
            runtime_s: runtime,
            spec: JobSpec::new("a", GpuRequest::Spread { gpus }, runtime * 2),
        }
    }

    #[test]
    fn load_scaling_keeps_order_and_hits_the_target() {
        let mut t = Trace {
            jobs: vec![job(0, 100, 2, 500), job(1, 300, 1, 1000), job(2, 1100, 4, 250)],
            ..Trace::default()
        };
        // demand 1000+1000+1000 GPU-s over 1000 s on 10 GPUs
        assert!((t.offered_load(10) - 0.3).abs() < 1e-9);
        let reached = t.scale_to_load(10, 0.9).unwrap();
        assert!((reached - 0.9).abs() < 0.01, "{reached}");
        let submits: Vec<u64> = t.jobs.iter().map(|j| j.submit).collect();
        assert_eq!(submits[0], 100);
        assert!(submits.windows(2).all(|w| w[0] <= w[1]));
        // relative gaps kept (200:1000 before), up to rounding to whole seconds
        assert_eq!(submits[1] - 100, 67);
        assert_eq!(submits[2] - 100, 333);
        assert!(t.scale_to_load(10, -1.0).is_err());
    }

    #[test]
    fn renumbering_follows_submit_order_and_fixes_dependencies() {
        let mut jobs = vec![job(0, 50, 1, 1), job(1, 10, 1, 1)];
        jobs[0].spec.depends_on = vec![JobId(1)];
        sort_and_renumber(&mut jobs);
        assert_eq!(jobs[0].submit, 10);
        assert_eq!(jobs[1].spec.depends_on, vec![JobId(0)]);
    }
}
