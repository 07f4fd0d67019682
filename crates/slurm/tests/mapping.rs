//! The JSON mapping against slurmrestd answers of each API family (see fixtures/README.md).

use serde_json::{Value, json};
use slurm::mapping::*;

fn fixture(version: &str, name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{version}/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn request() -> JobRequest {
    JobRequest {
        name: "train".into(),
        partition: Some("gpu".into()),
        nodes: 2,
        gpus_per_node: 4,
        time_limit_s: 3601,
        account: Some("aif_startup".into()),
        qos: None,
        working_dir: "/data/jobs/job_1".into(),
        environment: vec![("AIFACTORY_JOB_ID".into(), "job_1".into())],
        script: "#!/bin/sh\nexec python train.py\n".into(),
        stdout: "/data/jobs/job_1/stdout.log".into(),
        stderr: "/data/jobs/job_1/stderr.log".into(),
        comment: "aifactory:job_1".into(),
        required_nodes: vec![],
    }
}

#[test]
fn the_highest_common_version_is_chosen() {
    assert_eq!(
        pick_version(&fixture("v0.0.38", "openapi-paths.json")).unwrap(),
        ApiVersion::V0038
    );
    assert_eq!(
        pick_version(&fixture("v0.0.40", "openapi-paths.json")).unwrap(),
        ApiVersion::V0041
    );
    let only_new = json!({"paths": {"/slurm/v0.0.44/job/submit": {}, "/slurm/v0.0.44/jobs": {}}});
    let err = pick_version(&only_new).unwrap_err().to_string();
    assert!(err.contains("v0.0.44") && err.contains("v0.0.38 to v0.0.42"), "{err}");
}

#[test]
fn submissions_take_each_versions_shape() {
    let old = submit_body(ApiVersion::V0038, &request()).unwrap();
    assert_eq!(old["job"]["nodes"], 2);
    assert_eq!(old["job"]["gres"], "gpu:4");
    assert_eq!(old["job"]["time_limit"], 61, "minutes, rounded up");
    assert_eq!(old["job"]["environment"]["AIFACTORY_JOB_ID"], "job_1");
    assert_eq!(old["job"]["account"], "aif_startup");
    assert!(old["job"].get("qos").is_none());
    assert_eq!(old["script"], "#!/bin/sh\nexec python train.py\n");
    let new = submit_body(ApiVersion::V0040, &request()).unwrap();
    assert_eq!(new["job"]["nodes"], "2");
    assert_eq!(new["job"]["tres_per_node"], "gres/gpu:4");
    assert_eq!(
        new["job"]["time_limit"],
        json!({"set": true, "infinite": false, "number": 61})
    );
    assert_eq!(new["job"]["environment"], json!(["AIFACTORY_JOB_ID=job_1"]));
    assert_eq!(new["job"]["script"], "#!/bin/sh\nexec python train.py\n");
    assert!(new.get("script").is_none());
    assert_eq!(
        submit_body(ApiVersion::V0039, &request()).unwrap()["script"],
        new["job"]["script"]
    );
    let pinned = JobRequest {
        required_nodes: vec!["gpu-01".into(), "gpu-02".into()],
        ..request()
    };
    assert_eq!(
        submit_body(ApiVersion::V0041, &pinned).unwrap()["job"]["required_nodes"],
        json!(["gpu-01", "gpu-02"])
    );
    let err = submit_body(ApiVersion::V0038, &pinned).unwrap_err().to_string();
    assert!(err.contains("cannot pin"), "{err}");
}

#[test]
fn submit_answers_and_refusals() {
    let ok = |id| Submitted {
        job_id: Some(id),
        error: None,
    };
    assert_eq!(parse_submit(&fixture("v0.0.38", "submit.json")), ok(6));
    assert_eq!(parse_submit(&fixture("v0.0.40", "submit.json")), ok(6_080_228));
    let refused = parse_submit(&fixture("v0.0.38", "submit-refused.json"));
    assert_eq!(refused.job_id, None);
    assert!(refused.error.unwrap().contains("required_nodes"));
    let queued_but = parse_submit(&fixture("v0.0.38", "submit-queued-with-error.json"));
    assert_eq!(queued_but.job_id, Some(13));
    assert!(
        queued_but
            .error
            .unwrap()
            .contains("partition configuration not available")
    );
}

fn by_comment(jobs: &[JobStatus], comment: &str) -> JobStatus {
    jobs.iter().find(|j| j.comment == comment).unwrap().clone()
}

#[test]
fn v0038_jobs_recorded_from_slurm_22_05() {
    let jobs = parse_jobs(&fixture("v0.0.38", "jobs.json")).unwrap();
    let failed = by_comment(&jobs, "aifactory:job_123");
    assert_eq!(
        (failed.state, failed.exit_code, failed.signal),
        (JobState::Failed, Some(3), None)
    );
    assert_eq!(failed.stdout, "/tmp/sjob/out.log");
    assert!(failed.start_time.is_some() && failed.end_time.is_some());
    let done = by_comment(&jobs, "aifactory:job_run");
    assert_eq!((done.state, done.exit_code), (JobState::Completed, Some(0)));
    let timeout = by_comment(&jobs, "aifactory:job_timeout");
    assert_eq!((timeout.state, timeout.signal), (JobState::Timeout, Some(15)));
    assert_eq!(timeout.reason, "TimeLimit");
    let cancelled = by_comment(&jobs, "aifactory:job_ok");
    assert_eq!(cancelled.state, JobState::Cancelled);
    let running = by_comment(&jobs, "aifactory:job_pend");
    assert_eq!(running.state, JobState::Running);
    assert!(!running.state.is_final() && JobState::Timeout.is_final());
    assert_eq!(running.nodes, "vm");
}

#[test]
fn v0040_jobs_in_slurm_23_11_shapes() {
    let jobs = parse_jobs(&fixture("v0.0.40", "jobs.json")).unwrap();
    assert_eq!(jobs.len(), 7);
    let running = by_comment(&jobs, "aifactory:job_running");
    assert_eq!(running.state, JobState::Running);
    assert_eq!(running.gpus, vec![vec![0, 1, 2, 3]]);
    assert_eq!(running.start_time, Some(1_711_534_808));
    assert_eq!(running.stdout, "/var/lib/aifactory/jobs/job_running/stdout.log");
    let failed = by_comment(&jobs, "aifactory:job_failed");
    assert_eq!(
        (failed.state, failed.exit_code, failed.signal),
        (JobState::Failed, Some(3), None)
    );
    let timeout = by_comment(&jobs, "aifactory:job_timeout");
    assert_eq!(
        (timeout.state, timeout.exit_code, timeout.signal),
        (JobState::Timeout, Some(143), Some(15))
    );
    let cancelled = by_comment(&jobs, "aifactory:job_cancelled");
    assert_eq!((cancelled.state, cancelled.signal), (JobState::Cancelled, Some(9)));
    let waiting = by_comment(&jobs, "aifactory:job_waiting");
    assert_eq!(
        (waiting.state, waiting.start_time, waiting.reason.as_str()),
        (JobState::Pending, None, "Resources")
    );
    let other = jobs.iter().find(|j| j.name == "someone-elses").unwrap();
    assert_eq!(other.gpus, vec![vec![1, 3]]);
}

#[test]
fn nodes_of_both_families() {
    let old = parse_nodes(&fixture("v0.0.38", "nodes.json")).unwrap();
    assert_eq!(old.len(), 1);
    assert_eq!((old[0].gpus, old[0].gpu_type.as_deref()), (8, Some("h100")));
    assert_eq!(old[0].partitions, ["gpu"]);
    let drained = parse_nodes(&fixture("v0.0.38", "nodes-drained.json")).unwrap();
    assert_eq!(drained[0].state, NodeState::Drained);
    assert_eq!(drained[0].reason, "maintenance by test");
    assert_eq!(drained[0].gpus_used, 4);
    let new = parse_nodes(&fixture("v0.0.40", "nodes.json")).unwrap();
    let states: Vec<(&str, NodeState, u16, u16)> = new
        .iter()
        .map(|n| (n.name.as_str(), n.state, n.gpus, n.gpus_used))
        .collect();
    assert_eq!(
        states,
        [
            ("lrdn0001", NodeState::Mixed, 4, 4),
            ("lrdn0002", NodeState::Idle, 4, 0),
            ("lrdn0003", NodeState::Drained, 4, 0),
            ("lrdn0004", NodeState::Down, 4, 0),
            ("lrdn0005", NodeState::Allocated, 4, 2),
        ]
    );
    assert_eq!(new[2].reason, "fan failure");
}

#[test]
fn gres_strings() {
    assert_eq!(gpu_gres("gpu:h100:8"), (Some("h100".into()), 8));
    assert_eq!(gpu_gres("gpu:4"), (None, 4));
    assert_eq!(gpu_gres("gpu:a100:4(S:0-1),tmpdisk:100"), (Some("a100".into()), 4));
    assert_eq!(gpu_gres("(null)"), (None, 0));
    assert_eq!(gpu_indices("gpu:h100:4(IDX:0-3)"), [0, 1, 2, 3]);
    assert_eq!(gpu_indices("gpu:a100:3(IDX:0,2-3)"), [0, 2, 3]);
    assert_eq!(gpu_indices("gpu:a100:0(IDX:N/A)"), Vec::<u16>::new());
    assert_eq!(minutes(1), 1);
    assert_eq!(minutes(60), 1);
    assert_eq!(minutes(61), 2);
}

#[test]
fn an_answer_with_errors_is_never_an_empty_list() {
    // Recorded with slurmctld stopped: HTTP 500, an error, and an empty job list.
    let raw = std::fs::read_to_string(format!(
        "{}/tests/fixtures/v0.0.38/jobs-slurmctld-down.http",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    assert!(raw.starts_with("HTTP/1.1 500"));
    let body: Value = serde_json::from_str(&raw[raw.find('{').unwrap()..]).unwrap();
    assert_eq!(body["jobs"], json!([]));
    let err = parse_jobs(&body).unwrap_err().to_string();
    assert!(err.contains("Failed while looking for jobs"), "{err}");
}

#[test]
fn the_user_of_a_slurm_token_is_its_sun_claim() {
    // {"alg":"HS256"} . {"exp":1,"iat":0,"sun":"alice"} . signature, as `scontrol token` makes them
    let token = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjEsImlhdCI6MCwic3VuIjoiYWxpY2UifQ.c2ln";
    assert_eq!(slurm::token_user(token).as_deref(), Some("alice"));
    assert_eq!(slurm::token_user(&format!("{token}\n")).as_deref(), Some("alice"));
    assert_eq!(slurm::token_user("not-a-token"), None);
    assert_eq!(slurm::token_user("a.eyJleHAiOjF9.b"), None, "no sun claim");
}

/// An answer recorded with its status line (`HTTP/1.1 500`, blank line, body).
fn recorded_http(path: &str) -> (u16, Value) {
    let raw = std::fs::read_to_string(format!("{}/tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let status = raw.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(&raw[raw.find('{').unwrap()..]).unwrap())
}

/// Every v0.0.4x version of a real Slurm 24.11.5, recorded by scripts/record-slurm-fixtures.py.
#[test]
fn slurm_24_11_answers_recorded_for_every_version() {
    assert_eq!(
        pick_version(&fixture("24.11", "openapi-paths.json")).unwrap(),
        ApiVersion::V0042
    );
    for (i, version) in ["v0.0.40", "v0.0.41", "v0.0.42"].into_iter().enumerate() {
        let at = |name: &str| fixture(&format!("24.11/{version}"), name);
        let http = |name: &str| recorded_http(&format!("24.11/{version}/{name}"));
        assert_eq!(ping_answered(&at("ping.json")), Ok(()), "{version}");
        // Job ids 5, 7, 9: one completed submission per version, each after a refused gang.
        assert_eq!(
            parse_submit(&at("submit.json")),
            Submitted {
                job_id: Some(5 + 2 * i as u64),
                error: None
            },
            "{version}"
        );
        let (status, refused) = http("submit-refused.http");
        assert_eq!(status, 500, "a refusal comes as HTTP 500 since 23.11");
        assert!(is_refusal(&refused), "{version}: not to be retried as an outage");
        assert!(
            errors(&refused)
                .unwrap()
                .contains("Requested node configuration is not available")
        );
        let jobs = parse_jobs(&at("jobs.json")).unwrap();
        assert_eq!(jobs.len(), 11, "{version}");
        let failed = by_comment(&jobs, "aifactory:job_failed");
        assert_eq!(
            (failed.state, failed.exit_code, failed.signal, failed.reason.as_str()),
            (JobState::Failed, Some(3), None, "NonZeroExitCode"),
            "{version}"
        );
        let running = by_comment(&jobs, "aifactory:job_running");
        assert_eq!(
            (running.state.clone(), running.nodes.as_str()),
            (JobState::Running, "vm")
        );
        assert_eq!(running.gpus, [[1, 2, 3, 4]], "{version}: gres_detail");
        assert_eq!(running.stdout, "/tmp/aifactory-fixtures/job_running.out");
        // While it runs, Slurm's end_time is a projection (start + the limit): not an end.
        assert_eq!(running.end_time, None, "{running:?}");
        let cancelled = by_comment(&jobs, "aifactory:job_cancelled");
        assert_eq!((cancelled.state, cancelled.signal), (JobState::Cancelled, Some(15)));
        let timeout = by_comment(&jobs, "aifactory:job_timeout");
        assert_eq!(
            (timeout.state, timeout.signal, timeout.reason.as_str()),
            (JobState::Timeout, Some(15), "TimeLimit"),
            "{version}"
        );
        let completed = by_comment(&jobs, &format!("aifactory:job_completed_{version}"));
        assert_eq!((completed.state, completed.exit_code), (JobState::Completed, Some(0)));
        assert!(completed.end_time >= completed.start_time);
        // A refused submission still leaves a job record behind, failed at once.
        let gang = by_comment(&jobs, "aifactory:job_gang");
        assert_eq!((gang.state, gang.reason.as_str()), (JobState::Failed, "BadConstraints"));
        // Waiting: no start, but Slurm's forecast (the running 10-minute job's end).
        let waiting = by_comment(&jobs, "aifactory:job_waiting");
        assert_eq!(
            (waiting.state, waiting.start_time, waiting.reason.as_str()),
            (JobState::Pending, None, "Resources"),
            "{version}"
        );
        assert_eq!(waiting.expected_start, running.start_time.map(|t| t + 600));
        let nodes = parse_nodes(&at("nodes.json")).unwrap();
        assert_eq!(nodes.len(), 1);
        let node = &nodes[0];
        assert_eq!(
            (node.state, node.gpus, node.gpus_used, node.gpu_type.as_deref()),
            (NodeState::Mixed, 8, 4, Some("h100")),
            "{version}: {node:?}"
        );
        assert_eq!(node.partitions, ["gpu"]);
        let drained = &parse_nodes(&at("nodes-drained.json")).unwrap()[0];
        assert_eq!(
            (drained.state, drained.reason.as_str()),
            (NodeState::Drained, "maintenance by test"),
            "{version}: MIXED+DRAIN is drained"
        );
        // slurmctld stopped: HTTP 502, a communication error (1800), an empty list that
        // must not be taken for "no jobs", and not a refusal: retried.
        let (status, down) = http("jobs-slurmctld-down.http");
        assert_eq!(status, 502);
        assert_eq!(down["jobs"], json!([]));
        assert!(
            parse_jobs(&down)
                .unwrap_err()
                .to_string()
                .contains("Unable to contact slurm controller")
        );
        assert!(!is_refusal(&down) && !is_auth_error(&down));
        // A token slurmctld does not take: HTTP 511 with error 1007 for jobs; a ping is
        // HTTP 200 with the controller "DOWN" and no error at all.
        let (status, bad) = http("jobs-bad-token.http");
        assert_eq!(status, 511);
        assert!(is_auth_error(&bad) && !is_refusal(&bad), "{version}");
        let err = ping_answered(&at("ping-bad-token.json")).unwrap_err();
        assert!(err.contains("DOWN"), "{err}");
    }
}

#[test]
fn refusals_that_no_retry_can_help_are_told_apart() {
    use slurm::SlurmError;
    let lasting = |body: &Value| matches!(refusal(body, String::new()), SlurmError::Invalid(_));
    // Recorded: a node configuration no node has (24.11, 2014) and a key 22.05 disables
    // (its parse error 9001) will never pass; a partition configuration "not available
    // now" (22.05, 2015) may.
    for version in ["v0.0.40", "v0.0.41", "v0.0.42"] {
        assert!(lasting(
            &recorded_http(&format!("24.11/{version}/submit-refused.http")).1
        ));
    }
    assert!(lasting(&fixture("v0.0.38", "submit-refused.json")));
    assert!(!lasting(&fixture("v0.0.38", "submit-queued-with-error.json")));
    // Right after slurmctld restarts: "Required node not available" (2068).
    let node_not_available =
        json!({"errors": [{"error_number": 2068, "error": "Required node not available (down, drained or reserved)"}]});
    assert!(!lasting(&node_not_available));
    let unknown_account = json!({"errors": [{"error_number": 2045, "error": "Invalid account or account/partition combination specified"}]});
    let err = refusal(&unknown_account, errors(&unknown_account).unwrap());
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        "Slurm refused the job as asked: Invalid account or account/partition combination specified"
    );
}

#[test]
fn hostlists_expand() {
    assert_eq!(expand_hostlist("vm"), ["vm"]);
    assert_eq!(
        expand_hostlist("gpu[01-03,07],login1"),
        ["gpu01", "gpu02", "gpu03", "gpu07", "login1"]
    );
    assert_eq!(expand_hostlist(""), Vec::<String>::new());
}
