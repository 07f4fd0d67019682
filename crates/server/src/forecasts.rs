//! Start-time forecasts of the live factory. A task plans from the engine's snapshot (taken
//! under the control lock, planned outside it, so admission never waits for a forecast)
//! every few seconds when anything changed, twice: with the runtimes the predictor expects
//! (the forecast) and with the walltimes (the latest start, if every job before it used
//! all its time, as Slurm's `squeue --start` assumes). The predictor learns from every job
//! that ends here, and at start from the store's recent history.

use crate::AppState;
use domain::{JobId, JobSpec, Seconds};
use sched::RuntimePredictor;
use sched::forecast::plan;
use std::collections::HashMap;
use std::time::Duration;
use store::{JobFilter, JobState};

/// How far ahead forecasts look.
const HORIZON_S: Seconds = 90 * 86_400;
/// At most one plan per this long.
const EVERY: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// The forecast: with predicted runtimes.
    pub start: i64,
    /// With every job running to its walltime.
    pub latest: i64,
}

#[derive(Debug, Default)]
pub struct Forecasts {
    latest: std::sync::RwLock<HashMap<String, Expected>>,
    predictor: std::sync::Mutex<RuntimePredictor>,
    pub wake: tokio::sync::Notify,
}

impl Forecasts {
    /// A waiting job's forecast, if it has one.
    pub fn of(&self, job_id: &str) -> Option<Expected> {
        self.latest
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(job_id)
            .copied()
    }

    /// A job that ran `runtime_s` of its `walltime_s`, for the predictor.
    pub fn observe(&self, account: &str, user: &str, walltime_s: u64, runtime_s: u64) {
        self.predictor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(account, Some(user), walltime_s, runtime_s);
    }

    fn runtime(&self, account: &str, walltime_s: u64) -> u64 {
        self.predictor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .predict(account, None, walltime_s)
            .runtime_s
    }
}

/// Learns from the store's recent history, then plans whenever woken (after scheduling
/// passes), at most every few seconds.
pub fn start(state: AppState) {
    tokio::spawn(async move {
        learn_history(&state).await;
        loop {
            recompute(&state).await;
            tokio::select! {
                _ = state.forecasts.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
            tokio::time::sleep(EVERY).await;
        }
    });
}

async fn learn_history(state: &AppState) {
    for job_state in [JobState::Completed, JobState::Timeout, JobState::Failed] {
        let filter = JobFilter {
            state: Some(job_state),
            ..JobFilter::default()
        };
        let Ok(jobs) = state.store.list_jobs(&filter, None, 2000).await else {
            return;
        };
        for j in jobs.iter().rev() {
            if let (Some(s), Some(e)) = (j.started_at, j.ended_at) {
                state.forecasts.observe(
                    &j.spec.account,
                    &j.user_id,
                    j.spec.walltime_s,
                    e.saturating_sub(s) as u64,
                );
            }
        }
    }
}

async fn recompute(state: &AppState) {
    let (snapshot, names) = {
        let control = state.control.lock().await;
        let snapshot = control.engine.snapshot();
        let names: HashMap<JobId, String> = snapshot
            .waiting
            .iter()
            .filter_map(|w| control.name_of(w.id).map(|n| (w.id, n)))
            .collect();
        (snapshot, names)
    };
    let (predicted, by_walltime) = plan_both(&state.forecasts, &snapshot);
    let mut latest = HashMap::with_capacity(predicted.starts.len());
    for (id, start) in &predicted.starts {
        if let Some(name) = names.get(id) {
            let last = by_walltime.starts.get(id).copied().unwrap_or(*start).max(*start);
            latest.insert(
                name.clone(),
                Expected {
                    start: *start as i64,
                    latest: last as i64,
                },
            );
        }
    }
    *state.forecasts.latest.write().unwrap_or_else(|e| e.into_inner()) = latest;
}

/// The plan with predicted runtimes (each job's account's) and the plan with walltimes.
fn plan_both(
    forecasts: &Forecasts,
    snapshot: &sched::Snapshot,
) -> (sched::forecast::Forecast, sched::forecast::Forecast) {
    let accounts: HashMap<JobId, &str> = snapshot
        .running
        .iter()
        .map(|r| (r.id, r.account.as_str()))
        .chain(snapshot.waiting.iter().map(|w| (w.id, w.account.as_str())))
        .collect();
    let predicted = plan(
        snapshot,
        |id, walltime| forecasts.runtime(accounts.get(&id).copied().unwrap_or(""), walltime),
        HORIZON_S,
    );
    (predicted, plan(snapshot, |_, walltime| walltime, HORIZON_S))
}

/// When a job with `spec` would start if submitted now, without submitting it: planned on a
/// copy of the engine to which it was submitted.
pub async fn hypothetical(state: &AppState, spec: JobSpec) -> Result<Option<Expected>, sched::EngineError> {
    let mut engine = state.control.lock().await.engine.clone();
    // An id no real job has: the engine's ids count up from 1.
    let probe = JobId(u64::MAX);
    let now = engine.now().max(crate::accounting::unix_now());
    engine.apply(now, sched::Event::Submit { id: probe, spec })?;
    let snapshot = engine.snapshot();
    let (predicted, by_walltime) = plan_both(&state.forecasts, &snapshot);
    Ok(predicted.starts.get(&probe).map(|&s| Expected {
        start: s as i64,
        latest: by_walltime.starts.get(&probe).copied().unwrap_or(s).max(s) as i64,
    }))
}
