//! Against a real Slurm (scripts/slurm-test-cluster.sh; `AIFACTORY_TEST_SLURM` holds the
//! URL, as `scripts/test` sets it; in CI its absence is an error). One node with 8 fake
//! GPUs: a two-node gang cannot run here, so its refusal is what is checked.

use slurm::{Client, JobRequest, JobState, JobStatus, NodeState};
use std::path::PathBuf;
use std::time::{Duration, Instant};

async fn client() -> Option<Client> {
    match std::env::var("AIFACTORY_TEST_SLURM") {
        Ok(url) => Some(
            Client::connect(&url, None)
                .await
                .expect("AIFACTORY_TEST_SLURM is reachable"),
        ),
        Err(_) if std::env::var("CI").is_ok() => panic!("CI must run the Slurm suite: AIFACTORY_TEST_SLURM is not set"),
        Err(_) => {
            eprintln!("AIFACTORY_TEST_SLURM not set: Slurm suite skipped (./scripts/test sets it)");
            None
        }
    }
}

/// A directory the job's user (slurmrestd's, with rest_auth/local) can write to.
fn job_dir(name: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("aifactory-slurm-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn job(name: &str, gpus: u32, seconds: u64, script: &str) -> JobRequest {
    let dir = job_dir(name);
    JobRequest {
        name: name.into(),
        partition: None,
        nodes: 1,
        gpus_per_node: gpus,
        time_limit_s: seconds,
        account: None,
        qos: None,
        working_dir: dir.display().to_string(),
        environment: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("GREETING".into(), "hello".into()),
        ],
        script: format!("#!/bin/sh\n{script}\n"),
        stdout: dir.join("stdout.log").display().to_string(),
        stderr: dir.join("stderr.log").display().to_string(),
        comment: format!("aifactory:test_{name}"),
        required_nodes: vec![],
    }
}

/// Polls the whole job list (one request per round) until the job satisfies `done`.
async fn wait_for(c: &Client, id: u64, limit: Duration, done: impl Fn(&JobStatus) -> bool) -> JobStatus {
    let started = Instant::now();
    loop {
        let jobs = c.jobs().await.unwrap();
        if let Some(j) = jobs.into_iter().find(|j| j.slurm_id == id)
            && done(&j)
        {
            return j;
        }
        assert!(started.elapsed() < limit, "job {id} did not get there in {limit:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn jobs_run_fail_time_out_and_are_cancelled_on_real_slurm() {
    let Some(c) = client().await else { return };
    c.ping().await.unwrap();
    let nodes = c.nodes().await.unwrap();
    assert!(
        nodes
            .iter()
            .any(|n| n.gpus == 8 && matches!(n.state, NodeState::Idle | NodeState::Mixed | NodeState::Allocated)),
        "{nodes:?}"
    );
    let ran = job(
        "ran",
        4,
        60,
        "echo $GREETING $CUDA_VISIBLE_DEVICES; echo oops >&2; exit 3",
    );
    let slow = job("slow", 1, 60, "sleep 300");
    let stopped = job("stopped", 1, 600, "sleep 300");
    let (ran_id, slow_id, stopped_id) = (
        c.submit(&ran).await.unwrap(),
        c.submit(&slow).await.unwrap(),
        c.submit(&stopped).await.unwrap(),
    );
    // A gang of 4 GPUs on one node: Slurm hands out 4 devices and the job sees them.
    let ended = wait_for(&c, ran_id, Duration::from_secs(60), |j| j.state.is_final()).await;
    assert_eq!(
        (&ended.state, ended.exit_code),
        (&JobState::Failed, Some(3)),
        "{ended:?}"
    );
    assert_eq!(ended.comment, "aifactory:test_ran");
    let out = std::fs::read_to_string(&ran.stdout).unwrap();
    // Four devices (which ones depends on what else runs).
    let devices: std::collections::BTreeSet<&str> = out.trim().trim_start_matches("hello ").split(',').collect();
    assert_eq!(devices.len(), 4, "four GPUs, through CUDA_VISIBLE_DEVICES: {out}");
    assert_eq!(std::fs::read_to_string(&ran.stderr).unwrap(), "oops\n");
    // Cancel a running job.
    wait_for(&c, stopped_id, Duration::from_secs(30), |j| {
        j.state == JobState::Running
    })
    .await;
    c.cancel(stopped_id).await.unwrap();
    let cancelled = wait_for(&c, stopped_id, Duration::from_secs(30), |j| j.state.is_final()).await;
    assert_eq!(cancelled.state, JobState::Cancelled);
    // Two nodes of 4 GPUs on a one-node cluster: refused at submission, with Slurm's words.
    let gang = JobRequest {
        nodes: 2,
        ..job("gang", 4, 60, "true")
    };
    let refused = c.submit(&gang).await.unwrap_err();
    // 22.05 says the partition's configuration is not available *now* (2015), worth a few
    // tries; 23.11+ that no node has such a configuration (2014): final at once.
    assert_eq!(
        matches!(refused, slurm::SlurmError::Invalid(_)),
        c.version() != slurm::ApiVersion::V0038,
        "{refused:?}"
    );
    let err = refused.to_string();
    // 22.05: "Requested partition configuration not available now"; 24.11: "Requested node
    // configuration is not available".
    assert!(
        err.contains("Slurm refused") && err.contains("configuration") && err.contains("not available"),
        "{err}"
    );
    // Slurm queued it while objecting: it was cancelled again, nothing waits forever.
    let leftover = c.jobs().await.unwrap();
    assert!(
        leftover
            .iter()
            .filter(|j| j.comment == "aifactory:test_gang")
            .all(|j| j.state.is_final()),
        "{leftover:?}"
    );
    // Walltime: a minute (Slurm's unit), then SIGTERM.
    let timed_out = wait_for(&c, slow_id, Duration::from_secs(150), |j| j.state.is_final()).await;
    assert_eq!(timed_out.state, JobState::Timeout);
    assert_eq!(timed_out.reason, "TimeLimit");
    assert!(c.cancel(u64::from(u32::MAX) - 7).await.is_err(), "an unknown job");
}

/// slurmrestd with `rest_auth/jwt` over HTTP (`AIFACTORY_TEST_SLURM_HTTP`, the token in
/// `AIFACTORY_TEST_SLURM_TOKEN_FILE`, as `scripts/test` sets them).
fn jwt_endpoint() -> Option<(String, String)> {
    match (
        std::env::var("AIFACTORY_TEST_SLURM_HTTP"),
        std::env::var("AIFACTORY_TEST_SLURM_TOKEN_FILE"),
    ) {
        (Ok(url), Ok(token_file)) => Some((url, std::fs::read_to_string(token_file).unwrap())),
        _ if std::env::var("CI").is_ok() => {
            panic!("CI must run the Slurm JWT suite: AIFACTORY_TEST_SLURM_HTTP is not set")
        }
        _ => {
            eprintln!("AIFACTORY_TEST_SLURM_HTTP not set: Slurm JWT suite skipped (./scripts/test sets it)");
            None
        }
    }
}

/// Writes the token file anew with a later modification time, as a renewal would.
fn renew(path: &std::path::Path, token: &str) {
    let previous = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    std::fs::write(path, token).unwrap();
    if let Some(previous) = previous {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(previous + Duration::from_secs(1)).unwrap();
    }
}

#[tokio::test]
async fn a_job_runs_through_http_with_a_jwt_and_a_renewed_token_is_picked_up() {
    use slurm::{Jwt, SlurmError, TokenSource};
    let Some((url, token)) = jwt_endpoint() else { return };
    assert_eq!(
        slurm::token_user(&token).as_deref(),
        Some("slurm"),
        "scontrol token names its user"
    );
    // No token: slurmrestd answers 401, which says what to check.
    let err = Client::connect(&url, None).await.unwrap_err();
    assert!(matches!(err, SlurmError::Unauthorized(_)), "{err:?}");
    assert!(err.to_string().contains("--slurm-token-file"), "{err}");
    // The token from a file; the user name from the token.
    let token_file = job_dir("jwt-token").join("token");
    renew(&token_file, &token);
    let c = Client::connect(
        &url,
        Some(Jwt {
            user: None,
            token: TokenSource::File(token_file.clone()),
        }),
    )
    .await
    .unwrap();
    c.ping().await.unwrap();
    let ran = job("jwt", 2, 60, "echo $(id -un) $CUDA_VISIBLE_DEVICES");
    let id = c.submit(&ran).await.unwrap();
    let ended = wait_for(&c, id, Duration::from_secs(60), |j| j.state.is_final()).await;
    assert_eq!(
        (&ended.state, ended.exit_code),
        (&JobState::Completed, Some(0)),
        "{ended:?}"
    );
    let out = std::fs::read_to_string(&ran.stdout).unwrap();
    assert!(
        out.starts_with("slurm ") && out.trim().split(',').count() == 2,
        "runs as the token's user, on 2 GPUs: {out}"
    );
    // A token slurmctld does not accept: every call fails, as something to retry.
    renew(
        &token_file,
        "eyJhbGciOiJIUzI1NiJ9.eyJzdW4iOiJzbHVybSJ9.bm90IGEgc2lnbmF0dXJl",
    );
    let err = c.ping().await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    let err = c.jobs().await.unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    // Renewed: the same client goes on, with no restart.
    renew(&token_file, &token);
    c.ping().await.unwrap();
    assert!(c.jobs().await.unwrap().iter().any(|j| j.slurm_id == id));
}

/// `sacctmgr`'s view of an account (its description and organization) and its users.
fn sacctmgr_account(name: &str) -> (String, Vec<String>) {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("sacctmgr").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let account = run(&["-n", "-P", "show", "account", name, "format=descr,org"]);
    let users = run(&["-n", "-P", "show", "assoc", &format!("account={name}"), "format=user"]);
    (
        account,
        users.lines().filter(|u| !u.is_empty()).map(str::to_string).collect(),
    )
}

#[tokio::test]
async fn an_account_is_created_with_its_users_associations_through_either_endpoint() {
    use slurm::{AccountRequest, Jwt, TokenSource};
    let Some(local) = client().await else { return };
    let mut clients = vec![("local", local)];
    if let Some((url, token)) = jwt_endpoint() {
        let jwt = Jwt {
            user: None,
            token: TokenSource::Value(token),
        };
        clients.push(("jwt", Client::connect(&url, Some(jwt)).await.unwrap()));
    }
    for (how, c) in clients {
        let clusters = c.clusters().await.unwrap();
        assert_eq!(clusters, ["aifactory-test"], "{how}");
        let cluster = &clusters[0];
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let account = AccountRequest {
            name: format!("aif_test_{how}_{stamp}"),
            description: "a project awarded in a test".into(),
            organization: "acme-robotics".into(),
            users: vec!["slurm".into()],
        };
        assert!(
            c.account_users(cluster, &account.name).await.unwrap().is_empty(),
            "{how}: none yet"
        );
        c.ensure_account(cluster, &account).await.unwrap();
        assert_eq!(
            c.account_users(cluster, &account.name).await.unwrap(),
            ["slurm"],
            "{how}"
        );
        let (described, users) = sacctmgr_account(&account.name);
        assert_eq!(described, "a project awarded in a test|acme-robotics", "{how}");
        assert_eq!(users, ["slurm"], "{how}: slurmdbd has the user's association");
        // Asking again changes nothing and succeeds.
        c.ensure_account(cluster, &account).await.unwrap();
        assert_eq!(sacctmgr_account(&account.name).1, ["slurm"], "{how}");
        // A job charged to it runs, and Slurm keeps the account on it.
        let mut charged = job(&format!("account-{how}"), 1, 60, "echo charged");
        charged.account = Some(account.name.clone());
        let id = c.submit(&charged).await.unwrap();
        let ended = wait_for(&c, id, Duration::from_secs(60), |j| j.state.is_final()).await;
        assert_eq!(ended.state, JobState::Completed, "{how}: {ended:?}");
        let out = std::process::Command::new("squeue")
            .args(["-h", "-t", "all", "-j", &id.to_string(), "-o", "%a"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), account.name, "{how}");
    }
}
