//! The factory's HTTP API under `/api/v1` and the wiring of store, engine and executor.
//! Only this crate knows HTTP.

pub mod accounting;
mod admission;
pub mod api;
pub mod authz;
mod cache;
pub mod demo;
mod error;
pub mod executor;
pub mod forecasts;
pub mod hub;
pub mod job_data;
pub mod lifecycle;
pub mod mail;
pub mod metrics;
pub mod portal;
pub mod programme;
pub mod ratelimit;
mod slurm_accounts;

pub use error::{ApiError, Problem};

use domain::Cluster;
use exec::LocalExecutor;
use executor::{Executor, SlurmMode};
use lifecycle::Control;
use sched::{Engine, PolicyConfig, PolicyName};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use store::Store;
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
    /// Holds launches at a step (tests that prove no stop is lost).
    pub launch_hold: Option<Arc<exec::LaunchHold>>,
    /// Where notifications are e-mailed; without one they wait in the outbox.
    pub smtp: Option<mail::Smtp>,
    /// How often deadlines and reminders are checked (`programme::tick`).
    pub programme_tick: Duration,
    /// Sign-ups and confirmation requests an hour per client address.
    pub signups_per_hour: u32,
    /// Where the site keeps a Slurm account per project: its name, `{project}` standing for
    /// the project's id; awards accepted get it on their allocation.
    pub slurm_account_template: Option<String>,
    /// Catalogues harvested on a schedule: source name and the URL of its DCAT-AP document.
    pub harvest_sources: Vec<(String, String)>,
    /// How often they are harvested.
    pub harvest_every: Duration,
    /// Where jobs reach this factory (to push to the hub with their own token).
    pub public_url: Option<String>,
    /// The most hub content one organisation may hold, in bytes (each content counted
    /// once); `None`: no limit.
    pub hub_quota_bytes: Option<u64>,
    /// The hub's contents on S3-compatible storage instead of `<data-dir>/blobs`.
    pub s3: Option<::hub::s3::S3Config>,
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
            launch_hold: None,
            smtp: None,
            programme_tick: Duration::from_secs(60),
            signups_per_hour: 120,
            slurm_account_template: None,
            harvest_sources: Vec::new(),
            harvest_every: Duration::from_secs(3600),
            public_url: None,
            s3: None,
            hub_quota_bytes: None,
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
    pub auth_cache: cache::TtlCache<(authz::Caller, String)>,
    /// What each project may submit to (cleared on any allocation change made here; the
    /// store checks the allocation again at admission).
    pub submission_cache: cache::TtlCache<store::SubmissionContext>,
    /// Request rate limits per token and, for sign-up, per client address.
    pub limits: ratelimit::Limits,
    /// Submissions are admitted in groups by one task.
    pub admission: admission::Admission,
    /// Wakes the mail worker when a message was queued.
    pub outbox_wake: tokio::sync::Notify,
    /// Wakes the worker that creates Slurm accounts when an award asked for one.
    pub slurm_accounts_wake: tokio::sync::Notify,
    /// The data and model hub's blob store and upload tickets.
    pub hub: hub::HubState,
    /// The catalogue's search index (public and restricted entries).
    pub catalogue: std::sync::RwLock<hub::index::Catalogue>,
    /// Start-time forecasts of waiting jobs, and the runtime predictor behind them.
    pub forecasts: forecasts::Forecasts,
    /// The last harvest of each source harvested on a schedule.
    pub harvests: std::sync::Mutex<std::collections::BTreeMap<String, hub::harvester::SourceState>>,
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

/// Opens the store, rebuilds the engine from it (`lifecycle::recover`), and starts the
/// loop that settles process ends and the wake-up ticker.
pub async fn start(store: Store, cluster: Cluster, config: Config) -> Result<AppState, String> {
    let jobs_dir = config.data_dir.join("jobs");
    let (exec, mut exits, started, cluster) = match &config.executor {
        ExecutorChoice::Local => {
            let (exec, exits) = LocalExecutor::new(jobs_dir, config.cancel_grace);
            let exec = exec.with_hold(config.launch_hold.clone());
            (Executor::Local(exec), exits, None, cluster)
        }
        ExecutorChoice::Slurm {
            config: slurm_config,
            mode,
            site,
            country,
        } => {
            let mut slurm_config = (**slurm_config).clone();
            slurm_config.hold = config.launch_hold.clone();
            std::fs::create_dir_all(&jobs_dir).map_err(|e| format!("cannot create {}: {e}", jobs_dir.display()))?;
            let (exec, exits, started) = exec::slurm::SlurmExecutor::start(jobs_dir, slurm_config);
            let cluster = slurm_inventory(&exec, *mode, site, country).await?;
            // Said at start, not by every job failing to launch later.
            exec.check_job_user_reaches_root()?;
            (Executor::Slurm { exec, mode: *mode }, exits, Some(started), cluster)
        }
    };
    let engine = Engine::new(cluster.clone(), PolicyConfig::new(PolicyName::Aifactory)).map_err(|e| e.to_string())?;
    let hub_state = hub::HubState::open(&config.data_dir, config.s3.as_ref())?;
    let catalogue = hub::index::load(&store)
        .await
        .map_err(|e| format!("building the catalogue's search index: {e}"))?;
    let limits = ratelimit::Limits::new(config.rate_per_s, config.rate_burst, config.signups_per_hour);
    let state: AppState = Arc::new_cyclic(|weak| Inner {
        store,
        cluster,
        control: Mutex::new(Control::new(engine)),
        exec,
        config,
        metrics: metrics::Metrics::default(),
        limits,
        auth_cache: cache::TtlCache::new(Duration::from_secs(5), 10_000),
        submission_cache: cache::TtlCache::new(Duration::from_secs(5), 10_000),
        admission: admission::Admission::start(weak.clone()),
        outbox_wake: tokio::sync::Notify::new(),
        slurm_accounts_wake: tokio::sync::Notify::new(),
        hub: hub_state,
        catalogue: std::sync::RwLock::new(catalogue),
        harvests: Default::default(),
        forecasts: Default::default(),
    });
    if let Some(smtp) = state.config.smtp.clone() {
        mail::start(state.clone(), smtp);
    }
    let deadlines = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(deadlines.config.programme_tick);
        loop {
            tick.tick().await;
            deadlines.limits.forget_idle();
            if let Err(e) = programme::tick(&deadlines, accounting::unix_now() as i64).await {
                tracing::warn!(error = %e.detail, "checking the access programme's deadlines");
            }
        }
    });
    slurm_accounts::start(state.clone()).await?;
    hub::harvester::start(state.clone());
    lifecycle::recover(&state).await.map_err(|e| e.to_string())?;
    forecasts::start(state.clone());
    let settle = state.clone();
    tokio::spawn(async move {
        // One task for both, starts first: a job that started and ended between two polls
        // is recorded running before it is settled.
        let mut started = started;
        loop {
            tokio::select! {
                biased;
                Some(s) = async { match started.as_mut() { Some(rx) => rx.recv().await, None => None } } => {
                    lifecycle::on_started(&settle, s).await;
                }
                exit = exits.recv() => match exit {
                    Some(exit) => lifecycle::on_exit(&settle, exit).await,
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
            let changed = lifecycle::sync_slurm_nodes(&ticker, &mut control);
            if changed
                || control
                    .engine
                    .next_wakeup()
                    .is_some_and(|t| t <= accounting::unix_now())
            {
                lifecycle::schedule(&ticker, &mut control).await;
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

pub use api::router;
