//! What a job asks for. The same specification feeds the live server and the simulator.

use crate::{OrgType, PriorityClass, Seconds};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Thousandths of a GPU: the unit of fractional (shared) GPU requests.
pub const MILLI_PER_GPU: u32 = 1000;

/// The driver's identifier of a job; the engine never invents one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The shape of a job's GPU request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum GpuRequest {
    /// A gang: `nodes` nodes, each with `gpus_per_node` whole GPUs, started all together.
    Gang { nodes: u32, gpus_per_node: u32 },
    /// A GPU count that may be split over several nodes (as few as possible).
    Spread { gpus: u32 },
    /// A share of one GPU in thousandths (1..=999), as with GPU-sharing inference pods.
    Fraction { milli: u32 },
}

impl GpuRequest {
    /// The whole request in thousandths of a GPU.
    pub fn total_milli(self) -> u64 {
        match self {
            GpuRequest::Gang { nodes, gpus_per_node } => {
                u64::from(nodes) * u64::from(gpus_per_node) * u64::from(MILLI_PER_GPU)
            }
            GpuRequest::Spread { gpus } => u64::from(gpus) * u64::from(MILLI_PER_GPU),
            GpuRequest::Fraction { milli } => u64::from(milli),
        }
    }

    /// Number of whole GPUs touched (a fraction touches one).
    pub fn gpus_touched(self) -> u32 {
        match self {
            GpuRequest::Gang { nodes, gpus_per_node } => nodes.saturating_mul(gpus_per_node),
            GpuRequest::Spread { gpus } => gpus,
            GpuRequest::Fraction { .. } => 1,
        }
    }

    pub fn validate(self) -> Result<(), JobSpecError> {
        let bad = |message: &str| Err(JobSpecError::new("gpus", message));
        match self {
            GpuRequest::Gang { nodes, gpus_per_node } if nodes == 0 || gpus_per_node == 0 => {
                bad("a gang needs at least one node and one GPU per node")
            }
            GpuRequest::Spread { gpus: 0 } => bad("at least one GPU is needed"),
            GpuRequest::Fraction { milli } if milli == 0 || milli >= MILLI_PER_GPU => {
                bad("a GPU fraction is between 1 and 999 thousandths")
            }
            _ => Ok(()),
        }
    }
}

/// Everything the scheduler needs to know about a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobSpec {
    /// The account (project) that pays; fair share is computed per account.
    pub account: String,
    pub org_type: OrgType,
    pub class: PriorityClass,
    pub gpus: GpuRequest,
    /// Run only on this GPU model.
    pub gpu_model: Option<String>,
    /// Run only at this site (data residency).
    pub site: Option<String>,
    /// Run only in this partition.
    pub partition: Option<String>,
    /// Requested walltime: the job is stopped when it has run this long.
    pub walltime_s: Seconds,
    /// May be stopped to make room for guaranteed classes.
    pub preemptible: bool,
    /// Keeps its progress when preempted (otherwise it restarts from scratch).
    pub checkpointable: bool,
    /// Starts only after each of these jobs has completed successfully (Slurm `afterok`).
    pub depends_on: Vec<JobId>,
    /// The job accepts a start up to this many seconds later for cleaner or cheaper energy.
    pub defer_window_s: Seconds,
    /// The true runtime, known only in simulation; used by the oracle `sjf` policy.
    pub runtime_hint_s: Option<Seconds>,
}

impl JobSpec {
    /// A one-GPU standard job for `account`; builders for tests and examples.
    pub fn new(account: impl Into<String>, gpus: GpuRequest, walltime_s: Seconds) -> JobSpec {
        JobSpec {
            account: account.into(),
            org_type: OrgType::Research,
            class: PriorityClass::Standard,
            gpus,
            gpu_model: None,
            site: None,
            partition: None,
            walltime_s,
            preemptible: false,
            checkpointable: false,
            depends_on: Vec::new(),
            defer_window_s: 0,
            runtime_hint_s: None,
        }
    }

    pub fn validate(&self) -> Result<(), JobSpecError> {
        if self.account.trim().is_empty() {
            return Err(JobSpecError::new("account", "must not be empty"));
        }
        self.gpus.validate()?;
        if self.walltime_s == 0 {
            return Err(JobSpecError::new("walltime_s", "must be at least one second"));
        }
        Ok(())
    }
}

/// A job specification that breaks a rule, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct JobSpecError {
    pub field: &'static str,
    pub message: String,
}

impl JobSpecError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        JobSpecError {
            field,
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_sizes() {
        assert_eq!(
            GpuRequest::Gang {
                nodes: 2,
                gpus_per_node: 8
            }
            .total_milli(),
            16_000
        );
        assert_eq!(GpuRequest::Spread { gpus: 3 }.gpus_touched(), 3);
        assert_eq!(GpuRequest::Fraction { milli: 250 }.total_milli(), 250);
    }

    #[test]
    fn invalid_requests_name_the_field() {
        assert_eq!(
            GpuRequest::Fraction { milli: 1000 }.validate().unwrap_err().field,
            "gpus"
        );
        assert!(
            GpuRequest::Gang {
                nodes: 1,
                gpus_per_node: 0
            }
            .validate()
            .is_err()
        );
        let mut spec = JobSpec::new("acct", GpuRequest::Spread { gpus: 1 }, 0);
        assert_eq!(spec.validate().unwrap_err().field, "walltime_s");
        spec.walltime_s = 60;
        spec.account = " ".into();
        assert_eq!(spec.validate().unwrap_err().field, "account");
    }
}
