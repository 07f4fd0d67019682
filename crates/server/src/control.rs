//! The loop that carries out the engine's decisions: every state change is written to the
//! store before it is acted on, and every job end is settled in the store exactly once.

use crate::AppState;
use domain::{Cluster, JobId, Seconds};
use exec::{Exit, Launch};
use sched::{Decision, Engine, Event, Outcome};
use std::collections::HashMap;
use std::time::Duration;
use store::{JobEnd, JobState, Usage};

/// The engine and the mapping between the store's job ids and the engine's.
#[derive(Debug)]
pub struct Control {
    pub engine: Engine,
    ids: HashMap<String, u64>,
    names: HashMap<u64, String>,
    next: u64,
    /// Jobs stopped for a preemption: their end requeues them instead of ending them.
    preempting: std::collections::HashSet<String>,
}

impl Control {
    pub fn new(engine: Engine) -> Control {
        Control {
            engine,
            ids: HashMap::new(),
            names: HashMap::new(),
            next: 1,
            preempting: Default::default(),
        }
    }

    pub fn engine_id(&mut self, job_id: &str) -> JobId {
        if let Some(&n) = self.ids.get(job_id) {
            return JobId(n);
        }
        let n = self.next;
        self.next += 1;
        self.ids.insert(job_id.to_string(), n);
        self.names.insert(n, job_id.to_string());
        JobId(n)
    }

    pub fn known(&self, job_id: &str) -> Option<JobId> {
        self.ids.get(job_id).copied().map(JobId)
    }

    fn name(&self, id: JobId) -> Option<String> {
        self.names.get(&id.0).cloned()
    }

    fn forget(&mut self, job_id: &str) {
        if let Some(n) = self.ids.remove(job_id) {
            self.names.remove(&n);
        }
    }
}

pub fn unix_now() -> Seconds {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Energy, carbon and cost of `gpu_milli` thousandths of GPUs on nodes of `site` for
/// `seconds`: the node's busy power per GPU (no NVML here: the GPUs are virtual), times the
/// site's PUE; carbon at the site's intensity; cost at the site's GPU-hour price, or the
/// factory's default where the site sets none.
pub fn estimate_usage(
    cluster: &Cluster,
    nodes: &[u32],
    gpu_milli: u64,
    seconds: u64,
    cents_per_gpu_hour: i64,
) -> Usage {
    let node = nodes.first().and_then(|&n| cluster.nodes.get(n as usize));
    let (busy_w, site) = match node {
        Some(n) => (u64::from(n.busy_w_per_gpu), cluster.sites.get(usize::from(n.site))),
        None => (0, None),
    };
    let pue = site.map_or(1000, |s| u64::from(s.pue_milli));
    let gpu_seconds_milli = gpu_milli * seconds;
    let energy_wh = (gpu_seconds_milli * busy_w * pue).div_ceil(1000 * 1000 * 3600);
    let carbon_g = site.map_or(0, |s| (energy_wh * u64::from(s.carbon_at(unix_now()))).div_ceil(1000));
    let gpu_seconds = gpu_seconds_milli.div_ceil(1000) as i64;
    Usage {
        gpu_seconds,
        energy_wh: energy_wh as i64,
        carbon_g: carbon_g as i64,
        cost_cents: (gpu_seconds
            * site
                .and_then(|s| s.gpu_hour_price_cents)
                .map_or(cents_per_gpu_hour, i64::from)
            + 3599)
            / 3600,
    }
}

/// What a job used over `seconds` on the nodes of its recorded placement.
pub fn job_usage(state: &AppState, job: &store::Job, seconds: u64) -> Usage {
    let nodes: Vec<u32> = job
        .placement
        .as_ref()
        .and_then(|p| p.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|x| x.get("node").and_then(serde_json::Value::as_u64))
                .map(|n| n as u32)
                .collect()
        })
        .unwrap_or_default();
    estimate_usage(
        &state.cluster,
        &nodes,
        job.spec.gpus.total_milli(),
        seconds,
        state.config.cents_per_gpu_hour,
    )
}

/// Runs a scheduling pass and carries out its decisions. Called with the control lock held.
pub async fn schedule(state: &AppState, control: &mut Control) {
    let now = unix_now();
    let decisions = match control.engine.schedule(now) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %e, "scheduling pass failed");
            return;
        }
    };
    for decision in decisions {
        match decision {
            Decision::Start { job, placement } => {
                let Some(job_id) = control.name(job) else { continue };
                let gpus: Vec<u16> = placement.iter().flat_map(|a| a.gpus.iter().copied()).collect();
                let placement_json = serde_json::to_value(&placement).unwrap_or_default();
                match state.store.mark_running(&job_id, now as i64, &placement_json).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::error!(job.id = job_id.as_str(), error = %e, "could not record a start");
                        continue;
                    }
                }
                let stored = match state.store.get_job(&job_id).await {
                    Ok(j) => j,
                    Err(e) => {
                        tracing::error!(job.id = job_id.as_str(), error = %e, "started job vanished");
                        continue;
                    }
                };
                let launch = Launch {
                    job_id: job_id.clone(),
                    command: stored.command.clone(),
                    env: vec![("AIFACTORY_PROJECT".into(), stored.project_id.clone())],
                    gpus,
                    walltime: Duration::from_secs(stored.spec.walltime_s),
                };
                if let Err(e) = state.exec.launch(launch).await {
                    // The command could not start: the job fails at once, with the reason.
                    tracing::warn!(job.id = job_id.as_str(), error = %e, "launch failed");
                    let end = JobEnd {
                        state: JobState::Failed,
                        ended_at: now as i64,
                        exit_code: None,
                        reason: Some(e.to_string()),
                        usage: Usage::default(),
                    };
                    let _ = state.store.finish_job(&job_id, &end).await;
                    let _ = control.engine.apply(
                        now,
                        Event::Finished {
                            id: job,
                            outcome: Outcome::Failed,
                        },
                    );
                    control.forget(&job_id);
                }
            }
            Decision::Preempt { job, reason } => {
                let Some(job_id) = control.name(job) else { continue };
                tracing::info!(job.id = job_id.as_str(), reason = ?reason, "preempting");
                control.preempting.insert(job_id.clone());
                state.exec.cancel(&job_id);
            }
            Decision::Reject { job, reason } => {
                let Some(job_id) = control.name(job) else { continue };
                let end = JobEnd {
                    state: JobState::Rejected,
                    ended_at: now as i64,
                    exit_code: None,
                    reason: Some(reason.to_string()),
                    usage: Usage::default(),
                };
                if let Err(e) = state.store.finish_job(&job_id, &end).await {
                    tracing::error!(job.id = job_id.as_str(), error = %e, "could not record a rejection");
                }
                control.forget(&job_id);
            }
        }
    }
}

/// Settles a process end in the store, then tells the engine and schedules again.
pub async fn on_exit(state: &AppState, exit: Exit) {
    let Ok(job) = state.store.get_job(&exit.job_id).await else {
        tracing::warn!(job.id = exit.job_id.as_str(), "exit of an unknown job");
        return;
    };
    let seconds = exit.ended_at.saturating_sub(exit.started_at).max(1);
    let usage = job_usage(state, &job, seconds);
    let (db_state, outcome, reason) = if exit.timed_out {
        (
            JobState::Timeout,
            Outcome::Timeout,
            Some(format!("walltime of {} s reached", job.spec.walltime_s)),
        )
    } else if exit.cancelled {
        (JobState::Cancelled, Outcome::Cancelled, Some("cancelled".to_string()))
    } else if exit.exit_code == 0 {
        (JobState::Completed, Outcome::Completed, None)
    } else {
        (
            JobState::Failed,
            Outcome::Failed,
            Some(format!("exited with code {}", exit.exit_code)),
        )
    };
    let end = JobEnd {
        state: db_state,
        ended_at: exit.ended_at as i64,
        exit_code: Some(i64::from(exit.exit_code)),
        reason,
        usage,
    };
    let mut control = state.control.lock().await;
    if control.preempting.remove(&exit.job_id) {
        // The engine already put it back in its queue; the store follows, booking what ran.
        if let Err(e) = state.store.requeue(&exit.job_id, usage).await {
            tracing::error!(job.id = exit.job_id.as_str(), error = %e, "could not requeue a preempted job");
        }
        schedule(state, &mut control).await;
        return;
    }
    let id = control.known(&exit.job_id);
    match state.store.finish_job(&exit.job_id, &end).await {
        Ok(_) => {}
        Err(e) => tracing::error!(job.id = exit.job_id.as_str(), error = %e, "could not settle a job"),
    }
    if let Some(id) = id {
        // A cancel already removed it from the engine; then this is a no-op.
        let _ = control.engine.apply(unix_now(), Event::Finished { id, outcome });
        control.forget(&exit.job_id);
    }
    schedule(state, &mut control).await;
}
