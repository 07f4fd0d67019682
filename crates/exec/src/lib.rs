//! Executors run what the engine decided. The local executor (the embedded default) runs
//! each job as a process group on this machine, in its own working directory, with its
//! virtual GPUs in `CUDA_VISIBLE_DEVICES`, stdout and stderr captured to files that can be
//! read while it runs, the walltime enforced, and cancellation by SIGTERM then SIGKILL
//! after a grace period. Ends are reported on a channel; nothing here knows HTTP or SQL.

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
}

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

#[derive(Debug, Clone)]
pub struct LocalExecutor {
    root: PathBuf,
    grace: Duration,
    exits: mpsc::UnboundedSender<Exit>,
    cancels: Arc<Mutex<HashMap<String, oneshot::Sender<()>>>>,
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
            cancels: Arc::default(),
        };
        (exec, rx)
    }

    pub fn job_dir(&self, job_id: &str) -> PathBuf {
        self.root.join(job_id)
    }

    pub fn log_path(&self, job_id: &str, stream: Stream) -> PathBuf {
        self.job_dir(job_id).join(match stream {
            Stream::Stdout => "stdout.log",
            Stream::Stderr => "stderr.log",
        })
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
        let visible: Vec<String> = launch.gpus.iter().map(u16::to_string).collect();
        let mut cmd = Command::new(program);
        cmd.args(args)
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
        let mut child = cmd.spawn().map_err(|source| ExecError::Spawn {
            program: program.clone(),
            source,
        })?;
        let pid = child.id().unwrap_or(0);
        // Kept so that a restarted server can stop a process it no longer supervises.
        let _ = std::fs::write(dir.join("pid"), pid.to_string());
        let (cancel_tx, cancel_rx) = oneshot::channel();
        self.cancels
            .lock()
            .expect("cancel map")
            .insert(launch.job_id.clone(), cancel_tx);
        let started_at = unix_now();
        let exits = self.exits.clone();
        let cancels = self.cancels.clone();
        let grace = self.grace;
        let job_id = launch.job_id;
        tokio::spawn(async move {
            let group = Pid::from_raw(pid as i32);
            let (mut timed_out, mut cancelled) = (false, false);
            let status = tokio::select! {
                status = child.wait() => status,
                _ = tokio::time::sleep(launch.walltime) => {
                    timed_out = true;
                    stop(&mut child, group, grace).await
                }
                Ok(()) = cancel_rx => {
                    cancelled = true;
                    stop(&mut child, group, grace).await
                }
            };
            cancels.lock().expect("cancel map").remove(&job_id);
            let exit_code = match status {
                Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
                Err(e) => {
                    tracing::warn!(job.id = job_id.as_str(), error = %e, "lost track of a job process");
                    -1
                }
            };
            let _ = exits.send(Exit {
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

    /// Asks a running job to stop (SIGTERM, then SIGKILL after the grace period); its end
    /// is reported as cancelled. Returns false if it is not running here.
    pub fn cancel(&self, job_id: &str) -> bool {
        match self.cancels.lock().expect("cancel map").remove(job_id) {
            Some(tx) => tx.send(()).is_ok(),
            None => false,
        }
    }

    pub fn running(&self) -> usize {
        self.cancels.lock().expect("cancel map").len()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Stops what is left of a job started by an earlier server process (its process group,
/// from the pid file), so that it never runs unaccounted. Returns whether one was signalled.
pub fn kill_leftover(root: &Path, job_id: &str) -> bool {
    let Ok(text) = std::fs::read_to_string(root.join(job_id).join("pid")) else {
        return false;
    };
    let Ok(pid) = text.trim().parse::<i32>() else {
        return false;
    };
    pid > 1 && killpg(Pid::from_raw(pid), Signal::SIGKILL).is_ok()
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
        exec.launch(sh("job_c", "sleep 30", Duration::from_secs(30)))
            .await
            .unwrap();
        assert_eq!(exec.running(), 1);
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
    }
}
