//! The Slurm executor: jobs become Slurm batch jobs through slurmrestd. One poll per
//! interval reads every job (one `GET jobs`) and every node (one `GET nodes`); starts and
//! ends are reported on channels like the local executor's. Nothing is lost when Slurm is
//! away: submissions wait and are retried with backoff, and a job is found again by the
//! comment that carries our id, so it is never submitted twice — also after our restart.

use crate::{Exit, Stream};
use slurm::{AccountRequest, Client, JobRequest, JobState, Jwt, NodeInfo, SlurmError};

mod accounts;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// How the executor reaches slurmrestd and what it asks of Slurm.
#[derive(Debug, Clone)]
pub struct SlurmConfig {
    pub url: String,
    pub jwt: Option<Jwt>,
    pub poll: Duration,
    /// Partition for every job (else the cluster's default).
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// The cluster accounts are created on (else the only one slurmdbd keeps).
    pub cluster: Option<String>,
    /// Holds submissions at a step (tests only).
    pub hold: Option<Arc<crate::LaunchHold>>,
}

/// What to run on Slurm.
#[derive(Debug, Clone)]
pub struct SlurmLaunch {
    pub job_id: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    pub nodes: u32,
    pub gpus_per_node: u32,
    pub walltime: Duration,
    /// Pin to these nodes (aifactory schedules); empty lets Slurm place it.
    pub required_nodes: Vec<String>,
    /// The Slurm account and QoS of the job's allocation; unset, the configured defaults.
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Which start of the job this is (a preempted job starts again): each run is its own
    /// Slurm job, told apart by its comment.
    pub run: i64,
}

impl SlurmLaunch {
    /// What follows `aifactory:` in the comment of this run's Slurm job: the job's id,
    /// and `#n` from its second run on.
    fn comment_key(&self) -> String {
        if self.run <= 1 {
            self.job_id.clone()
        } else {
            format!("{}#{}", self.job_id, self.run)
        }
    }
}

/// A job Slurm started: where, and on which GPU indices per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub job_id: String,
    pub at: u64,
    pub nodes: String,
    pub gpus: Vec<Vec<u16>>,
}

const COMMENT_PREFIX: &str = "aifactory:";
/// How often the whole job list is read; in between, only what changed.
const FULL_LIST_EVERY: Duration = Duration::from_secs(30);
/// Submissions sent to slurmrestd at once.
const SUBMITS_IN_FLIGHT: usize = 8;
/// Refusals retried (with backoff 2, 4, 8, 16, 32 s) before the job fails with Slurm's words.
const REFUSALS_RETRIED: u32 = 5;
/// Written once Slurm has taken the job: after a restart, a job with this file that Slurm
/// no longer knows vanished; one without it was never submitted and is submitted now.
const SUBMITTED_FILE: &str = "slurm_job_id";

#[derive(Debug)]
struct Tracked {
    launch: SlurmLaunch,
    slurm_id: Option<u64>,
    /// A submission is on its way: nobody else may send one.
    in_flight: bool,
    /// When Slurm took it (this process): only a job list read after that can miss it.
    submitted: Option<Instant>,
    started: bool,
    started_at: u64,
    cancel: bool,
    attempts: u32,
    next_try: Instant,
    note: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    jobs: HashMap<String, Tracked>,
    /// The last status of each of our jobs in Slurm, by our id: between full lists only
    /// the jobs that changed are read.
    statuses: HashMap<String, slurm::JobStatus>,
    /// When the last full list was read, and the Slurm clock of the last read.
    last_full: Option<Instant>,
    last_read: u64,
    nodes: Vec<NodeInfo>,
    /// Why the last poll failed; `None` while slurmrestd and slurmctld answer.
    trouble: Option<String>,
    client: Option<Client>,
    /// Accounts to create before any job is charged to them, by name.
    accounts: HashMap<String, AccountRequest>,
}

#[derive(Debug, Clone)]
pub struct SlurmExecutor {
    root: PathBuf,
    config: SlurmConfig,
    shared: Arc<Mutex<Shared>>,
    exits: mpsc::UnboundedSender<Exit>,
    /// Bounds the submissions in flight.
    submits: Arc<tokio::sync::Semaphore>,
    /// Wakes the poller at once for a new submission or a cancel.
    wake: Arc<tokio::sync::Notify>,
    hold: Option<Arc<crate::LaunchHold>>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `'it'\''s'`: a word the shell reads back unchanged.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

impl SlurmExecutor {
    /// Connects (retrying in the background if slurmrestd is not there yet) and starts the
    /// poll loop. Ends come out of the first receiver, starts out of the second.
    pub fn start(
        root: impl Into<PathBuf>,
        config: SlurmConfig,
    ) -> (
        SlurmExecutor,
        mpsc::UnboundedReceiver<Exit>,
        mpsc::UnboundedReceiver<Started>,
    ) {
        let (exits_tx, exits) = mpsc::unbounded_channel();
        let (started_tx, started) = mpsc::unbounded_channel();
        let hold = config.hold.clone();
        let exec = SlurmExecutor {
            root: root.into(),
            config,
            shared: Arc::default(),
            exits: exits_tx.clone(),
            submits: Arc::new(tokio::sync::Semaphore::new(SUBMITS_IN_FLIGHT)),
            wake: Arc::default(),
            hold,
        };
        let poller = exec.clone();
        tokio::spawn(async move {
            loop {
                poller.poll_once(&exits_tx, &started_tx).await;
                tokio::select! {
                    () = tokio::time::sleep(poller.config.poll) => {}
                    () = poller.wake.notified() => {}
                }
            }
        });
        (exec, exits, started)
    }

    /// Connects now (the server does this at start to read the inventory).
    pub async fn connect(&self) -> Result<Client, SlurmError> {
        if let Some(c) = self.shared.lock().expect("slurm state").client.clone() {
            return Ok(c);
        }
        let client = Client::connect(&self.config.url, self.config.jwt.clone()).await?;
        tracing::info!(
            url = client.url(),
            version = client.version().as_str(),
            "connected to slurmrestd"
        );
        self.shared.lock().expect("slurm state").client = Some(client.clone());
        Ok(client)
    }

    pub fn job_dir(&self, job_id: &str) -> PathBuf {
        self.root.join(job_id)
    }

    pub fn log_path(&self, job_id: &str, stream: Stream) -> PathBuf {
        stream.file_in(&self.job_dir(job_id))
    }

    /// Nodes as of the last poll.
    pub fn nodes(&self) -> Vec<NodeInfo> {
        self.shared.lock().expect("slurm state").nodes.clone()
    }

    /// Why Slurm cannot be used right now, if it cannot.
    pub fn trouble(&self) -> Option<String> {
        self.shared.lock().expect("slurm state").trouble.clone()
    }

    /// What the executor knows about a job that has not reached Slurm yet, or is waiting in it.
    pub fn note(&self, job_id: &str) -> Option<String> {
        self.shared
            .lock()
            .expect("slurm state")
            .jobs
            .get(job_id)
            .and_then(|t| t.note.clone())
    }

    pub fn running(&self) -> usize {
        self.shared.lock().expect("slurm state").jobs.len()
    }

    /// Hands a job to Slurm: prepares its directory now and submits it on the next poll
    /// (at once if Slurm answers, later with backoff if not).
    pub fn launch(&self, launch: SlurmLaunch) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let dir = self.job_dir(&launch.job_id);
        std::fs::create_dir_all(&dir)?;
        // The job runs as Slurm's user for it, not as the server's.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))?;
        let job_id = launch.job_id.clone();
        if !self.track(launch, unix_now(), false) {
            return Ok(()); // already handed over: never a second submission
        }
        // A new run: what an earlier run of the job left says nothing of this one.
        let _ = std::fs::remove_file(dir.join(SUBMITTED_FILE));
        // Straight to Slurm if it is there; the poll retries whatever does not get through.
        let me = self.clone();
        tokio::spawn(async move {
            let client = me.shared.lock().expect("slurm state").client.clone();
            if let Some(client) = client {
                me.submit(&client, &job_id).await;
            }
        });
        Ok(())
    }

    /// Follows a job an earlier server process handed to Slurm (or meant to): found again
    /// by its comment; submitted only if it never was.
    pub fn resume(&self, launch: SlurmLaunch, started_at: u64) {
        self.track(launch, started_at, true);
    }

    /// Jobs Slurm runs for us as of the last poll (started, not yet reported ended).
    pub fn live(&self) -> Vec<String> {
        let shared = self.shared.lock().expect("slurm state");
        shared
            .jobs
            .iter()
            .filter(|(_, t)| t.started)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Follows a job from now on; false (changing nothing) if it already is followed.
    fn track(&self, launch: SlurmLaunch, started_at: u64, started: bool) -> bool {
        let mut shared = self.shared.lock().expect("slurm state");
        let std::collections::hash_map::Entry::Vacant(entry) = shared.jobs.entry(launch.job_id.clone()) else {
            return false;
        };
        entry.insert(Tracked {
            launch,
            slurm_id: None,
            in_flight: false,
            submitted: None,
            started,
            started_at,
            cancel: false,
            attempts: 0,
            next_try: Instant::now(),
            note: Some("waiting to be submitted to Slurm".into()),
        });
        true
    }

    /// Cancels the job in Slurm (on the next poll, so a Slurm that is away gets it later).
    pub fn cancel(&self, job_id: &str) -> bool {
        match self.shared.lock().expect("slurm state").jobs.get_mut(job_id) {
            Some(t) => {
                t.cancel = true;
                self.wake.notify_one();
                true
            }
            None => false,
        }
    }

    async fn poll_once(&self, exits: &mpsc::UnboundedSender<Exit>, started: &mpsc::UnboundedSender<Started>) {
        let client = match self.connect().await {
            Ok(c) => c,
            Err(e) => return self.troubled(e),
        };
        let asked_at = unix_now();
        let snapshot_at = Instant::now();
        let (full, since) = {
            let shared = self.shared.lock().expect("slurm state");
            let full = shared.last_full.is_none_or(|at| at.elapsed() >= FULL_LIST_EVERY);
            // A little overlap: Slurm's clock and ours may differ by a second or two.
            (full, (!full).then(|| shared.last_read.saturating_sub(5)))
        };
        let (jobs, nodes) = match tokio::try_join!(client.jobs_changed_since(since), client.nodes()) {
            Ok(both) => both,
            Err(e) => return self.troubled(e),
        };
        let mut to_submit = Vec::new();
        let mut to_cancel = Vec::new();
        {
            let mut shared = self.shared.lock().expect("slurm state");
            shared.trouble = None;
            shared.nodes = nodes;
            shared.last_read = asked_at;
            if full {
                shared.last_full = Some(snapshot_at);
                shared.statuses.clear();
            }
            for j in jobs {
                if let Some(id) = j.comment.strip_prefix(COMMENT_PREFIX) {
                    shared.statuses.insert(id.to_string(), j);
                }
            }
            // Absent from a partial list means unchanged, not gone: only a full list tells.
            let last_full = shared.last_full;
            let statuses = std::mem::take(&mut shared.statuses);
            let by_comment: HashMap<&str, &slurm::JobStatus> = statuses.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let mut ended_keys = Vec::new();
            let mut ended = Vec::new();
            for (job_id, t) in shared.jobs.iter_mut() {
                // Since 23.11 a refused submission leaves a FAILED record with our comment
                // (BadConstraints): that is not the job, which waits for its next try.
                let key = t.launch.comment_key();
                let status = by_comment
                    .get(key.as_str())
                    .filter(|s| !(t.slurm_id.is_none() && t.attempts > 0 && s.state.is_final()));
                match status {
                    Some(status) => {
                        t.slurm_id = Some(status.slurm_id);
                        if t.cancel && !status.state.is_final() {
                            to_cancel.push(status.slurm_id);
                        }
                        // A job that ran between two polls is reported started first.
                        let ran = status.state == JobState::Running
                            || (status.state.is_final() && status.start_time.is_some());
                        if ran && !t.started {
                            t.started = true;
                            t.started_at = status.start_time.unwrap_or(asked_at);
                            let _ = started.send(Started {
                                job_id: job_id.clone(),
                                at: t.started_at,
                                nodes: status.nodes.clone(),
                                gpus: status.gpus.clone(),
                            });
                        }
                        t.note = (status.state == JobState::Pending).then(|| pending_note(status, asked_at));
                        if status.state.is_final() {
                            ended.push(job_id.clone());
                            ended_keys.push(key.clone());
                            let _ = exits.send(Exit {
                                job_id: job_id.clone(),
                                exit_code: status.exit_code.unwrap_or(-1),
                                timed_out: status.state == JobState::Timeout,
                                cancelled: status.state == JobState::Cancelled,
                                started_at: status.start_time.unwrap_or(t.started_at),
                                ended_at: status.end_time.unwrap_or(asked_at),
                                gpu_energy_mj: None,
                                lost: matches!(status.state, JobState::NodeFail | JobState::BootFail),
                                ran: t.started,
                                reason: Some(format!(
                                    "Slurm job {}: {:?} ({})",
                                    status.slurm_id, status.state, status.reason
                                )),
                            });
                        }
                    }
                    // Being submitted, or taken after the last full list: not missing.
                    None if t.in_flight || t.submitted.is_some_and(|at| last_full.is_none_or(|f| at >= f)) => {}
                    None if t.slurm_id.is_some() || self.job_dir(job_id).join(SUBMITTED_FILE).exists() => {
                        // Slurm took it and no longer knows it: it ended while nobody
                        // looked for longer than Slurm keeps finished jobs (MinJobAge).
                        ended.push(job_id.clone());
                        let _ = exits.send(Exit {
                            job_id: job_id.clone(),
                            exit_code: -1,
                            timed_out: false,
                            cancelled: t.cancel,
                            started_at: t.started_at,
                            ended_at: asked_at,
                            gpu_energy_mj: None,
                            lost: !t.cancel,
                            ran: t.started,
                            reason: Some("the job vanished from Slurm's job list".into()),
                        });
                    }
                    None if t.cancel => {
                        ended.push(job_id.clone());
                        let _ = exits.send(Exit {
                            job_id: job_id.clone(),
                            exit_code: -1,
                            timed_out: false,
                            cancelled: true,
                            started_at: t.started_at,
                            ended_at: asked_at,
                            gpu_energy_mj: None,
                            lost: false,
                            ran: false,
                            reason: Some("cancelled before it reached Slurm".into()),
                        });
                    }
                    None if t.next_try <= Instant::now() => to_submit.push(job_id.clone()),
                    None => {}
                }
            }
            drop(by_comment);
            let mut statuses = statuses;
            for id in ended {
                shared.jobs.remove(&id);
            }
            for key in ended_keys {
                statuses.remove(&key);
            }
            // Only the runs still followed are worth keeping.
            let followed: std::collections::HashSet<String> =
                shared.jobs.values().map(|t| t.launch.comment_key()).collect();
            statuses.retain(|key, _| followed.contains(key));
            shared.statuses = statuses;
        }
        for slurm_id in to_cancel {
            if let Err(e) = client.cancel(slurm_id).await {
                tracing::warn!(slurm.job = slurm_id, error = %e, "cancel in Slurm failed; retried next poll");
            }
        }
        // Several at once: slurmrestd serves connections in parallel.
        let mut set = tokio::task::JoinSet::new();
        for job_id in to_submit {
            let (me, client) = (self.clone(), client.clone());
            set.spawn(async move { me.submit(&client, &job_id).await });
        }
        while set.join_next().await.is_some() {}
    }

    /// Sends one job to Slurm, unless a submission of it is already on its way or done.
    async fn submit(&self, client: &Client, job_id: &str) {
        let _permit = self.submits.acquire().await;
        let launch = {
            let mut shared = self.shared.lock().expect("slurm state");
            let Some(t) = shared.jobs.get_mut(job_id) else { return };
            if t.in_flight || t.slurm_id.is_some() || t.cancel {
                return;
            }
            t.in_flight = true;
            t.launch.clone()
        };
        let exits = &self.exits;
        let launch = &launch;
        let dir = self.job_dir(job_id);
        let mut env = vec![
            ("PATH".to_string(), "/usr/local/bin:/usr/bin:/bin".to_string()),
            ("AIFACTORY_JOB_ID".to_string(), job_id.to_string()),
        ];
        env.extend(launch.env.iter().cloned());
        let command: Vec<String> = launch.command.iter().map(|w| shell_quote(w)).collect();
        let request = JobRequest {
            name: job_id.to_string(),
            partition: self.config.partition.clone(),
            nodes: launch.nodes,
            gpus_per_node: launch.gpus_per_node,
            time_limit_s: launch.walltime.as_secs(),
            account: launch.account.clone().or_else(|| self.config.account.clone()),
            qos: launch.qos.clone().or_else(|| self.config.qos.clone()),
            working_dir: dir.display().to_string(),
            environment: env,
            script: format!("#!/bin/sh\nexec {}\n", command.join(" ")),
            stdout: self.log_path(job_id, Stream::Stdout).display().to_string(),
            stderr: self.log_path(job_id, Stream::Stderr).display().to_string(),
            comment: format!("{COMMENT_PREFIX}{}", launch.comment_key()),
            // v0.0.38 cannot pin; the server only runs its own engine on such a Slurm when
            // there is one node, where the pin changes nothing.
            required_nodes: if client.version().can_pin_nodes() {
                launch.required_nodes.clone()
            } else {
                Vec::new()
            },
        };
        crate::LaunchHold::at(self.hold.as_deref(), crate::LaunchStep::BeforeStart).await;
        {
            // A cancel that came while this waited for its turn: nothing goes out, and the
            // next poll reports the job cancelled before it reached Slurm.
            let mut shared = self.shared.lock().expect("slurm state");
            if let Some(t) = shared.jobs.get_mut(job_id)
                && t.cancel
            {
                t.in_flight = false;
                self.wake.notify_one();
                return;
            }
        }
        // A job charged to an account still being created waits for it, as for Slurm.
        // (Slurm refuses to create it while slurmdbd is away: the job waits however long
        // that lasts, unless the account can never be made.)
        let pending = request.account.as_ref().and_then(|a| self.pending_account(a));
        let mut awaiting_account = None;
        let result = match pending {
            Some(account) => match self.create_account(client, &account).await {
                Ok(()) => client.submit(&request).await,
                Err(e) => {
                    awaiting_account = Some(account.name).filter(|_| !matches!(e, SlurmError::Invalid(_)));
                    Err(e)
                }
            },
            None => client.submit(&request).await,
        };
        if result.is_ok() {
            crate::LaunchHold::at(self.hold.as_deref(), crate::LaunchStep::AfterStart).await;
        }
        let mut shared = self.shared.lock().expect("slurm state");
        let Some(t) = shared.jobs.get_mut(job_id) else { return };
        t.in_flight = false;
        match result {
            Ok(slurm_id) => {
                let _ = std::fs::write(dir.join(SUBMITTED_FILE), slurm_id.to_string());
                t.slurm_id = Some(slurm_id);
                t.submitted = Some(Instant::now());
                t.note = Some(format!("submitted to Slurm as job {slurm_id}"));
                tracing::info!(job.id = job_id, slurm.job = slurm_id, "submitted to Slurm");
            }
            // Slurm refuses some jobs for a while (a node still down after slurmctld came
            // back): a refusal is retried a few times before it is final.
            Err(e)
                if awaiting_account.is_some()
                    || e.is_transient()
                    || (matches!(e, SlurmError::Refused(_)) && t.attempts < REFUSALS_RETRIED) =>
            {
                t.attempts += 1;
                let backoff = Duration::from_secs(1 << t.attempts.min(6));
                t.next_try = Instant::now() + backoff;
                t.note = Some(match &awaiting_account {
                    Some(account) => format!(
                        "waiting for its Slurm account {account} to be created ({e}); next try in {} s",
                        backoff.as_secs()
                    ),
                    None => format!("waiting for Slurm ({e}); next try in {} s", backoff.as_secs()),
                });
                tracing::warn!(job.id = job_id, error = %e, "submission to Slurm failed; will retry");
            }
            Err(e) => {
                shared.jobs.remove(job_id);
                let _ = exits.send(Exit {
                    job_id: job_id.to_string(),
                    exit_code: -1,
                    timed_out: false,
                    cancelled: false,
                    started_at: unix_now(),
                    ended_at: unix_now(),
                    gpu_energy_mj: None,
                    lost: false,
                    ran: false,
                    reason: Some(e.to_string()),
                });
            }
        }
    }

    fn troubled(&self, e: SlurmError) {
        let mut shared = self.shared.lock().expect("slurm state");
        if shared.trouble.is_none() {
            tracing::warn!(error = %e, "Slurm is not answering; jobs keep their state");
        }
        let reason = e.to_string();
        for t in shared.jobs.values_mut() {
            t.note = Some(format!("Slurm is not answering: {reason}"));
        }
        shared.trouble = Some(reason);
        if matches!(e, SlurmError::Unreachable { .. }) {
            // Connect again next time: slurmrestd may have been restarted elsewhere.
            shared.client = None;
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Who Slurm runs our jobs as: over HTTP the user the token names (or `--slurm-user`);
    /// over a unix socket (rest_auth/local) the user slurmrestd runs as, read from the
    /// socket's peer credentials. `None` if that cannot be told from here.
    pub fn job_user(&self) -> Option<nix::unistd::User> {
        if let Some(path) = self.config.url.strip_prefix("unix:") {
            let stream = std::os::unix::net::UnixStream::connect(path).ok()?;
            let peer = nix::sys::socket::getsockopt(&stream, nix::sys::socket::sockopt::PeerCredentials).ok()?;
            return nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(peer.uid())).ok()?;
        }
        let name = self.config.jwt.as_ref()?.user_name()?;
        nix::unistd::User::from_name(&name).ok()?
    }

    /// Whether the user Slurm runs jobs as can reach the jobs' directories (they run in
    /// them and write their logs there): every directory down to the root of the job
    /// directories must let them through. An error says which one does not, and why.
    pub fn check_job_user_reaches_root(&self) -> Result<(), String> {
        let Some(user) = self.job_user() else {
            tracing::warn!(
                "cannot tell which user Slurm runs jobs as: not checking that it reaches the data directory"
            );
            return Ok(());
        };
        traversable_by(&self.root, &user)
    }

    /// The Slurm partition jobs go to, if one is set (else Slurm's default).
    pub fn partition(&self) -> Option<&str> {
        self.config.partition.as_deref()
    }
}

/// Whether `user` may pass through every directory from `/` down to `dir` (execute
/// permission for them as owner, group member or other; root passes everywhere).
pub fn traversable_by(dir: &Path, user: &nix::unistd::User) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    if user.uid.is_root() {
        return Ok(());
    }
    let name = std::ffi::CString::new(user.name.clone()).map_err(|e| e.to_string())?;
    let groups = nix::unistd::getgrouplist(&name, user.gid).unwrap_or_else(|_| vec![user.gid]);
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("the job directory {}: {e}", dir.display()))?;
    for step in dir.ancestors().collect::<Vec<_>>().into_iter().rev() {
        let meta = std::fs::metadata(step).map_err(|e| format!("{}: {e}", step.display()))?;
        let mode = meta.mode();
        let passes = if meta.uid() == user.uid.as_raw() {
            mode & 0o100 != 0
        } else if groups.iter().any(|g| g.as_raw() == meta.gid()) {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !passes {
            return Err(format!(
                "Slurm runs jobs as {} (uid {}), who cannot enter {} (mode {:o}, owner uid {}, group gid {}): jobs would fail to launch. \
                 Let them through (e.g. chmod o+x {}), or put the data directory on a file system the compute nodes share with that user",
                user.name,
                user.uid,
                step.display(),
                mode & 0o7777,
                meta.uid(),
                meta.gid(),
                step.display(),
            ));
        }
    }
    Ok(())
}

/// What a waiting job's view says: Slurm's reason, and its backfill forecast if it has one.
fn pending_note(status: &slurm::JobStatus, now: u64) -> String {
    let mut note = format!("pending in Slurm (job {}): {}", status.slurm_id, status.reason);
    if let Some(at) = status.expected_start.filter(|&at| at > now) {
        note.push_str(&format!("; expected to start in about {} min", (at - now).div_ceil(60)));
    }
    note
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_waiting_job_says_why_and_when() {
        let status = slurm::JobStatus {
            slurm_id: 11,
            name: "job_1".into(),
            comment: "aifactory:job_1".into(),
            state: slurm::JobState::Pending,
            reason: "Resources".into(),
            exit_code: None,
            signal: None,
            start_time: None,
            end_time: None,
            expected_start: Some(1_000 + 601),
            nodes: String::new(),
            stdout: String::new(),
            stderr: String::new(),
            gpus: vec![],
        };
        assert_eq!(
            super::pending_note(&status, 1_000),
            "pending in Slurm (job 11): Resources; expected to start in about 11 min"
        );
        assert_eq!(
            super::pending_note(&status, 2_000),
            "pending in Slurm (job 11): Resources",
            "a forecast in the past says nothing"
        );
    }

    #[test]
    fn each_run_has_its_own_comment() {
        let launch = |run| super::SlurmLaunch {
            job_id: "job_1".into(),
            command: vec![],
            env: vec![],
            nodes: 1,
            gpus_per_node: 1,
            walltime: std::time::Duration::from_secs(60),
            required_nodes: vec![],
            account: None,
            qos: None,
            run,
        };
        // The first run keeps the comment earlier versions wrote, so that they are found.
        assert_eq!(launch(0).comment_key(), "job_1");
        assert_eq!(launch(1).comment_key(), "job_1");
        assert_eq!(launch(2).comment_key(), "job_1#2");
    }

    #[test]
    fn words_survive_the_shell() {
        assert_eq!(super::shell_quote("plain"), "'plain'");
        assert_eq!(super::shell_quote("it's"), r"'it'\''s'");
        assert_eq!(super::shell_quote("$HOME; rm -rf /"), "'$HOME; rm -rf /'");
    }
}
