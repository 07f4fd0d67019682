//! Domain types and rules of aifactory, shared by the engine, the simulator and (later)
//! the server. Pure data and validation: no I/O beyond parsing text handed in.

pub mod cluster;
pub mod gpu;
pub mod job;
pub mod org;

pub use cluster::{Cluster, ClusterError, Node, NodeIdx, Partition, Site, SiteIdx};
pub use gpu::{GPU_MODELS, GpuModelSpec};
pub use job::{GpuRequest, JobId, JobSpec, JobSpecError, MILLI_PER_GPU};
pub use org::{OrgType, PriorityClass};

/// Seconds since an arbitrary epoch chosen by the driver (the trace start in simulation,
/// the Unix epoch in the live server). The engine only compares and subtracts them.
pub type Seconds = u64;
