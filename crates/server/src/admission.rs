//! Group commit for job submissions: handlers hand their admissions to one task, which
//! takes everything that queued up while it was busy, admits it in one transaction, tells
//! the engine in one go and runs one scheduling pass. Under load the cost of a commit and a
//! pass is shared by many submissions; alone, a submission is admitted at once.

use crate::{ApiError, AppState, Inner, lifecycle};
use std::sync::Weak;
use store::{Job, NewJob};
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
    let admitted: Vec<&Job> = results.iter().flatten().collect();
    lifecycle::admitted(state, &admitted).await;
    results.into_iter().map(|r| r.map_err(ApiError::from)).collect()
}
