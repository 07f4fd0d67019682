//! The factory's HTTP API under `/api/v1` and the wiring of store, engine and executor.
//! Only this crate knows HTTP.

mod admission;
pub mod api;
mod cache;
pub mod control;
pub mod demo;
mod error;
pub mod executor;
pub mod metrics;

pub use error::{ApiError, Problem};

use control::Control;
use domain::Cluster;
use exec::LocalExecutor;
use executor::{Executor, SlurmMode};
use sched::{Engine, Event, PolicyConfig, PolicyName};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use store::{JobEnd, JobState, Store};
use tokio::sync::Mutex;

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub cents_per_gpu_hour: i64,
    pub cancel_grace: Duration,
    /// Largest request body accepted, bytes.
    pub body_limit: usize,
    /// Requests per second each token may make on average, and in a burst.
    pub rate_per_s: f64,
    pub rate_burst: f64,
    pub executor: ExecutorChoice,
}

/// Where jobs run.
#[derive(Debug, Clone)]
pub enum ExecutorChoice {
    /// Processes on this machine (the embedded default).
    Local,
    /// A Slurm cluster through slurmrestd; its GPU nodes become one site of ours.
    Slurm {
        config: Box<exec::slurm::SlurmConfig>,
        mode: SlurmMode,
        site: String,
        country: String,
    },
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./aifactory-data"),
            cents_per_gpu_hour: 250,
            cancel_grace: Duration::from_secs(10),
            body_limit: 256 * 1024,
            rate_per_s: 200.0,
            rate_burst: 400.0,
            executor: ExecutorChoice::Local,
        }
    }
}

#[derive(Debug)]
pub struct Inner {
    pub store: Store,
    pub cluster: Cluster,
    pub control: Mutex<Control>,
    pub exec: Executor,
    pub config: Config,
    pub metrics: metrics::Metrics,
    /// Authenticated callers by token secret hash, for a few seconds (cleared on any token
    /// or membership change made through this server).
    pub auth_cache: cache::TtlCache<(api::Caller, String)>,
    /// What each project may submit to (cleared on any allocation change made here; the
    /// store checks the allocation again at admission).
    pub submission_cache: cache::TtlCache<store::SubmissionContext>,
    /// Token buckets per API token: (tokens left, last refill).
    pub limiter: std::sync::Mutex<std::collections::HashMap<String, (f64, std::time::Instant)>>,
    /// Submissions are admitted in groups by one task.
    pub admission: admission::Admission,
}

pub type AppState = Arc<Inner>;

/// A single node of `gpus` virtual GPUs at one site: the factory on a laptop.
pub fn local_cluster(gpus: u16) -> Cluster {
    Cluster::from_toml(&format!(
        r#"
        [[sites]]
        name = "local"
        country = "EU"
        carbon_g_per_kwh = 250
        [[nodes]]
        name = "localhost"
        site = "local"
        gpu_model = "H100-SXM"
        gpus = {gpus}
        "#
    ))
    .expect("the built-in cluster is valid")
}

/// Opens the store, rebuilds the engine from it, and starts the loop that settles
/// process ends. Jobs that were running when the server stopped are adopted if their
/// processes still run, else marked lost and settled once; pending jobs keep their place.
pub async fn start(store: Store, cluster: Cluster, config: Config) -> Result<AppState, String> {
    let jobs_dir = config.data_dir.join("jobs");
    let (exec, mut exits, started, cluster) = match &config.executor {
        ExecutorChoice::Local => {
            let (exec, exits) = LocalExecutor::new(jobs_dir, config.cancel_grace);
            (Executor::Local(exec), exits, None, cluster)
        }
        ExecutorChoice::Slurm {
            config: slurm_config,
            mode,
            site,
            country,
        } => {
            let (exec, exits, started) = exec::slurm::SlurmExecutor::start(jobs_dir, (**slurm_config).clone());
            let cluster = slurm_inventory(&exec, *mode, site, country).await?;
            (Executor::Slurm { exec, mode: *mode }, exits, Some(started), cluster)
        }
    };
    let engine = Engine::new(cluster.clone(), PolicyConfig::new(PolicyName::Aifactory)).map_err(|e| e.to_string())?;
    let state: AppState = Arc::new_cyclic(|weak| Inner {
        store,
        cluster,
        control: Mutex::new(Control::new(engine)),
        exec,
        config,
        metrics: metrics::Metrics::default(),
        limiter: Default::default(),
        auth_cache: cache::TtlCache::new(Duration::from_secs(5), 10_000),
        submission_cache: cache::TtlCache::new(Duration::from_secs(5), 10_000),
        admission: admission::Admission::start(weak.clone()),
    });
    recover(&state).await.map_err(|e| e.to_string())?;
    let settle = state.clone();
    tokio::spawn(async move {
        // One task for both, starts first: a job that started and ended between two polls
        // is recorded running before it is settled.
        let mut started = started;
        loop {
            tokio::select! {
                biased;
                Some(s) = async { match started.as_mut() { Some(rx) => rx.recv().await, None => None } } => {
                    control::on_started(&settle, s).await;
                }
                exit = exits.recv() => match exit {
                    Some(exit) => control::on_exit(&settle, exit).await,
                    None => break,
                },
            }
        }
    });
    let ticker = state.clone();
    tokio::spawn(async move {
        // Wake-ups the engine asked for (backfill, priority recalculation, deferrals).
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let mut control = ticker.control.lock().await;
            let changed = control::sync_slurm_nodes(&ticker, &mut control);
            if changed || control.engine.next_wakeup().is_some_and(|t| t <= control::unix_now()) {
                control::schedule(&ticker, &mut control).await;
            }
        }
    });
    Ok(state)
}

/// Reads Slurm's nodes (waiting up to half a minute for slurmrestd) and makes them a site.
async fn slurm_inventory(
    exec: &exec::slurm::SlurmExecutor,
    mode: SlurmMode,
    site: &str,
    country: &str,
) -> Result<Cluster, String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (client, nodes) = loop {
        let attempt = async {
            let client = exec.connect().await?;
            let nodes = client.nodes().await?;
            Ok::<_, slurm::SlurmError>((client, nodes))
        };
        match attempt.await {
            Ok(got) => break got,
            Err(e) if std::time::Instant::now() < deadline => {
                tracing::warn!(error = %e, "waiting for slurmrestd to read the inventory");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(format!("cannot read Slurm's inventory: {e}")),
        }
    };
    let cluster = executor::cluster_from_slurm(&nodes, exec.partition(), site, country)?;
    if mode == SlurmMode::Aifactory && cluster.nodes.len() > 1 && !client.version().can_pin_nodes() {
        return Err(format!(
            "--slurm-mode aifactory pins jobs to nodes, which Slurm's REST API {} cannot do: use --slurm-mode slurm, or Slurm 23.02 or later",
            client.version().as_str()
        ));
    }
    tracing::info!(
        nodes = cluster.nodes.len(),
        version = client.version().as_str(),
        "Slurm inventory read"
    );
    Ok(cluster)
}

/// Gives the engine back a job that runs (adopted, or on Slurm) with the GPUs it holds.
fn restore_running(
    control: &mut Control,
    job: &store::Job,
    started: u64,
    placement: Vec<sched::NodeAlloc>,
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

async fn recover(state: &AppState) -> Result<(), store::StoreError> {
    let mut control = state.control.lock().await;
    let now = control::unix_now();
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
        match job.state {
            JobState::Running | JobState::Pending if state.exec.slurm_schedules() => {
                // Slurm holds (or is to hold) it: follow it there, by our id.
                let charge = state.store.get_allocation(&job.allocation_id).await?.slurm;
                state
                    .exec
                    .resume_on_slurm(&job, &charge, &control::placement_of(&job), &state.cluster);
            }
            JobState::Running if matches!(state.exec, Executor::Slurm { .. }) => {
                let placement = control::placement_of(&job);
                let started = job.started_at.unwrap_or(job.submitted_at).max(0) as u64;
                let charge = state.store.get_allocation(&job.allocation_id).await?.slurm;
                state.exec.resume_on_slurm(&job, &charge, &placement, &state.cluster);
                if let Err(e) = restore_running(&mut control, &job, started, placement, now) {
                    tracing::error!(job.id = job.id.as_str(), error = %e, "could not restore a job running on Slurm");
                }
            }
            JobState::Running => {
                let started = job.started_at.unwrap_or(job.submitted_at).max(0) as u64;
                let placement = control::placement_of(&job);
                let gpus: Vec<u16> = placement.iter().flat_map(|a| a.gpus.iter().copied()).collect();
                if let Executor::Local(local) = &state.exec
                    && !placement.is_empty()
                    && local.adopt(&job.id, started, Duration::from_secs(job.spec.walltime_s), gpus)
                {
                    // Still running: the engine holds its GPUs again and its end is
                    // settled as if it had been started by this process.
                    match restore_running(&mut control, &job, started, placement, now) {
                        Ok(()) => {
                            tracing::info!(job.id = job.id.as_str(), "adopted a job still running");
                            continue;
                        }
                        Err(e) => {
                            tracing::error!(job.id = job.id.as_str(), error = %e, "could not restore a running job");
                            state.exec.cancel(&job.id);
                            continue;
                        }
                    }
                }
                // Nothing of it runs any more (or it cannot be placed again): stop whatever
                // is left and settle the time it ran as used, once.
                exec::kill_leftover(state.exec.root(), &job.id);
                let usage = control::job_usage(state, &job, now.saturating_sub(started).max(1), None);
                let end = JobEnd {
                    state: JobState::Lost,
                    ended_at: now as i64,
                    exit_code: None,
                    reason: Some("the server stopped while the job ran and its process is gone".into()),
                    usage,
                };
                state.store.finish_job(&job.id, &end).await?;
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
    control::schedule(state, &mut control).await;
    Ok(())
}

pub use api::router;
