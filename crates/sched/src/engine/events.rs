//! What goes into the engine and what comes out: events, decisions and their reasons,
//! errors, the reservation it promises and its counters.

use crate::resources::NodeAlloc;
use domain::{JobId, JobSpec, NodeIdx, Seconds};
use serde::Serialize;
use std::fmt;

/// What happened, as the driver saw it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Submit {
        id: JobId,
        spec: JobSpec,
    },
    /// The user cancelled the job; a running job's resources are freed at once.
    Cancel {
        id: JobId,
    },
    /// A running job ended.
    Finished {
        id: JobId,
        outcome: Outcome,
    },
    /// The node failed: what ran there is requeued.
    NodeDown {
        node: NodeIdx,
    },
    /// The node is back (from down or drained).
    NodeUp {
        node: NodeIdx,
    },
    /// The node takes no new work; what runs there goes on.
    NodeDrain {
        node: NodeIdx,
    },
    /// Rebuilds a job known to the driver's store after a restart: pending (with its
    /// original submission time, so it keeps its age) or, with `running`, already running
    /// since the given time on the given GPUs. Dependencies on jobs the engine does not
    /// know are taken as met: the store only keeps waiting jobs whose dependencies did not
    /// fail. No decision is emitted for a restored running job.
    Restore {
        id: JobId,
        spec: JobSpec,
        submitted_at: Seconds,
        running: Option<(Seconds, Vec<NodeAlloc>)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Completed,
    Failed,
    Timeout,
    Cancelled,
}

/// What the engine wants done. Decisions of one call are to be carried out in order.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
pub enum Decision {
    Start {
        job: JobId,
        placement: Vec<NodeAlloc>,
    },
    /// Stop the job; the engine has already put it back in the queue.
    Preempt {
        job: JobId,
        reason: PreemptReason,
    },
    Reject {
        job: JobId,
        reason: RejectReason,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum PreemptReason {
    /// Room for a fast-lane or playground job that reached its start bound.
    GuaranteedClass {
        by: JobId,
    },
    /// LAS: a job with less attained service needs the GPUs.
    LessAttainedService {
        by: JobId,
    },
    NodeDown {
        node: NodeIdx,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "kebab-case")]
pub enum RejectReason {
    InvalidSpec {
        field: String,
        message: String,
    },
    /// No allowed node could hold the request even with the cluster idle.
    NeverFits {
        message: String,
    },
    UnknownDependency {
        on: JobId,
    },
    /// A job it depends on did not complete successfully (Slurm: DependencyNeverSatisfied).
    DependencyFailed {
        on: JobId,
    },
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::InvalidSpec { field, message } => write!(f, "{field}: {message}"),
            RejectReason::NeverFits { message } => f.write_str(message),
            RejectReason::UnknownDependency { on } => write!(f, "depends on unknown job {on}"),
            RejectReason::DependencyFailed { on } => write!(f, "job {on} it depends on did not complete"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    #[error("time went back from {was} to {now}")]
    TimeWentBack { was: Seconds, now: Seconds },
    #[error("job {0} is already known")]
    DuplicateJob(JobId),
    #[error("job {0} is not known (or already finished)")]
    UnknownJob(JobId),
    #[error("job {0} is not running")]
    NotRunning(JobId),
    #[error("node {0} does not exist")]
    UnknownNode(NodeIdx),
    #[error("job {job}: the restored placement does not fit: {reason}")]
    BadPlacement { job: JobId, reason: String },
    #[error("the cluster has more than {0} (site, partition, GPU model) pools")]
    TooManyPools(usize),
    #[error("invalid cluster: {0}")]
    Cluster(String),
    #[error("invalid policy: {0}")]
    Policy(String),
}

/// The start time promised to the highest-priority blocked job under EASY backfill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub job: JobId,
    pub start: Seconds,
}

/// Counters for reports and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    pub passes: u64,
    pub started: u64,
    pub backfilled: u64,
    pub preempted: u64,
    pub rejected: u64,
    pub deferred_for_energy: u64,
}
