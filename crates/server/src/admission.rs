//! Group commit for job submissions: handlers hand their admissions to one task, which
//! takes everything that queued up while it was busy, admits it in one transaction, tells
//! the engine in one go and runs one scheduling pass. Under load the cost of a commit and a
//! pass is shared by many submissions; alone, a submission is admitted at once.

use crate::{ApiError, AppState, Inner, control};
use sched::Event;
use std::sync::Weak;
use store::{Job, JobState, NewJob};
use tokio::sync::{mpsc, oneshot};

/// The most submissions admitted in one transaction.
const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<Result<Job, ApiError>>;

#[derive(Debug, Clone)]
pub struct Admission {
    queue: mpsc::Sender<(NewJob, Reply)>,
}

impl Admission {
    /// The queue and the task that drains it, which lives as long as the server.
    pub(crate) fn start(state: Weak<Inner>) -> Admission {
        let (queue, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(admit_loop(state, rx));
        Admission { queue }
    }

    /// Admits one job (or finds the job its idempotency key already made) and, if it waits,
    /// hands it to the engine.
    pub async fn submit(&self, new: NewJob) -> Result<Job, ApiError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || ApiError::internal("the admission task has stopped");
        self.queue.send((new, reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn admit_loop(state: Weak<Inner>, mut rx: mpsc::Receiver<(NewJob, Reply)>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let Some(state) = state.upgrade() else { return };
        let (jobs, replies): (Vec<NewJob>, Vec<Reply>) = batch.drain(..).unzip();
        let results = admit(&state, &jobs).await;
        for (result, reply) in results.into_iter().zip(replies) {
            // The caller may have gone; its job stays admitted, as a retry with the same
            // idempotency key would find.
            let _ = reply.send(result);
        }
    }
}

async fn admit(state: &AppState, jobs: &[NewJob]) -> Vec<Result<Job, ApiError>> {
    let results = match state.store.submit_jobs(jobs).await {
        Ok(results) => results,
        Err(e) => {
            let e = ApiError::from(e);
            return jobs.iter().map(|_| Err(e.clone())).collect();
        }
    };
    if state.exec.slurm_schedules() {
        // Slurm's queue decides: hand each new job over; the engine only admitted it.
        for job in results.iter().flatten().filter(|j| j.state == JobState::Pending) {
            if let Err(reason) = control::launch(state, job, &[]).await {
                let end = store::JobEnd {
                    state: JobState::Failed,
                    ended_at: control::unix_now() as i64,
                    exit_code: None,
                    reason: Some(reason),
                    usage: store::Usage::default(),
                };
                let _ = state.store.finish_job(&job.id, &end).await;
            }
        }
        return results.into_iter().map(|r| r.map_err(ApiError::from)).collect();
    }
    let mut control = state.control.lock().await;
    let now = control::unix_now();
    let mut submitted = false;
    for job in results.iter().flatten() {
        // A retried submission returns a job the engine may already hold.
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
        control::schedule(state, &mut control).await;
    }
    drop(control);
    results.into_iter().map(|r| r.map_err(ApiError::from)).collect()
}
