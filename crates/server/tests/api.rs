//! The API in process: real store (SQLite), real engine, real local processes.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{TestApp, app, app_in, app_with};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::time::Duration;
use tower::ServiceExt;

#[tokio::test]
async fn a_job_runs_on_its_gpus_and_is_accounted() {
    let app = app().await;
    let project = app.project_of("startup").await;
    let (status, job) = app
        .post(
            "/api/v1/jobs",
            "startup",
            json!({"project": project, "name": "hello", "command": ["sh", "-c", "echo hi from $CUDA_VISIBLE_DEVICES; exit 0"], "gpus": 2, "walltime_s": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["reserved_gpu_seconds"], 120);
    let id = job["id"].as_str().unwrap();
    assert!(id.starts_with("job_"));
    let done = app.wait_final(id, "startup").await;
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["exit_code"], 0);
    assert!(done["started_at"].as_str().unwrap().ends_with('Z'));
    let (status, logs) = app.get(&format!("/api/v1/jobs/{id}/logs"), "startup").await;
    assert_eq!(status, StatusCode::OK);
    let logs = logs.as_str().unwrap().to_string();
    assert!(
        logs.starts_with("hi from ") && logs.trim_end().split(',').count() == 2,
        "{logs}"
    );
    let (_, usage) = app.get(&format!("/api/v1/usage?job={id}"), "startup").await;
    assert!(usage["gpu_seconds"].as_i64().unwrap() >= 2, "{usage}");
    assert!(usage["energy_wh"].as_i64().unwrap() >= 1);
    let (_, alloc) = app
        .get(&format!("/api/v1/allocations?project={project}"), "startup")
        .await;
    let gs = &alloc["items"][0]["gpu_seconds"];
    assert_eq!(gs["reserved"], 0, "the reservation is released at the end: {gs}");
    assert_eq!(gs["used"], usage["gpu_seconds"]);
}

#[tokio::test]
async fn a_followed_log_streams_while_the_job_runs_and_ends_with_it() {
    let app = app().await;
    let project = app.project_of("research").await;
    let (_, job) = app
        .post(
            "/api/v1/jobs",
            "research",
            json!({"project": project, "command": ["sh", "-c", "echo first; sleep 1; echo second >&2; echo last"], "walltime_s": 60}),
        )
        .await;
    let id = job["id"].as_str().unwrap();
    let req = Request::get(format!("/api/v1/jobs/{id}/logs?follow=true"))
        .header("authorization", format!("Bearer {}", app.token("research")))
        .body(Body::empty())
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(
        &first[..],
        b"first\n",
        "the first line arrives while the job still runs"
    );
    assert_eq!(
        app.get(&format!("/api/v1/jobs/{id}"), "research").await.1["state"],
        "running"
    );
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"last\n", "and the stream ends with the job");
    let final_state = app.get(&format!("/api/v1/jobs/{id}"), "research").await.1;
    assert_eq!(final_state["state"], "completed");
    let (status, err) = app
        .get(&format!("/api/v1/jobs/{id}/logs?stream=stderr&offset=3"), "research")
        .await;
    assert_eq!((status, err), (StatusCode::OK, json!("ond\n")));
    let (status, _) = app
        .get(&format!("/api/v1/jobs/{id}/logs?follow=maybe"), "research")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn walltime_failure_and_cancel_end_jobs_with_their_reason() {
    let app = app().await;
    let project = app.project_of("sme").await;
    let submit =
        |cmd: &str, walltime: u64| json!({"project": project, "command": ["sh", "-c", cmd], "walltime_s": walltime});
    let (_, slow) = app.post("/api/v1/jobs", "sme", submit("sleep 30", 1)).await;
    let (_, failing) = app.post("/api/v1/jobs", "sme", submit("exit 7", 60)).await;
    let (_, cancelled) = app.post("/api/v1/jobs", "sme", submit("sleep 30", 60)).await;
    let cid = cancelled["id"].as_str().unwrap();
    for _ in 0..100 {
        if app.get(&format!("/api/v1/jobs/{cid}"), "sme").await.1["state"] == "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, _) = app.post(&format!("/api/v1/jobs/{cid}/cancel"), "sme", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let done = app.wait_final(slow["id"].as_str().unwrap(), "sme").await;
    assert_eq!(done["state"], "timeout", "{done}");
    let done = app.wait_final(failing["id"].as_str().unwrap(), "sme").await;
    assert_eq!(
        (done["state"].as_str(), done["exit_code"].as_i64()),
        (Some("failed"), Some(7))
    );
    let failed_id = failing["id"].as_str().unwrap();
    let (status, again) = app
        .post(&format!("/api/v1/jobs/{failed_id}/requeue"), "sme", json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert_ne!(again["id"], failing["id"]);
    let rerun = app.wait_final(again["id"].as_str().unwrap(), "sme").await;
    assert_eq!(rerun["exit_code"], 7, "the same command ran again");
    let done = app.wait_final(cid, "sme").await;
    assert_eq!(done["state"], "cancelled", "{done}");
    let (status, v) = app.post(&format!("/api/v1/jobs/{cid}/cancel"), "sme", json!({})).await;
    assert_eq!((status, v["code"].as_str()), (StatusCode::CONFLICT, Some("job-ended")));
}

#[tokio::test]
async fn organisations_never_see_each_other() {
    let app = app().await;
    let startup_project = app.project_of("startup").await;
    let (_, job) = app
        .post(
            "/api/v1/jobs",
            "startup",
            json!({"project": startup_project, "command": ["true"], "walltime_s": 60}),
        )
        .await;
    let job_id = job["id"].as_str().unwrap();
    for path in [
        format!("/api/v1/projects/{startup_project}"),
        format!("/api/v1/jobs/{job_id}"),
        format!("/api/v1/jobs/{job_id}/logs"),
        format!("/api/v1/usage?project={startup_project}"),
        format!("/api/v1/allocations?project={startup_project}"),
    ] {
        let (status, v) = app.get(&path, "sme").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {v}");
        let (status, _) = app.get(&path, "startup").await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let (status, _) = app.get(&path, "operator").await;
        assert_eq!(
            status,
            StatusCode::OK,
            "the factory's staff see every organisation: {path}"
        );
        let (status, _) = app.get(&path, "reviewer").await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "reviewers see only what they review: {path}"
        );
    }
    let (status, _) = app
        .post(&format!("/api/v1/jobs/{job_id}/cancel"), "sme", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .post(
            "/api/v1/jobs",
            "sme",
            json!({"project": startup_project, "command": ["true"], "walltime_s": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, orgs) = app.get("/api/v1/orgs", "sme").await;
    assert_eq!(orgs["items"].as_array().unwrap().len(), 1);
    // The five demo organisations and the demo course's.
    let (_, orgs) = app.get("/api/v1/orgs", "admin").await;
    assert_eq!(orgs["items"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn roles_decide_who_may_change_what() {
    let app = app().await;
    let project = app.project_of("research").await;
    let org = json!({"name": "New Co", "type": "startup", "country": "DE"});
    let allocation =
        json!({"project": project, "site": "fi-kajaani", "gpu_hours": 10, "valid_until": 4_000_000_000i64});
    // (who, may create organisations, may grant allocations)
    for (who, orgs, allocs) in [
        ("admin", true, true),
        ("operator", false, true),
        ("reviewer", false, false),
        ("startup", false, false),
        ("research", false, false),
    ] {
        let mut o = org.clone();
        o["name"] = json!(format!("New Co {who}"));
        let (status, v) = app.post("/api/v1/orgs", who, o).await;
        assert_eq!(
            status,
            if orgs {
                StatusCode::CREATED
            } else {
                StatusCode::FORBIDDEN
            },
            "{who}: {v}"
        );
        let (status, v) = app.post("/api/v1/allocations", who, allocation.clone()).await;
        let expected = if allocs {
            StatusCode::CREATED
        } else {
            StatusCode::FORBIDDEN
        };
        assert_eq!(status, expected, "{who}: {v}");
    }
    let (status, v) = app.call(Method::GET, "/api/v1/me", None, None).await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );
    let req = Request::builder()
        .uri("/api/v1/me")
        .header("authorization", "Bearer aif_nope")
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        app.router.clone().oneshot(req).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    // Org admins create projects in their own organisation only.
    let (_, me) = app.get("/api/v1/me", "research").await;
    let org_id = me["memberships"][0]["org_id"].as_str().unwrap().to_string();
    let (status, _) = app
        .post(
            "/api/v1/projects",
            "research",
            json!({"org": org_id, "name": "llm", "sector": "research"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .post(
            "/api/v1/projects",
            "startup",
            json!({"org": org_id, "name": "x", "sector": "x"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Tokens: create, use, revoke.
    let (status, t) = app.post("/api/v1/tokens", "startup", json!({"name": "ci"})).await;
    assert_eq!(status, StatusCode::CREATED);
    let secret = t["token"].as_str().unwrap();
    let req = |s: &str| {
        Request::builder()
            .uri("/api/v1/me")
            .header("authorization", format!("Bearer {s}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        app.router.clone().oneshot(req(secret)).await.unwrap().status(),
        StatusCode::OK
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", t["id"].as_str().unwrap()),
            Some("startup"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.router.clone().oneshot(req(secret)).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_the_field_named() {
    let app = app().await;
    let project = app.project_of("startup").await;
    // A request no node can hold says what the site has.
    let (status, v) = app
        .post(
            "/api/v1/jobs",
            "startup",
            json!({"project": project, "command": ["true"], "walltime_s": 60, "gpus": 999}),
        )
        .await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("never-fits"))
    );
    let detail = v["detail"].as_str().unwrap();
    assert!(
        detail.contains("the site has 8 GPUs (H100-SXM) on 2 nodes of at most 4 GPUs each"),
        "{detail}"
    );
    // Times are RFC 3339 everywhere, /me included.
    let (_, me) = app.get("/api/v1/me", "startup").await;
    assert!(
        me["user"]["created_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{me}"
    );
    let cases = [
        (
            json!({"project": project, "command": [], "walltime_s": 60}),
            StatusCode::BAD_REQUEST,
            "command",
        ),
        (
            json!({"project": project, "command": ["true"], "walltime_s": 0}),
            StatusCode::BAD_REQUEST,
            "walltime_s",
        ),
        (
            json!({"project": project, "command": ["true"], "walltime_s": 60, "gpus": 0}),
            StatusCode::BAD_REQUEST,
            "gpus",
        ),
        (
            json!({"project": project, "command": ["true"], "walltime_s": 60, "gpus": 3, "nodes": 2}),
            StatusCode::BAD_REQUEST,
            "nodes",
        ),
        (
            json!({"project": project, "command": ["true"], "walltime_s": 60, "gpu_milli": 250, "gpus": 2}),
            StatusCode::BAD_REQUEST,
            "gpu_milli",
        ),
        (
            json!({"project": project, "command": ["true"], "walltime_s": 60, "gpus": 64}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "",
        ),
    ];
    for (body, status, field) in cases {
        let (s, v) = app.post("/api/v1/jobs", "startup", body.clone()).await;
        assert_eq!(s, status, "{body}: {v}");
        if !field.is_empty() {
            assert_eq!(v["field"], field, "{v}");
        }
    }
    let (s, v) = app
        .post(
            "/api/v1/jobs",
            "startup",
            json!({"project": project, "command": ["true"], "walltime_s": 60, "colour": "red"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["detail"].as_str().unwrap().contains("colour"), "{v}");
    let (s, v) = app.post("/api/v1/jobs", "startup", json!({"command": ["true"]})).await;
    assert_eq!((s, v["code"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid-json")));
    let huge = json!({"project": project, "command": ["x".repeat(300 * 1024)], "walltime_s": 60});
    let (s, _) = app.post("/api/v1/jobs", "startup", huge).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (s, _) = app.get("/api/v1/jobs?state=sleeping", "startup").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = app.get("/api/v1/jobs?limit=lots", "startup").await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("limit")),
        "{v}"
    );
    let (s, _) = app.get("/api/v1/nothing-here", "startup").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = app.call(Method::DELETE, "/api/v1/sites", Some("startup"), None).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, Some("method-not-allowed")),
        "{v}"
    );
    // A Slurm account is a Slurm name; a blank one means none.
    let grant = |account: &str| {
        json!({"project": project, "site": "it-bologna", "gpu_hours": 1, "valid_until": 4_000_000_000i64,
               "slurm_account": account, "slurm_qos": " "})
    };
    let (s, v) = app.post("/api/v1/allocations", "admin", grant("euhpc; rm -rf /")).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("slurm_account")),
        "{v}"
    );
    let (s, v) = app.post("/api/v1/allocations", "admin", grant("euhpc_a01_042")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        (&v["slurm_account"], &v["slurm_qos"]),
        (&json!("euhpc_a01_042"), &Value::Null),
        "{v}"
    );
    let path = format!("/api/v1/allocations/{}/slurm", v["id"].as_str().unwrap());
    let (s, v) = app
        .call(
            Method::PUT,
            &path,
            Some("operator"),
            Some(json!({"qos": "x".repeat(65)})),
        )
        .await;
    assert_eq!((s, v["field"].as_str()), (StatusCode::BAD_REQUEST, Some("qos")), "{v}");
    let (s, v) = app
        .call(Method::PUT, &path, Some("operator"), Some(json!({"qos": "high"})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (&v["slurm_account"], &v["slurm_qos"]),
        (&Value::Null, &json!("high")),
        "{v}"
    );
}

#[tokio::test]
async fn parallel_submits_never_overspend_and_retries_are_idempotent() {
    let app = app().await;
    let project = app.project_of("research").await;
    // 500 GPU-hours: 25 jobs of 4 GPUs x 5 hours fit; 60 are sent at once.
    let mut handles = Vec::new();
    for i in 0..60 {
        let router = app.router.clone();
        let token = app.token("research");
        let body = json!({"project": project, "command": ["sleep", "2"], "gpus": 4, "walltime_s": 18_000, "name": format!("j{i}")});
        handles.push(tokio::spawn(async move {
            let req = Request::builder()
                .method(Method::POST)
                .uri("/api/v1/jobs")
                .header("authorization", format!("Bearer {token}"))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
                .unwrap();
            router.oneshot(req).await.unwrap().status()
        }));
    }
    let mut created = 0;
    for h in handles {
        match h.await.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::UNPROCESSABLE_ENTITY => {}
            other => panic!("{other}"),
        }
    }
    assert_eq!(created, 25);
    let (_, alloc) = app
        .get(&format!("/api/v1/allocations?project={project}"), "research")
        .await;
    assert_eq!(alloc["items"][0]["gpu_seconds"]["available"], 0);
    // Retried submit with the same key: the same job, no second reservation.
    let sme = app.project_of("sme").await;
    let body = json!({"project": sme, "command": ["true"], "walltime_s": 60});
    let send = || {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/jobs")
            .header("authorization", format!("Bearer {}", app.token("sme")))
            .header("content-type", "application/json")
            .header("idempotency-key", "retry-1")
            .body(Body::from(body.to_string()))
            .unwrap();
        app.router.clone().oneshot(req)
    };
    let a = send().await.unwrap().into_body().collect().await.unwrap().to_bytes();
    let b = send().await.unwrap().into_body().collect().await.unwrap().to_bytes();
    let (a, b): (Value, Value) = (serde_json::from_slice(&a).unwrap(), serde_json::from_slice(&b).unwrap());
    assert_eq!(a["id"], b["id"]);
    // Listing pages through everything once.
    let mut seen = 0;
    let mut cursor = String::new();
    loop {
        let (_, page) = app
            .get(&format!("/api/v1/jobs?project={project}&limit=10{cursor}"), "research")
            .await;
        seen += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, 25);
}

#[tokio::test]
async fn a_restart_adopts_running_jobs_keeps_waiting_ones_and_settles_lost_ones_once() {
    let dir = std::env::temp_dir().join(format!("aifactory-api-{}", store::new_id("t")));
    // The first server runs on a runtime of its own, dropped at the end like a crashed
    // process: its tasks stop, the jobs' processes go on.
    let first = dir.clone();
    let (adopted, killed, waiting, project) = std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let app = app_in(first).await;
            let project = app.project_of("research").await;
            // The demo has 8 GPUs at Bologna: two 4-GPU jobs run, an 8-GPU one waits.
            let submit =
                |cmd: &[&str], gpus: u32| json!({"project": project, "command": cmd, "gpus": gpus, "walltime_s": 600});
            let mut ids = Vec::new();
            for (cmd, gpus) in [
                (&["sh", "-c", "sleep 2; echo finished; exit 3"][..], 4),
                (&["sleep", "60"][..], 4),
                (&["true"][..], 8),
            ] {
                let (status, job) = app.post("/api/v1/jobs", "research", submit(cmd, gpus)).await;
                assert_eq!(status, StatusCode::CREATED, "{job}");
                ids.push(job["id"].as_str().unwrap().to_string());
            }
            for (id, expected) in ids.iter().zip(["running", "running", "pending"]) {
                assert_eq!(
                    app.get(&format!("/api/v1/jobs/{id}"), "research").await.1["state"],
                    expected
                );
            }
            assert!(app.dir.join("jobs").join(&ids[0]).join("pid").exists());
            (ids[0].clone(), ids[1].clone(), ids[2].clone(), project)
        })
    })
    .join()
    .unwrap();
    // While no server runs, one job's processes die (an OOM kill, a node reboot...).
    let pid_file = std::fs::read_to_string(dir.join("jobs").join(&killed).join("pid")).unwrap();
    let pid: i32 = pid_file.split_whitespace().next().unwrap().parse().unwrap();
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // A new server on the same data: the surviving job is adopted and ends with its own
    // exit code, the dead one is lost and settled, the waiting one runs after them.
    let app = app_in(dir).await;
    let lost = app.get(&format!("/api/v1/jobs/{killed}"), "research").await.1;
    assert_eq!(lost["state"], "lost", "{lost}");
    let running = app.get(&format!("/api/v1/jobs/{adopted}"), "research").await.1;
    assert_eq!(running["state"], "running", "{running}");
    let done = app.wait_final(&adopted, "research").await;
    assert_eq!(
        (done["state"].as_str(), done["exit_code"].as_i64()),
        (Some("failed"), Some(3)),
        "{done}"
    );
    let out = app.get(&format!("/api/v1/jobs/{adopted}/logs"), "research").await.1;
    assert_eq!(out, "finished\n");
    let after = app.wait_final(&waiting, "research").await;
    assert_eq!(after["state"], "completed", "{after}");
    assert!(
        after["started_at"].as_str() >= done["ended_at"].as_str(),
        "the adopted job kept its GPUs until it ended: {done} {after}"
    );
    for id in [&adopted, &killed] {
        let (_, usage) = app.get(&format!("/api/v1/usage?job={id}"), "research").await;
        assert!(usage["gpu_seconds"].as_i64().unwrap() >= 4, "{usage}");
    }
    let (_, alloc) = app
        .get(&format!("/api/v1/allocations?project={project}"), "research")
        .await;
    assert_eq!(alloc["items"][0]["gpu_seconds"]["reserved"], 0, "{alloc}");
}

#[tokio::test]
async fn operators_drain_nodes_and_staff_read_metrics() {
    let app = app().await;
    let (status, _) = app.post("/api/v1/nodes/bo-gpu-0000/drain", "startup", json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, node) = app.post("/api/v1/nodes/bo-gpu-0000/drain", "operator", json!({})).await;
    assert_eq!(
        (status, node["status"].as_str()),
        (StatusCode::OK, Some("drained")),
        "{node}"
    );
    let (status, _) = app.post("/api/v1/nodes/nowhere/drain", "operator", json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // With one Bologna node drained, 8 GPUs there cannot start until it is resumed.
    let project = app.project_of("research").await;
    let (_, job) = app
        .post(
            "/api/v1/jobs",
            "research",
            json!({"project": project, "command": ["true"], "gpus": 8, "walltime_s": 60}),
        )
        .await;
    let id = job["id"].as_str().unwrap();
    assert_eq!(job["state"], "pending");
    let (_, nodes) = app.get("/api/v1/nodes", "research").await;
    assert_eq!(nodes["items"].as_array().unwrap().len(), 4);
    assert_eq!(nodes["items"][0]["status"], "drained");
    let req = |who: &str| {
        Request::builder()
            .uri("/metrics")
            .header("authorization", format!("Bearer {}", app.token(who)))
            .body(Body::empty())
            .unwrap()
    };
    let resp = app.router.clone().oneshot(req("operator")).await.unwrap();
    let text = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    for needle in [
        "aifactory_nodes{site=\"it-bologna\",partition=\"it-bologna-default\",status=\"drained\"} 1",
        "aifactory_queue_length{class=\"large-scale\"} 1",
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    let (status, _) = app
        .post("/api/v1/nodes/bo-gpu-0000/resume", "operator", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.wait_final(id, "research").await["state"], "completed");
    assert_eq!(
        app.router.clone().oneshot(req("startup")).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let resp = app.router.clone().oneshot(req("operator")).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        resp.headers()
    );
    let text = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    for needle in [
        "aifactory_queue_length{class=\"fast-lane\"} 0",
        "aifactory_jobs_running 0",
        "aifactory_gpus 16",
        "aifactory_http_request_duration_seconds_count",
        "aifactory_ledger_gpu_seconds_total",
        "# TYPE aifactory_http_request_duration_seconds histogram",
        "aifactory_http_responses_total{status=\"4xx\"}",
        "aifactory_nodes{site=\"it-bologna\",partition=\"it-bologna-default\",status=\"up\"} 2",
        "aifactory_partition_gpus{site=\"fi-kajaani\",partition=\"fi-kajaani-default\"} 8",
    ] {
        assert!(text.contains(needle), "{needle} missing in\n{text}");
    }
    // The job above ran on 8 GPUs for a moment: the ledger's GPU-seconds are booked.
    let booked: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("aifactory_ledger_gpu_seconds_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no ledger counter in\n{text}"));
    assert!(booked > 0, "{text}");
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF:\n{text}");
    let (status, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn each_token_is_rate_limited() {
    let dir = std::env::temp_dir().join(format!("aifactory-api-{}", store::new_id("t")));
    let app = app_with(dir, |c| {
        c.rate_per_s = 1.0;
        c.rate_burst = 3.0;
    })
    .await;
    for _ in 0..3 {
        assert_eq!(app.get("/api/v1/me", "startup").await.0, StatusCode::OK);
    }
    let (status, v) = app.get("/api/v1/me", "startup").await;
    assert_eq!(
        (status, v["code"].as_str()),
        (StatusCode::TOO_MANY_REQUESTS, Some("rate-limited"))
    );
    assert_eq!(
        app.get("/api/v1/me", "sme").await.0,
        StatusCode::OK,
        "another token has its own budget"
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_and_reviewed() {
    let app = app().await;
    let (status, doc) = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.1.0");
    // Request and response schemas, derived from the handlers' types, live in components.
    let submit = &doc["paths"]["/api/v1/jobs"]["post"];
    assert_eq!(
        submit["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/SubmitJob"
    );
    let schemas = &doc["components"]["schemas"];
    assert!(
        schemas["SubmitJob"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("walltime_s"))
    );
    assert_eq!(
        submit["responses"]["2XX"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/JobView"
    );
    assert!(
        schemas["JobView"]["properties"]["runs"].is_object(),
        "{}",
        schemas["JobView"]
    );
    // Every $ref resolves.
    let text = doc.to_string();
    for name in text
        .split("\"#/components/schemas/")
        .skip(1)
        .map(|r| r.split('"').next().unwrap())
    {
        assert!(schemas[name].is_object(), "{name} is referenced but not defined");
    }
    assert_eq!(doc["paths"]["/api/v1/jobs/{id}"]["get"]["parameters"][0]["name"], "id");
    // Every API change is a reviewed diff: the document must match the committed snapshot
    // (UPDATE_SNAPSHOTS=1 rewrites it).
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/openapi.json");
    let pretty = serde_json::to_string_pretty(&doc).unwrap() + "\n";
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &pretty).unwrap();
    }
    let committed = std::fs::read_to_string(&path).expect("run with UPDATE_SNAPSHOTS=1 to create the snapshot");
    assert_eq!(
        committed, pretty,
        "the API changed: review and run with UPDATE_SNAPSHOTS=1"
    );
}

async fn fresh_job(app: &TestApp, project: &str) -> String {
    let (status, job) = app
        .post(
            "/api/v1/jobs",
            "startup",
            json!({"project": project, "command": ["sleep", "5"], "walltime_s": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    job["id"].as_str().unwrap().to_string()
}

/// A new user (made by the platform admin), a member of `org` if given.
async fn fresh_user(app: &TestApp, n: usize, org: Option<&str>) -> String {
    let body = match org {
        Some(o) => json!({"email": format!("u{n}@x.example"), "name": "U", "org": o, "role": "member"}),
        None => json!({"email": format!("u{n}@x.example"), "name": "U"}),
    };
    let (status, user) = app.post("/api/v1/users", "admin", body).await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    user["id"].as_str().unwrap().to_string()
}

/// An invitation from the start-up to an address none of the matrix's roles holds.
async fn fresh_invitation(app: &TestApp, org: &str, n: usize) -> String {
    let (status, invitation) = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            "startup",
            json!({"email": format!("invitee{n}@elsewhere.example")}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    invitation["id"].as_str().unwrap().to_string()
}

/// A start-up's application to `call` (`playground`, `fast-lane`), submitted or not, with
/// a declaration that is true (eligible) or not declared (ineligible); returns its id.
async fn fresh_application(app: &TestApp, call: &str, submit: bool, declared: bool) -> String {
    let site = if call == "fast-lane" {
        "fi-kajaani"
    } else {
        "it-bologna"
    };
    let (status, a) = app
        .post(
            "/api/v1/applications",
            "startup",
            json!({"call": call, "title": "Matrix", "site": site, "gpu_hours": 1, "duration_days": 30,
                "answers": {"abstract": "train"},
                "declaration": {"org_type": "startup", "country": "IT", "sector": "robotics", "founded_on": "2024-01-01",
                    "enterprise": {"years": [{"year": 2025, "staff_awu_milli": 5000, "turnover_eur": 100000, "balance_sheet_eur": 100000}]},
                    "declared_true": declared},
                "submit": submit}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{a}");
    a["id"].as_str().unwrap().to_string()
}

/// An accepted playground award of the start-up's: its allocation.
async fn fresh_award(app: &TestApp) -> String {
    let a = fresh_application(app, "playground", true, true).await;
    let (status, v) = app
        .post(&format!("/api/v1/applications/{a}/accept"), "startup", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["allocation"].as_str().unwrap().to_string()
}

/// A start-up's large-scale application that passed its technical assessment (peer review).
async fn fresh_in_review(app: &TestApp) -> String {
    let a = fresh_application(app, "large-scale", true, true).await;
    let (status, v) = app
        .post(
            &format!("/api/v1/applications/{a}/assessment"),
            "admin",
            json!({"passed": true, "notes": "ok"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    a
}

/// A sign-up's confirmation code, read from the outbox as the mail server would get it.
async fn fresh_code(app: &TestApp, n: usize) -> String {
    let email = format!("signup{n}@new.example");
    let (status, v) = app
        .call(
            Method::POST,
            "/api/v1/signup",
            None,
            Some(json!({"email": email, "name": "New", "organisation": {"name": format!("New {n}"), "type": "startup", "country": "IT"}})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{v}");
    let messages = app.state.store.all_messages(1000).await.unwrap();
    let m = messages.iter().find(|m| m.to_email == email).unwrap();
    m.subject.rsplit(' ').next().unwrap().to_string()
}

/// A restricted dataset of the demo, owned by an organisation none of the roles belongs to.
const RESTRICTED: &str = "dataset/universita-di-bologna/italian-court-rulings";

/// Who calls, in the order of the expectation strings below: platform admin, site
/// operator, reviewer, the start-up's admin and member, the SME's admin and member.
const ROLES: [&str; 7] = [
    "admin",
    "operator",
    "reviewer",
    "startup",
    "startup-member",
    "sme",
    "sme-member",
];

/// What each role gets from each endpoint on the start-up's objects: `A` a success, `F` 403,
/// `H` 404 (another organisation's objects are not told apart from missing ones).
fn expected(method: &str, path: &str) -> &'static str {
    match (method, path) {
        ("get", "/healthz" | "/readyz" | "/api/v1/me" | "/api/v1/orgs" | "/api/v1/projects")
        | ("get", "/api/v1/me/invitations")
        | ("get", "/api/v1/sites" | "/api/v1/nodes" | "/api/v1/tokens" | "/api/v1/forecast")
        | ("post", "/api/v1/tokens") => "AAAAAAA",
        // Everyone sets their own password.
        ("put", "/api/v1/me/password") => "AAAAAAA",
        ("get", "/metrics" | "/api/v1/reports/usage" | "/api/v1/reports/programme") => "AAFFFFF",
        ("post", "/api/v1/orgs") => "AFFFFFF",
        ("get", "/api/v1/orgs/{id}" | "/api/v1/orgs/{id}/members" | "/api/v1/projects/{id}")
        | ("get", "/api/v1/projects/{id}/members" | "/api/v1/allocations" | "/api/v1/allocations/{id}")
        | ("get", "/api/v1/jobs" | "/api/v1/jobs/{id}" | "/api/v1/jobs/{id}/logs" | "/api/v1/usage") => "AAHAAHH",
        ("post", "/api/v1/orgs/{id}/members") => "AFHFFHH",
        ("get" | "post", "/api/v1/orgs/{id}/invitations")
        | ("post", "/api/v1/orgs/{id}/invitations/{invitation}/revoke") => "AFHAFHH",
        // Addressed to someone else: nobody but the invitee learns it exists.
        ("post", "/api/v1/invitations/{id}/accept" | "/api/v1/invitations/{id}/decline") => "HHHHHHH",
        ("post", "/api/v1/users" | "/api/v1/projects")
        | ("delete", "/api/v1/orgs/{id}/members/{user}")
        | ("post", "/api/v1/projects/{id}/members")
        | ("delete", "/api/v1/projects/{id}/members/{user}") => "AFHAFHH",
        ("delete", "/api/v1/tokens/{id}") => "HHHAHHH",
        ("post", "/api/v1/allocations" | "/api/v1/nodes/{name}/drain" | "/api/v1/nodes/{name}/resume") => "AAFFFFF",
        ("post", "/api/v1/allocations/{id}/top-up" | "/api/v1/allocations/{id}/extend")
        | ("post", "/api/v1/allocations/{id}/suspend" | "/api/v1/allocations/{id}/resume")
        | ("put", "/api/v1/allocations/{id}/slurm") => "AAHFFHH",
        ("post", "/api/v1/jobs") => "FFHAAHH",
        ("post", "/api/v1/jobs/{id}/cancel") => "AFHAAHH",
        ("post", "/api/v1/jobs/{id}/requeue") => "FFHAAHH",
        ("post", "/api/v1/signup" | "/api/v1/signup/verify") | ("get", "/api/v1/calls" | "/api/v1/calls/{id}") => {
            "AAAAAAA"
        }
        ("get", "/api/v1/applications" | "/api/v1/notifications") => "AAAAAAA",
        ("post", "/api/v1/calls" | "/api/v1/calls/{id}/close") => "AFFFFFF",
        ("post", "/api/v1/applications/{id}/assessment" | "/api/v1/applications/{id}/decision") => "AFFFFFF",
        ("post", "/api/v1/applications") => "FFHAAHH",
        ("get", "/api/v1/applications/{id}" | "/api/v1/applications/{id}/events")
        | ("get", "/api/v1/applications/{id}/documents" | "/api/v1/applications/{id}/documents/{doc}") => "AHHAAHH",
        ("patch", "/api/v1/applications/{id}")
        | ("post", "/api/v1/applications/{id}/submit" | "/api/v1/applications/{id}/withdraw")
        | ("post", "/api/v1/applications/{id}/reopen" | "/api/v1/applications/{id}/accept")
        | ("post", "/api/v1/applications/{id}/decline" | "/api/v1/applications/{id}/documents") => "FHHAFHH",
        // Only the applicant's side may reply, and only once the reviews are in (409 here).
        ("post", "/api/v1/applications/{id}/reply") => "FHHCFHH",
        ("post", "/api/v1/applications/{id}/reviewers") | ("get", "/api/v1/calls/{id}/ranking") => "AFFFFFF",
        ("get", "/api/v1/applications/{id}/reviews") => "AHHAAHH",
        ("get", "/api/v1/reviews") => "AAAAAAA",
        // A review is its reviewer's and the programme managers'.
        ("get", "/api/v1/reviews/{id}") => "AHAHHHH",
        ("post", "/api/v1/reviews/{id}/submit") => "FHAHHHH",
        ("post", "/api/v1/applications/{id}/conflict" | "/api/v1/me/collaborations") => "FFAFFFF",
        ("get", "/api/v1/courses" | "/api/v1/courses/{id}") | ("post", "/api/v1/courses/{id}/enrol") => "AAAAAAA",
        ("post", "/api/v1/courses" | "/api/v1/courses/{id}/enrolments")
        | ("get", "/api/v1/courses/{id}/enrolments") => "AFFFFFF",
        ("post", "/api/v1/courses/{id}/enrolments/{user}/complete") => "AFFFFFF",
        // The trainee themselves, or a programme manager; to anyone else it does not exist.
        ("post", "/api/v1/courses/{id}/enrolments/{user}/cancel") => "AHHHAHH",
        // The applicant's side asks for more and reports; everyone who sees it reads.
        ("post", "/api/v1/allocations/{id}/requests" | "/api/v1/allocations/{id}/report") => "FFHAFHH",
        ("get", "/api/v1/allocations/{id}/report") => "AAHAAHH",
        // The catalogue is public; an entry is described by its owner's members (and admins).
        ("get", "/api/v1/catalogue" | "/api/v1/catalogue/dcat" | "/api/v1/catalogue/{kind}/{namespace}/{name}") => {
            "AAAAAAA"
        }
        ("put", "/api/v1/catalogue/{kind}/{namespace}/{name}") => "AFFAAFF",
        // On a restricted dataset of an organisation none of the roles belongs to: anyone
        // reads its policy and asks (as an organisation); its owner (here: the platform admin)
        // sets the policy and decides; the requester may not decide their own request;
        // staff read the audit log.
        ("get", "/api/v1/catalogue/{kind}/{namespace}/{name}/policy") => "AAAAAAA",
        ("put", "/api/v1/catalogue/{kind}/{namespace}/{name}/policy") => "AFFFFFF",
        ("post", "/api/v1/catalogue/{kind}/{namespace}/{name}/access-requests") => "FFFAAAA",
        ("get", "/api/v1/catalogue/{kind}/{namespace}/{name}/access-requests") => "AAAAAAA",
        ("post", "/api/v1/access-requests/{id}/decision" | "/api/v1/access-requests/{id}/revoke") => "AHHFHHH",
        ("get", "/api/v1/catalogue/{kind}/{namespace}/{name}/audit") => "AAFFFFF",
        ("post", "/api/v1/catalogue/harvest") => "AAFFFFF",
        ("get", "/api/v1/catalogue/external") => "AAAAAAA",
        ("get", "/api/v1/catalogue/sources") => "AAFFFFF",
        other => panic!("{other:?} is missing from the authorisation matrix"),
    }
}

#[tokio::test]
async fn authorisation_matrix_every_role_every_endpoint_own_and_other_organisation() {
    let mut app = app().await;
    let project = app.project_of("startup").await;
    let (_, me) = app.get("/api/v1/me", "startup").await;
    let org = me["memberships"][0]["org_id"].as_str().unwrap().to_string();
    // Tokens for the members of the start-up and of the SME.
    for (key, admin) in [("startup-member", "startup"), ("sme-member", "sme")] {
        let (_, who) = app.get("/api/v1/me", admin).await;
        let their_org = who["memberships"][0]["org_id"].as_str().unwrap();
        let (_, members) = app.get(&format!("/api/v1/orgs/{their_org}/members"), admin).await;
        let member = members["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["role"] == "member")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let (status, token) = app
            .post("/api/v1/tokens", "admin", json!({"name": "matrix", "user": member}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{token}");
        app.tokens[key] = token["token"].clone();
    }
    // A second allocation to suspend, resume, extend and top up; a job that ended to requeue.
    let (_, target_alloc) = app
        .post(
            "/api/v1/allocations",
            "admin",
            json!({"project": project, "site": "it-bologna", "gpu_hours": 10, "valid_until": 4_000_000_000i64}),
        )
        .await;
    let target_alloc = target_alloc["id"].as_str().unwrap().to_string();
    let ended = fresh_job(&app, &project).await;
    app.post(&format!("/api/v1/jobs/{ended}/cancel"), "startup", json!({}))
        .await;
    // A draft to look at, change and attach to, with one document.
    let draft = fresh_application(&app, "playground", false, true).await;
    let (status, document) = app
        .call(
            Method::POST,
            &format!("/api/v1/applications/{draft}/documents?name=accounts.json"),
            Some("startup"),
            Some(json!({"turnover_eur": 100000})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{document}");
    let document = document["id"].as_str().unwrap().to_string();
    // A review assigned to the demo reviewer.
    let reviewer = app.get("/api/v1/me", "reviewer").await.1["user"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reviewed = fresh_in_review(&app).await;
    let (status, review) = app
        .post(
            &format!("/api/v1/applications/{reviewed}/reviewers"),
            "admin",
            json!({"reviewer": reviewer}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{review}");
    let review = review["id"].as_str().unwrap().to_string();
    let (_, sme) = app.get("/api/v1/me", "sme").await;
    let sme_org = sme["memberships"][0]["org_id"].as_str().unwrap().to_string();
    // An award with its final report sent.
    let reported = fresh_award(&app).await;
    let (status, v) = app
        .post(
            &format!("/api/v1/allocations/{reported}/report"),
            "startup",
            json!({"summary": "done", "outputs": []}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    let mut counter = 0;
    let mut wrong = Vec::new();
    let doc = server::api::openapi();
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let expect = expected(method, path);
            for (role, want) in ROLES.iter().zip(expect.chars()) {
                counter += 1;
                // Fresh objects for calls that change or remove what they act on.
                let (uri, body) = match (method.as_str(), path.as_str()) {
                    ("post", "/api/v1/orgs/{id}/members") => (
                        format!("/api/v1/orgs/{org}/members"),
                        Some(json!({"user": fresh_user(&app, counter, None).await})),
                    ),
                    ("delete", "/api/v1/orgs/{id}/members/{user}") => (
                        format!(
                            "/api/v1/orgs/{org}/members/{}",
                            fresh_user(&app, counter, Some(&org)).await
                        ),
                        None,
                    ),
                    ("post", "/api/v1/projects/{id}/members") => (
                        format!("/api/v1/projects/{project}/members"),
                        Some(json!({"user": fresh_user(&app, counter, Some(&org)).await})),
                    ),
                    ("delete", "/api/v1/projects/{id}/members/{user}") => {
                        let user = fresh_user(&app, counter, Some(&org)).await;
                        let (status, v) = app
                            .post(
                                &format!("/api/v1/projects/{project}/members"),
                                "startup",
                                json!({"user": user}),
                            )
                            .await;
                        assert_eq!(status, StatusCode::CREATED, "{v}");
                        (format!("/api/v1/projects/{project}/members/{user}"), None)
                    }
                    ("post", "/api/v1/orgs/{id}/invitations/{invitation}/revoke") => {
                        let invitation = fresh_invitation(&app, &org, counter).await;
                        (format!("/api/v1/orgs/{org}/invitations/{invitation}/revoke"), None)
                    }
                    ("post", "/api/v1/invitations/{id}/accept" | "/api/v1/invitations/{id}/decline") => {
                        let invitation = fresh_invitation(&app, &org, counter).await;
                        (path.replace("{id}", &invitation), None)
                    }
                    ("delete", "/api/v1/tokens/{id}") => {
                        let (_, t) = app.post("/api/v1/tokens", "startup", json!({"name": "victim"})).await;
                        (format!("/api/v1/tokens/{}", t["id"].as_str().unwrap()), None)
                    }
                    ("post", "/api/v1/jobs/{id}/cancel") => {
                        (format!("/api/v1/jobs/{}/cancel", fresh_job(&app, &project).await), None)
                    }
                    ("post", "/api/v1/jobs/{id}/requeue") => (format!("/api/v1/jobs/{ended}/requeue"), None),
                    ("post", "/api/v1/signup") => (
                        path.clone(),
                        Some(json!({"email": format!("s{counter}@new.example"), "name": "S",
                            "organisation": {"name": format!("Org {counter}"), "type": "sme", "country": "FI"}})),
                    ),
                    ("post", "/api/v1/signup/verify") => {
                        (path.clone(), Some(json!({"code": fresh_code(&app, counter).await})))
                    }
                    ("post", "/api/v1/calls/{id}/close") => {
                        let (status, c) = app
                            .post(
                                "/api/v1/calls",
                                "admin",
                                json!({"name": format!("close-{counter}"), "title": "T", "mode": "playground", "site": "it-bologna", "gpu_hours": 10}),
                            )
                            .await;
                        assert_eq!(status, StatusCode::CREATED, "{c}");
                        (format!("/api/v1/calls/{}/close", c["id"].as_str().unwrap()), None)
                    }
                    ("post", "/api/v1/applications/{id}/submit" | "/api/v1/applications/{id}/withdraw") => {
                        let a = fresh_application(&app, "playground", false, true).await;
                        (path.replace("{id}", &a), None)
                    }
                    ("post", "/api/v1/applications/{id}/reopen") => {
                        let a = fresh_application(&app, "playground", true, false).await;
                        (path.replace("{id}", &a), None)
                    }
                    ("post", "/api/v1/applications/{id}/accept" | "/api/v1/applications/{id}/decline") => {
                        let a = fresh_application(&app, "playground", true, true).await;
                        (path.replace("{id}", &a), None)
                    }
                    ("post", "/api/v1/applications/{id}/assessment") => {
                        let a = fresh_application(&app, "fast-lane", true, true).await;
                        (path.replace("{id}", &a), Some(json!({"passed": true, "notes": "fits"})))
                    }
                    ("post", "/api/v1/applications/{id}/decision") => {
                        let a = fresh_application(&app, "fast-lane", true, true).await;
                        let (status, v) = app
                            .post(
                                &format!("/api/v1/applications/{a}/assessment"),
                                "admin",
                                json!({"passed": true, "notes": "fits"}),
                            )
                            .await;
                        assert_eq!(status, StatusCode::OK, "{v}");
                        (
                            path.replace("{id}", &a),
                            Some(json!({"award": true, "reasons": "good"})),
                        )
                    }
                    ("post", "/api/v1/applications/{id}/reviewers") => {
                        let a = fresh_in_review(&app).await;
                        (path.replace("{id}", &a), Some(json!({"reviewer": reviewer})))
                    }
                    ("post", "/api/v1/applications/{id}/conflict") => {
                        let a = fresh_in_review(&app).await;
                        let (status, v) = app
                            .post(
                                &format!("/api/v1/applications/{a}/reviewers"),
                                "admin",
                                json!({"reviewer": reviewer}),
                            )
                            .await;
                        assert_eq!(status, StatusCode::CREATED, "{v}");
                        (path.replace("{id}", &a), Some(json!({"reason": "I advise them"})))
                    }
                    ("post", "/api/v1/me/collaborations") => (
                        path.clone(),
                        Some(json!({"org": sme_org, "note": "a joint project in 2024"})),
                    ),
                    ("post", "/api/v1/reviews/{id}/submit") => (
                        format!("/api/v1/reviews/{review}/submit"),
                        Some(json!({"scores": {"excellence": 4, "impact": 3, "feasibility": 5}, "comments": "Sound"})),
                    ),
                    ("get", "/api/v1/reviews/{id}") => (format!("/api/v1/reviews/{review}"), None),
                    ("post", "/api/v1/allocations/{id}/report") => (
                        format!("/api/v1/allocations/{}/report", fresh_award(&app).await),
                        Some(json!({"summary": "a model", "outputs": [{"kind": "model", "title": "m"}]})),
                    ),
                    ("get", "/api/v1/allocations/{id}/report") => {
                        (format!("/api/v1/allocations/{reported}/report"), None)
                    }
                    ("post", "/api/v1/allocations/{id}/requests") => (
                        format!("/api/v1/allocations/{reported}/requests"),
                        Some(json!({"kind": "supplement", "gpu_hours": 1, "reason": "more"})),
                    ),
                    ("post", "/api/v1/courses/{id}/enrolments") => (
                        "/api/v1/courses/llm-finetuning/enrolments".to_string(),
                        Some(json!({"$text": format!("email,name\nclass{counter}@school.example,Pupil {counter}\n")})),
                    ),
                    (
                        "post",
                        "/api/v1/courses/{id}/enrolments/{user}/cancel"
                        | "/api/v1/courses/{id}/enrolments/{user}/complete",
                    ) => {
                        // The start-up's member cancels their own seat (taken in the enrol
                        // round); everyone else acts on a freshly seated account.
                        let user = if path.ends_with("cancel") && *role == "startup-member" {
                            app.get("/api/v1/me", "startup-member").await.1["user"]["id"]
                                .as_str()
                                .unwrap()
                                .to_string()
                        } else {
                            let (status, v) = app
                                .post(
                                    "/api/v1/courses/llm-finetuning/enrolments",
                                    "admin",
                                    json!({"$text": format!("seat{counter}@school.example,Seat {counter}")}),
                                )
                                .await;
                            assert_eq!(status, StatusCode::OK, "{v}");
                            v["items"][0]["user"].as_str().unwrap().to_string()
                        };
                        (path.replace("{id}", "llm-finetuning").replace("{user}", &user), None)
                    }
                    ("post", "/api/v1/catalogue/{kind}/{namespace}/{name}/access-requests") => (
                        path.replace("{kind}/{namespace}/{name}", RESTRICTED),
                        Some(json!({"purpose": "research", "days": 30})),
                    ),
                    ("post", "/api/v1/access-requests/{id}/decision") => {
                        let (status, r) = app
                            .post(
                                &format!("/api/v1/catalogue/{RESTRICTED}/access-requests"),
                                "startup",
                                json!({"purpose": "research", "days": 30}),
                            )
                            .await;
                        assert_eq!(status, StatusCode::CREATED, "{r}");
                        (
                            path.replace("{id}", r["id"].as_str().unwrap()),
                            Some(json!({"grant": true, "reason": "fits", "days": 10})),
                        )
                    }
                    ("put", "/api/v1/me/password") => (
                        path.to_string(),
                        Some(json!({"password": format!("matrix-password-{counter}")})),
                    ),
                    ("post", "/api/v1/access-requests/{id}/revoke") => {
                        let (status, r) = app
                            .post(
                                &format!("/api/v1/catalogue/{RESTRICTED}/access-requests"),
                                "startup",
                                json!({"purpose": "research", "days": 30}),
                            )
                            .await;
                        assert_eq!(status, StatusCode::CREATED, "{r}");
                        let id = r["id"].as_str().unwrap();
                        let (status, d) = app
                            .post(
                                &format!("/api/v1/access-requests/{id}/decision"),
                                "admin",
                                json!({"grant": true, "reason": "fits", "days": 10}),
                            )
                            .await;
                        assert_eq!(status, StatusCode::OK, "{d}");
                        (path.replace("{id}", id), Some(json!({"reason": "project ended"})))
                    }
                    ("post", "/api/v1/catalogue/harvest") => (
                        "/api/v1/catalogue/harvest?source=matrix&format=turtle".to_string(),
                        Some(json!({"$text": format!(
                            "<https://x.eu/ds/{counter}> a <http://www.w3.org/ns/dcat#Dataset> ; \
                             <http://purl.org/dc/terms/title> \"T\"@en ."
                        )})),
                    ),
                    (m, p) if p.starts_with("/api/v1/catalogue/{kind}/{namespace}/{name}/") => (
                        path.replace("{kind}/{namespace}/{name}", RESTRICTED),
                        // The default policy: owner decides, anyone may ask.
                        (m == "put").then(|| json!({})),
                    ),
                    ("post", "/api/v1/applications/{id}/documents") => (
                        format!("/api/v1/applications/{draft}/documents?name=d{counter}.txt"),
                        Some(json!({"n": counter})),
                    ),
                    _ => {
                        let job = &ended;
                        let concrete = path
                            .replace("{kind}/{namespace}/{name}", "model/nebula-robotics/arm-policy-tiny")
                            .replace("/orgs/{id}", &format!("/orgs/{org}"))
                            .replace("/projects/{id}", &format!("/projects/{project}"))
                            .replace("/allocations/{id}", &format!("/allocations/{target_alloc}"))
                            .replace("/jobs/{id}", &format!("/jobs/{job}"))
                            .replace("{name}", "bo-gpu-0000")
                            .replace("/calls/{id}", "/calls/playground")
                            .replace("/courses/{id}", "/courses/llm-finetuning")
                            .replace("/applications/{id}", &format!("/applications/{draft}"))
                            .replace("{doc}", &document);
                        let query = match path.as_str() {
                            "/api/v1/allocations" | "/api/v1/jobs" | "/api/v1/usage" => format!("?project={project}"),
                            _ => String::new(),
                        };
                        // A valid body: the fields the endpoint's schema names, from a pool.
                        let pool = json!({"project": project, "org": org, "name": format!("n{counter}"), "sector": "x",
                            "command": ["true"], "walltime_s": 60, "site": "it-bologna", "gpu_hours": 1,
                            "valid_until": 4_000_000_000i64, "type": "sme", "country": "IT",
                            "email": format!("e{counter}@y.example"), "account": "euhpc_a01_042", "qos": "normal",
                            "title": "T", "mode": "playground", "call": "playground", "duration_days": 30, "text": "thanks",
                            "starts_at": "2030-01-01T09:00:00Z", "ends_at": "2030-01-03T17:00:00Z", "seats": 5, "gpu_hours_per_trainee": 2});
                        let body = op.get("requestBody").map(|b| {
                            // The body's schema, through its reference into the components.
                            let reference = b["content"]["application/json"]["schema"]["$ref"].as_str().unwrap();
                            let name = reference.trim_start_matches("#/components/schemas/");
                            let schema = &doc["components"]["schemas"][name]["properties"];
                            let fields = schema
                                .as_object()
                                .unwrap()
                                .keys()
                                .filter(|k| !pool[k.as_str()].is_null());
                            Value::Object(fields.map(|k| (k.clone(), pool[k.as_str()].clone())).collect())
                        });
                        (format!("{concrete}{query}"), body)
                    }
                };
                let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
                if role == &"admin" && op.get("security") != Some(&json!([])) {
                    let (status, _) = app.call(m.clone(), &uri, None, body.clone()).await;
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri} without a token");
                }
                let (status, v) = app.call(m, &uri, Some(role), body).await;
                let ok = match want {
                    'A' => status.is_success(),
                    'F' => status == StatusCode::FORBIDDEN,
                    'H' => status == StatusCode::NOT_FOUND,
                    'C' => status == StatusCode::CONFLICT,
                    _ => unreachable!(),
                };
                if !ok {
                    wrong.push(format!("{method} {path} as {role}: expected {want}, got {status}: {v}"));
                }
                checked += 1;
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} answers not as expected:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked >= 7 * 39, "{checked}");
    // Only the two permitted top-ups (admin, operator) of 1 GPU-hour reached the allocation.
    let (_, alloc) = app.get(&format!("/api/v1/allocations/{target_alloc}"), "startup").await;
    assert_eq!(alloc["gpu_seconds"]["granted"], (10 + 2) * 3600, "{alloc}");
    assert_eq!(
        (&alloc["slurm_account"], &alloc["slurm_qos"]),
        (&json!("euhpc_a01_042"), &json!("normal")),
        "set by staff only: {alloc}"
    );
    // A member of the organisation but not of the project may look but not submit.
    let (_, me) = app.get("/api/v1/me", "startup-member").await;
    let member = me["user"]["id"].as_str().unwrap();
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/api/v1/projects/{project}/members/{member}"),
            Some("startup"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let submit = json!({"project": project, "command": ["true"], "walltime_s": 60});
    let (status, v) = app.post("/api/v1/jobs", "startup-member", submit).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("not a member of this project"),
        "{v}"
    );
    assert_eq!(
        app.get(&format!("/api/v1/projects/{project}"), "startup-member")
            .await
            .0,
        StatusCode::OK
    );
}

/// Joining an organisation takes the person's consent: its admin invites an e-mail
/// address, learns nothing of whoever holds it, and only their acceptance makes them a
/// member.
#[tokio::test]
async fn membership_is_by_invitation_and_consent() {
    let app = app().await;
    let (_, me) = app.get("/api/v1/me", "startup").await;
    let org = me["memberships"][0]["org_id"].as_str().unwrap().to_string();
    let (_, them) = app.get("/api/v1/me", "research").await;
    let stranger = them["user"]["id"].as_str().unwrap().to_string();
    let email = them["user"]["email"].as_str().unwrap().to_string();
    // Adding someone directly is refused, and says how to invite instead.
    let (status, refused) = app
        .post(
            &format!("/api/v1/orgs/{org}/members"),
            "startup",
            json!({"user": stranger}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert!(refused["detail"].as_str().unwrap().contains("invitations"), "{refused}");
    assert!(!refused.to_string().contains(&email), "nothing about them: {refused}");
    // The invitation says what was asked, nothing of the person.
    let (status, invitation) = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            "startup",
            json!({"email": email.to_uppercase(), "role": "member"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{invitation}");
    assert_eq!(invitation["state"], "pending");
    assert!(
        invitation.get("name").is_none() && !invitation.to_string().contains(&stranger),
        "{invitation}"
    );
    let id = invitation["id"].as_str().unwrap();
    let (status, again) = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            "startup",
            json!({"email": email}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    let (_, members) = app.get(&format!("/api/v1/orgs/{org}/members"), "startup").await;
    assert!(!members.to_string().contains(&stranger), "not a member before consent");
    // The invitee sees it, with the organisation's name; nobody else can act on it.
    let (_, mine) = app.get("/api/v1/me/invitations", "research").await;
    assert_eq!(mine["items"][0]["id"], *id, "{mine}");
    assert_eq!(mine["items"][0]["org_name"], "Nebula Robotics");
    let (status, _) = app
        .post(&format!("/api/v1/invitations/{id}/accept"), "sme", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, accepted) = app
        .post(&format!("/api/v1/invitations/{id}/accept"), "research", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["state"], "accepted");
    let (_, after) = app.get("/api/v1/me", "research").await;
    assert!(
        after["memberships"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["org_id"] == *org && m["role"] == "member"),
        "{after}"
    );
    let (_, members) = app.get(&format!("/api/v1/orgs/{org}/members"), "startup").await;
    assert!(members.to_string().contains(&stranger), "a member once they accepted");
    let (status, twice) = app
        .post(&format!("/api/v1/invitations/{id}/decline"), "research", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{twice}");
    assert_eq!(twice["code"], "invitation-closed");
    // A revoked invitation cannot be accepted.
    let (_, other) = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations"),
            "startup",
            json!({"email": "sme@sme.example"}),
        )
        .await;
    let other = other["id"].as_str().unwrap();
    let (status, revoked) = app
        .post(
            &format!("/api/v1/orgs/{org}/invitations/{other}/revoke"),
            "startup",
            json!({}),
        )
        .await;
    assert_eq!((status, revoked["state"].as_str()), (StatusCode::OK, Some("revoked")));
    let (status, _) = app
        .post(&format!("/api/v1/invitations/{other}/accept"), "sme", json!({}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // Creating an account whose address is taken points to invitations, not to its owner.
    let (status, taken) = app
        .post(
            "/api/v1/users",
            "startup",
            json!({"email": "sme@sme.example", "name": "X", "org": org}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");
    assert!(taken["detail"].as_str().unwrap().contains("invite"), "{taken}");
}
