//! Where jobs run: local processes (the embedded default) or Slurm. The control loop talks
//! to this one type; only `launch` differs much between the two.

use domain::Cluster;
use exec::slurm::{SlurmExecutor, SlurmLaunch};
use exec::{Launch, LocalExecutor, Stream};
use sched::NodeAlloc;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Who decides where and when a job runs when Slurm runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlurmMode {
    /// Our engine decides; a started job is submitted pinned to the chosen nodes.
    Aifactory,
    /// Jobs go to Slurm at submission and Slurm's queue decides; we mirror its states.
    Slurm,
}

impl std::str::FromStr for SlurmMode {
    type Err = String;
    fn from_str(s: &str) -> Result<SlurmMode, String> {
        match s {
            "aifactory" => Ok(SlurmMode::Aifactory),
            "slurm" => Ok(SlurmMode::Slurm),
            other => Err(format!("the Slurm mode is `aifactory` or `slurm`, not `{other}`")),
        }
    }
}

#[derive(Debug, Clone)]
pub enum Executor {
    Local(LocalExecutor),
    Slurm { exec: SlurmExecutor, mode: SlurmMode },
}

impl Executor {
    pub fn log_path(&self, job_id: &str, stream: Stream) -> PathBuf {
        match self {
            Executor::Local(e) => e.log_path(job_id, stream),
            Executor::Slurm { exec, .. } => exec.log_path(job_id, stream),
        }
    }

    /// Where a job's files are (its logs, what it was given, what it writes).
    pub fn job_dir(&self, job_id: &str) -> PathBuf {
        match self {
            Executor::Local(e) => e.job_dir(job_id),
            Executor::Slurm { exec, .. } => exec.job_dir(job_id),
        }
    }

    pub fn root(&self) -> &Path {
        match self {
            Executor::Local(e) => e.root(),
            Executor::Slurm { exec, .. } => exec.root(),
        }
    }

    /// Stops a job (or, on Slurm, a job waiting in its queue); false if it is not ours here.
    pub fn cancel(&self, job_id: &str) -> bool {
        match self {
            Executor::Local(e) => e.cancel(job_id),
            Executor::Slurm { exec, .. } => exec.cancel(job_id),
        }
    }

    pub fn running(&self) -> usize {
        match self {
            Executor::Local(e) => e.running(),
            Executor::Slurm { exec, .. } => exec.running(),
        }
    }

    /// Slurm schedules: the engine only admits; Slurm's queue orders and places.
    pub fn slurm_schedules(&self) -> bool {
        matches!(
            self,
            Executor::Slurm {
                mode: SlurmMode::Slurm,
                ..
            }
        )
    }

    /// Why jobs cannot run right now, if they cannot (for readiness and job views).
    pub fn trouble(&self) -> Option<String> {
        match self {
            Executor::Local(_) => None,
            Executor::Slurm { exec, .. } => exec.trouble(),
        }
    }

    pub fn note(&self, job_id: &str) -> Option<String> {
        match self {
            Executor::Local(_) => None,
            Executor::Slurm { exec, .. } => exec.note(job_id),
        }
    }

    /// Starts a job on `placement` (empty when Slurm places it), charged on Slurm to its
    /// allocation's account and QoS.
    pub async fn launch(
        &self,
        job: &store::Job,
        charge: &store::SlurmCharge,
        placement: &[NodeAlloc],
        cluster: &Cluster,
        extra_env: Vec<(String, String)>,
    ) -> Result<(), String> {
        let mut env = job_env(job);
        env.extend(extra_env);
        match self {
            Executor::Local(e) => e
                .launch(Launch {
                    job_id: job.id.clone(),
                    command: job.command.clone(),
                    env,
                    gpus: placement.iter().flat_map(|a| a.gpus.iter().copied()).collect(),
                    walltime: Duration::from_secs(job.spec.walltime_s),
                })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Executor::Slurm { exec, .. } => exec
                .launch(slurm_launch(job, env, charge, placement, cluster))
                .map_err(|e| format!("cannot prepare the job's directory: {e}")),
        }
    }

    /// After a restart: follows a job an earlier process gave to Slurm (never submitting
    /// it twice). Returns false for the local executor, which adopts processes instead.
    pub fn resume_on_slurm(
        &self,
        job: &store::Job,
        charge: &store::SlurmCharge,
        placement: &[NodeAlloc],
        cluster: &Cluster,
    ) -> bool {
        let Executor::Slurm { exec, .. } = self else {
            return false;
        };
        exec.resume(
            slurm_launch(job, job_env(job), charge, placement, cluster),
            job.started_at.unwrap_or(job.submitted_at).max(0) as u64,
        );
        true
    }
}

fn job_env(job: &store::Job) -> Vec<(String, String)> {
    vec![("AIFACTORY_PROJECT".to_string(), job.project_id.clone())]
}

fn slurm_launch(
    job: &store::Job,
    env: Vec<(String, String)>,
    charge: &store::SlurmCharge,
    placement: &[NodeAlloc],
    cluster: &Cluster,
) -> SlurmLaunch {
    let (nodes, gpus_per_node) = slurm_shape(job, placement, cluster);
    SlurmLaunch {
        job_id: job.id.clone(),
        command: job.command.clone(),
        env,
        nodes,
        gpus_per_node,
        walltime: Duration::from_secs(job.spec.walltime_s),
        required_nodes: placement
            .iter()
            .filter_map(|a| cluster.nodes.get(a.node as usize).map(|n| n.name.clone()))
            .collect(),
        account: charge.account.clone(),
        qos: charge.qos.clone(),
        run: job.runs,
    }
}

/// Nodes and GPUs per node to ask Slurm for. With a placement, its shape; without (Slurm
/// schedules), the request's: a gang as asked, spread GPUs on as few nodes as hold them, a
/// GPU fraction as one whole GPU (Slurm shares GPUs only through MPS or shards).
fn slurm_shape(job: &store::Job, placement: &[NodeAlloc], cluster: &Cluster) -> (u32, u32) {
    if let Some(first) = placement.first() {
        return (placement.len() as u32, first.gpus.len() as u32);
    }
    match job.spec.gpus {
        domain::GpuRequest::Gang { nodes, gpus_per_node } => (nodes, gpus_per_node),
        domain::GpuRequest::Fraction { .. } => (1, 1),
        domain::GpuRequest::Spread { gpus } => {
            let widest = cluster
                .nodes
                .iter()
                .map(|n| u32::from(n.gpus))
                .max()
                .unwrap_or(1)
                .max(1);
            let nodes = gpus.div_ceil(widest);
            (nodes, gpus.div_ceil(nodes))
        }
    }
}

/// The cluster as Slurm reports it: every node with GPUs (of `partition` when jobs go to
/// one: the engine must not count nodes its jobs cannot reach), at one site of ours.
pub fn cluster_from_slurm(
    nodes: &[slurm::NodeInfo],
    partition: Option<&str>,
    site: &str,
    country: &str,
) -> Result<Cluster, String> {
    let mut toml = format!("[[sites]]\nname = {site:?}\ncountry = {country:?}\ncarbon_g_per_kwh = 250\n");
    let mut partitions: Vec<&str> = Vec::new();
    let reachable = |n: &&slurm::NodeInfo| partition.is_none_or(|p| n.partitions.iter().any(|q| q == p));
    for n in nodes.iter().filter(|n| n.gpus > 0).filter(reachable) {
        let partition = partition.unwrap_or_else(|| n.partitions.first().map_or("default", String::as_str));
        if !partitions.contains(&partition) {
            partitions.push(partition);
            toml.push_str(&format!("[[partitions]]\nname = {partition:?}\nsite = {site:?}\n"));
        }
        let model = n.gpu_type.as_deref().and_then(domain::gpu::lookup).map_or_else(
            || n.gpu_type.clone().unwrap_or_else(|| "GPU".into()),
            |m| m.name.to_string(),
        );
        toml.push_str(&format!(
            "[[nodes]]\nname = {:?}\nsite = {site:?}\npartition = {partition:?}\ngpu_model = {model:?}\ngpus = {}\n",
            n.name, n.gpus
        ));
    }
    if partitions.is_empty() {
        return Err(match partition {
            Some(p) => format!("Slurm reports no node with GPUs (GRES gpu) in partition `{p}`"),
            None => "Slurm reports no node with GPUs (GRES gpu)".into(),
        });
    }
    Cluster::from_toml(&toml).map_err(|e| format!("Slurm's inventory does not make a cluster: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, gpus: u16, partitions: &[&str]) -> slurm::NodeInfo {
        slurm::NodeInfo {
            name: name.into(),
            state: slurm::NodeState::Idle,
            gpus,
            gpu_type: Some("h100".into()),
            gpus_used: 0,
            partitions: partitions.iter().map(|p| p.to_string()).collect(),
            reason: String::new(),
        }
    }

    #[test]
    fn the_site_is_the_gpu_nodes_jobs_can_reach() {
        let nodes = [
            node("gpu-01", 8, &["gpu", "ai"]),
            node("gpu-02", 4, &["gpu"]),
            node("cpu-01", 0, &["cpu"]),
        ];
        let all = cluster_from_slurm(&nodes, None, "it-bologna", "IT").unwrap();
        let names: Vec<&str> = all.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["gpu-01", "gpu-02"], "nodes without GPUs are not part of it");
        let ai = cluster_from_slurm(&nodes, Some("ai"), "it-bologna", "IT").unwrap();
        let names: Vec<&str> = ai.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["gpu-01"], "only the partition jobs are sent to");
        let err = cluster_from_slurm(&nodes, Some("cpu"), "it-bologna", "IT").unwrap_err();
        assert!(err.contains("partition `cpu`"), "{err}");
    }
}
