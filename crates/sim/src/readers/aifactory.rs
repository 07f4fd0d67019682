//! Our own trace format, as CSV (with a header) or JSON Lines; `docs/trace-format.md`
//! describes the fields.

use super::{Columns, ReadOptions, Row as Parsed, field, read_rows};
use crate::trace::{RowSink, Trace, TraceError, TraceJob};
use domain::{GpuRequest, JobId, JobSpec, OrgType, PriorityClass, Seconds};
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::fmt::Write as _;

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum IdValue {
    Text(String),
    Number(u64),
}

impl IdValue {
    fn into_string(self) -> String {
        match self {
            IdValue::Text(s) => s,
            IdValue::Number(n) => n.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    id: IdValue,
    submit_s: Seconds,
    account: String,
    org_type: Option<String>,
    class: Option<String>,
    gpus: u32,
    nodes: Option<u32>,
    gpu_milli: Option<u32>,
    gpu_model: Option<String>,
    site: Option<String>,
    partition: Option<String>,
    walltime_s: Seconds,
    runtime_s: Seconds,
    preemptible: Option<bool>,
    checkpointable: Option<bool>,
    #[serde(default)]
    depends_on: Vec<IdValue>,
    defer_window_s: Option<Seconds>,
}

pub fn read(bytes: &[u8], jsonl: bool, opts: ReadOptions) -> Result<Trace, TraceError> {
    let mut sink = RowSink::new(opts.strict);
    let mut rows: Vec<(u64, Row)> = Vec::new();
    if jsonl {
        for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
            let line_no = i as u64 + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Row>(line) {
                Ok(r) => rows.push((line_no, r)),
                Err(e) => sink.bad(line_no, format!("not a valid job object: {e}"))?,
            }
        }
    } else {
        let required = ["id", "submit_s", "account", "gpus", "walltime_s", "runtime_s"];
        rows = read_rows(bytes, &required, &mut sink, |cols, rec| {
            csv_row(cols, rec).map(Parsed::Keep)
        })?;
    }
    let mut index: FxHashMap<String, u64> = FxHashMap::default();
    let mut jobs = Vec::with_capacity(rows.len());
    for (line, row) in rows {
        let id = match &row.id {
            IdValue::Text(s) => s.clone(),
            IdValue::Number(n) => n.to_string(),
        };
        if index.contains_key(&id) {
            sink.bad(line, format!("duplicate id `{id}`"))?;
            continue;
        }
        match spec(row, &index) {
            Ok((submit, runtime, spec)) => {
                index.insert(id, jobs.len() as u64);
                jobs.push(TraceJob {
                    id: jobs.len() as u64,
                    submit,
                    runtime_s: runtime,
                    spec,
                });
            }
            Err(reason) => sink.bad(line, reason)?,
        }
    }
    Ok(sink.finish("aifactory".into(), jobs, None))
}

fn csv_row(cols: &Columns, rec: &csv::StringRecord) -> Result<Row, String> {
    let opt = |name: &str| cols.get(rec, name).map(str::to_string);
    let opt_num = |name: &str| cols.get(rec, name).map(|v| field::<u64>(Some(v), name)).transpose();
    let opt_bool = |name: &str| {
        cols.get(rec, name)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" => Ok(true),
                "false" | "0" | "no" => Ok(false),
                _ => Err(format!("`{name}` is not a boolean: `{v}`")),
            })
            .transpose()
    };
    Ok(Row {
        id: IdValue::Text(cols.get(rec, "id").ok_or("`id` is empty")?.to_string()),
        submit_s: field(cols.get(rec, "submit_s"), "submit_s")?,
        account: cols.get(rec, "account").ok_or("`account` is empty")?.to_string(),
        org_type: opt("org_type"),
        class: opt("class"),
        gpus: field(cols.get(rec, "gpus"), "gpus")?,
        nodes: opt_num("nodes")?.map(|n| n.min(u64::from(u32::MAX)) as u32),
        gpu_milli: opt_num("gpu_milli")?.map(|n| n.min(u64::from(u32::MAX)) as u32),
        gpu_model: opt("gpu_model"),
        site: opt("site"),
        partition: opt("partition"),
        walltime_s: field(cols.get(rec, "walltime_s"), "walltime_s")?,
        runtime_s: field(cols.get(rec, "runtime_s"), "runtime_s")?,
        preemptible: opt_bool("preemptible")?,
        checkpointable: opt_bool("checkpointable")?,
        depends_on: cols
            .get(rec, "depends_on")
            .map(|v| v.split(';').map(|s| IdValue::Text(s.trim().to_string())).collect())
            .unwrap_or_default(),
        defer_window_s: opt_num("defer_window_s")?,
    })
}

fn spec(row: Row, index: &FxHashMap<String, u64>) -> Result<(Seconds, Seconds, JobSpec), String> {
    let gpus = match (row.gpus, row.nodes, row.gpu_milli) {
        (0, ..) => return Err("`gpus` must be at least 1".into()),
        (1, None | Some(1), Some(m)) if m < 1000 => {
            if m == 0 {
                return Err("`gpu_milli` must be between 1 and 1000".into());
            }
            GpuRequest::Fraction { milli: m }
        }
        (_, _, Some(m)) if m != 1000 => return Err("`gpu_milli` under 1000 needs `gpus` = 1".into()),
        (g, None, _) => GpuRequest::Spread { gpus: g },
        (_, Some(0), _) => return Err("`nodes` must be at least 1".into()),
        (g, Some(n), _) if !g.is_multiple_of(n) => {
            return Err(format!("`gpus` {g} does not divide evenly over {n} nodes"));
        }
        (g, Some(n), _) => GpuRequest::Gang {
            nodes: n,
            gpus_per_node: g / n,
        },
    };
    let mut spec = JobSpec::new(row.account, gpus, row.walltime_s);
    if let Some(o) = row.org_type {
        spec.org_type = o.parse::<OrgType>().map_err(|e| format!("`org_type`: {e}"))?;
    }
    if let Some(c) = row.class {
        spec.class = c.parse::<PriorityClass>().map_err(|e| format!("`class`: {e}"))?;
    }
    spec.gpu_model = row.gpu_model;
    spec.site = row.site;
    spec.partition = row.partition;
    spec.preemptible = row.preemptible.unwrap_or(spec.class == PriorityClass::Preemptible);
    spec.checkpointable = row.checkpointable.unwrap_or(false);
    spec.defer_window_s = row.defer_window_s.unwrap_or(0);
    spec.runtime_hint_s = Some(row.runtime_s);
    for d in row.depends_on {
        let d = d.into_string();
        let &i = index
            .get(&d)
            .ok_or_else(|| format!("`depends_on` names `{d}`, which is not an earlier row"))?;
        spec.depends_on.push(JobId(i));
    }
    spec.validate().map_err(|e| format!("`{}`: {}", e.field, e.message))?;
    if row.runtime_s == 0 {
        return Err("`runtime_s` must be at least 1".into());
    }
    Ok((row.submit_s, row.runtime_s, spec))
}

/// Writes a trace in our CSV format (ids are the trace's indices).
pub fn write_csv(trace: &Trace) -> String {
    let mut out = String::from(
        "id,submit_s,account,org_type,class,gpus,nodes,gpu_milli,gpu_model,site,partition,walltime_s,runtime_s,preemptible,checkpointable,depends_on,defer_window_s\n",
    );
    for j in &trace.jobs {
        let s = &j.spec;
        let (gpus, nodes, milli) = match s.gpus {
            GpuRequest::Gang { nodes, gpus_per_node } => (nodes * gpus_per_node, nodes.to_string(), String::new()),
            GpuRequest::Spread { gpus } => (gpus, String::new(), String::new()),
            GpuRequest::Fraction { milli } => (1, String::new(), milli.to_string()),
        };
        let deps: Vec<String> = s.depends_on.iter().map(|d| d.0.to_string()).collect();
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            j.id,
            j.submit,
            s.account,
            s.org_type,
            s.class,
            gpus,
            nodes,
            milli,
            s.gpu_model.as_deref().unwrap_or(""),
            s.site.as_deref().unwrap_or(""),
            s.partition.as_deref().unwrap_or(""),
            s.walltime_s,
            j.runtime_s,
            s.preemptible,
            s.checkpointable,
            deps.join(";"),
            s.defer_window_s
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str =
        "id,submit_s,account,org_type,class,gpus,nodes,gpu_milli,walltime_s,runtime_s,depends_on,preemptible
train,0,acme,sme,fast-lane,16,2,,3600,1800,,
eval,10,acme,sme,standard,1,,250,600,60,train,
bad-class,20,acme,sme,gold,1,,,600,60,,
uneven,30,acme,,,5,2,,600,60,,
orphan,40,acme,,,1,,,600,60,nowhere,
bulk,50,uni,research,preemptible,4,,,600,60,,
";

    #[test]
    fn csv_rows_become_specs_and_bad_rows_say_why() {
        let t = read(CSV.as_bytes(), false, ReadOptions::default()).unwrap();
        assert_eq!(t.jobs.len(), 3);
        assert_eq!(
            t.jobs[0].spec.gpus,
            GpuRequest::Gang {
                nodes: 2,
                gpus_per_node: 8
            }
        );
        assert_eq!(t.jobs[0].spec.class, PriorityClass::FastLane);
        assert_eq!(t.jobs[1].spec.gpus, GpuRequest::Fraction { milli: 250 });
        assert_eq!(t.jobs[1].spec.depends_on, vec![JobId(0)]);
        assert!(t.jobs[2].spec.preemptible, "preemptible class implies the flag");
        let lines: Vec<u64> = t.bad_rows.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![4, 5, 6]);
        assert!(t.bad_rows[0].reason.contains("class"));
        assert!(t.bad_rows[1].reason.contains("divide"));
        assert!(t.bad_rows[2].reason.contains("nowhere"));
    }

    #[test]
    fn jsonl_reads_and_round_trips_through_csv() {
        let jsonl = r#"{"id": 1, "submit_s": 5, "account": "a", "gpus": 2, "walltime_s": 100, "runtime_s": 50}
{"id": "x", "submit_s": 9, "account": "b", "gpus": 1, "gpu_milli": 500, "walltime_s": 100, "runtime_s": 50, "depends_on": [1], "class": "playground"}
{"id": "y", "submit_s": 9, "account": "b", "gpus": 1, "walltime_s": 100, "runtime_s": 50, "colour": "red"}
not json
"#;
        let t = read(jsonl.as_bytes(), true, ReadOptions::default()).unwrap();
        assert_eq!(t.jobs.len(), 2);
        assert_eq!(t.bad_rows.iter().map(|b| b.line).collect::<Vec<_>>(), vec![3, 4]);
        let again = read(write_csv(&t).as_bytes(), false, ReadOptions::default()).unwrap();
        assert_eq!(again.bad_rows_total, 0, "{:?}", again.bad_rows);
        assert_eq!(again.jobs, t.jobs);
        assert!(read(jsonl.as_bytes(), true, ReadOptions { strict: true, seed: 0 }).is_err());
    }
}
