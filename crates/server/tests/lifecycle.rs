//! The job lifecycle end to end in process (real store, engine and local processes):
//! billing after a crash, stops that arrive at every step of a launch, preemption, and the
//! occupancy invariant sampled all along.

mod common;

use axum::http::{Method, StatusCode};
use common::{
    Sampler, TestApp, app_in, app_with, backends, booked, fresh_dir, newest_job, settled, state_of, submit, wait_state,
};
use exec::{LaunchHold, LaunchStep};
use serde_json::json;
use std::time::{Duration, Instant};

/// Every backend with every step a launch can be held at.
fn steps() -> Vec<(&'static str, LaunchStep)> {
    backends()
        .into_iter()
        .flat_map(|b| [(b, LaunchStep::BeforeStart), (b, LaunchStep::AfterStart)])
        .collect()
}

/// The reproduction: a 3-second job on 2 GPUs completes while the server is down
/// for longer than its walltime. It is `completed` with exit code 0 and billed what it
/// used, from the end its wrapper recorded; a job whose processes vanished while the
/// server was down is `lost` and billed at most its walltime.
#[test]
fn a_job_that_ended_while_the_server_was_down_is_billed_what_it_used() {
    for backend in backends() {
        let dir = tokio::runtime::Runtime::new().unwrap().block_on(fresh_dir(backend));
        restart_after_the_job_ended(dir);
    }
}

fn restart_after_the_job_ended(dir: std::path::PathBuf) {
    let first = dir.clone();
    let t0 = Instant::now();
    let (short, vanished) = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let app = app_in(first).await;
            let project = app.project_of("startup").await;
            let short = submit(
                &app,
                "startup",
                json!({"project": project, "command": ["sh", "-c", "sleep 3; echo short"], "gpus": 2, "walltime_s": 60}),
            )
            .await;
            let vanished = submit(
                &app,
                "startup",
                json!({"project": project, "command": ["sleep", "60"], "gpus": 2, "walltime_s": 3}),
            )
            .await;
            for id in [&short, &vanished] {
                assert_eq!(state_of(&app, id, "startup").await["state"], "running");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            (short, vanished)
        })
        // The runtime is dropped here like a server killed with -9: its tasks stop, the
        // jobs' processes go on.
    })
    .join()
    .unwrap();
    let jobs = dir.join("jobs");
    // While no server runs, one job's processes are killed outright (wrapper included).
    let pid_file = std::fs::read_to_string(jobs.join(&vanished).join("pid")).unwrap();
    let pid: i32 = pid_file.split_whitespace().next().unwrap().parse().unwrap();
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    // Down for longer than either walltime allows the vanished job, until the short one ended.
    while !jobs.join(&short).join("exit_code").exists() || t0.elapsed() < Duration::from_secs(5) {
        assert!(t0.elapsed() < Duration::from_secs(30), "the short job never ended");
        std::thread::sleep(Duration::from_millis(100));
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let app = app_in(dir).await;
        let done = state_of(&app, &short, "startup").await;
        assert_eq!(
            (done["state"].as_str(), done["exit_code"].as_i64()),
            (Some("completed"), Some(0)),
            "{done}"
        );
        let (_, out) = app.get(&format!("/api/v1/jobs/{short}/logs"), "startup").await;
        assert_eq!(out, "short\n");
        // 3 s on 2 GPUs, give or take the second the clocks round to.
        let used = booked(&app, &short, 1).await;
        assert!((6..=8).contains(&used), "billed {used} GPU-seconds for 3 s on 2 GPUs");
        let lost = state_of(&app, &vanished, "startup").await;
        assert_eq!(lost["state"], "lost", "{lost}");
        let used = booked(&app, &vanished, 1).await;
        assert!(
            (2..=6).contains(&used),
            "a vanished job is billed at most its walltime (3 s x 2 GPUs): {used}"
        );
        settled(&app, "startup").await;
    });
}

/// A cancel that arrives while a launch is held, at each step of it: the job ends
/// cancelled, nothing of it keeps running, its run is booked once.
#[tokio::test]
async fn a_cancel_during_a_launch_is_never_lost() {
    for (backend, step) in steps() {
        let hold = LaunchHold::new(step);
        let held = hold.clone();
        let app = app_with(fresh_dir(backend).await, |c| c.launch_hold = Some(held)).await;
        let sampler = Sampler::start(&app);
        let project = app.project_of("startup").await;
        let body =
            json!({"project": project, "command": ["sh", "-c", "echo up; sleep 30"], "gpus": 2, "walltime_s": 60});
        let submitting = common::spawn_post(&app, "startup", "/api/v1/jobs", Some(body));
        hold.arrived().await;
        let job = newest_job(&app, "startup").await;
        let cancelling = common::spawn_post(&app, "startup", &format!("/api/v1/jobs/{job}/cancel"), None);
        tokio::time::sleep(Duration::from_millis(200)).await;
        hold.release();
        assert_eq!(submitting.await.unwrap().0, StatusCode::CREATED);
        let (status, answer) = cancelling.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{answer}");
        let end = wait_state(&app, &job, "startup", "cancelled").await;
        assert!(
            end["reason"].as_str().unwrap().starts_with("cancelled by usr_"),
            "{end}"
        );
        assert!(
            !exec::kill_leftover(&app.dir.join("jobs"), &job),
            "{step:?}: nothing of the cancelled job runs"
        );
        booked(&app, &job, 1).await;
        settled(&app, "startup").await;
        sampler.finish().await;
    }
}

/// A preemption decided while the victim's launch is held, at each step: the victim is
/// stopped right after it starts and queued again, the preemptor starts only once the
/// victim's process has ended (sampled all along), and every run is booked once.
#[tokio::test]
async fn a_preemption_during_a_launch_waits_for_the_gpus_and_books_each_run_once() {
    for (backend, step) in steps() {
        let hold = LaunchHold::new(step);
        let held = hold.clone();
        let app = app_with(fresh_dir(backend).await, |c| c.launch_hold = Some(held)).await;
        let sampler = Sampler::start(&app);
        // It ignores SIGTERM for a moment, as a job writing a checkpoint would, so that its
        // GPUs stay busy while it stops.
        let victim_command = json!(["sh", "-c", "trap 'sleep 0.5; exit 143' TERM; echo up; sleep 30 & wait"]);
        common::preemption_during_a_launch(&app, &hold, victim_command).await;
        sampler.finish().await;
        let control = app.state.control.lock().await;
        assert_eq!(control.engine.running(), 0, "the engine holds nothing for ended jobs");
        assert_eq!(control.held(), 0);
    }
}

/// A walltime that runs out while the launch is held counts from the spawn: the job is
/// stopped as soon as the launch goes on, and billed at most its walltime plus the grace.
#[tokio::test]
async fn a_walltime_reached_during_a_launch_stops_the_job_at_once() {
    for backend in backends() {
        walltime_during_a_launch(backend).await;
    }
}

async fn walltime_during_a_launch(backend: &str) {
    let hold = LaunchHold::new(LaunchStep::AfterStart);
    let held = hold.clone();
    let app = app_with(fresh_dir(backend).await, |c| c.launch_hold = Some(held)).await;
    let project = app.project_of("startup").await;
    let body = json!({"project": project, "command": ["sleep", "30"], "gpus": 2, "walltime_s": 1});
    let submitting = common::spawn_post(&app, "startup", "/api/v1/jobs", Some(body));
    hold.arrived().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    hold.release();
    let (_, job) = submitting.await.unwrap();
    let job = job["id"].as_str().unwrap().to_string();
    let end = app.wait_final(&job, "startup").await;
    assert_eq!(end["state"], "timeout", "{end}");
    // Walltime 1 s plus a grace under a second, on 2 GPUs.
    let used = booked(&app, &job, 1).await;
    assert!((2..=4).contains(&used), "billed {used} GPU-seconds");
    settled(&app, "startup").await;
}

/// Requeueing a job needs the rights submitting does: a member of the organisation who is
/// not in the project may not.
#[tokio::test]
async fn requeue_needs_the_rights_of_submit() {
    let app = app_with(fresh_dir("sqlite").await, |_| {}).await;
    let project = app.project_of("startup").await;
    let job = submit(
        &app,
        "startup",
        json!({"project": project, "command": ["sh", "-c", "exit 1"], "gpus": 1, "walltime_s": 60}),
    )
    .await;
    assert_eq!(app.wait_final(&job, "startup").await["state"], "failed");
    // A new member of the start-up, not in the project.
    let (_, me) = app.get("/api/v1/me", "startup").await;
    let org = me["memberships"][0]["org_id"].as_str().unwrap().to_string();
    assert!(org.starts_with("org_"), "{me}");
    let (status, user) = app
        .post(
            "/api/v1/users",
            "startup",
            json!({"email": "newcomer@startup.example", "name": "Newcomer", "org": org, "role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    let newcomer = app
        .state
        .store
        .create_token(user["id"].as_str().unwrap(), "test")
        .await
        .unwrap()
        .1;
    let path = format!("/api/v1/jobs/{job}/requeue");
    let (status, refused) = common::request(app.router.clone(), &newcomer, Method::POST, &path, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("not a member of this project"),
        "{refused}"
    );
    let (status, copy) = app.post(&path, "startup", json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
}

/// One step of a property test's sequence.
#[derive(Debug, Clone)]
enum Op {
    /// The start-up (fast lane, may preempt) or the university (preemptible jobs) submits
    /// a job on `gpus` GPUs that runs `secs` seconds (or fails) within `walltime` seconds.
    Submit {
        startup: bool,
        gpus: u32,
        secs: u32,
        fails: bool,
        walltime: u64,
    },
    /// Cancel the n-th job submitted so far (modulo their number).
    Cancel(usize),
    Pause(u64),
    /// Kill the server (as with -9) and start a new one on the same data.
    Restart,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (any::<bool>(), 1..=8u32, 0..3u32, any::<bool>(), 1..4u64).prop_map(|(startup, gpus, secs, fails, walltime)| {
            Op::Submit { startup, gpus, secs, fails, walltime }
        }),
        2 => (0..8usize).prop_map(Op::Cancel),
        2 => (0..600u64).prop_map(Op::Pause),
        1 => Just(Op::Restart),
    ]
}

/// A server on its own runtime, so that it can be killed like a process: dropping the
/// runtime stops its tasks while the jobs' processes go on.
struct Factory {
    dir: std::path::PathBuf,
    rt: tokio::runtime::Runtime,
    app: TestApp,
    sampler: Sampler,
}

impl Factory {
    fn start(dir: std::path::PathBuf) -> Factory {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let app = rt.block_on(app_in(dir.clone()));
        let sampler = rt.block_on(async { Sampler::start(&app) });
        Factory { dir, rt, app, sampler }
    }

    fn restart(self) -> Factory {
        let Factory { dir, rt, app, sampler } = self;
        // A restart may come before the first check: what was seen still counts.
        rt.block_on(sampler.finish_after(0));
        drop(app);
        drop(rt);
        Factory::start(dir)
    }
}

/// Random sequences of submissions (some preempting others), cancels, pauses and crashes
/// against a real server with the local executor: no GPU is ever held by two jobs'
/// processes at once (sampled every few milliseconds), and once everything has ended each
/// job is settled once, with one usage entry per run, and nothing stays reserved.
#[test]
fn any_sequence_keeps_gpus_single_and_books_each_run_once() {
    use proptest::test_runner::{Config, TestRunner};
    let mut runner = TestRunner::new(Config {
        cases: 6,
        failure_persistence: None,
        ..Config::default()
    });
    for backend in backends() {
        runner
            .run(&proptest::collection::vec(op(), 3..9), |ops| {
                let dir = tokio::runtime::Runtime::new().unwrap().block_on(fresh_dir(backend));
                run_sequence(dir, &ops);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{backend}: {e}"));
    }
}

fn run_sequence(dir: std::path::PathBuf, ops: &[Op]) {
    let mut factory = Factory::start(dir);
    let mut jobs: Vec<(String, &str)> = Vec::new();
    for op in ops {
        match op {
            Op::Submit {
                startup,
                gpus,
                secs,
                fails,
                walltime,
            } => {
                let who = if *startup { "startup" } else { "research" };
                let app = &factory.app;
                let job = factory.rt.block_on(async {
                    let project = app.project_of(who).await;
                    // Slow to stop, as a job writing a checkpoint is: its GPUs stay busy
                    // for a moment after the stop.
                    let script = format!(
                        "trap 'sleep 0.3; exit 143' TERM; sleep {secs} & wait; exit {}",
                        u8::from(*fails)
                    );
                    submit(
                        app,
                        who,
                        json!({"project": project, "command": ["sh", "-c", script], "gpus": gpus,
                               "walltime_s": walltime, "preemptible": !startup}),
                    )
                    .await
                });
                jobs.push((job, who));
            }
            Op::Cancel(n) if !jobs.is_empty() => {
                let (job, who) = &jobs[n % jobs.len()];
                let (status, v) =
                    factory
                        .rt
                        .block_on(factory.app.post(&format!("/api/v1/jobs/{job}/cancel"), who, json!({})));
                assert!(
                    status == StatusCode::OK || v["code"] == "job-ended",
                    "cancel {job}: {status} {v}"
                );
            }
            Op::Cancel(_) => {}
            Op::Pause(ms) => std::thread::sleep(Duration::from_millis(*ms)),
            Op::Restart => factory = factory.restart(),
        }
    }
    // Everything ends (waiting jobs are cancelled), then the books are checked.
    let Factory { rt, app, sampler, .. } = factory;
    rt.block_on(async {
        for (job, who) in &jobs {
            let _ = app.post(&format!("/api/v1/jobs/{job}/cancel"), who, json!({})).await;
        }
        for (job, who) in &jobs {
            let end = app.wait_final(job, who).await;
            let runs = end["runs"].as_u64().unwrap() as usize;
            let used = booked(&app, job, runs).await;
            let walltime = end["walltime_s"].as_i64().unwrap();
            let gpus = end["gpus"].as_i64().unwrap();
            // Each run at most its walltime plus the grace (under a second here), rounded up.
            assert!(
                used <= runs as i64 * (walltime + 1) * gpus,
                "{job} billed {used}: {end}"
            );
            if end["state"] == "completed" {
                assert_eq!(end["exit_code"], 0, "{end}");
            }
        }
        settled(&app, "startup").await;
        settled(&app, "research").await;
        sampler.finish_after(1).await;
        let control = app.state.control.lock().await;
        assert_eq!((control.engine.running(), control.held()), (0, 0));
    });
}
