//! The in-process harness of the server's tests: real store (SQLite), real engine, real
//! local processes, requests through the router.
#![allow(dead_code)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use server::{AppState, Config, demo};
use std::path::PathBuf;
use std::time::Duration;
use tower::ServiceExt;

pub struct TestApp {
    pub router: Router,
    pub tokens: Value,
    pub dir: PathBuf,
    pub state: AppState,
}

pub async fn app_in(dir: PathBuf) -> TestApp {
    app_with(dir, |_| {}).await
}

/// The database of a test's data directory: PostgreSQL if `use_postgres` chose it for the
/// directory, else SQLite in it. A restarted server in the same directory finds the same.
fn database_url(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("database-url"))
        .unwrap_or_else(|_| format!("sqlite:{}", dir.join("db.sqlite").display()))
}

/// Makes the servers started in `dir` use a fresh PostgreSQL database of their own (so that
/// no server adopts another test's jobs). False where no PostgreSQL is given; in CI that is
/// an error.
pub async fn use_postgres(dir: &std::path::Path) -> bool {
    use sqlx::Connection;
    let Ok(url) = std::env::var("AIFACTORY_TEST_PG") else {
        return false;
    };
    sqlx::any::install_default_drivers();
    let name = store::new_id("aifactory_t").to_lowercase();
    let mut conn = sqlx::AnyConnection::connect(&url)
        .await
        .expect("AIFACTORY_TEST_PG is reachable");
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    // postgres://host/db?params → the same with the new database.
    let (base, params) = url.split_once('?').map_or((url.as_str(), ""), |(b, p)| (b, p));
    let server = &base[..base.rfind('/').expect("a database in the URL")];
    let fresh = if params.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{params}")
    };
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("database-url"), fresh).unwrap();
    true
}

/// The backends a suite runs on: SQLite, and PostgreSQL where one is given (in CI it must be).
pub fn backends() -> Vec<&'static str> {
    match std::env::var("AIFACTORY_TEST_PG") {
        Ok(_) => vec!["sqlite", "postgres"],
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the PostgreSQL suites: AIFACTORY_TEST_PG is not set"
            );
            eprintln!("AIFACTORY_TEST_PG not set: PostgreSQL round skipped (./scripts/test sets it)");
            vec!["sqlite"]
        }
    }
}

/// A new data directory whose servers use `backend`, with a database of their own.
pub async fn fresh_dir(backend: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aifactory-{backend}-{}", store::new_id("t")));
    if backend == "postgres" {
        assert!(use_postgres(&dir).await);
    }
    dir
}

pub async fn app_with(dir: PathBuf, tune: impl FnOnce(&mut Config)) -> TestApp {
    std::fs::create_dir_all(&dir).unwrap();
    let store = store::Store::connect(&database_url(&dir)).await.unwrap();
    demo::seed(&store, &dir).await.unwrap();
    let tokens: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("demo-tokens.json")).unwrap()).unwrap();
    let mut config = Config {
        data_dir: dir.clone(),
        cancel_grace: Duration::from_millis(500),
        ..Config::default()
    };
    tune(&mut config);
    let state = server::start(store, demo::demo_cluster(), config).await.unwrap();
    TestApp {
        router: server::router(state.clone()),
        tokens,
        dir,
        state,
    }
}

pub async fn app() -> TestApp {
    app_in(std::env::temp_dir().join(format!("aifactory-api-{}", store::new_id("t")))).await
}

impl TestApp {
    pub fn token(&self, who: &str) -> String {
        self.tokens[who].as_str().unwrap().to_string()
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        who: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let token = who.map(|w| self.token(w)).unwrap_or_default();
        request(self.router.clone(), &token, method, path, body).await
    }

    pub async fn get(&self, path: &str, who: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(who), None).await
    }

    pub async fn post(&self, path: &str, who: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(who), Some(body)).await
    }

    /// The organisation of a demo user with one membership.
    pub async fn org_of(&self, who: &str) -> String {
        let (_, v) = self.get("/api/v1/me", who).await;
        v["memberships"][0]["org_id"].as_str().unwrap().to_string()
    }

    pub async fn project_of(&self, who: &str) -> String {
        let (_, v) = self.get("/api/v1/projects", who).await;
        v["items"][0]["id"].as_str().unwrap().to_string()
    }

    pub async fn wait_final(&self, job: &str, who: &str) -> Value {
        // Generous: a real Slurm schedules every few seconds.
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let (_, v) = self.get(&format!("/api/v1/jobs/{job}"), who).await;
            if !["pending", "running"].contains(&v["state"].as_str().unwrap()) {
                return v;
            }
            assert!(std::time::Instant::now() < deadline, "job {job} did not end: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// One request with a bearer token (none if empty); every error must be a problem document.
/// A body `{"$text": "..."}` is sent as that text.
pub async fn request(
    router: Router,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if !token.is_empty() {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = match body {
        // `{"$text": ...}` sends the text itself (CSV uploads).
        Some(b) if b["$text"].is_string() => req
            .header("content-type", "text/csv")
            .body(Body::from(b["$text"].as_str().unwrap().to_string()))
            .unwrap(),
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = router.oneshot(req).await.unwrap();
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/problem+json");
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    if status.is_client_error() || status.is_server_error() {
        assert!(is_problem, "{status} without a problem document: {value}");
        assert!(value["code"].is_string() && value["detail"].is_string(), "{value}");
    }
    (status, value)
}

// ---- the lifecycle suites' checks ----------------------------------------------------

use exec::LaunchHold;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;
use store::LedgerKind;

/// One reservation, one release and `runs` usage entries: each run booked once.
/// Returns the GPU-seconds used.
pub async fn booked(app: &TestApp, job: &str, runs: usize) -> i64 {
    let ledger = app.state.store.job_ledger(job).await.unwrap();
    let count = |k: LedgerKind| ledger.iter().filter(|(kind, _)| *kind == k).count();
    let started = app.state.store.get_job(job).await.unwrap().runs;
    assert_eq!(started, runs as i64, "{job} started {started} times");
    assert_eq!(
        (
            count(LedgerKind::Reserve),
            count(LedgerKind::Release),
            count(LedgerKind::Usage)
        ),
        (1, 1, runs),
        "{job}: {ledger:?}"
    );
    -ledger
        .iter()
        .filter(|(k, _)| *k == LedgerKind::Usage)
        .map(|(_, gs)| gs)
        .sum::<i64>()
}

/// Nothing reserved is left on the organisation's allocation, and the running sums agree
/// with the ledger.
pub async fn settled(app: &TestApp, who: &str) {
    let project = app.project_of(who).await;
    let (_, allocs) = app.get(&format!("/api/v1/allocations?project={project}"), who).await;
    let alloc = &allocs["items"][0];
    assert_eq!(alloc["gpu_seconds"]["reserved"], 0, "{alloc}");
    let id = alloc["id"].as_str().unwrap();
    assert!(app.state.store.verify_balances(id).await.unwrap());
}

pub async fn submit(app: &TestApp, who: &str, body: Value) -> String {
    let (status, job) = app.post("/api/v1/jobs", who, body).await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    job["id"].as_str().unwrap().to_string()
}

pub async fn state_of(app: &TestApp, job: &str, who: &str) -> Value {
    app.get(&format!("/api/v1/jobs/{job}"), who).await.1
}

pub async fn wait_state(app: &TestApp, job: &str, who: &str, wanted: &str) -> Value {
    // Generous: a real Slurm schedules every few seconds.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let v = state_of(app, job, who).await;
        if v["state"] == wanted {
            return v;
        }
        assert!(Instant::now() < deadline, "{job} never became {wanted}: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The newest job of the caller's organisation (the one whose submission is still held).
pub async fn newest_job(app: &TestApp, who: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, list) = app.get("/api/v1/jobs?limit=1", who).await;
        if let Some(id) = list["items"][0]["id"].as_str() {
            return id.to_string();
        }
        assert!(Instant::now() < deadline, "no job was admitted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lets every launch that reaches the hold go on, from now on.
pub fn release_all(hold: &Arc<LaunchHold>) {
    let hold = hold.clone();
    tokio::spawn(async move {
        loop {
            hold.arrived().await;
            hold.release();
        }
    });
}

/// Checks the occupancy invariant every few milliseconds until dropped; `finish` reports
/// every violation seen.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(usize, std::collections::BTreeSet<String>)>,
}

impl Sampler {
    pub fn start(app: &TestApp) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let (state, flag) = (app.state.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let (mut samples, mut seen) = (0, std::collections::BTreeSet::new());
            while !flag.load(Ordering::Relaxed) {
                seen.extend(server::lifecycle::occupancy_violations(&state).await);
                samples += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            (samples, seen)
        });
        Sampler { stop, task }
    }

    pub async fn finish(self) {
        self.finish_after(10).await;
    }

    pub async fn finish_after(self, at_least: usize) {
        self.stop.store(true, Ordering::Relaxed);
        let (samples, seen) = self.task.await.unwrap();
        assert!(samples >= at_least, "the invariant was checked ({samples} samples)");
        assert!(seen.is_empty(), "GPUs held by two jobs at once: {seen:?}");
    }
}

/// A request sent in the background as `who` (while a launch is held, it may wait for the
/// server), answered by awaiting the handle.
pub fn spawn_post(
    app: &TestApp,
    who: &str,
    path: &str,
    body: Option<Value>,
) -> tokio::task::JoinHandle<(StatusCode, Value)> {
    let (router, token, path) = (app.router.clone(), app.token(who), path.to_string());
    tokio::spawn(async move { request(router, &token, Method::POST, &path, body).await })
}

/// A preemptible job on all 8 GPUs at Bologna (`victim_command`) is being launched, held
/// at a step, when a fast-lane job of the start-up arrives and may preempt it at once.
/// Checks that the preemptor completes, that the victim runs again only after it, and,
/// once the victim is cancelled, that each run of both was booked once. Returns the
/// victim's id.
pub async fn preemption_during_a_launch(app: &TestApp, hold: &Arc<LaunchHold>, victim_command: Value) -> String {
    let research = app.project_of("research").await;
    let startup = app.project_of("startup").await;
    let body =
        json!({"project": research, "command": victim_command, "gpus": 8, "walltime_s": 600, "preemptible": true});
    let submitting = spawn_post(app, "research", "/api/v1/jobs", Some(body));
    hold.arrived().await;
    let victim = newest_job(app, "research").await;
    let body = json!({"project": startup, "command": ["sh", "-c", "sleep 1; echo fast"], "gpus": 4, "walltime_s": 120});
    let preempting = spawn_post(app, "startup", "/api/v1/jobs", Some(body));
    tokio::time::sleep(Duration::from_millis(300)).await;
    hold.release();
    release_all(hold);
    assert_eq!(submitting.await.unwrap().0, StatusCode::CREATED);
    let (status, fast) = preempting.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{fast}");
    let fast = fast["id"].as_str().unwrap().to_string();
    let done = app.wait_final(&fast, "startup").await;
    assert_eq!(done["state"], "completed", "{done}");
    // The victim runs again once the GPUs are free, as a second run.
    let again = wait_state(app, &victim, "research", "running").await;
    assert!(
        again["started_at"].as_str() >= done["ended_at"].as_str(),
        "the victim's second run waited for the preemptor: {again} {done}"
    );
    let (status, _) = app
        .post(&format!("/api/v1/jobs/{victim}/cancel"), "research", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    wait_state(app, &victim, "research", "cancelled").await;
    booked(app, &victim, 2).await;
    booked(app, &fast, 1).await;
    settled(app, "research").await;
    settled(app, "startup").await;
    victim
}
