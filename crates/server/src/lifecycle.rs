//! The one owner of a job's life. Every transition (admitted, held until its GPUs are
//! free, started, launch failed, ended as completed, failed or timed out, cancelled,
//! preempted back to pending, rejected, lost) is carried out here, together with the
//! ledger entries it writes. The engine's decisions, the executors' reports, the API's
//! cancels and the recovery after a restart all come through this module; the table of
//! transitions is in ARCHITECTURE.md.
//!
//! Every transition runs with the control lock held, so two of them never interleave for
//! one job: a cancel sees the job as it is, not as it was when the request arrived. The
//! store is written before the executor is asked to act. A GPU given back by the engine
//! (a cancel, a preemption) is not handed to another job until the executor reports that
//! the process holding it has ended: the engine's view and the processes agree.

use crate::accounting::{billed_seconds, job_usage, placement_of, unix_now};
use crate::executor::Executor;
use crate::{ApiError, AppState};
use domain::JobId;
use exec::Exit;
use sched::{Decision, Engine, Event, NodeAlloc, Outcome};
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use store::{Job, JobEnd, JobState, Usage};

/// The engine, the mapping between the store's job ids and the engine's, and what the
/// executors still hold that the engine has given back.
#[derive(Debug)]
pub struct Control {
    pub engine: Engine,
    ids: HashMap<String, u64>,
    names: HashMap<u64, String>,
    next: u64,
    /// Jobs asked to stop (cancelled or preempted) whose processes have not ended yet.
    stopping: HashMap<String, Stopping>,
    /// Starts the engine decided that wait for a stopping job's GPUs, or for the job's own
    /// previous run to end.
    held: Vec<Held>,
    /// Nodes an operator drained here; Slurm's view of them does not undo that.
    pub operator_drained: HashSet<u32>,
}

#[derive(Debug)]
struct Stopping {
    gpus: Vec<(u32, u16)>,
    /// Preempted: a run ended by our stop goes back to the queue.
    requeue: bool,
    /// Who cancelled it, for the job's reason.
    cancelled_by: Option<String>,
}

#[derive(Debug)]
struct Held {
    job_id: String,
    id: JobId,
    placement: Vec<NodeAlloc>,
}

fn gpus_of(placement: &[NodeAlloc]) -> Vec<(u32, u16)> {
    placement
        .iter()
        .flat_map(|a| a.gpus.iter().map(move |&g| (a.node, g)))
        .collect()
}

impl Control {
    pub fn new(engine: Engine) -> Control {
        Control {
            engine,
            ids: HashMap::new(),
            names: HashMap::new(),
            next: 1,
            stopping: HashMap::new(),
            held: Vec::new(),
            operator_drained: HashSet::new(),
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

    /// The store's id of an engine job.
    pub fn name_of(&self, id: JobId) -> Option<String> {
        self.name(id)
    }

    fn forget(&mut self, job_id: &str) {
        if let Some(n) = self.ids.remove(job_id) {
            self.names.remove(&n);
        }
    }

    /// Whether a start must wait: its job's previous run, or a process on one of its
    /// GPUs, has not ended yet.
    fn blocked(&self, job_id: &str, placement: &[NodeAlloc]) -> bool {
        if self.stopping.contains_key(job_id) {
            return true;
        }
        let wanted = gpus_of(placement);
        self.stopping
            .values()
            .any(|s| s.gpus.iter().any(|g| wanted.contains(g)))
    }

    /// Jobs whose start waits for GPUs to be given back (for views and metrics).
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

/// Starts a job on `placement` (empty when Slurm places it), on Slurm under its
/// allocation's account and QoS.
async fn launch(state: &AppState, job: &Job, placement: &[NodeAlloc]) -> Result<(), String> {
    let charge = slurm_charge(state, job).await?;
    // Its datasets (access checked again now) and its own token for the hub.
    let env = crate::job_data::prepare(state, job).await?;
    state.exec.launch(job, &charge, placement, &state.cluster, env).await
}

/// The Slurm account and QoS of a job's allocation (nothing to look up for local jobs).
async fn slurm_charge(state: &AppState, job: &Job) -> Result<store::SlurmCharge, String> {
    if !matches!(state.exec, Executor::Slurm { .. }) {
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

/// Jobs the store has just admitted (or that a retried submission found again): the
/// engine queues those it does not know yet; when Slurm schedules, each goes to Slurm,
/// never twice.
pub async fn admitted(state: &AppState, jobs: &[&Job]) {
    let mut control = state.control.lock().await;
    let now = unix_now();
    if state.exec.slurm_schedules() {
        for job in jobs.iter().filter(|j| j.state == JobState::Pending) {
            if let Err(reason) = launch(state, job, &[]).await {
                let end = failed_to_start(now, reason);
                if let Err(e) = state.store.finish_job(&job.id, &end).await {
                    tracing::error!(job.id = job.id.as_str(), error = %e, "could not record a launch failure");
                }
            }
        }
        return;
    }
    let mut submitted = false;
    for job in jobs {
        if job.state == JobState::Pending && control.known(&job.id).is_none() {
            let id = control.engine_id(&job.id);
            let spec = job.spec.clone();
            if let Err(e) = control.engine.apply(now, Event::Submit { id, spec }) {
                tracing::error!(job.id = job.id.as_str(), error = %e, "engine refused a stored job");
            }
            submitted = true;
        }
    }
    if submitted {
        schedule(state, &mut control).await;
    }
}

fn failed_to_start(now: u64, reason: String) -> JobEnd {
    JobEnd {
        state: JobState::Failed,
        ended_at: now as i64,
        exit_code: None,
        reason: Some(format!("could not start: {reason}")),
        usage: Usage::default(),
    }
}

/// Runs a scheduling pass and carries out its decisions, in order.
pub async fn schedule(state: &AppState, control: &mut Control) {
    let now = unix_now();
    // The queue may have changed: forecasts are planned again (on their own budget).
    state.forecasts.wake.notify_one();
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
                start(state, control, job_id, job, placement).await;
            }
            Decision::Preempt { job, reason } => {
                let Some(job_id) = control.name(job) else { continue };
                tracing::info!(job.id = job_id.as_str(), reason = ?reason, "preempting");
                preempt(state, control, job_id).await;
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

/// pending → running (store first, then the executor), or pending → held while the GPUs
/// are still taken by a process that is stopping; a launch that fails ends the job.
async fn start(state: &AppState, control: &mut Control, job_id: String, id: JobId, placement: Vec<NodeAlloc>) {
    control.held.retain(|h| h.job_id != job_id);
    if control.blocked(&job_id, &placement) {
        control.held.push(Held { job_id, id, placement });
        return;
    }
    let now = unix_now();
    let placement_json = serde_json::to_value(&placement).unwrap_or_default();
    match state.store.mark_running(&job_id, now as i64, &placement_json).await {
        Ok(true) => {}
        Ok(false) => {
            // The store has it ended already: the engine must not keep GPUs for it.
            tracing::warn!(job.id = job_id.as_str(), "the engine started a job that is not pending");
            let _ = control.engine.apply(now, Event::Cancel { id });
            control.forget(&job_id);
            return;
        }
        Err(e) => {
            // Not started: it waits again for the next pass.
            tracing::error!(job.id = job_id.as_str(), error = %e, "could not record a start");
            requeue_in_engine(state, control, id, &job_id, now).await;
            return;
        }
    }
    let stored = match state.store.get_job(&job_id).await {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(job.id = job_id.as_str(), error = %e, "started job vanished");
            return;
        }
    };
    if let Err(reason) = launch(state, &stored, &placement).await {
        tracing::warn!(job.id = job_id.as_str(), error = %reason, "launch failed");
        let _ = state.store.finish_job(&job_id, &failed_to_start(now, reason)).await;
        let _ = control.engine.apply(
            now,
            Event::Finished {
                id,
                outcome: Outcome::Failed,
            },
        );
        control.forget(&job_id);
    }
}

/// Gives a job the engine believes started back to its queue, as pending.
async fn requeue_in_engine(state: &AppState, control: &mut Control, id: JobId, job_id: &str, now: u64) {
    let _ = control.engine.apply(now, Event::Cancel { id });
    if let Ok(job) = state.store.get_job(job_id).await {
        let restored = Event::Restore {
            id,
            spec: job.spec,
            submitted_at: job.submitted_at.max(0) as u64,
            running: None,
        };
        let _ = control.engine.apply(now, restored);
    }
}

/// running → stopping (its end requeues it); a start still held simply waits again. The
/// engine has already put the job back in its queue.
async fn preempt(state: &AppState, control: &mut Control, job_id: String) {
    if let Some(i) = control.held.iter().position(|h| h.job_id == job_id) {
        control.held.remove(i);
        return;
    }
    let gpus = match state.store.get_job(&job_id).await {
        Ok(job) if job.state == JobState::Running => gpus_of(&placement_of(&job)),
        _ => return,
    };
    control.stopping.insert(
        job_id.clone(),
        Stopping {
            gpus,
            requeue: true,
            cancelled_by: None,
        },
    );
    state.exec.cancel(&job_id);
}

/// A user's cancel, decided on the job as it is now: a waiting job ends at once; a
/// running one is stopped and settled (its run booked) when its process has ended.
pub async fn cancel(state: &AppState, job_id: &str, by: &str) -> Result<(), ApiError> {
    let mut control = state.control.lock().await;
    let job = state.store.get_job(job_id).await?;
    if job.state.is_final() {
        return Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
            "job-ended",
            format!("job {job_id} already ended ({})", job.state.as_str()),
        ));
    }
    let now = unix_now();
    if let Some(id) = control.known(job_id) {
        // Out of the queue, or its GPUs given back (used by others once the process ends).
        let _ = control.engine.apply(now, Event::Cancel { id });
    }
    control.held.retain(|h| h.job_id != job_id);
    let running = job.state == JobState::Running;
    // Pending jobs only live in the executor when Slurm's queue holds them.
    let executor_has_it = state.exec.cancel(job_id) || running;
    if executor_has_it {
        let gpus = if running {
            gpus_of(&placement_of(&job))
        } else {
            Vec::new()
        };
        let stopping = control.stopping.entry(job_id.to_string()).or_insert(Stopping {
            gpus,
            requeue: false,
            cancelled_by: None,
        });
        stopping.requeue = false;
        stopping.cancelled_by = Some(by.to_string());
    } else {
        let end = JobEnd {
            state: JobState::Cancelled,
            ended_at: now as i64,
            exit_code: None,
            reason: Some(format!("cancelled by {by}")),
            usage: Usage::default(),
        };
        state.store.finish_job(job_id, &end).await?;
        control.forget(job_id);
    }
    schedule(state, &mut control).await;
    Ok(())
}

/// How a run ended, from its process's end: the job's final state, the engine's
/// outcome, and the reason shown to the user.
pub fn end_of(exit: &Exit, walltime_s: u64, cancelled_by: Option<&str>) -> (JobState, Outcome, Option<String>) {
    if exit.lost {
        let reason = exit.reason.clone().unwrap_or_else(|| "lost by the executor".into());
        (JobState::Lost, Outcome::Failed, Some(reason))
    } else if exit.timed_out {
        let reason = format!("walltime of {walltime_s} s reached");
        (JobState::Timeout, Outcome::Timeout, Some(reason))
    } else if exit.cancelled {
        let reason = match cancelled_by {
            Some(who) => format!("cancelled by {who}"),
            None => exit.reason.clone().unwrap_or_else(|| "cancelled".into()),
        };
        (JobState::Cancelled, Outcome::Cancelled, Some(reason))
    } else if exit.exit_code == 0 {
        (JobState::Completed, Outcome::Completed, None)
    } else if exit.exit_code < 0 {
        let reason = exit
            .reason
            .clone()
            .unwrap_or_else(|| "ended without an exit code".into());
        (JobState::Failed, Outcome::Failed, Some(reason))
    } else {
        // Slurm says why a job failed (e.g. JobLaunchFailure); keep its words.
        let reason = match &exit.reason {
            Some(why) => format!("exited with code {} ({why})", exit.exit_code),
            None => format!("exited with code {}", exit.exit_code),
        };
        (JobState::Failed, Outcome::Failed, Some(reason))
    }
}

/// A process ended: the run is settled in the store (booked once, at most its walltime
/// plus the stop grace), the engine told, and waiting starts released.
pub async fn on_exit(state: &AppState, exit: Exit) {
    let mut control = state.control.lock().await;
    settle(state, &mut control, exit).await;
    release_held(state, &mut control).await;
    schedule(state, &mut control).await;
}

async fn settle(state: &AppState, control: &mut Control, exit: Exit) {
    let Ok(job) = state.store.get_job(&exit.job_id).await else {
        tracing::warn!(job.id = exit.job_id.as_str(), "exit of an unknown job");
        return;
    };
    let stopping = control.stopping.remove(&exit.job_id);
    // A vanished job gets no grace: nobody stopped it.
    let grace = if exit.lost {
        0
    } else {
        state.config.cancel_grace.as_secs()
    };
    let usage = if exit.ran {
        let seconds = billed_seconds(exit.started_at, exit.ended_at, job.spec.walltime_s, grace);
        let price = match state.store.get_allocation(&job.allocation_id).await {
            Ok(a) => a.price_cents_per_gpu_hour,
            Err(_) => None,
        };
        job_usage(state, &job, price, seconds, exit.gpu_energy_mj)
    } else {
        Usage::default()
    };
    let preempted = stopping.as_ref().is_some_and(|s| s.requeue);
    if preempted && exit.cancelled {
        // Stopped for a preemption: back to pending (the engine already queued it again),
        // this run booked.
        if let Err(e) = state.store.requeue(&exit.job_id, usage).await {
            tracing::error!(job.id = exit.job_id.as_str(), error = %e, "could not requeue a preempted job");
        }
        return;
    }
    let cancelled_by = stopping.as_ref().and_then(|s| s.cancelled_by.as_deref());
    let (final_state, outcome, reason) = end_of(&exit, job.spec.walltime_s, cancelled_by);
    let end = JobEnd {
        state: final_state,
        ended_at: exit.ended_at as i64,
        exit_code: (exit.exit_code >= 0).then_some(i64::from(exit.exit_code)),
        reason,
        usage,
    };
    if exit.ran && matches!(final_state, JobState::Completed | JobState::Failed | JobState::Timeout) {
        state.forecasts.observe(
            &job.spec.account,
            &job.user_id,
            job.spec.walltime_s,
            exit.ended_at.saturating_sub(exit.started_at),
        );
    }
    match state.store.finish_job(&exit.job_id, &end).await {
        Ok(true) => crate::job_data::ended(state, &exit.job_id),
        Ok(false) => {}
        Err(e) => tracing::error!(job.id = exit.job_id.as_str(), error = %e, "could not settle a job"),
    }
    if let Some(id) = control.known(&exit.job_id) {
        let now = unix_now();
        // Preempted but it ended by itself first: the engine had queued it again. A
        // cancelled job the engine already forgot: a no-op.
        let event = if preempted {
            Event::Cancel { id }
        } else {
            Event::Finished { id, outcome }
        };
        let _ = control.engine.apply(now, event);
        control.held.retain(|h| h.job_id != exit.job_id);
        control.forget(&exit.job_id);
    }
}

/// Starts that waited for GPUs go ahead once nothing stopping holds them any more.
async fn release_held(state: &AppState, control: &mut Control) {
    for held in std::mem::take(&mut control.held) {
        start(state, control, held.job_id, held.id, held.placement).await;
    }
}

/// Slurm started a job it schedules itself: the store follows, with where it runs.
pub async fn on_started(state: &AppState, started: exec::slurm::Started) {
    if !state.exec.slurm_schedules() {
        return; // our engine placed it; the store already says running
    }
    let names = slurm::mapping::expand_hostlist(&started.nodes);
    let placement: Vec<NodeAlloc> = names
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let node = state.cluster.nodes.iter().position(|n| &n.name == name)? as u32;
            Some(NodeAlloc {
                node,
                gpus: started.gpus.get(i).cloned().unwrap_or_default(),
                milli_per_gpu: 1000,
            })
        })
        .collect();
    let json = serde_json::to_value(&placement).unwrap_or_default();
    let _control = state.control.lock().await;
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
    let Executor::Slurm { exec, .. } = &state.exec else {
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

/// Gives the engine back a job that runs (adopted, or on Slurm) with the GPUs it holds.
fn restore_running(
    control: &mut Control,
    job: &Job,
    started: u64,
    placement: Vec<NodeAlloc>,
    now: u64,
) -> Result<(), sched::EngineError> {
    let id = control.engine_id(&job.id);
    control.engine.apply(
        now,
        Event::Restore {
            id,
            spec: job.spec.clone(),
            submitted_at: job.submitted_at.max(0) as u64,
            running: Some((started, placement)),
        },
    )
}

/// After a restart: rebuilds the engine from the store and reconciles with the executor.
/// A job still running is adopted; one whose command ended while nobody watched is settled
/// with the exit code and end time its wrapper recorded; one that vanished without a
/// trace is lost, billed until it was found gone but never beyond its walltime.
pub async fn recover(state: &AppState) -> Result<(), store::StoreError> {
    let mut control = state.control.lock().await;
    let now = unix_now();
    for (name, status, _) in state.store.node_states().await? {
        let Some(node) = state.cluster.nodes.iter().position(|n| n.name == name) else {
            continue;
        };
        let event = match status.as_str() {
            "up" => continue,
            "down" => Event::NodeDown { node: node as u32 },
            _ => Event::NodeDrain { node: node as u32 },
        };
        control.operator_drained.insert(node as u32);
        let _ = control.engine.apply(now, event);
    }
    for job in state.store.active_jobs().await? {
        let started = job.started_at.unwrap_or(job.submitted_at).max(0) as u64;
        match job.state {
            JobState::Running | JobState::Pending if state.exec.slurm_schedules() => {
                // Slurm holds (or is to hold) it: follow it there, by our id.
                let charge = state.store.get_allocation(&job.allocation_id).await?.slurm;
                state
                    .exec
                    .resume_on_slurm(&job, &charge, &placement_of(&job), &state.cluster);
            }
            JobState::Running if matches!(state.exec, Executor::Slurm { .. }) => {
                let placement = placement_of(&job);
                let charge = state.store.get_allocation(&job.allocation_id).await?.slurm;
                state.exec.resume_on_slurm(&job, &charge, &placement, &state.cluster);
                if let Err(e) = restore_running(&mut control, &job, started, placement, now) {
                    tracing::error!(job.id = job.id.as_str(), error = %e, "could not restore a job running on Slurm");
                }
            }
            JobState::Running => {
                let placement = placement_of(&job);
                let gpus: Vec<u16> = placement.iter().flat_map(|a| a.gpus.iter().copied()).collect();
                if let Executor::Local(local) = &state.exec
                    && !placement.is_empty()
                    && local.adopt(&job.id, started, Duration::from_secs(job.spec.walltime_s), gpus)
                {
                    // Still running: the engine holds its GPUs again and its end is
                    // settled as if it had been started by this process.
                    match restore_running(&mut control, &job, started, placement, now) {
                        Ok(()) => tracing::info!(job.id = job.id.as_str(), "adopted a job still running"),
                        Err(e) => {
                            tracing::error!(job.id = job.id.as_str(), error = %e, "could not restore a running job");
                            state.exec.cancel(&job.id);
                        }
                    }
                    continue;
                }
                // Nothing of it runs any more (or it cannot be placed again): stop whatever
                // is left, and settle it once from what its wrapper recorded, if anything.
                exec::kill_leftover(state.exec.root(), &job.id);
                let exit = match exec::recorded_end(state.exec.root(), &job.id) {
                    Some((exit_code, ended_at)) => Exit {
                        job_id: job.id.clone(),
                        exit_code,
                        timed_out: false,
                        cancelled: false,
                        started_at: started,
                        ended_at: ended_at.clamp(started, now),
                        gpu_energy_mj: None,
                        lost: false,
                        ran: true,
                        reason: None,
                    },
                    None => Exit {
                        job_id: job.id.clone(),
                        exit_code: -1,
                        timed_out: false,
                        cancelled: false,
                        started_at: started,
                        ended_at: now,
                        gpu_energy_mj: None,
                        lost: true,
                        ran: true,
                        reason: Some(
                            "the server stopped while the job ran and its process is gone without an exit code".into(),
                        ),
                    },
                };
                settle(state, &mut control, exit).await;
            }
            _ => {
                let id = control.engine_id(&job.id);
                let restored = Event::Restore {
                    id,
                    spec: job.spec.clone(),
                    submitted_at: job.submitted_at.max(0) as u64,
                    running: None,
                };
                if let Err(e) = control.engine.apply(now, restored) {
                    tracing::error!(job.id = job.id.as_str(), error = %e, "could not restore a job");
                }
            }
        }
    }
    schedule(state, &mut control).await;
    Ok(())
}

/// Where the occupancy invariant fails: a GPU that the jobs whose processes the executor
/// runs (started, running or stopping) are given more than 1,000 thousandths of. Empty
/// when it holds. Tests call it after every step.
pub async fn occupancy_violations(state: &AppState) -> Vec<String> {
    let live: Vec<String> = match &state.exec {
        Executor::Local(e) => e.live(),
        Executor::Slurm { exec, .. } => exec.live(),
    };
    let mut per_gpu: HashMap<(u32, u16), (u32, Vec<String>)> = HashMap::new();
    for job_id in live {
        let Ok(job) = state.store.get_job(&job_id).await else {
            continue;
        };
        for a in placement_of(&job) {
            for g in &a.gpus {
                let entry = per_gpu.entry((a.node, *g)).or_default();
                entry.0 += u32::from(a.milli_per_gpu);
                entry.1.push(job_id.clone());
            }
        }
    }
    let mut violations: Vec<String> = per_gpu
        .into_iter()
        .filter(|(_, (milli, _))| *milli > 1000)
        .map(|((node, gpu), (milli, jobs))| {
            format!(
                "node {node} GPU {gpu}: {milli} thousandths, held by {}",
                jobs.join(", ")
            )
        })
        .collect();
    violations.sort();
    violations
}

#[cfg(test)]
mod tests {
    use super::end_of;
    use exec::Exit;
    use sched::Outcome;
    use store::JobState;

    fn exit(code: i32) -> Exit {
        Exit {
            job_id: "job_1".into(),
            exit_code: code,
            timed_out: false,
            cancelled: false,
            started_at: 100,
            ended_at: 110,
            gpu_energy_mj: None,
            lost: false,
            ran: true,
            reason: None,
        }
    }

    #[test]
    fn every_way_a_process_ends_has_one_final_state() {
        // How it ended, who cancelled it → final state, outcome, reason.
        type Row = (Exit, Option<&'static str>, JobState, Outcome, Option<&'static str>);
        let table: Vec<Row> = vec![
            (exit(0), None, JobState::Completed, Outcome::Completed, None),
            (
                exit(3),
                None,
                JobState::Failed,
                Outcome::Failed,
                Some("exited with code 3"),
            ),
            (
                Exit {
                    reason: Some("Slurm job 12: Failed (JobLaunchFailure)".into()),
                    ..exit(181)
                },
                None,
                JobState::Failed,
                Outcome::Failed,
                Some("exited with code 181 (Slurm job 12: Failed (JobLaunchFailure))"),
            ),
            (
                exit(-1),
                None,
                JobState::Failed,
                Outcome::Failed,
                Some("ended without an exit code"),
            ),
            (
                Exit {
                    timed_out: true,
                    ..exit(143)
                },
                None,
                JobState::Timeout,
                Outcome::Timeout,
                Some("walltime of 60 s reached"),
            ),
            (
                Exit {
                    cancelled: true,
                    ..exit(143)
                },
                Some("usr_1"),
                JobState::Cancelled,
                Outcome::Cancelled,
                Some("cancelled by usr_1"),
            ),
            (
                Exit {
                    lost: true,
                    reason: Some("gone".into()),
                    ..exit(-1)
                },
                None,
                JobState::Lost,
                Outcome::Failed,
                Some("gone"),
            ),
        ];
        for (exit, by, state, outcome, reason) in table {
            let got = end_of(&exit, 60, by);
            assert_eq!(got, (state, outcome, reason.map(str::to_string)), "{exit:?}");
        }
    }
}
