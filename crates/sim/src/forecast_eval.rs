//! How good start-time forecasts are, measured in replay: every `every` seconds of simulated
//! time the engine's state is planned twice — with walltimes (Slurm's `squeue --start`) and
//! with runtimes predicted from the jobs that ended so far (`sched::RuntimePredictor`,
//! learning online as the live server does) — and each waiting job's forecasts are kept: its
//! first (the one nearest its submission, at most `every` late) and every later one while it
//! waits. When it starts, each is compared with the real start.

use domain::{JobId, Seconds};
use rustc_hash::FxHashMap;
use sched::forecast::plan;
use sched::{Engine, RuntimePredictor};
use serde::Serialize;

const HORIZON_S: Seconds = 30 * 86_400;

#[derive(Debug)]
pub(crate) struct Recorder {
    every: Seconds,
    next: Seconds,
    predictor: RuntimePredictor,
    /// Per job: (when taken, predicted-runtime forecast, walltime forecast), first and later.
    first: FxHashMap<u64, (Seconds, Option<Seconds>, Option<Seconds>)>,
    later: Vec<(u64, Seconds, Option<Seconds>, Option<Seconds>)>,
}

/// Errors of one kind of forecast over one set of samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ErrorStats {
    pub samples: u64,
    pub median_abs_error_s: u64,
    pub p90_abs_error_s: u64,
    /// Share of forecasts within ±10 % of the job's actual wait (from when it was taken).
    pub within_10_percent: f64,
    /// Share within ±15 minutes of the actual start.
    pub within_15_min: f64,
    /// Jobs that started with no forecast (beyond the horizon when asked).
    pub missing: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ForecastReport {
    pub every_s: u64,
    pub at_submission_walltime: ErrorStats,
    pub at_submission_predicted: ErrorStats,
    pub while_waiting_walltime: ErrorStats,
    pub while_waiting_predicted: ErrorStats,
}

fn stats(samples: &[(Seconds, Option<Seconds>, Seconds)]) -> ErrorStats {
    // (taken at, forecast, actual start)
    let mut errors: Vec<u64> = Vec::new();
    let (mut ten, mut fifteen, mut missing) = (0u64, 0u64, 0u64);
    for &(taken, forecast, actual) in samples {
        let Some(f) = forecast else {
            missing += 1;
            continue;
        };
        let e = f.abs_diff(actual);
        errors.push(e);
        let wait = actual.saturating_sub(taken);
        ten += u64::from(e * 10 <= wait);
        fifteen += u64::from(e <= 900);
    }
    errors.sort_unstable();
    let n = errors.len();
    let at = |q: f64| {
        errors
            .get(((n as f64 * q) as usize).min(n.saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    ErrorStats {
        samples: n as u64,
        median_abs_error_s: at(0.5),
        p90_abs_error_s: at(0.9),
        within_10_percent: ten as f64 / n.max(1) as f64,
        within_15_min: fifteen as f64 / n.max(1) as f64,
        missing,
    }
}

impl Recorder {
    pub(crate) fn new(every: Seconds, start: Seconds) -> Recorder {
        Recorder {
            every: every.max(1),
            next: start,
            predictor: RuntimePredictor::default(),
            first: FxHashMap::default(),
            later: Vec::new(),
        }
    }

    pub(crate) fn observe(&mut self, account: &str, walltime: Seconds, runtime: Seconds) {
        self.predictor.observe(account, None, walltime, runtime);
    }

    /// Forecasts every waiting job if it is time to. Jobs that ran before (preempted, now
    /// waiting again) are left out: their first start is behind them.
    pub(crate) fn maybe_take(&mut self, engine: &Engine, now: Seconds, started_before: impl Fn(u64) -> bool) {
        if now < self.next {
            return;
        }
        self.next = now + self.every;
        let snapshot = engine.snapshot();
        if snapshot.waiting.is_empty() {
            return;
        }
        let accounts: FxHashMap<JobId, &str> = snapshot
            .running
            .iter()
            .map(|r| (r.id, r.account.as_str()))
            .chain(snapshot.waiting.iter().map(|w| (w.id, w.account.as_str())))
            .collect();
        let predictor = &self.predictor;
        let predicted = plan(
            &snapshot,
            |id, w| {
                predictor
                    .predict(accounts.get(&id).copied().unwrap_or(""), None, w)
                    .runtime_s
            },
            HORIZON_S,
        );
        let by_walltime = plan(&snapshot, |_, w| w, HORIZON_S);
        for w in snapshot.waiting.iter().filter(|w| !started_before(w.id.0)) {
            let p = predicted.starts.get(&w.id).copied();
            let b = by_walltime.starts.get(&w.id).copied();
            match self.first.entry(w.id.0) {
                std::collections::hash_map::Entry::Occupied(_) => self.later.push((w.id.0, now, p, b)),
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((now, p, b));
                }
            }
        }
    }

    /// The report, given each job's real first start.
    pub(crate) fn report(&self, started: impl Fn(u64) -> Option<Seconds>) -> ForecastReport {
        let mut firsts_p = Vec::new();
        let mut firsts_w = Vec::new();
        for (&id, &(taken, p, w)) in &self.first {
            if let Some(s) = started(id) {
                firsts_p.push((taken, p, s));
                firsts_w.push((taken, w, s));
            }
        }
        let mut later_p = Vec::new();
        let mut later_w = Vec::new();
        for &(id, taken, p, w) in &self.later {
            if let Some(s) = started(id) {
                later_p.push((taken, p, s));
                later_w.push((taken, w, s));
            }
        }
        ForecastReport {
            every_s: self.every,
            at_submission_walltime: stats(&firsts_w),
            at_submission_predicted: stats(&firsts_p),
            while_waiting_walltime: stats(&later_w),
            while_waiting_predicted: stats(&later_p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{SimOptions, SyntheticParams, simulate, synthetic};
    use sched::{PolicyConfig, PolicyName};

    #[test]
    fn errors_are_measured_against_real_starts() {
        let samples = [
            (0, Some(100), 100),
            (0, Some(1000), 2000),
            (0, None, 50),
            (1000, Some(1100), 2000),
        ];
        let s = stats(&samples);
        assert_eq!((s.samples, s.missing), (3, 1));
        assert_eq!(s.median_abs_error_s, 900);
        assert_eq!(s.p90_abs_error_s, 1000);
        // 0 of a 100 s wait; 1000 of 2000 (50 %); 900 of 1000 (90 %).
        assert!((s.within_10_percent - 1.0 / 3.0).abs() < 1e-9, "{s:?}");
        assert!((s.within_15_min - 2.0 / 3.0).abs() < 1e-9, "{s:?}");
    }

    #[test]
    fn a_loaded_replay_reports_forecasts_of_both_kinds() {
        let p: SyntheticParams = "jobs=1500,gpus=64,seed=5,load=1.2".parse().unwrap();
        let trace = synthetic::generate(&p);
        let cluster = trace.cluster.clone().unwrap();
        let opts = SimOptions {
            forecast_every: Some(600),
            ..SimOptions::default()
        };
        let report = simulate(&trace, &cluster, PolicyConfig::new(PolicyName::Aifactory), opts).unwrap();
        let f = report.forecast.expect("forecasts were measured");
        assert_eq!(f.every_s, 600);
        assert!(f.at_submission_walltime.samples > 50, "{f:?}");
        assert_eq!(f.at_submission_walltime.samples, f.at_submission_predicted.samples);
        assert!(
            f.while_waiting_predicted.samples >= f.at_submission_predicted.samples / 2,
            "{f:?}"
        );
        // Without it, nothing is measured.
        let plain = simulate(
            &trace,
            &cluster,
            PolicyConfig::new(PolicyName::Aifactory),
            SimOptions::default(),
        )
        .unwrap();
        assert!(plain.forecast.is_none());
    }
}
