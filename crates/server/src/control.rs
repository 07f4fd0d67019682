//! The loop that carries out the engine's decisions: every state change is written to the
//! store before it is acted on, and every job end is settled in the store exactly once.

use crate::AppState;
use domain::{Cluster, JobId, Seconds};
use exec::Exit;
use sched::{Decision, Engine, Event, Outcome};
use std::collections::HashMap;
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
    /// Nodes an operator drained here; Slurm's view of them does not undo that.
    pub operator_drained: std::collections::HashSet<u32>,
}

impl Control {
    pub fn new(engine: Engine) -> Control {
        Control {
            engine,
            ids: HashMap::new(),
            names: HashMap::new(),
            next: 1,
            preempting: Default::default(),
            operator_drained: Default::default(),
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

/// Energy, carbon and cost of `gpu_milli` thousandths of GPUs on `nodes` for `seconds`.
/// Energy is the job's share of what NVML measured on its GPUs (`measured_mj`, the IT
/// energy in millijoules) where there is a reading, else estimated as the node's busy power
/// per GPU times the GPU-time; either way times the site's PUE. Carbon at the site's
/// intensity; cost at the site's GPU-hour price, or the factory's default where the site
/// sets none. See docs/accounting.md.
pub fn estimate_usage(
    cluster: &Cluster,
    nodes: &[u32],
    gpu_milli: u64,
    seconds: u64,
    cents_per_gpu_hour: i64,
    measured_mj: Option<u128>,
) -> Usage {
    let node = nodes.first().and_then(|&n| cluster.nodes.get(n as usize));
    let (busy_w, site) = match node {
        Some(n) => (u64::from(n.busy_w_per_gpu), cluster.sites.get(usize::from(n.site))),
        None => (0, None),
    };
    let pue = site.map_or(1000, |s| u128::from(s.pue_milli));
    let gpu_seconds_milli = gpu_milli * seconds;
    // IT energy in millijoules: W × s × 1000.
    let it_mj = measured_mj.unwrap_or(u128::from(gpu_seconds_milli) * u128::from(busy_w));
    let energy_wh = (it_mj * pue).div_ceil(1000 * 3_600_000) as u64;
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

/// A job's recorded placement: the nodes and the GPUs it holds on them.
pub fn placement_of(job: &store::Job) -> Vec<sched::NodeAlloc> {
    job.placement
        .clone()
        .and_then(|p| serde_json::from_value(p).ok())
        .unwrap_or_default()
}

/// What a job used over `seconds` on its recorded placement; `gpu_mj` is what NVML
/// measured on the GPUs it was given (shared GPUs count at the job's fraction).
/// Starts a job on `placement` (empty when Slurm places it), on Slurm under its
/// allocation's account and QoS.
pub async fn launch(state: &AppState, job: &store::Job, placement: &[sched::NodeAlloc]) -> Result<(), String> {
    let charge = slurm_charge(state, job).await?;
    state.exec.launch(job, &charge, placement, &state.cluster).await
}

/// The Slurm account and QoS of a job's allocation (nothing to look up for local jobs).
async fn slurm_charge(state: &AppState, job: &store::Job) -> Result<store::SlurmCharge, String> {
    if !matches!(state.exec, crate::executor::Executor::Slurm { .. }) {
        return Ok(store::SlurmCharge::default());
    }
    if let Some(context) = state.submission_cache.get(&job.project_id)
        && let Some(alloc) = context.allocations.iter().find(|a| a.id == job.allocation_id)
    {
        return Ok(alloc.slurm.clone());
    }
    state
        .store
        .get_allocation(&job.allocation_id)
        .await
        .map(|a| a.slurm)
        .map_err(|e| format!("cannot read the allocation's Slurm account: {e}"))
}

pub fn job_usage(state: &AppState, job: &store::Job, seconds: u64, gpu_mj: Option<u64>) -> Usage {
    let placement = placement_of(job);
    let nodes: Vec<u32> = placement.iter().map(|a| a.node).collect();
    let listed: u64 = placement.iter().map(|a| a.gpus.len() as u64).sum();
    let milli = job.spec.gpus.total_milli();
    let measured = gpu_mj
        .filter(|_| listed > 0)
        .map(|mj| u128::from(mj) * u128::from(milli) / u128::from(listed * 1000));
    estimate_usage(
        &state.cluster,
        &nodes,
        milli,
        seconds,
        state.config.cents_per_gpu_hour,
        measured,
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
                if let Err(reason) = launch(state, &stored, &placement).await {
                    // The command could not start: the job fails at once, with the reason.
                    tracing::warn!(job.id = job_id.as_str(), error = %reason, "launch failed");
                    let end = JobEnd {
                        state: JobState::Failed,
                        ended_at: now as i64,
                        exit_code: None,
                        reason: Some(reason),
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
    let usage = job_usage(state, &job, seconds, exit.gpu_energy_mj);
    let (db_state, outcome, reason) = if exit.lost {
        (
            JobState::Lost,
            Outcome::Failed,
            Some(exit.reason.clone().unwrap_or_else(|| "lost by the executor".into())),
        )
    } else if exit.timed_out {
        (
            JobState::Timeout,
            Outcome::Timeout,
            Some(format!("walltime of {} s reached", job.spec.walltime_s)),
        )
    } else if exit.cancelled {
        (JobState::Cancelled, Outcome::Cancelled, Some("cancelled".to_string()))
    } else if exit.exit_code == 0 {
        (JobState::Completed, Outcome::Completed, None)
    } else if exit.exit_code < 0 {
        (
            JobState::Failed,
            Outcome::Failed,
            Some(
                exit.reason
                    .clone()
                    .unwrap_or_else(|| "ended without an exit code".into()),
            ),
        )
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
        exit_code: (exit.exit_code >= 0).then_some(i64::from(exit.exit_code)),
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

/// Slurm started a job it schedules itself: the store follows, with where it runs.
pub async fn on_started(state: &AppState, started: exec::slurm::Started) {
    if !state.exec.slurm_schedules() {
        return; // our engine placed it; the store already says running
    }
    let names = slurm::mapping::expand_hostlist(&started.nodes);
    let placement: Vec<sched::NodeAlloc> = names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let node = state.cluster.nodes.iter().position(|n| &n.name == name)? as u32;
            Some(sched::NodeAlloc {
                node,
                gpus: started.gpus.get(i).cloned().unwrap_or_default(),
                milli_per_gpu: 1000,
            })
        })
        .collect();
    let json = serde_json::to_value(&placement).unwrap_or_default();
    if let Err(e) = state
        .store
        .mark_running(&started.job_id, started.at as i64, &json)
        .await
    {
        tracing::error!(job.id = started.job_id.as_str(), error = %e, "could not record a start on Slurm");
    }
}

/// Makes the engine's node states follow Slurm's (drained or down there is drained or
/// down here), except where an operator drained a node here. Returns whether any changed.
pub fn sync_slurm_nodes(state: &AppState, control: &mut Control) -> bool {
    let crate::executor::Executor::Slurm { exec, .. } = &state.exec else {
        return false;
    };
    let now = unix_now();
    let mut changed = false;
    for info in exec.nodes() {
        let Some(i) = state.cluster.nodes.iter().position(|n| n.name == info.name) else {
            continue;
        };
        let node = i as u32;
        let wanted = match info.state {
            _ if control.operator_drained.contains(&node) => continue,
            slurm::NodeState::Drained => sched::NodeStatus::Drained,
            slurm::NodeState::Down => sched::NodeStatus::Down,
            _ => sched::NodeStatus::Up,
        };
        if control.engine.node_status(node) == Some(wanted) {
            continue;
        }
        let event = match wanted {
            sched::NodeStatus::Drained => Event::NodeDrain { node },
            sched::NodeStatus::Down => Event::NodeDown { node },
            sched::NodeStatus::Up => Event::NodeUp { node },
        };
        tracing::info!(node = info.name.as_str(), status = ?wanted, reason = info.reason.as_str(), "node state from Slurm");
        changed |= control.engine.apply(now, event).is_ok();
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::estimate_usage;

    #[test]
    fn energy_is_measured_where_nvml_reads_and_estimated_elsewhere() {
        let cluster = crate::demo::demo_cluster();
        let node = &cluster.nodes[0]; // Bologna: PUE 1.15, 330 g/kWh, 250 cents per GPU-hour
        let busy_w = u64::from(node.busy_w_per_gpu);
        // Two GPUs for an hour, estimated: busy power × GPU-hours × PUE.
        let estimated = estimate_usage(&cluster, &[0], 2000, 3600, 100, None);
        assert_eq!(estimated.gpu_seconds, 7200);
        assert_eq!(estimated.energy_wh as u64, (2 * busy_w * 1150).div_ceil(1000));
        assert_eq!(estimated.cost_cents, 500, "the site's price, not the default 100");
        // Measured: 1 kWh of IT energy (3.6e9 mJ) becomes 1.15 kWh at the meter.
        let measured = estimate_usage(&cluster, &[0], 2000, 3600, 100, Some(3_600_000_000));
        assert_eq!(measured.energy_wh, 1150);
        assert_eq!(measured.carbon_g, (1150 * 330_i64 + 999) / 1000);
        assert_eq!(measured.gpu_seconds, estimated.gpu_seconds, "time is time either way");
        // A week on 8 GPUs at 700 W does not overflow.
        let week = estimate_usage(&cluster, &[0], 8000, 604_800, 100, Some(8 * 700 * 604_800 * 1000));
        assert_eq!(week.energy_wh, 8 * 700 * 168 * 115 / 100);
    }
}
