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

    pub async fn project_of(&self, who: &str) -> String {
        let (_, v) = self.get("/api/v1/projects", who).await;
        v["items"][0]["id"].as_str().unwrap().to_string()
    }

    pub async fn wait_final(&self, job: &str, who: &str) -> Value {
        for _ in 0..200 {
            let (_, v) = self.get(&format!("/api/v1/jobs/{job}"), who).await;
            if !["pending", "running"].contains(&v["state"].as_str().unwrap()) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {job} did not end");
    }
}

/// One request with a bearer token (none if empty); every error must be a problem document.
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
