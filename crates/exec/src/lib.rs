//! Executors run what the engine decided. The local executor (the embedded default) runs
//! each job as a process group on this machine, in its own working directory, with its
//! virtual GPUs in `CUDA_VISIBLE_DEVICES`, stdout and stderr captured to files that can be
//! read while it runs, the walltime enforced, and cancellation by SIGTERM then SIGKILL
//! after a grace period. Ends are reported on a channel; nothing here knows HTTP or SQL.
//!
//! Jobs outlive the server: each runs under a small `sh` wrapper that writes the
//! command's exit code to `exit_code` in the job's directory, and the pid file records the
//! process's start time, so that a restarted server can adopt a job still running (and
//! tell it from an unrelated process that reused the pid) and learn how it ended.

mod energy;
pub mod slurm;

pub use energy::GpuEnergy;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::process::Command;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("the job has no command")]
    EmptyCommand,
    #[error("cannot prepare the job directory {path}: {source}")]
    WorkDir { path: String, source: std::io::Error },
    #[error("cannot start `{program}`: {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("cannot start `{0}`: no such program (not a file, not on PATH, or not executable)")]
    NotFound(String),
}

/// Runs the command as its child and records its exit code. The trap keeps the wrapper
/// alive through SIGTERM until the command has ended (a handler, unlike an ignored
/// signal, is reset for the command itself), so a stopped job's code is recorded too.
const WRAPPER: &str = r#"trap : TERM INT; "$@"; code=$?; echo $code > exit_code; exit $code"#;

/// What to run.
#[derive(Debug, Clone)]
pub struct Launch {
    pub job_id: String,
    pub command: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Indices of the (virtual) GPUs given to the job.
    pub gpus: Vec<u16>,
    pub walltime: Duration,
}

/// How a job's process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub job_id: String,
    /// The exit code, or 128 + the signal for a process killed by one.
    pub exit_code: i32,
    pub timed_out: bool,
    pub cancelled: bool,
    pub started_at: u64,
    pub ended_at: u64,
    /// Energy its GPUs used while it ran, from NVML; `None` where it cannot be measured.
    pub gpu_energy_mj: Option<u64>,
    /// Nothing is known of how it ended (it vanished from the executor).
    pub lost: bool,
    /// Its command ran at all (a job stopped or refused before it started costs nothing).
    pub ran: bool,
    /// The executor's explanation, where it has one (a refusal, a vanished job).
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// Where a job's stream is kept in its directory, whichever executor ran it.
    pub fn file_in(self, job_dir: &Path) -> PathBuf {
        job_dir.join(match self {
            Stream::Stdout => "stdout.log",
            Stream::Stderr => "stderr.log",
        })
    }
}

/// A point in a launch where a test can hold it, to prove that a stop arriving there is
/// not lost (see `LaunchHold`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LaunchStep {
    /// Local: the directory is ready, nothing spawned. Slurm: about to send the submission.
    BeforeStart,
    /// Local: the process runs, its end not yet watched. Slurm: Slurm took the job, the
    /// executor has not recorded its id yet.
    AfterStart,
}

/// Holds every launch that reaches one step until the test releases it (one release per
/// launch). Only tests set one; a server without it never waits.
#[derive(Debug)]
pub struct LaunchHold {
    step: LaunchStep,
    arrived: tokio::sync::Semaphore,
    released: tokio::sync::Semaphore,
}

impl LaunchHold {
    pub fn new(step: LaunchStep) -> Arc<LaunchHold> {
        Arc::new(LaunchHold {
            step,
            arrived: tokio::sync::Semaphore::new(0),
            released: tokio::sync::Semaphore::new(0),
        })
    }

    /// Waits until a launch is held at the step.
    pub async fn arrived(&self) {
        if let Ok(permit) = self.arrived.acquire().await {
            permit.forget();
        }
    }

    /// Lets one held launch go on.
    pub fn release(&self) {
        self.released.add_permits(1);
    }

    pub(crate) async fn at(hold: Option<&LaunchHold>, step: LaunchStep) {
        if let Some(hold) = hold.filter(|h| h.step == step) {
            hold.arrived.add_permits(1);
            if let Ok(permit) = hold.released.acquire().await {
                permit.forget();
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct LocalExecutor {
    root: PathBuf,
    grace: Duration,
    exits: mpsc::UnboundedSender<Exit>,
    /// Jobs whose processes the executor watches, from before the spawn until the end has
    /// been reported, with the way to stop each (taken by the first cancel).
    live: Arc<Mutex<HashMap<String, Option<oneshot::Sender<()>>>>>,
    energy: Arc<GpuEnergy>,
    hold: Option<Arc<LaunchHold>>,
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl LocalExecutor {
    /// Jobs run under `root/<job id>/`; ends come out of the returned receiver.
    pub fn new(root: impl Into<PathBuf>, grace: Duration) -> (LocalExecutor, mpsc::UnboundedReceiver<Exit>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let exec = LocalExecutor {
            root: root.into(),
            grace,
            exits: tx,
            live: Arc::default(),
            energy: Arc::new(GpuEnergy::detect()),
            hold: None,
        };
        (exec, rx)
    }

    /// Holds launches at a step (tests only).
    pub fn with_hold(mut self, hold: Option<Arc<LaunchHold>>) -> LocalExecutor {
        self.hold = hold;
        self
    }

    pub fn job_dir(&self, job_id: &str) -> PathBuf {
        self.root.join(job_id)
    }

    pub fn log_path(&self, job_id: &str, stream: Stream) -> PathBuf {
        stream.file_in(&self.job_dir(job_id))
    }

    /// Starts the job's process and returns its pid; its end is reported on the channel.
    pub async fn launch(&self, launch: Launch) -> Result<u32, ExecError> {
        let (program, args) = launch.command.split_first().ok_or(ExecError::EmptyCommand)?;
        let dir = self.job_dir(&launch.job_id);
        let io = |source| ExecError::WorkDir {
            path: dir.display().to_string(),
            source,
        };
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let stdout = std::fs::File::create(self.log_path(&launch.job_id, Stream::Stdout)).map_err(io)?;
        let stderr = std::fs::File::create(self.log_path(&launch.job_id, Stream::Stderr)).map_err(io)?;
        let resolved = resolve_program(program, &dir).ok_or_else(|| ExecError::NotFound(program.clone()))?;
        // Watched from before the spawn: a cancel from now on is kept until the end is.
        let cancel_rx = self.watch(&launch.job_id);
        LaunchHold::at(self.hold.as_deref(), LaunchStep::BeforeStart).await;
        let visible: Vec<String> = launch.gpus.iter().map(u16::to_string).collect();
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg("aifactory-job")
            .arg(resolved)
            .args(args)
            .current_dir(&dir)
            .envs(launch.env.iter().cloned())
            .env("CUDA_VISIBLE_DEVICES", visible.join(","))
            .env("AIFACTORY_JOB_ID", &launch.job_id)
            .stdin(std::process::Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            // Its own process group, so that signals reach everything it started.
            .process_group(0)
            .kill_on_drop(false);
        let spawned = cmd.spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(source) => {
                self.live.lock().expect("live jobs").remove(&launch.job_id);
                return Err(ExecError::Spawn {
                    program: program.clone(),
                    source,
                });
            }
        };
        let pid = child.id().unwrap_or(0);
        // Kept so that a restarted server can adopt or stop a process it no longer supervises.
        if let Some(birth) = process_birth(pid as i32) {
            let _ = std::fs::write(dir.join("pid"), format!("{pid} {birth}"));
        }
        let started_at = unix_now();
        // The walltime counts from the spawn, however long the rest of the launch takes.
        let deadline = tokio::time::Instant::now() + launch.walltime;
        LaunchHold::at(self.hold.as_deref(), LaunchStep::AfterStart).await;
        let meter = self.meter(&launch.job_id, launch.gpus.clone());
        let exits = self.exits.clone();
        let live = self.live.clone();
        let grace = self.grace;
        let job_id = launch.job_id;
        tokio::spawn(async move {
            let group = Pid::from_raw(pid as i32);
            let (mut timed_out, mut cancelled) = (false, false);
            let status = tokio::select! {
                biased;
                Ok(()) = cancel_rx => {
                    cancelled = true;
                    stop(&mut child, group, grace).await
                }
                status = child.wait() => status,
                _ = tokio::time::sleep_until(deadline) => {
                    timed_out = true;
                    stop(&mut child, group, grace).await
                }
            };
            // Nothing the job started outlives it (as Slurm's process tracking ensures).
            let _ = killpg(group, Signal::SIGKILL);
            live.lock().expect("live jobs").remove(&job_id);
            let exit_code = match status {
                Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
                Err(e) => {
                    tracing::warn!(job.id = job_id.as_str(), error = %e, "lost track of a job process");
                    -1
                }
            };
            let _ = exits.send(Exit {
                gpu_energy_mj: meter.used(),
                lost: false,
                ran: true,
                reason: None,
                job_id,
                exit_code,
                timed_out,
                cancelled,
                started_at,
                ended_at: unix_now(),
            });
        });
        Ok(pid)
    }

    /// Starts measuring the job's GPUs; the first reading is kept in the job's directory
    /// for a server that adopts the job later.
    fn meter(&self, job_id: &str, gpus: Vec<u16>) -> Meter {
        let start = self.energy.read_mj(&gpus);
        if let Some(mj) = start {
            let _ = std::fs::write(self.job_dir(job_id).join("energy_start_mj"), mj.to_string());
        }
        Meter {
            energy: self.energy.clone(),
            gpus,
            start,
        }
    }

    fn watch(&self, job_id: &str) -> oneshot::Receiver<()> {
        let (cancel_tx, cancel_rx) = oneshot::channel();
        self.live
            .lock()
            .expect("live jobs")
            .insert(job_id.to_string(), Some(cancel_tx));
        cancel_rx
    }

    /// Takes over a job started by an earlier server process if it is still running: its
    /// end (exit code from the wrapper's file), walltime and cancellation are then handled
    /// as for a job started here. Returns false if nothing of it runs any more.
    pub fn adopt(&self, job_id: &str, started_at: u64, walltime: Duration, gpus: Vec<u16>) -> bool {
        let Some(pid) = leftover(&self.root, job_id) else {
            return false;
        };
        let meter = Meter::resume(self.energy.clone(), &self.job_dir(job_id), gpus);
        let cancel_rx = self.watch(job_id);
        let (exits, live, grace) = (self.exits.clone(), self.live.clone(), self.grace);
        let dir = self.job_dir(job_id);
        let job_id = job_id.to_string();
        let deadline = Duration::from_secs((started_at + walltime.as_secs()).saturating_sub(unix_now()));
        tokio::spawn(async move {
            let group = Pid::from_raw(pid.0);
            let (mut timed_out, mut cancelled) = (false, false);
            let signalled = tokio::select! {
                () = gone(pid) => None,
                () = tokio::time::sleep(deadline) => {
                    timed_out = true;
                    Some(stop_adopted(pid, group, grace).await)
                }
                Ok(()) = cancel_rx => {
                    cancelled = true;
                    Some(stop_adopted(pid, group, grace).await)
                }
            };
            live.lock().expect("live jobs").remove(&job_id);
            let recorded = std::fs::read_to_string(dir.join("exit_code"))
                .ok()
                .and_then(|t| t.trim().parse().ok());
            // Without a recorded code it was killed: by us (the signal we sent last) or
            // from outside (unknown, -1).
            let exit_code = recorded.or(signalled.map(|s| 128 + s as i32)).unwrap_or(-1);
            let _ = exits.send(Exit {
                gpu_energy_mj: meter.used(),
                lost: false,
                ran: true,
                reason: None,
                job_id,
                exit_code,
                timed_out,
                cancelled,
                started_at,
                ended_at: unix_now(),
            });
        });
        true
    }

    /// Asks a running job to stop (SIGTERM, then SIGKILL after the grace period); its end
    /// is reported as cancelled. Returns false if it is not running here.
    pub fn cancel(&self, job_id: &str) -> bool {
        let sender = self
            .live
            .lock()
            .expect("live jobs")
            .get_mut(job_id)
            .and_then(Option::take);
        sender.is_some_and(|tx| tx.send(()).is_ok())
    }

    /// Jobs whose processes run (or are being started or stopped): what holds GPUs as the
    /// executor sees it.
    pub fn live(&self) -> Vec<String> {
        self.live.lock().expect("live jobs").keys().cloned().collect()
    }

    pub fn running(&self) -> usize {
        self.live.lock().expect("live jobs").len()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// How a job's command ended according to its wrapper, whoever watched it: the exit code
/// it wrote and when (the file's modification time, Unix seconds). `None` if the command
/// never ended under its wrapper (still running, or killed with it).
pub fn recorded_end(root: &Path, job_id: &str) -> Option<(i32, u64)> {
    let path = root.join(job_id).join("exit_code");
    let code = std::fs::read_to_string(&path).ok()?.trim().parse().ok()?;
    let at = std::fs::metadata(&path).ok()?.modified().ok()?;
    Some((code, at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())))
}

/// Stops what is left of a job started by an earlier server process (its process group,
/// from the pid file), so that it never runs unaccounted. Returns whether one was signalled.
pub fn kill_leftover(root: &Path, job_id: &str) -> bool {
    leftover(root, job_id).is_some_and(|pid| killpg(Pid::from_raw(pid.0), Signal::SIGKILL).is_ok())
}

/// The GPU energy counter of one job between its start and now.
struct Meter {
    energy: Arc<GpuEnergy>,
    gpus: Vec<u16>,
    start: Option<u64>,
}

impl Meter {
    fn resume(energy: Arc<GpuEnergy>, dir: &Path, gpus: Vec<u16>) -> Meter {
        let start = std::fs::read_to_string(dir.join("energy_start_mj"))
            .ok()
            .and_then(|t| t.trim().parse().ok());
        Meter { energy, gpus, start }
    }

    fn used(&self) -> Option<u64> {
        Some(self.energy.read_mj(&self.gpus)?.saturating_sub(self.start?))
    }
}

/// A job process identified by pid and start time (clock ticks after boot), which tells
/// it apart from a later process that reused the pid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Birth(i32, u64);

/// The job's wrapper process from its pid file, if that very process still runs.
fn leftover(root: &Path, job_id: &str) -> Option<Birth> {
    let text = std::fs::read_to_string(root.join(job_id).join("pid")).ok()?;
    let mut parts = text.split_whitespace();
    let pid: i32 = parts.next()?.parse().ok()?;
    let birth: u64 = parts.next()?.parse().ok()?;
    (pid > 1 && process_birth(pid) == Some(birth)).then_some(Birth(pid, birth))
}

/// The start time of a live (not zombie) process, from `/proc/<pid>/stat`.
fn process_birth(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    if matches!(fields.first(), Some(&"Z" | &"X")) {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// Resolves once the adopted process has ended (it is not our child: no wait, so poll).
async fn gone(pid: Birth) {
    while process_birth(pid.0) == Some(pid.1) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM to an adopted job's group, SIGKILL after the grace; the last signal sent.
async fn stop_adopted(pid: Birth, group: Pid, grace: Duration) -> Signal {
    let _ = killpg(group, Signal::SIGTERM);
    if tokio::time::timeout(grace, gone(pid)).await.is_ok() {
        return Signal::SIGTERM;
    }
    let _ = killpg(group, Signal::SIGKILL);
    gone(pid).await;
    Signal::SIGKILL
}

/// The program's path: as given if it names a file (relative to the job's directory, where
/// it runs), else the first match on PATH.
fn resolve_program(program: &str, dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let p = dir.join(program);
        return executable(&p).then_some(p);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| executable(p))
}

async fn stop(
    child: &mut tokio::process::Child,
    group: Pid,
    grace: Duration,
) -> std::io::Result<std::process::ExitStatus> {
    let _ = killpg(group, Signal::SIGTERM);
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            let _ = killpg(group, Signal::SIGKILL);
            child.wait().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("aifactory-exec-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn sh(job_id: &str, script: &str, walltime: Duration) -> Launch {
        Launch {
            job_id: job_id.into(),
            command: vec!["sh".into(), "-c".into(), script.into()],
            env: vec![("GREETING".into(), "hello".into())],
            gpus: vec![2, 3],
            walltime,
        }
    }

    async fn wait_for_output(path: &Path) {
        for _ in 0..200 {
            if std::fs::read_to_string(path).is_ok_and(|t| !t.is_empty()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{} stayed empty", path.display());
    }

    #[tokio::test]
    async fn runs_with_gpus_env_and_logs_and_reports_the_exit_code() {
        let (exec, mut exits) = LocalExecutor::new(temp_root("run"), Duration::from_secs(1));
        exec.launch(sh(
            "job_a",
            "echo $GREETING $CUDA_VISIBLE_DEVICES; pwd; echo oops >&2; exit 3",
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
        let exit = exits.recv().await.unwrap();
        assert_eq!(
            (exit.job_id.as_str(), exit.exit_code, exit.timed_out, exit.cancelled),
            ("job_a", 3, false, false)
        );
        let out = std::fs::read_to_string(exec.log_path("job_a", Stream::Stdout)).unwrap();
        assert!(out.starts_with("hello 2,3\n"), "{out}");
        assert!(out.trim_end().ends_with("job_a"), "runs in its own directory: {out}");
        assert_eq!(
            std::fs::read_to_string(exec.log_path("job_a", Stream::Stderr)).unwrap(),
            "oops\n"
        );
    }

    #[tokio::test]
    async fn walltime_and_cancel_stop_the_whole_process_group() {
        let (exec, mut exits) = LocalExecutor::new(temp_root("stop"), Duration::from_millis(300));
        // Ignores SIGTERM, so only SIGKILL after the grace period ends it.
        exec.launch(sh("job_t", "trap '' TERM; sleep 30 & wait", Duration::from_millis(200)))
            .await
            .unwrap();
        let exit = exits.recv().await.unwrap();
        assert!(exit.timed_out && !exit.cancelled);
        assert_eq!(exit.exit_code, 128 + 9);
        exec.launch(sh("job_c", "echo up; sleep 30", Duration::from_secs(30)))
            .await
            .unwrap();
        assert_eq!(exec.running(), 1);
        // Once the command runs: a SIGTERM that lands between the wrapper's fork and the
        // command's exec is taken by the shell's handler, and only SIGKILL ends it then.
        wait_for_output(&exec.log_path("job_c", Stream::Stdout)).await;
        assert!(exec.cancel("job_c"));
        let exit = exits.recv().await.unwrap();
        assert!(exit.cancelled && !exit.timed_out);
        assert_eq!(exit.exit_code, 128 + 15);
        assert!(!exec.cancel("job_c"), "already gone");
        let err = exec
            .launch(Launch {
                command: vec![],
                ..sh("job_e", "", Duration::from_secs(1))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::EmptyCommand));
        let err = exec
            .launch(Launch {
                command: vec!["/nonexistent/bin".into()],
                ..sh("job_f", "", Duration::from_secs(1))
            })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/bin"), "{err}");
        let err = exec
            .launch(Launch {
                command: vec!["no-such-program-anywhere".into()],
                ..sh("job_g", "", Duration::from_secs(1))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ExecError::NotFound(_)), "{err}");
    }

    #[tokio::test]
    async fn a_new_executor_adopts_a_running_job_and_learns_its_exit_code() {
        let root = temp_root("adopt");
        let (first, _first_exits) = LocalExecutor::new(&root, Duration::from_millis(300));
        first
            .launch(sh("job_x", "sleep 1; echo done; exit 7", Duration::from_secs(30)))
            .await
            .unwrap();
        first
            .launch(sh("job_y", "echo up; sleep 30", Duration::from_secs(30)))
            .await
            .unwrap();
        first
            .launch(sh("job_z", "sleep 30", Duration::from_secs(30)))
            .await
            .unwrap();
        // The server restarts: a second executor over the same directory takes over.
        // A grace long enough for a loaded machine: the exit codes must come from SIGTERM.
        let (second, mut exits) = LocalExecutor::new(&root, Duration::from_secs(3));
        let started = unix_now();
        assert!(second.adopt("job_x", started, Duration::from_secs(30), vec![2, 3]));
        assert!(second.adopt("job_y", started, Duration::from_secs(30), vec![2, 3]));
        assert!(second.adopt("job_z", started, Duration::from_secs(1), vec![2, 3]));
        assert!(!second.adopt("job_missing", started, Duration::from_secs(30), vec![]));
        wait_for_output(&second.log_path("job_y", Stream::Stdout)).await;
        assert!(second.cancel("job_y"));
        let mut ends = Vec::new();
        for _ in 0..3 {
            let e = exits.recv().await.unwrap();
            ends.push((e.job_id, e.exit_code, e.timed_out, e.cancelled));
        }
        ends.sort();
        assert_eq!(
            ends,
            [
                ("job_x".to_string(), 7, false, false),
                ("job_y".to_string(), 128 + 15, false, true),
                ("job_z".to_string(), 128 + 15, true, false),
            ]
        );
        assert_eq!(
            std::fs::read_to_string(second.log_path("job_x", Stream::Stdout)).unwrap(),
            "done\n"
        );
        assert!(
            !second.adopt("job_x", started, Duration::from_secs(30), vec![]),
            "it has ended"
        );
        // A pid file whose process is not the job's (pid reused): never adopted.
        std::fs::create_dir_all(root.join("job_w")).unwrap();
        std::fs::write(root.join("job_w").join("pid"), format!("{} 1", std::process::id())).unwrap();
        assert!(!second.adopt("job_w", started, Duration::from_secs(30), vec![]));
    }
}
