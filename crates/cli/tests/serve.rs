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
    let o = cli(
        &server,
        &t,
        &["job", "submit", "--time", "1", "--wait", "--", "sh", "-c", "exit 3"],
    );
    assert_eq!(o.status.code(), Some(3), "--wait exits with the job's exit code");
    let jobs = json(&cli(&server, &t, &["job", "list", "--output", "json"]));
    let items = jobs["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (items[0]["state"].as_str(), items[1]["state"].as_str()),
        (Some("failed"), Some("completed"))
    );
    let first = items[1]["id"].as_str().unwrap();
    let logs = cli(&server, &t, &["job", "logs", first]);
    assert_eq!(String::from_utf8_lossy(&logs.stdout), "hello 0,1\n");
    let running = json(&cli(
        &server,
        &t,
        &[
            "job",
            "submit",
            "--time",
            "1",
            "--output",
            "json",
            "--",
            "sh",
            "-c",
            "echo one; sleep 1; echo two",
        ],
    ));
    let followed = cli(
        &server,
        &t,
        &["job", "logs", "--follow", running["id"].as_str().unwrap()],
    );
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

#[test]
fn a_crash_loses_no_job_adopts_survivors_and_settles_each_once() {
    let dir = temp_dir("crash");
    let port = free_port();
    let mut server = serve(&dir, port);
    let t = token(&dir, "research");
    let submit = |server: &Server, gpus: &str, cmd: &str| {
        json(&cli(
            server,
            &t,
            &[
                "job", "submit", "--gpus", gpus, "--time", "10", "--output", "json", "--", "sh", "-c", cmd,
            ],
        ))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
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
