//! The factory on a real Slurm (scripts/slurm-test-cluster.sh; `AIFACTORY_TEST_SLURM` holds
//! the slurmrestd URL, as `scripts/test` sets it; in CI its absence is an error): jobs run
//! through our API and CLI, time out, are cancelled, survive a slurmctld outage and a
//! kill -9 of the server, and are never submitted twice.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The two tests share one Slurm, and the first stops its controller for a while.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A plain GET, for the unauthenticated probes.
fn http_get(url: &str) -> String {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

fn slurm_url() -> Option<String> {
    match std::env::var("AIFACTORY_TEST_SLURM") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok() => panic!("CI must run the Slurm suite: AIFACTORY_TEST_SLURM is not set"),
        Err(_) => {
            eprintln!("AIFACTORY_TEST_SLURM not set: Slurm suite skipped (./scripts/test sets it)");
            None
        }
    }
}

/// The slurmrestd that takes JWTs (`rest_auth/jwt` over HTTP) and a token file for it.
fn slurm_http() -> Option<(String, String)> {
    match (
        std::env::var("AIFACTORY_TEST_SLURM_HTTP"),
        std::env::var("AIFACTORY_TEST_SLURM_TOKEN_FILE"),
    ) {
        (Ok(url), Ok(token)) => Some((url, token)),
        _ if std::env::var("CI").is_ok() => {
            panic!("CI must run the Slurm JWT suite: AIFACTORY_TEST_SLURM_HTTP/_TOKEN_FILE are not set")
        }
        _ => {
            eprintln!("AIFACTORY_TEST_SLURM_HTTP not set: Slurm JWT suite skipped (./scripts/test sets it)");
            None
        }
    }
}

fn cluster_script(action: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/slurm-test-cluster.sh");
    let status = Command::new(script).arg(action).status().unwrap();
    assert!(status.success(), "slurm-test-cluster.sh {action}");
}

/// No job of an earlier test left in Slurm.
fn clean_slate() {
    let _ = Command::new("scancel").args(["--user", "slurm"]).status();
    let started = Instant::now();
    while Command::new("squeue")
        .args(["-h", "-t", "pending,running,completing"])
        .output()
        .is_ok_and(|o| !o.stdout.is_empty())
    {
        assert!(started.elapsed() < Duration::from_secs(30), "Slurm did not clear");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn serve_on_slurm(dir: &Path, port: u16, url: &str, mode: &str, more: &[&str]) -> Server {
    let mut args = vec![
        "--executor",
        "slurm",
        "--slurm-url",
        url,
        "--slurm-mode",
        mode,
        "--slurm-site",
        "it-bologna",
        "--slurm-poll-ms",
        "250",
    ];
    args.extend_from_slice(more);
    serve_with(dir, port, &args)
}

fn submit(server: &Server, t: &str, gpus: &str, minutes: &str, script: &str) -> String {
    submit_sh(server, t, gpus, minutes, script)
}

fn show(server: &Server, t: &str, id: &str) -> Value {
    json(&cli(server, t, &["job", "show", id, "--output", "json"]))
}

fn wait_state(server: &Server, t: &str, id: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let job = show(server, t, id);
        if ok(job["state"].as_str().unwrap()) {
            return job;
        }
        assert!(started.elapsed() < limit, "job {id} stuck: {job}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn final_state(s: &str) -> bool {
    !["pending", "running"].contains(&s)
}

/// A Slurm account the site made by hand (as `sacctmgr` does it), with the user `slurm`
/// (whom our jobs run as) associated: Slurm with accounting puts a job asking for an account
/// it does not know under the user's default account instead.
fn site_account(name: &str) {
    let _ = Command::new("sacctmgr")
        .args(["-i", "add", "account", name, "cluster=aifactory-test"])
        .output()
        .unwrap();
    let _ = Command::new("sacctmgr")
        .args([
            "-i",
            "add",
            "user",
            "slurm",
            &format!("account={name}"),
            "cluster=aifactory-test",
        ])
        .output()
        .unwrap();
    assert_eq!(sacctmgr_account(name).1, ["slurm"], "account {name} made by hand");
}

/// The Slurm account of the (one) Slurm job carrying our id.
fn slurm_account_of(id: &str) -> String {
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%k %a"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("aifactory:{id} ")).map(str::to_string))
        .unwrap_or_else(|| panic!("no Slurm job for {id}"))
}

/// Slurm jobs carrying our id in their comment.
fn slurm_jobs_of(id: &str) -> usize {
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%k"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.trim() == format!("aifactory:{id}"))
        .count()
}

#[test]
fn jobs_on_slurm_through_the_factory_survive_outages_and_restarts() {
    let Some(url) = slurm_url() else { return };
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    clean_slate();
    let dir = temp_dir("slurm");
    let port = free_port();
    site_account("aifactory-default");
    let fallback = ["--slurm-account", "aifactory-default"];
    let mut server = serve_on_slurm(&dir, port, &url, "slurm", &fallback);
    let t = token(&dir, "research");
    // Inventory: Slurm's node, with its 8 GPUs, is the site's only node.
    let nodes = json(&cli(&server, &t, &["node", "list", "--output", "json"]));
    assert_eq!(nodes["items"].as_array().unwrap().len(), 1, "{nodes}");
    assert_eq!(nodes["items"][0]["gpus"], 8);
    // Started first, checked last: a minute of walltime (Slurm's unit) for a longer job.
    let slow = submit(&server, &t, "1", "1", "sleep 300");
    // A 4-GPU job runs, its output captured where `job logs` reads it; its exit code kept.
    let four = submit(&server, &t, "4", "2", "echo gpus $CUDA_VISIBLE_DEVICES; exit 3");
    let done = wait_state(&server, &t, &four, Duration::from_secs(60), final_state);
    assert_eq!(
        (done["state"].as_str(), done["exit_code"].as_i64()),
        (Some("failed"), Some(3)),
        "{done}"
    );
    let logs = String::from_utf8_lossy(&cli(&server, &t, &["job", "logs", &four]).stdout).to_string();
    let gpus: Vec<&str> = logs.trim().trim_start_matches("gpus ").split(',').collect();
    assert_eq!(gpus.len(), 4, "four GPUs through CUDA_VISIBLE_DEVICES: {logs}");
    assert_eq!(
        slurm_account_of(&four),
        "aifactory-default",
        "the allocation names none"
    );
    let usage = json(&cli(&server, &t, &["usage", "--job", &four, "--output", "json"]));
    assert!(usage["gpu_seconds"].as_i64().unwrap() >= 4, "{usage}");
    // Cancel a running job.
    let stopped = submit(&server, &t, "1", "5", "sleep 300");
    wait_state(&server, &t, &stopped, Duration::from_secs(30), |s| s == "running");
    json(&cli(&server, &t, &["job", "cancel", &stopped, "--output", "json"]));
    let cancelled = wait_state(&server, &t, &stopped, Duration::from_secs(30), final_state);
    assert_eq!(cancelled["state"], "cancelled", "{cancelled}");
    // slurmctld goes away: a running job keeps its state, a new one waits (and says why),
    // readiness says why; when slurmctld is back, the new one is submitted and runs.
    let through = submit(&server, &t, "1", "2", "sleep 4; echo survived");
    wait_state(&server, &t, &through, Duration::from_secs(30), |s| s == "running");
    cluster_script("ctld-stop");
    // Started again however this test ends.
    struct Restart;
    impl Drop for Restart {
        fn drop(&mut self) {
            cluster_script("ctld-start");
        }
    }
    let restart = Restart;
    let waiting = submit(&server, &t, "1", "2", "echo after the outage");
    std::thread::sleep(Duration::from_secs(2));
    let view = show(&server, &t, &waiting);
    assert_eq!(view["state"], "pending", "{view}");
    assert!(view["executor_note"].as_str().unwrap_or("").contains("Slurm"), "{view}");
    // slurmrestd itself waits for slurmctld (MessageTimeout) before it answers 500.
    let started = Instant::now();
    loop {
        let ready = http_get(&format!("{}/readyz", server.url));
        if ready.starts_with("HTTP/1.1 503") {
            assert!(ready.contains("executor-unavailable"), "{ready}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "readiness never said why: {ready}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        show(&server, &t, &through)["state"],
        "running",
        "the running job keeps its state"
    );
    drop(restart);
    let after = wait_state(&server, &t, &waiting, Duration::from_secs(90), final_state);
    assert_eq!(after["state"], "completed", "{after}");
    let through_done = wait_state(&server, &t, &through, Duration::from_secs(60), final_state);
    assert_eq!(through_done["state"], "completed", "{through_done}");
    assert_eq!(slurm_jobs_of(&waiting), 1, "submitted once, after the outage");
    // kill -9 of the server while a job runs: the restarted server finds it by its id,
    // never submits it again, and settles it once.
    let crossing = submit(&server, &t, "2", "2", "sleep 5; echo crossed");
    wait_state(&server, &t, &crossing, Duration::from_secs(30), |s| s == "running");
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let server = serve_on_slurm(&dir, port, &url, "slurm", &fallback);
    let crossed = wait_state(&server, &t, &crossing, Duration::from_secs(60), final_state);
    assert_eq!(crossed["state"], "completed", "{crossed}");
    assert_eq!(slurm_jobs_of(&crossing), 1, "never submitted twice");
    assert_eq!(
        String::from_utf8_lossy(&cli(&server, &t, &["job", "logs", &crossing]).stdout),
        "crossed\n"
    );
    // The minute is up: Slurm's TIMEOUT is our timeout.
    let timed_out = wait_state(&server, &t, &slow, Duration::from_secs(150), final_state);
    assert_eq!(timed_out["state"], "timeout", "{timed_out}");
    // Every reservation settled, and the allocation's usage is the jobs' usage.
    assert_booked_once(&server, &t, &[&slow, &four, &stopped, &through, &waiting, &crossing]);
}

/// Also the HTTP path: slurmrestd with rest_auth/jwt, the token from a file (its user from
/// the token's own claim).
#[test]
fn our_engine_schedules_and_slurm_runs() {
    let Some((url, token_file)) = slurm_http() else { return };
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    clean_slate();
    let dir = temp_dir("slurm-aif");
    let server = serve_on_slurm(
        &dir,
        free_port(),
        &url,
        "aifactory",
        &["--slurm-token-file", &token_file],
    );
    let t = token(&dir, "research");
    // The site opened a Slurm account for the allocation: its jobs are charged to it.
    site_account("euhpc_a01_042");
    let project = json(&cli(&server, &t, &["project", "list", "--output", "json"]))["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let allocs = json(&cli(
        &server,
        &t,
        &["alloc", "list", "--project", &project, "--output", "json"],
    ));
    for alloc in allocs["items"].as_array().unwrap() {
        let id = alloc["id"].as_str().unwrap();
        let set = json(&cli(
            &server,
            &token(&dir, "operator"),
            &["alloc", "slurm", id, "--account", "euhpc_a01_042", "--output", "json"],
        ));
        assert_eq!(set["slurm_account"], "euhpc_a01_042", "{set}");
    }
    // 8 GPUs: two 4-GPU jobs run at once, the third waits in our queue, not in Slurm's.
    let a = submit(&server, &t, "4", "2", "sleep 3; echo a");
    let b = submit(&server, &t, "4", "2", "sleep 3; echo b");
    let c = submit(&server, &t, "4", "2", "echo c $CUDA_VISIBLE_DEVICES");
    assert_eq!(show(&server, &t, &c)["state"], "pending");
    assert_eq!(slurm_jobs_of(&c), 0, "our engine holds it back");
    for (id, out) in [(&a, "a\n"), (&b, "b\n")] {
        let job = wait_state(&server, &t, id, Duration::from_secs(60), final_state);
        assert_eq!(job["state"], "completed", "{job}");
        assert_eq!(
            String::from_utf8_lossy(&cli(&server, &t, &["job", "logs", id]).stdout),
            out
        );
    }
    let job = wait_state(&server, &t, &c, Duration::from_secs(60), final_state);
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(slurm_jobs_of(&c), 1);
    assert_eq!(slurm_account_of(&c), "euhpc_a01_042");
}

/// `sacctmgr`'s view of an account: `description|organization`, and the users
/// associated with it (empty when there is no such account).
fn sacctmgr_account(name: &str) -> (String, Vec<String>) {
    let run = |args: &[&str]| {
        let out = Command::new("sacctmgr").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let account = run(&["-n", "-P", "show", "account", name, "format=descr,org"]);
    let users = run(&["-n", "-P", "show", "assoc", &format!("account={name}"), "format=user"]);
    (
        account,
        users.lines().filter(|u| !u.is_empty()).map(str::to_string).collect(),
    )
}

/// A playground award for the demo start-up, accepted: its project and allocation.
fn accepted_award(server: &Server, t: &str, title: &str) -> (String, String) {
    let applied = json(&cli(
        server,
        t,
        &[
            "apply",
            "playground",
            "--output",
            "json",
            "--title",
            title,
            "--gpu-hours",
            "5",
            "--days",
            "10",
            "--answer",
            "abstract=Run on the site's Slurm",
            "--founded",
            "2024-01-10",
            "--staff",
            "5",
            "--turnover-eur",
            "100000",
            "--balance-sheet-eur",
            "80000",
            "--declare",
        ],
    ));
    assert_eq!(applied["state"], "awarded", "{applied}");
    let id = applied["id"].as_str().unwrap();
    let accepted = json(&cli(server, t, &["application", "accept", id, "--output", "json"]));
    (
        accepted["project"].as_str().unwrap().to_string(),
        accepted["allocation"].as_str().unwrap().to_string(),
    )
}

fn submit_to(server: &Server, t: &str, project: &str, script: &str) -> String {
    let out = cli(
        server,
        t,
        &[
            "job",
            "submit",
            "--project",
            project,
            "--gpus",
            "1",
            "--time",
            "1",
            "--parsable",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A site that keeps a Slurm account per project: an award accepted through the access
/// programme gets its project's account in slurmdbd at once (with the association that
/// lets our jobs charge it), and its jobs are charged to it in Slurm. An award accepted
/// while slurmdbd is away gets its account when slurmdbd is back, also across a restart of
/// the factory, and its jobs wait for it rather than reach Slurm first.
#[test]
fn an_accepted_award_gets_its_projects_slurm_account_and_its_jobs_are_charged_to_it() {
    let Some(url) = slurm_url() else { return };
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    clean_slate();
    let dir = temp_dir("slurm-award");
    let port = free_port();
    let template = ["--slurm-account-template", "aif_{project}"];
    let mut server = serve_on_slurm(&dir, port, &url, "slurm", &template);
    let t = token(&dir, "startup");
    let (project, alloc) = accepted_award(&server, &t, "On Slurm");
    let shown = json(&cli(&server, &t, &["alloc", "show", &alloc, "--output", "json"]));
    let account = format!("aif_{project}");
    assert_eq!(shown["slurm_account"], json!(account), "{shown}");
    let project_name = json(&cli(&server, &t, &["project", "show", &project, "--output", "json"]))["name"]
        .as_str()
        .unwrap()
        .to_string();
    let started = Instant::now();
    while sacctmgr_account(&account).1.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no account {account} in slurmdbd"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        sacctmgr_account(&account),
        (format!("{project_name}|Nebula Robotics"), vec!["slurm".to_string()]),
        "the project's name and organisation, and the user Slurm runs our jobs as"
    );
    let job = submit_to(&server, &t, &project, "echo charged");
    let ended = wait_state(&server, &t, &job, Duration::from_secs(60), final_state);
    assert_eq!(ended["state"], "completed", "{ended}");
    assert_eq!(slurm_account_of(&job), account);

    // slurmdbd goes away; an award is accepted and a job submitted to it meanwhile.
    cluster_script("dbd-stop");
    struct Restart;
    impl Drop for Restart {
        fn drop(&mut self) {
            cluster_script("dbd-start");
        }
    }
    let restart = Restart;
    let (later_project, _) = accepted_award(&server, &t, "While slurmdbd is away");
    let later_account = format!("aif_{later_project}");
    let waiting = submit_to(&server, &t, &later_project, "echo waited");
    std::thread::sleep(Duration::from_secs(3));
    let view = show(&server, &t, &waiting);
    assert_eq!(view["state"], "pending", "{view}");
    assert_eq!(
        slurm_jobs_of(&waiting),
        0,
        "nothing reaches Slurm before its account: {view}"
    );
    let note = view["executor_note"].as_str().unwrap_or_default();
    assert!(
        note.contains(&format!("Slurm account {later_account}")),
        "says why: {view}"
    );
    // The factory is killed and started again before slurmdbd is back.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    drop(server);
    let server = serve_on_slurm(&dir, port, &url, "slurm", &template);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(slurm_jobs_of(&waiting), 0);
    drop(restart);
    let ended = wait_state(&server, &t, &waiting, Duration::from_secs(90), final_state);
    assert_eq!(ended["state"], "completed", "{ended}");
    assert_eq!(slurm_account_of(&waiting), later_account);
    assert_eq!(sacctmgr_account(&later_account).1, ["slurm"]);
}
