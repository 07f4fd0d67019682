//! Alibaba cluster-trace-gpu-v2023 (Weng et al., ATC 2023).
//!
//! The trace has no users or walltimes, so this reader fills them in, stably per seed:
//! - account: one of 32 (`acct-00`..`acct-31`) by a hash of the task name, and each
//!   account's organisation type by `org_type_for`;
//! - class: `BE` (best effort) tasks are `preemptible` (and checkpointable); tasks of 8 or
//!   more GPUs are `large-scale`; other tasks of start-ups and SMEs are `fast-lane`; the
//!   rest `standard`;
//! - walltime: `walltime_for` (runtime times a factor in [1, 3), rounded up to 15 min).
//!
//! CPU-only tasks and tasks never scheduled in the trace (no runtime) are left out and
//! counted. A task of one GPU with `gpu_milli` under 1000 asks for that fraction; a task of
//! several GPUs is a pod, so it needs them on one node. The cluster is the GPU node list:
//! one site (`alibaba`, CN, PUE 1.25, 550 gCO2/kWh: China's grid average), nodes grouped
//! by 32 in list order since the trace gives no topology.

use super::{Columns, ReadOptions, Row, csv_reader, field, org_type_for, read_rows, walltime_for};
use crate::rng::stable_hash;
use crate::trace::{RowSink, Trace, TraceError, TraceJob};
use domain::{Cluster, GpuRequest, JobSpec, Node, OrgType, Partition, PriorityClass, Seconds, Site};

const ACCOUNTS: u64 = 32;
const NODES_PER_GROUP: usize = 32;

pub fn read(pods: &[u8], nodes: Option<&[u8]>, opts: ReadOptions) -> Result<Trace, TraceError> {
    let cluster = nodes.map(|n| read_nodes(n, opts)).transpose()?;
    let mut sink = RowSink::new(opts.strict);
    let required = [
        "name",
        "num_gpu",
        "gpu_milli",
        "qos",
        "creation_time",
        "scheduled_time",
        "deletion_time",
    ];
    let jobs = read_rows(pods, &required, &mut sink, |cols, row| task(cols, row, opts.seed))?
        .into_iter()
        .enumerate()
        .map(|(i, (_, (spec, submit, runtime)))| TraceJob {
            id: i as u64,
            submit,
            runtime_s: runtime,
            spec: *spec,
        })
        .collect();
    Ok(sink.finish("alibaba-v2023".into(), jobs, cluster))
}

/// A task as (spec, submit time, runtime).
fn task(cols: &Columns, row: &csv::StringRecord, seed: u64) -> Result<Row<(Box<JobSpec>, Seconds, Seconds)>, String> {
    let name = cols.get(row, "name").ok_or("`name` is empty")?;
    let num_gpu: u32 = field(cols.get(row, "num_gpu"), "num_gpu")?;
    if num_gpu == 0 {
        return Ok(Row::Exclude("CPU-only task"));
    }
    let Some(scheduled) = cols.get(row, "scheduled_time") else {
        return Ok(Row::Exclude("never scheduled in the trace, so no runtime"));
    };
    let scheduled: Seconds = field(Some(scheduled), "scheduled_time")?;
    let created: Seconds = field(cols.get(row, "creation_time"), "creation_time")?;
    let deleted: Seconds = field(cols.get(row, "deletion_time"), "deletion_time")?;
    if deleted < scheduled {
        return Err(format!("deletion_time {deleted} is before scheduled_time {scheduled}"));
    }
    let gpu_milli: u32 = field(cols.get(row, "gpu_milli"), "gpu_milli")?;
    let gpus = match (num_gpu, gpu_milli) {
        (_, 0) | (_, 1001..) => return Err(format!("gpu_milli {gpu_milli} is not in 1..=1000")),
        (1, m) if m < 1000 => GpuRequest::Fraction { milli: m },
        (n, _) => GpuRequest::Gang {
            nodes: 1,
            gpus_per_node: n,
        },
    };
    let qos = cols.get(row, "qos").unwrap_or("");
    let runtime = (deleted - scheduled).max(1);
    let account = format!("acct-{:02}", stable_hash(name, seed) % ACCOUNTS);
    let org_type = org_type_for(&account, seed);
    let best_effort = qos.eq_ignore_ascii_case("BE");
    let class = if best_effort {
        PriorityClass::Preemptible
    } else if num_gpu >= 8 {
        PriorityClass::LargeScale
    } else if matches!(org_type, OrgType::Startup | OrgType::Sme) {
        PriorityClass::FastLane
    } else {
        PriorityClass::Standard
    };
    // A single model is a constraint; "any of several" cannot be expressed yet, so it is dropped.
    let gpu_model = cols
        .get(row, "gpu_spec")
        .filter(|s| !s.contains('|'))
        .map(str::to_string);
    let mut spec = JobSpec::new(account, gpus, walltime_for(runtime, name, seed));
    spec.org_type = org_type;
    spec.class = class;
    spec.gpu_model = gpu_model;
    spec.preemptible = best_effort;
    spec.checkpointable = best_effort;
    spec.runtime_hint_s = Some(runtime);
    Ok(Row::Keep((Box::new(spec), created, runtime)))
}

fn read_nodes(bytes: &[u8], opts: ReadOptions) -> Result<Cluster, TraceError> {
    let mut rdr = csv_reader(bytes);
    let cols = Columns::new(
        rdr.headers()
            .map_err(|e| TraceError::Format(format!("node list: unreadable header: {e}")))?,
    );
    cols.require(&["sn", "gpu", "model"])?;
    let mut nodes = Vec::new();
    let mut sink = RowSink::new(opts.strict);
    for (i, row) in rdr.records().enumerate() {
        let line = i as u64 + 2;
        let parsed = row.map_err(|e| format!("unreadable row: {e}")).and_then(|row| {
            let gpus: u16 = field(cols.get(&row, "gpu"), "gpu")?;
            let name = cols.get(&row, "sn").ok_or("`sn` is empty")?.to_string();
            let model = cols.get(&row, "model").unwrap_or("unknown").to_string();
            let cpu: u64 = cols.get(&row, "cpu_milli").and_then(|v| v.parse().ok()).unwrap_or(0);
            let mem: u64 = cols.get(&row, "memory_mib").and_then(|v| v.parse().ok()).unwrap_or(0);
            Ok((name, gpus, model, cpu, mem))
        });
        match parsed {
            Ok((_, 0, ..)) => sink.exclude("node without GPUs"),
            Ok((name, gpus, model, cpu, mem)) => {
                let known = domain::gpu::lookup(&model);
                nodes.push(Node {
                    name,
                    site: 0,
                    partition: 0,
                    gpu_model: known.map_or(model, |m| m.name.to_string()),
                    gpus,
                    gpu_memory_gib: known.map_or(0, |m| m.memory_gib),
                    cpu_cores: (cpu / 1000) as u32,
                    ram_gib: (mem / 1024) as u32,
                    idle_w_per_gpu: known.map_or(domain::gpu::UNKNOWN_MODEL_IDLE_W, |m| m.idle_w),
                    busy_w_per_gpu: known.map_or(domain::gpu::UNKNOWN_MODEL_BUSY_W, |m| m.busy_w),
                    group: format!("group-{}", nodes.len() / NODES_PER_GROUP),
                });
            }
            Err(reason) => sink.bad(line, format!("node list: {reason}"))?,
        }
    }
    let cluster = Cluster {
        sites: vec![Site {
            name: "alibaba".into(),
            country: "CN".into(),
            pue_milli: 1250,
            carbon_g_per_kwh: 550,
            carbon_hourly_g_per_kwh: None,
            energy_price_eur_per_mwh: 90,
            gpu_hour_price_cents: None,
        }],
        partitions: vec![Partition {
            name: "default".into(),
            site: 0,
            max_walltime_s: None,
        }],
        nodes,
    };
    cluster
        .validate()
        .map_err(|e| TraceError::Format(format!("node list: {e}")))?;
    Ok(cluster)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PODS: &str =
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time
p0,1000,100,1,1000,,LS,Running,0,500,10
p1,1000,100,1,460,,BE,Failed,5,20,6
p2,1000,100,0,0,,LS,Running,5,20,6
p3,1000,100,1,1000,,BE,Pending,7,9,
p4,1000,100,8,1000,,LS,Succeeded,3,100,4
p5,1000,100,1,1000,,LS,Succeeded,9,1,4
p6,1000,100,two,1000,,LS,Succeeded,9,10,9
";
    const NODES: &str = "sn,cpu_milli,memory_mib,gpu,model\nn0,64000,262144,8,V100M32\nn1,96000,393216,2,G2\n";

    #[test]
    fn reads_tasks_maps_them_and_reports_bad_rows_with_line_numbers() {
        let t = read(
            PODS.as_bytes(),
            Some(NODES.as_bytes()),
            ReadOptions { strict: false, seed: 1 },
        )
        .unwrap();
        assert_eq!(t.jobs.len(), 3);
        assert_eq!(t.jobs.iter().map(|j| j.submit).collect::<Vec<_>>(), vec![0, 3, 5]);
        assert_eq!(t.jobs[0].runtime_s, 490);
        assert_eq!(t.jobs[1].spec.class, PriorityClass::LargeScale);
        assert_eq!(t.jobs[2].spec.gpus, GpuRequest::Fraction { milli: 460 });
        assert_eq!(t.jobs[2].spec.class, PriorityClass::Preemptible);
        assert!(t.jobs[2].spec.preemptible);
        assert_eq!(t.bad_rows_total, 2);
        assert_eq!(t.bad_rows[0].line, 7);
        assert!(t.bad_rows[0].reason.contains("deletion_time"), "{:?}", t.bad_rows);
        assert_eq!(t.bad_rows[1].line, 8);
        assert!(t.bad_rows[1].reason.contains("num_gpu"));
        assert_eq!(t.excluded.len(), 2);
        let c = t.cluster.unwrap();
        assert_eq!(c.total_gpus(), 10);
        assert_eq!(c.nodes[0].gpu_model, "V100-SXM2-32GB");
        assert_eq!(c.nodes[1].busy_w_per_gpu, domain::gpu::UNKNOWN_MODEL_BUSY_W);
    }

    #[test]
    fn strict_mode_fails_on_the_first_bad_row() {
        let err = read(PODS.as_bytes(), None, ReadOptions { strict: true, seed: 1 }).unwrap_err();
        assert!(err.to_string().starts_with("line 7:"), "{err}");
    }

    #[test]
    fn a_missing_column_is_named() {
        let err = read(b"name,num_gpu\np0,1\n", None, ReadOptions::default()).unwrap_err();
        assert!(err.to_string().contains("gpu_milli"), "{err}");
    }

    #[test]
    fn the_shared_trace_reads_with_its_documented_figures() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/traces/alibaba-gpu-v2023");
        if !dir.exists() {
            panic!("the shared traces are expected at {}", dir.display());
        }
        let t = super::super::read_path(super::super::TraceFormat::AlibabaV2023, &dir, ReadOptions::default()).unwrap();
        let c = t.cluster.as_ref().unwrap();
        assert_eq!(c.nodes.len(), 1213);
        assert_eq!(c.total_gpus(), 6212);
        assert_eq!(t.bad_rows_total, 0, "{:?}", t.bad_rows);
        let excluded: u64 = t.excluded.iter().map(|e| e.1).sum();
        assert_eq!(t.jobs.len() as u64 + excluded, 8152);
        let cpu_only = t.excluded.iter().find(|e| e.0 == "CPU-only task").unwrap().1;
        assert_eq!(cpu_only, 1088);
    }
}
