//! `aifactory serve` and the client commands end to end: a real server process, the real
//! CLI, real jobs; and a crash (kill -9) while jobs run.

mod common;

use common::*;
use std::time::{Duration, Instant};

#[test]
fn submit_wait_logs_and_errors_through_the_cli() {
    let dir = temp_dir("cli");
    let server = serve(&dir, free_port());
    let t = token(&dir, "startup");
    let o = cli(
        &server,
        &t,
        &[
            "job",
            "submit",
            "--gpus",
            "2",
            "--time",
            "1",
            "--wait",
            "--",
            "sh",
            "-c",
            "echo hello $CUDA_VISIBLE_DEVICES",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    // Like srun: the job's output on stdout as it comes, its id at once on stderr.
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello 0,1\n");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.starts_with("Submitted job job_"), "{said}");
    let o = cli(
        &server,
        &t,
        &[
            "job",
            "submit",
            "--time",
            "1",
            "--wait",
            "--",
            "sh",
            "-c",
            "echo oops >&2; exit 3",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "--wait exits with the job's exit code");
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("oops\n") && said.contains("failed: exited with code 3"),
        "{said}"
    );
    // Like sbatch --test-only: when it would start, and nothing submitted.
    let o = cli(
        &server,
        &t,
        &[
            "job",
            "submit",
            "--gpus",
            "2",
            "--time",
            "1",
            "--test-only",
            "--",
            "true",
        ],
    );
    let said = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        said.starts_with("job would start at ")
            && said.contains("(in ~0 min) at it-bologna")
            && said.contains("not submitted"),
        "{said}"
    );
    let jobs = json(&cli(&server, &t, &["job", "list", "--output", "json"]));
    let items = jobs["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["state"].as_str(), items[1]["state"].as_str()),
        (Some("failed"), Some("completed"))
    );
    let first = items[1]["id"].as_str().unwrap();
    assert_eq!(
        items[1]["name"], "sh",
        "named after the program, as sbatch names after the script"
    );
    // Projects by the name `project list` shows; usage of your organisation by default.
    let by_name = json(&cli(
        &server,
        &t,
        &["alloc", "list", "--project", "startup-pilot", "--output", "json"],
    ));
    assert!(
        by_name["items"][0]["gpu_seconds"]["used"].as_i64().unwrap() > 0,
        "{by_name}"
    );
    let table =
        String::from_utf8_lossy(&cli(&server, &t, &["alloc", "list", "--project", "startup-pilot"]).stdout).to_string();
    assert!(!table.contains(" 0.0 "), "what was used shows: {table}");
    let mine = json(&cli(&server, &t, &["usage", "--output", "json"]));
    assert!(mine["gpu_seconds"].as_i64().unwrap() > 0, "{mine}");
    let o = cli(&server, &t, &["job", "list", "--project", "no-such-project"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("startup-pilot"),
        "names the projects there are"
    );
    let logs = cli(&server, &t, &["job", "logs", first]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "hello 0,1\n");
    let running = submit_sh(&server, &t, "1", "1", "echo one; sleep 1; echo two");
    let followed = cli(&server, &t, &["job", "logs", "--follow", &running]);
    assert_eq!(
        String::from_utf8_lossy(&followed.stdout),
        "one\ntwo\n",
        "--follow streams until the job ends"
    );
    let sites = String::from_utf8_lossy(&cli(&server, &t, &["site", "list"]).stdout).to_string();
    assert!(
        sites.contains("fi-kajaani") && sites.contains("190"),
        "sites with their own GPU-hour price: {sites}"
    );
    let me = json(&cli(&server, &t, &["org", "list", "--output", "json"]));
    let org = me["items"][0]["id"].as_str().unwrap();
    let members = json(&cli(&server, &t, &["org", "members", org, "--output", "json"]));
    assert_eq!(members["items"].as_array().unwrap().len(), 2, "{members}");
    // Joining takes consent: the start-up invites the university's admin, who accepts.
    let research = token(&dir, "research");
    let invited = json(&cli(
        &server,
        &t,
        &[
            "org",
            "invite",
            org,
            "--email",
            "research@research.example",
            "--output",
            "json",
        ],
    ));
    assert_eq!(invited["state"], "pending", "{invited}");
    let waiting = String::from_utf8_lossy(&cli(&server, &research, &["invitation", "list"]).stdout).to_string();
    assert!(waiting.contains("Nebula Robotics"), "{waiting}");
    let accepted = json(&cli(
        &server,
        &research,
        &[
            "invitation",
            "accept",
            invited["id"].as_str().unwrap(),
            "--output",
            "json",
        ],
    ));
    assert_eq!(accepted["state"], "accepted", "{accepted}");
    let members = json(&cli(&server, &t, &["org", "members", org, "--output", "json"]));
    assert_eq!(members["items"].as_array().unwrap().len(), 3, "{members}");
    let table = cli(&server, &t, &["job", "list"]);
    assert!(
        String::from_utf8_lossy(&table.stdout).starts_with("ID "),
        "tables for people"
    );
    // The server's words and the field at fault.
    let o = cli(
        &server,
        &t,
        &["job", "submit", "--nodes", "3", "--gpus", "2", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("nodes:") && err.contains("divide"), "{err}");
    let o = cli(&server, "aif_wrong", &["job", "list"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown or revoked token"));
    let usage = json(&cli(&server, &t, &["usage", "--job", first, "--output", "json"]));
    assert!(usage["gpu_seconds"].as_i64().unwrap() >= 2, "{usage}");
    // Site operators drain and resume nodes; members may only look.
    let op = token(&dir, "operator");
    let node = json(&cli(
        &server,
        &op,
        &["node", "drain", "kaj-gpu-0001", "--output", "json"],
    ));
    assert_eq!(node["status"], "drained");
    let o = cli(&server, &t, &["node", "resume", "kaj-gpu-0001"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("forbidden"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let nodes = String::from_utf8_lossy(&cli(&server, &t, &["node", "list"]).stdout).to_string();
    assert!(nodes.contains("kaj-gpu-0001") && nodes.contains("drained"), "{nodes}");
}

/// SIGTERM (what systemd and Kubernetes send) stops the server cleanly: it exits at once
/// with success, and the job it leaves running is adopted by the next start.
#[test]
fn sigterm_stops_the_server_and_leaves_jobs_to_the_next_start() {
    let dir = temp_dir("sigterm");
    let port = free_port();
    let mut server = serve(&dir, port);
    let t = token(&dir, "startup");
    let job = submit_sh(&server, &t, "1", "1", "sleep 2; echo after");
    let pid = nix::unistd::Pid::from_raw(server.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let asked = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            asked.elapsed() < Duration::from_secs(15),
            "SIGTERM did not stop the server"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "a clean stop: {status}");
    drop(server);
    let server = serve(&dir, port);
    let started = Instant::now();
    loop {
        let j = json(&cli(&server, &t, &["job", "show", &job, "--output", "json"]));
        if j["state"] == "completed" {
            break;
        }
        assert!(["running", "pending"].contains(&j["state"].as_str().unwrap()), "{j}");
        assert!(started.elapsed() < Duration::from_secs(20), "{j}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = cli(&server, &t, &["job", "logs", &job]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "after\n");
}

#[test]
fn a_crash_loses_no_job_adopts_survivors_and_settles_each_once() {
    let dir = temp_dir("crash");
    let port = free_port();
    let mut server = serve(&dir, port);
    let t = token(&dir, "research");
    let submit = |server: &Server, gpus: &str, cmd: &str| submit_sh(server, &t, gpus, "10", cmd);
    // Bologna has 8 GPUs: two 4-GPU jobs run, the third waits.
    let a = submit(&server, "4", "sleep 3; echo outlived");
    let b = submit(&server, "4", "sleep 60");
    let c = submit(&server, "4", "echo survived");
    let state = |server: &Server, id: &str| {
        json(&cli(server, &t, &["job", "show", id, "--output", "json"]))["state"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        (state(&server, &a), state(&server, &b), state(&server, &c)),
        ("running".into(), "running".into(), "pending".into())
    );
    server.child.kill().unwrap(); // SIGKILL: no shutdown code runs
    server.child.wait().unwrap();
    drop(server);
    // While the server is down, b's processes die too; a's go on.
    let pid = std::fs::read_to_string(dir.join("jobs").join(&b).join("pid")).unwrap();
    let pid: i32 = pid.split_whitespace().next().unwrap().parse().unwrap();
    assert!(pid > 1, "{pid}");
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let server = serve(&dir, port);
    assert_eq!(state(&server, &a), "running", "adopted");
    assert_eq!(state(&server, &b), "lost");
    let started = Instant::now();
    while state(&server, &c) != "completed" || state(&server, &a) != "completed" {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the waiting job did not run, or the adopted one did not end, after the restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        String::from_utf8_lossy(&cli(&server, &t, &["job", "logs", &a]).stdout),
        "outlived\n"
    );
    assert_eq!(
        String::from_utf8_lossy(&cli(&server, &t, &["job", "logs", &c]).stdout),
        "survived\n"
    );
    let per_job = assert_booked_once(&server, &t, &[&a, &b, &c]);
    assert!(per_job >= 4 * 2, "{per_job}");
}
