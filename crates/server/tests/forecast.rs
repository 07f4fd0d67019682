//! Start-time forecasts through the API: a waiting job's `forecast_start` (predicted
//! runtimes, learned from the jobs that ended) before its `forecast_latest` (everybody to
//! their walltimes), `test_only` submissions that say when without submitting, and the
//! headline figures per site and partition.

mod common;

use axum::http::{Method, StatusCode};
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn at(v: &serde_json::Value) -> i64 {
    v.as_str()
        .unwrap_or_else(|| panic!("a time, not {v}"))
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_second()
}

#[tokio::test]
async fn waiting_jobs_are_forecast_from_what_jobs_really_use() {
    let app = app().await;
    let project = app.project_of("startup").await;
    let job =
        |command: &[&str], gpus: u32| json!({"project": project, "command": command, "gpus": gpus, "walltime_s": 3600});
    // History: jobs that use a second of the hour they ask for.
    let mut quick = Vec::new();
    for _ in 0..6 {
        quick.push(submit(&app, "startup", job(&["true"], 1)).await);
    }
    for id in &quick {
        app.wait_final(id, "startup").await;
    }
    // it-bologna's 8 GPUs taken for a while, and a job waiting behind them.
    let mut busy = Vec::new();
    for _ in 0..2 {
        busy.push(submit(&app, "startup", job(&["sleep", "120"], 4)).await);
    }
    for id in &busy {
        wait_state(&app, id, "startup", "running").await;
    }
    let now = server::accounting::unix_now() as i64;
    let waiting = submit(&app, "startup", job(&["true"], 4)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let view = loop {
        let v = state_of(&app, &waiting, "startup").await;
        if !v["forecast_start"].is_null() {
            break v;
        }
        assert!(Instant::now() < deadline, "no forecast came: {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(view["state"], "pending", "{view}");
    let (start, latest) = (at(&view["forecast_start"]), at(&view["forecast_latest"]));
    // The running jobs are expected to end long before their walltimes...
    assert!(start >= now && start <= now + 600, "{view}");
    // ...and Slurm's way would wait for the walltime.
    assert!(latest >= now + 3500 && latest <= now + 3700, "{view}");

    // sbatch --test-only: the same answer, and no job.
    let (_, before) = app.get("/api/v1/jobs?limit=100", "startup").await;
    let (s, probe) = app
        .post(
            "/api/v1/jobs",
            "startup",
            json!({"project": project, "command": ["true"], "gpus": 4, "walltime_s": 3600, "test_only": true}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{probe}");
    assert_eq!(probe["site"], "it-bologna");
    assert!(probe["wait_s"].as_i64().unwrap() > 0, "{probe}");
    assert!(at(&probe["start"]) <= at(&probe["latest"]), "{probe}");
    let (_, after) = app.get("/api/v1/jobs?limit=100", "startup").await;
    assert_eq!(
        before["items"].as_array().unwrap().len(),
        after["items"].as_array().unwrap().len()
    );
    // Checks still apply: a request no node holds is refused, as a submission would be.
    let (s, refused) = app
        .post(
            "/api/v1/jobs",
            "startup",
            json!({"project": project, "command": ["true"], "gpus": 64, "walltime_s": 60, "test_only": true}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");

    // Headline figures: a 4-GPU hour waits at the full site, starts at once at the other.
    let (s, headlines) = app.get("/api/v1/forecast?gpus=4&walltime_s=3600", "sme").await;
    assert_eq!(s, StatusCode::OK, "{headlines}");
    let items = headlines["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{headlines}");
    let wait = |site: &str| {
        items.iter().find(|i| i["site"] == site).unwrap()["wait_s"]
            .as_i64()
            .unwrap()
    };
    assert!(wait("it-bologna") > 0, "{headlines}");
    assert_eq!(wait("fi-kajaani"), 0, "{headlines}");
    let (s, v) = app.get("/api/v1/forecast?site=mars", "sme").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    for id in busy.iter().chain([&waiting]) {
        app.call(
            Method::POST,
            &format!("/api/v1/jobs/{id}/cancel"),
            Some("startup"),
            None,
        )
        .await;
    }
}
