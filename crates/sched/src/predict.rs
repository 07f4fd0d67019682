//! Runtime prediction for start-time forecasts. Users ask for much more walltime than their
//! jobs use, so a forecast that assumes every running job runs to its walltime (as Slurm's
//! `squeue --start` does) starts waiting jobs late. This predictor learns, online, what
//! share of the requested walltime jobs actually used, per user, per account (project) and
//! overall, and predicts a job's runtime as a quantile of that share times its walltime.
//!
//! Fallback, documented: the user's own history when it has at least `min_samples` ended
//! jobs, else the account's, else everybody's, else the walltime itself. Only the last
//! `window` jobs of each count, so habits that change are followed. Integer thousandths
//! throughout: the same history gives the same prediction on every machine.

use domain::Seconds;
use rustc_hash::FxHashMap;
use std::collections::VecDeque;

/// Where a prediction came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionSource {
    User,
    Account,
    Everybody,
    /// No history yet: the requested walltime.
    Walltime,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prediction {
    pub runtime_s: Seconds,
    pub source: PredictionSource,
}

#[derive(Debug, Clone)]
pub struct RuntimePredictor {
    window: usize,
    min_samples: usize,
    /// The quantile of the used share predicted, in thousandths (500: the median).
    quantile_milli: u32,
    by_user: FxHashMap<String, VecDeque<u16>>,
    by_account: FxHashMap<String, VecDeque<u16>>,
    everybody: VecDeque<u16>,
}

impl Default for RuntimePredictor {
    /// The last 50 jobs, at least 5 to speak, the median.
    fn default() -> Self {
        RuntimePredictor::new(50, 5, 500)
    }
}

fn push(history: &mut VecDeque<u16>, share: u16, window: usize) {
    if history.len() == window {
        history.pop_front();
    }
    history.push_back(share);
}

impl RuntimePredictor {
    pub fn new(window: usize, min_samples: usize, quantile_milli: u32) -> RuntimePredictor {
        RuntimePredictor {
            window: window.max(1),
            min_samples: min_samples.max(1),
            quantile_milli: quantile_milli.min(1000),
            by_user: FxHashMap::default(),
            by_account: FxHashMap::default(),
            everybody: VecDeque::new(),
        }
    }

    /// A job ended after `runtime_s` of the `walltime_s` it asked for.
    pub fn observe(&mut self, account: &str, user: Option<&str>, walltime_s: Seconds, runtime_s: Seconds) {
        if walltime_s == 0 {
            return;
        }
        let share = (runtime_s.min(walltime_s).saturating_mul(1000) / walltime_s) as u16;
        let window = self.window;
        if let Some(u) = user {
            push(self.by_user.entry(u.to_string()).or_default(), share, window);
        }
        push(self.by_account.entry(account.to_string()).or_default(), share, window);
        push(&mut self.everybody, share, window);
    }

    /// The runtime to expect of a job asking for `walltime_s`.
    pub fn predict(&self, account: &str, user: Option<&str>, walltime_s: Seconds) -> Prediction {
        let min = self.min_samples;
        let enough = |h: &VecDeque<u16>| h.len() >= min;
        let (history, source) = if let Some(h) = user.and_then(|u| self.by_user.get(u)).filter(|h| enough(h)) {
            (h, PredictionSource::User)
        } else if let Some(h) = self.by_account.get(account).filter(|h| enough(h)) {
            (h, PredictionSource::Account)
        } else if enough(&self.everybody) {
            (&self.everybody, PredictionSource::Everybody)
        } else {
            return Prediction {
                runtime_s: walltime_s,
                source: PredictionSource::Walltime,
            };
        };
        let share = self.quantile(history);
        Prediction {
            // At least a second, at most the walltime (the job is stopped there).
            runtime_s: (walltime_s.saturating_mul(u64::from(share)) / 1000).clamp(1, walltime_s.max(1)),
            source,
        }
    }

    /// The nearest-rank quantile of a history, in thousandths of the walltime.
    fn quantile(&self, history: &VecDeque<u16>) -> u16 {
        let mut sorted: Vec<u16> = history.iter().copied().collect();
        sorted.sort_unstable();
        let rank = (sorted.len() * self.quantile_milli as usize).div_ceil(1000).max(1);
        sorted[rank - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_history_the_walltime_is_the_prediction() {
        let p = RuntimePredictor::default();
        assert_eq!(
            p.predict("acct", Some("ann"), 3600),
            Prediction {
                runtime_s: 3600,
                source: PredictionSource::Walltime
            }
        );
    }

    #[test]
    fn the_user_then_the_account_then_everybody_speak_once_they_have_enough_history() {
        let mut p = RuntimePredictor::new(50, 3, 500);
        // Ann's jobs use a quarter of their walltime; the account's other user, all of it.
        for _ in 0..3 {
            p.observe("acct", Some("ann"), 4000, 1000);
        }
        assert_eq!(p.predict("acct", Some("ann"), 8000).runtime_s, 2000);
        assert_eq!(p.predict("acct", Some("ann"), 8000).source, PredictionSource::User);
        // Bob has no history: the account's (three quarter-jobs so far).
        let bob = p.predict("acct", Some("bob"), 8000);
        assert_eq!((bob.runtime_s, bob.source), (2000, PredictionSource::Account));
        for _ in 0..4 {
            p.observe("acct", Some("bob"), 1000, 1000);
        }
        // The account's median is now a full walltime (4 of 7 used all of it).
        assert_eq!(p.predict("acct", Some("cy"), 600).runtime_s, 600);
        // Another account: everybody's history.
        assert_eq!(p.predict("other", None, 600).source, PredictionSource::Everybody);
    }

    #[test]
    fn shares_are_clamped_and_the_window_forgets_old_habits() {
        let mut p = RuntimePredictor::new(4, 1, 500);
        p.observe("a", None, 100, 500); // ran past its walltime (the grace): counts as all of it
        assert_eq!(p.predict("a", None, 1000).runtime_s, 1000);
        for _ in 0..4 {
            p.observe("a", None, 1000, 100);
        }
        // The old full-walltime job left the window of four.
        assert_eq!(p.predict("a", None, 1000).runtime_s, 100);
        // Never zero, never past the walltime.
        p.observe("a", None, 1000, 0);
        assert!(p.predict("a", None, 10).runtime_s >= 1);
    }

    #[test]
    fn the_quantile_is_the_nearest_rank() {
        let mut p = RuntimePredictor::new(10, 1, 900);
        for used in [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000] {
            p.observe("a", None, 1000, used);
        }
        assert_eq!(p.predict("a", None, 1000).runtime_s, 900);
        let mut m = RuntimePredictor::new(10, 1, 500);
        for used in [100, 300, 200] {
            m.observe("a", None, 1000, used);
        }
        assert_eq!(m.predict("a", None, 1000).runtime_s, 200);
    }
}
