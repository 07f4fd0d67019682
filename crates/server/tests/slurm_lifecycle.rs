//! The job lifecycle on a real Slurm (scripts/slurm-test-cluster.sh; `AIFACTORY_TEST_SLURM`
//! holds the slurmrestd URL, as `scripts/test` sets it; in CI its absence is an error):
//! cancels and preemptions that arrive while a submission to Slurm is held at each step,
//! and a retried submission that must not reach Slurm twice.

mod common;

use axum::http::{Method, StatusCode};
use common::{Sampler, TestApp, app_with, backends, booked, fresh_dir, newest_job, settled, submit, wait_state};
use exec::{LaunchHold, LaunchStep};
use serde_json::json;
use server::ExecutorChoice;
use server::executor::SlurmMode;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One factory on the one test Slurm at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn slurm_url() -> Option<String> {
    match std::env::var("AIFACTORY_TEST_SLURM") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok() => panic!("CI must run the Slurm suite: AIFACTORY_TEST_SLURM is not set"),
        Err(_) => {
            eprintln!("AIFACTORY_TEST_SLURM not set: Slurm lifecycle suite skipped (./scripts/test sets it)");
            None
        }
    }
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

/// Slurm jobs carrying our id in their comment, and how many of them still run or wait.
fn slurm_jobs_of(id: &str) -> (usize, usize) {
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%k %T"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let ours: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("aifactory:{id} ")))
        .collect();
    let live = ours
        .iter()
        .filter(|s| ["PENDING", "RUNNING", "COMPLETING", "CONFIGURING"].contains(s))
        .count();
    (ours.len(), live)
}

/// The comments of every Slurm job of ours for `id`: one per run that reached Slurm.
fn slurm_runs_of(id: &str) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%k"])
        .output()
        .unwrap();
    let mut runs: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|c| *c == format!("aifactory:{id}") || c.starts_with(&format!("aifactory:{id}#")))
        .collect();
    runs.sort();
    runs
}

/// Every backend with every step a submission can be held at.
fn steps() -> Vec<(&'static str, LaunchStep)> {
    backends()
        .into_iter()
        .flat_map(|b| [(b, LaunchStep::BeforeStart), (b, LaunchStep::AfterStart)])
        .collect()
}

/// A factory whose one site (it-bologna, where the demo's allocations are) is Slurm's node.
async fn factory(url: &str, backend: &str, mode: SlurmMode, hold: Option<Arc<LaunchHold>>) -> TestApp {
    let dir = fresh_dir(backend).await;
    let url = url.to_string();
    app_with(dir, move |c| {
        c.launch_hold = hold;
        c.executor = ExecutorChoice::Slurm {
            config: Box::new(exec::slurm::SlurmConfig {
                url,
                jwt: None,
                poll: Duration::from_millis(250),
                partition: None,
                account: None,
                qos: None,
                cluster: None,
                hold: None,
            }),
            mode,
            site: "it-bologna".into(),
            country: "IT".into(),
        };
    })
    .await
}

/// A cancel that arrives while the submission to Slurm is held (before it is sent, or
/// after Slurm took it but before we recorded that): the job ends cancelled, and nothing
/// of it runs or waits in Slurm afterwards; whatever ran is booked once.
#[tokio::test]
async fn a_cancel_during_a_submission_to_slurm_is_never_lost() {
    let Some(url) = slurm_url() else { return };
    let _serial = ONE_AT_A_TIME.lock().await;
    for (backend, step) in steps() {
        clean_slate();
        let hold = LaunchHold::new(step);
        let app = factory(&url, backend, SlurmMode::Aifactory, Some(hold.clone())).await;
        let project = app.project_of("startup").await;
        let body = json!({"project": project, "command": ["sleep", "300"], "gpus": 2, "walltime_s": 300});
        let submitting = common::spawn_post(&app, "startup", "/api/v1/jobs", Some(body));
        hold.arrived().await;
        let job = newest_job(&app, "startup").await;
        let (status, answer) = app
            .post(&format!("/api/v1/jobs/{job}/cancel"), "startup", json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        hold.release();
        assert_eq!(submitting.await.unwrap().0, StatusCode::CREATED);
        let end = wait_state(&app, &job, "startup", "cancelled").await;
        assert!(
            end["reason"].as_str().unwrap().starts_with("cancelled by usr_"),
            "{end}"
        );
        let started = Instant::now();
        while slurm_jobs_of(&job).1 > 0 {
            assert!(started.elapsed() < Duration::from_secs(30), "{step:?}: still in Slurm");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (submitted, _) = slurm_jobs_of(&job);
        match step {
            LaunchStep::BeforeStart => assert_eq!(submitted, 0, "cancelled before it was sent"),
            LaunchStep::AfterStart => assert_eq!(submitted, 1, "sent once, then cancelled there"),
        }
        booked(&app, &job, 1).await;
        settled(&app, "startup").await;
    }
}

/// A preemption decided while the victim's submission to Slurm is held: the victim is
/// stopped (never sent, or cancelled in Slurm), the preemptor goes to Slurm only once the
/// victim is gone from it, the victim runs again after, and every run is booked once.
#[tokio::test]
async fn a_preemption_during_a_submission_to_slurm_waits_for_the_victim() {
    let Some(url) = slurm_url() else { return };
    let _serial = ONE_AT_A_TIME.lock().await;
    for (backend, step) in steps() {
        clean_slate();
        let hold = LaunchHold::new(step);
        let app = factory(&url, backend, SlurmMode::Aifactory, Some(hold.clone())).await;
        // What Slurm runs (as of our last poll) never holds a GPU twice.
        let sampler = Sampler::start(&app);
        let victim = common::preemption_during_a_launch(&app, &hold, json!(["sleep", "300"])).await;
        sampler.finish_after(1).await;
        // Each run that reached Slurm is a Slurm job of its own, named by its run.
        let expected = match step {
            LaunchStep::BeforeStart => vec![format!("aifactory:{victim}#2")],
            LaunchStep::AfterStart => vec![format!("aifactory:{victim}"), format!("aifactory:{victim}#2")],
        };
        assert_eq!(slurm_runs_of(&victim), expected, "{step:?}");
    }
}

/// When Slurm schedules, a submission retried with the same Idempotency-Key answers with
/// the same job and never sends a second one to Slurm.
#[tokio::test]
async fn a_retried_submission_reaches_slurm_once() {
    let Some(url) = slurm_url() else { return };
    let _serial = ONE_AT_A_TIME.lock().await;
    clean_slate();
    let app = factory(&url, "sqlite", SlurmMode::Slurm, None).await;
    let project = app.project_of("startup").await;
    // Every GPU busy: the retried job waits in Slurm's queue, where a retry could send it
    // again.
    let blocker = submit(
        &app,
        "startup",
        json!({"project": project, "command": ["sleep", "300"], "gpus": 8, "walltime_s": 600}),
    )
    .await;
    wait_state(&app, &blocker, "startup", "running").await;
    let body = json!({"project": project, "command": ["sh", "-c", "sleep 1; echo once"], "gpus": 1, "walltime_s": 120});
    let mut ids = Vec::new();
    for _ in 0..3 {
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/api/v1/jobs")
            .header("authorization", format!("Bearer {}", app.token("startup")))
            .header("content-type", "application/json")
            .header("idempotency-key", "retry-me")
            .body(axum::body::Body::from(body.to_string()))
            .unwrap();
        let resp = tower::ServiceExt::oneshot(app.router.clone(), req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        let bytes = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let job: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        ids.push(job["id"].as_str().unwrap().to_string());
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(
        (app.get(&format!("/api/v1/jobs/{}", ids[0]), "startup").await.1["state"].as_str()),
        Some("pending"),
        "it waited in Slurm's queue through the retries"
    );
    let (status, _) = app
        .post(&format!("/api/v1/jobs/{blocker}/cancel"), "startup", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let done = app.wait_final(&ids[0], "startup").await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(slurm_jobs_of(&ids[0]).0, 1, "one Slurm job for three submissions");
    booked(&app, &ids[0], 1).await;
}

/// The data directory must be reachable by the user Slurm runs jobs as: the server says so
/// at start, naming the directory in the way. A job that cannot launch anyway (the
/// directory closed later) fails with Slurm's own reason, not only an exit code.
#[tokio::test]
async fn launch_failures_say_why() {
    use std::os::unix::fs::PermissionsExt;
    let Some(url) = slurm_url() else { return };
    let _serial = ONE_AT_A_TIME.lock().await;
    clean_slate();
    // Closed to everyone but its owner (root): Slurm's job user cannot enter.
    let locked = std::env::temp_dir().join(format!("aifactory-locked-{}", store::new_id("t")));
    std::fs::create_dir_all(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o700)).unwrap();
    let data = locked.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let store = store::Store::connect(&format!("sqlite:{}", data.join("db.sqlite").display()))
        .await
        .unwrap();
    let config = server::Config {
        data_dir: data.clone(),
        executor: ExecutorChoice::Slurm {
            config: Box::new(exec::slurm::SlurmConfig {
                url: url.clone(),
                jwt: None,
                poll: Duration::from_millis(250),
                partition: None,
                account: None,
                qos: None,
                cluster: None,
                hold: None,
            }),
            mode: SlurmMode::Slurm,
            site: "it-bologna".into(),
            country: "IT".into(),
        },
        ..server::Config::default()
    };
    let refused = server::start(store, server::demo::demo_cluster(), config)
        .await
        .unwrap_err();
    assert!(
        refused.contains("Slurm runs jobs as slurm") && refused.contains(&format!("cannot enter {}", locked.display())),
        "{refused}"
    );
    // A factory that started fine, whose data directory is closed afterwards.
    let app = factory(&url, "sqlite", SlurmMode::Slurm, None).await;
    let project = app.project_of("startup").await;
    std::fs::set_permissions(&app.dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let job = submit(
        &app,
        "startup",
        json!({"project": project, "command": ["true"], "gpus": 1, "walltime_s": 60}),
    )
    .await;
    let end = app.wait_final(&job, "startup").await;
    std::fs::set_permissions(&app.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(end["state"], "failed", "{end}");
    // Slurm's own reason for the job (22.05 says JobLaunchFailure, 24.11 RaisedSignal),
    // not only an exit code.
    let out = Command::new("squeue")
        .args(["-h", "-t", "all", "-o", "%k|%r"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    let slurm_says = listed
        .lines()
        .find_map(|l| l.trim().strip_prefix(&format!("aifactory:{job}|")))
        .unwrap_or_else(|| panic!("Slurm lists no job for {job}: {listed}"))
        // squeue adds details after a colon (`RaisedSignal:53(Real-time signal 19)`).
        .split(':')
        .next()
        .unwrap()
        .to_string();
    let reason = end["reason"].as_str().unwrap();
    assert!(
        reason.contains("Slurm job") && reason.contains(&format!("({slurm_says})")),
        "Slurm's reason `{slurm_says}` is kept: {reason}"
    );
}

/// A walltime that runs out while our side still holds the submission (Slurm took the job
/// and runs it; we have not recorded that yet): Slurm's limit stops it all the same, the
/// job ends `timeout`, and its run is billed at most its walltime plus the grace.
#[tokio::test]
async fn a_walltime_reached_during_a_submission_to_slurm_is_enforced() {
    let Some(url) = slurm_url() else { return };
    let _serial = ONE_AT_A_TIME.lock().await;
    clean_slate();
    let hold = LaunchHold::new(LaunchStep::AfterStart);
    let app = factory(&url, "sqlite", SlurmMode::Aifactory, Some(hold.clone())).await;
    let project = app.project_of("startup").await;
    // Slurm counts whole minutes: a minute's walltime for a job that would run five.
    let body = json!({"project": project, "command": ["sleep", "300"], "gpus": 1, "walltime_s": 60});
    let job = submit(&app, "startup", body).await;
    hold.arrived().await;
    // Held well into its minute; Slurm's clock runs meanwhile.
    tokio::time::sleep(Duration::from_secs(20)).await;
    hold.release();
    // Slurm looks for jobs past their limit about every 30 s.
    let deadline = Instant::now() + Duration::from_secs(180);
    let end = loop {
        let (_, v) = app.get(&format!("/api/v1/jobs/{job}"), "startup").await;
        if !["pending", "running"].contains(&v["state"].as_str().unwrap()) {
            break v;
        }
        assert!(Instant::now() < deadline, "Slurm never stopped it: {v}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(end["state"], "timeout", "{end}");
    let used = booked(&app, &job, 1).await;
    let grace = server::Config::default().cancel_grace.as_secs() as i64;
    assert!(
        (55..=60 + grace).contains(&used),
        "billed {used} GPU-seconds for a 60 s walltime: {end}"
    );
    settled(&app, "startup").await;
}
