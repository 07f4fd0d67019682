//! Scheduling policies, selected by name, and their parameters. Each policy's doc says
//! what it does and which source it follows.

use domain::{PriorityClass, Seconds};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyName {
    /// Strict arrival order; the first job that does not fit blocks everything behind it.
    /// No backfill. The textbook baseline.
    Fifo,
    /// Shortest job first by the true runtime (an oracle: only a simulator knows it),
    /// work-conserving (a job that does not fit is skipped). The oracle baseline used in
    /// the GPU-scheduling literature (e.g. Tiresias, NSDI 2019; the Alibaba 2020 trace study).
    Sjf,
    /// Slurm's multifactor priority plugin (age, fair share with half-life decay, job size,
    /// QOS as the class factor) with EASY backfill on requested walltimes, placement in
    /// node order. Follows the `priority/multifactor` and `sched/backfill` documentation.
    Multifactor,
    /// Tiresias' discretised two-dimensional least-attained-service (Gu et al., NSDI 2019):
    /// jobs are queued by attained GPU-time (GPUs x seconds run) into levels, first come
    /// first served inside a level, and a job of a lower level preempts running jobs of
    /// higher levels. Work-conserving, preemptive.
    Las,
    /// Our default: `multifactor` plus a short-job factor that waiting earns back, class guarantees (fast-lane and
    /// playground jobs start within a bound, preempting `preemptible` work if they must),
    /// best-fit topology-aware gang packing, and energy-aware site and start-time choice
    /// for jobs that accept a deferred start.
    Aifactory,
}

impl PolicyName {
    pub const ALL: [PolicyName; 5] = [
        PolicyName::Fifo,
        PolicyName::Sjf,
        PolicyName::Multifactor,
        PolicyName::Las,
        PolicyName::Aifactory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PolicyName::Fifo => "fifo",
            PolicyName::Sjf => "sjf",
            PolicyName::Multifactor => "multifactor",
            PolicyName::Las => "las",
            PolicyName::Aifactory => "aifactory",
        }
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        PolicyName::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown policy `{s}` (expected one of: fifo, sjf, multifactor, las, aifactory)"))
    }
}

/// Weights of Slurm's multifactor priority; a job's priority is the weighted sum of
/// factors in [0, 1]. Defaults are a typical site configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MultifactorParams {
    /// `PriorityWeightAge`; the age factor reaches 1 at `max_age_s` (`PriorityMaxAge`).
    pub weight_age: u32,
    pub max_age_s: Seconds,
    /// `PriorityWeightFairshare`; factor 2^(-usage/share), both normalised over accounts.
    pub weight_fairshare: u32,
    /// Half-life of past usage (`PriorityDecayHalfLife`).
    pub decay_half_life_s: Seconds,
    /// `PriorityWeightJobSize`; Slurm's default favours large jobs (`PriorityFavorSmall=NO`).
    pub weight_job_size: u32,
    pub favor_small: bool,
    /// `PriorityWeightQOS`, with the class factors below.
    pub weight_class: u32,
    /// Class factor of each class, in thousandths, in `PriorityClass` order
    /// (playground, fast-lane, standard, large-scale, preemptible).
    pub class_factor_milli: [u32; 5],
    /// How often priorities and decayed usage are recomputed (`PriorityCalcPeriod`).
    pub recalc_interval_s: Seconds,
    /// How often backfill runs (`bf_interval`); 0 runs it on every pass.
    pub backfill_interval_s: Seconds,
    /// Most jobs the backfill scan tests per pass (`bf_max_job_test`); 0 is no limit.
    pub backfill_max_job_test: u32,
}

impl Default for MultifactorParams {
    fn default() -> Self {
        MultifactorParams {
            weight_age: 1000,
            max_age_s: 7 * 24 * 3600,
            weight_fairshare: 10_000,
            decay_half_life_s: 7 * 24 * 3600,
            weight_job_size: 1000,
            favor_small: false,
            weight_class: 2000,
            class_factor_milli: [800, 1000, 400, 400, 0],
            recalc_interval_s: 300,
            backfill_interval_s: 30,
            backfill_max_job_test: 1000,
        }
    }
}

/// What `aifactory` adds to multifactor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AifactoryParams {
    /// Weight of the short-job factor: 1 - log(1+requested GPU-seconds)/log(1+largest),
    /// which favours short, small jobs as SJF does, but from the requested walltime.
    pub weight_short_job: u32,
    /// Weight of the wait factor: min(wait, `wait_horizon_s`) / `wait_horizon_s`, on top of
    /// multifactor's age. It earns back the short-job factor: a job waiting `wait_horizon_s`
    /// gains as much as the shortest job's advantage when `weight_wait` equals
    /// `weight_short_job`, so no job is overtaken by short ones for ever. Without it, long
    /// and large jobs starve behind a stream of short ones (lower Jain index, more GPUs idle
    /// while they wait: docs/policies.md has the sweep).
    pub weight_wait: u32,
    pub wait_horizon_s: Seconds,
    /// A fast-lane job starts within this many seconds of submission when preempting
    /// preemptible work can make room.
    pub fast_lane_max_wait_s: Seconds,
    pub playground_max_wait_s: Seconds,
    /// Preemption is used once a guaranteed job has waited this share (thousandths) of its
    /// bound; 0 (the default) preempts as soon as it is blocked, so the bound is met
    /// whenever preemptible work holds enough GPUs.
    pub preempt_after_milli: u32,
    /// A deferrable job waits for a cleaner hour only if that hour is at least this many
    /// thousandths cleaner than now.
    pub min_carbon_gain_milli: u32,
    /// Try sites in order of their carbon intensity (times PUE) at the time of the pass.
    pub green_site_order: bool,
    /// Best-fit, topology-aware placement (otherwise first fit in cluster order).
    pub best_fit: bool,
}

impl Default for AifactoryParams {
    fn default() -> Self {
        AifactoryParams {
            weight_short_job: 100_000,
            weight_wait: 100_000,
            wait_horizon_s: 16 * 3600,
            fast_lane_max_wait_s: 900,
            playground_max_wait_s: 1800,
            preempt_after_milli: 0,
            min_carbon_gain_milli: 300,
            green_site_order: true,
            best_fit: true,
        }
    }
}

impl AifactoryParams {
    pub fn max_wait(&self, class: PriorityClass) -> Option<Seconds> {
        match class {
            PriorityClass::FastLane => Some(self.fast_lane_max_wait_s),
            PriorityClass::Playground => Some(self.playground_max_wait_s),
            _ => None,
        }
    }
}

/// Tiresias' parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LasParams {
    /// Attained-service thresholds between levels, in GPU-seconds, ascending.
    pub thresholds_gpu_s: Vec<u64>,
}

impl Default for LasParams {
    fn default() -> Self {
        LasParams {
            thresholds_gpu_s: vec![3600, 10 * 3600],
        }
    }
}

/// A policy and all its parameters; unknown fields are refused when read from TOML/JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: PolicyName,
    #[serde(default)]
    pub multifactor: MultifactorParams,
    #[serde(default)]
    pub aifactory: AifactoryParams,
    #[serde(default)]
    pub las: LasParams,
    /// Shares per account for fair share; accounts not listed get share 1.
    #[serde(default)]
    pub shares: Vec<(String, u32)>,
}

impl PolicyConfig {
    pub fn new(name: PolicyName) -> PolicyConfig {
        PolicyConfig {
            name,
            multifactor: MultifactorParams::default(),
            aifactory: AifactoryParams::default(),
            las: LasParams::default(),
            shares: Vec::new(),
        }
    }

    pub(crate) fn uses_backfill(&self) -> bool {
        matches!(self.name, PolicyName::Multifactor | PolicyName::Aifactory)
    }
}
