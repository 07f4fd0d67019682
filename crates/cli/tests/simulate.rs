//! `aifactory simulate` end to end: the real binary, real files, real output.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn aifactory(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aifactory"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("aifactory-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn compare_prints_one_json_report_per_policy_with_the_documented_keys() {
    let o = aifactory(&[
        "simulate",
        "--synthetic",
        "jobs=3000,gpus=256,seed=4",
        "--load",
        "0.9",
        "--compare",
        "fifo,sjf,multifactor,las,aifactory",
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let reports: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let policies: Vec<&str> = reports.iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert_eq!(policies, ["fifo", "sjf", "multifactor", "las", "aifactory"]);
    for r in &reports {
        for key in [
            "jobs_total",
            "jobs_completed",
            "makespan_s",
            "gpu_utilisation",
            "jain_fairness",
            "energy_kwh",
            "carbon_kg",
            "offered_load",
            "sim_wall_s",
        ] {
            assert!(r[key].is_number(), "{key} in {r}");
        }
        for key in ["jct_s", "wait_s"] {
            for stat in ["mean", "p50", "p95", "p99"] {
                assert!(r[key][stat].is_number(), "{key}.{stat}");
            }
        }
        assert!(r["wait_by_class_s"]["fast-lane"]["p95"].is_number());
        assert_eq!(r["jobs_total"], 3000);
        let load = r["offered_load"].as_f64().unwrap();
        assert!((load - 0.9).abs() < 0.01, "{load}");
        let util = r["gpu_utilisation"].as_f64().unwrap();
        assert!(util > 0.3 && util <= 1.0, "{util}");
    }
    // The same input under different policies gives different schedules.
    assert_ne!(reports[0]["jct_s"]["mean"], reports[1]["jct_s"]["mean"]);
}

#[test]
fn the_table_and_plots_are_written() {
    let dir = temp_dir("plots");
    let o = aifactory(&[
        "simulate",
        "--synthetic",
        "jobs=500,gpus=64,seed=1",
        "--compare",
        "fifo,aifactory",
        "--plot",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("mean JCT") && out.contains("fifo") && out.contains("aifactory"),
        "{out}"
    );
    for f in [
        "queue.svg",
        "utilisation.svg",
        "jct-cdf-fifo.svg",
        "wait-cdf-aifactory.svg",
    ] {
        let svg = std::fs::read_to_string(dir.join(f)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<polyline"), "{f}");
    }
}

#[test]
fn a_saved_trace_replays_identically_with_a_cluster_file() {
    let dir = temp_dir("roundtrip");
    let trace = dir.join("trace.csv");
    let cluster = repo_root().join("examples/cluster.toml");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "simulate",
            "--cluster",
            cluster.to_str().unwrap(),
            "--policy",
            "multifactor",
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        let o = aifactory(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let mut v: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
        v.as_object_mut().unwrap().remove("sim_wall_s");
        v.as_object_mut().unwrap().remove("trace");
        v
    };
    let generated = run(&[
        "--synthetic",
        "jobs=400,gpus=64,seed=9",
        "--save-trace",
        trace.to_str().unwrap(),
    ]);
    let replayed = run(&["--trace", trace.to_str().unwrap(), "--trace-format", "aifactory"]);
    assert_eq!(generated, replayed);
    assert_eq!(
        generated["cluster_gpus"], 384,
        "the cluster file replaces the generated one"
    );
}

#[test]
fn helios_logs_run_on_a_given_cluster_and_bad_rows_are_reported() {
    let dir = temp_dir("helios");
    let log = dir.join("helios.csv");
    std::fs::write(
        &log,
        "job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,end_time,duration,queue\n\
         1,u1,vcA,8,32,1,COMPLETED,1000,1010,4610,3600,0\n\
         2,u2,vcB,16,64,2,COMPLETED,1005,1100,2000,900,0\n\
         3,u3,vcB,two,4,1,COMPLETED,1010,1020,1050,30,0\n\
         4,u4,vcC,1,4,1,COMPLETED,1020,1030,1090,60,0\n",
    )
    .unwrap();
    let cluster = repo_root().join("examples/cluster.toml");
    let args = ["simulate", "--trace", log.to_str().unwrap(), "--trace-format", "helios"];
    let o = aifactory(&args);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--cluster"), "{}", stderr(&o));
    let mut with_cluster = args.to_vec();
    with_cluster.extend_from_slice(&["--cluster", cluster.to_str().unwrap(), "--output", "json"]);
    let o = aifactory(&with_cluster);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("line 4: `gpu_num` is not valid"), "{}", stderr(&o));
    let r: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(r["jobs_total"], 3);
    assert_eq!(r["rows_skipped"], 1);
    with_cluster.push("--strict");
    let o = aifactory(&with_cluster);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("line 4"), "{}", stderr(&o));
}

#[test]
fn a_workload_saved_as_a_helios_log_replays_on_the_clusters_file() {
    let dir = temp_dir("helios-save");
    let log = dir.join("log.csv");
    let o = aifactory(&[
        "simulate",
        "--synthetic",
        "jobs=300,gpus=512,seed=4",
        "--save-trace",
        log.to_str().unwrap(),
        "--save-format",
        "helios",
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.starts_with("job_id,user,vc,gpu_num,"), "{text}");
    let cluster = repo_root().join("examples/synthetic-512.toml");
    let o = aifactory(&[
        "simulate",
        "--trace",
        log.to_str().unwrap(),
        "--trace-format",
        "helios",
        "--cluster",
        cluster.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(r["jobs_total"], 300);
    assert_eq!(r["cluster_gpus"], 512, "the file is the synthetic cluster of 512 GPUs");
}

#[test]
fn the_alibaba_trace_runs_with_its_own_node_list() {
    let trace = repo_root().join("../shared/traces/alibaba-gpu-v2023");
    let o = aifactory(&[
        "simulate",
        "--trace",
        trace.to_str().unwrap(),
        "--trace-format",
        "alibaba-v2023",
        "--load",
        "0.9",
        "--cluster-fraction",
        "0.02",
        "--policy",
        "aifactory",
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(r["jobs_total"], 6203);
    assert_eq!(r["jobs_completed"], 6203);
    assert!(r["cluster_gpus"].as_u64().unwrap() < 200);
}

#[test]
fn bad_input_gets_a_clear_error_and_no_panic() {
    let cases: [(&[&str], &str); 6] = [
        (&["simulate"], "--synthetic"),
        (&["simulate", "--synthetic", "jobs=10"], "gpus"),
        (
            &["simulate", "--synthetic", "jobs=10,gpus=64", "--policy", "lottery"],
            "unknown policy",
        ),
        (&["simulate", "--synthetic", "jobs=10,gpus=64", "--load=-2"], "--load"),
        (
            &[
                "simulate",
                "--trace",
                "/nonexistent/x.csv",
                "--trace-format",
                "aifactory",
            ],
            "cannot read",
        ),
        (
            &[
                "simulate",
                "--synthetic",
                "jobs=10,gpus=64",
                "--cluster",
                "/nonexistent.toml",
            ],
            "reading cluster",
        ),
    ];
    for (args, expect) in cases {
        let o = aifactory(args);
        assert!(!o.status.success(), "{args:?}");
        let err = stderr(&o);
        assert!(err.contains(expect), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    let dir = temp_dir("badcluster");
    let bad = dir.join("c.toml");
    std::fs::write(
        &bad,
        "[[sites]]\nname = \"x\"\ncountry = \"Italy\"\ncarbon_g_per_kwh = 1\n",
    )
    .unwrap();
    let o = aifactory(&[
        "simulate",
        "--synthetic",
        "jobs=10,gpus=64",
        "--cluster",
        bad.to_str().unwrap(),
    ]);
    assert!(stderr(&o).contains("sites[0].country"), "{}", stderr(&o));
}

#[test]
fn forecasts_are_measured_in_replay() {
    let o = aifactory(&[
        "simulate",
        "--synthetic",
        "jobs=1500,gpus=64,seed=5,load=1.2",
        "--forecast-eval",
        "600",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("start-time forecasts under aifactory, taken every 600 s"),
        "{out}"
    );
    for row in [
        "at submission    walltime (Slurm)",
        "at submission    predicted",
        "while waiting    predicted",
    ] {
        assert!(out.contains(row), "{row}: {out}");
    }
    let o = aifactory(&[
        "simulate",
        "--synthetic",
        "jobs=1500,gpus=64,seed=5,load=1.2",
        "--forecast-eval",
        "--output",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(r["forecast"]["every_s"], 900, "the default interval");
    assert!(
        r["forecast"]["at_submission_predicted"]["samples"].as_u64().unwrap() > 0,
        "{r}"
    );
}
