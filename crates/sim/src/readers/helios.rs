//! Helios/Philly-style job logs:
//! `job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,end_time,duration[,queue]`.
//!
//! Times are Unix seconds or `YYYY-MM-DD HH:MM:SS` (UTC) and are made relative to the
//! earliest submission. The account is the virtual cluster (`vc`, the group that owns a
//! share), falling back to the user; organisation types come from `org_type_for`. The
//! runtime is `duration`, or `end_time - start_time` when it is empty; the walltime, which
//! such logs lack, comes from `walltime_for`. Jobs without GPUs are left out. A job on
//! several nodes is a gang when its GPUs divide evenly, else a spread request. Every job is
//! `standard`: these logs carry no class. The cluster must be given with `--cluster`.

use super::{Columns, ReadOptions, Row, field, org_type_for, read_rows, walltime_for};
use crate::trace::{RowSink, Trace, TraceError, TraceJob};
use domain::{GpuRequest, JobSpec, Seconds};
use std::fmt::Write as _;

pub fn read(bytes: &[u8], opts: ReadOptions) -> Result<Trace, TraceError> {
    let mut sink = RowSink::new(opts.strict);
    let rows: Vec<(i64, Seconds, Box<JobSpec>)> =
        read_rows(bytes, &["job_id", "gpu_num", "submit_time"], &mut sink, |cols, row| {
            Ok(job(cols, row, opts.seed)?.map_or(Row::Exclude("job without GPUs"), Row::Keep))
        })?
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    let origin = rows.iter().map(|r| r.0).min().unwrap_or(0);
    let jobs = rows
        .into_iter()
        .enumerate()
        .map(|(i, (submit, runtime, spec))| TraceJob {
            id: i as u64,
            submit: (submit - origin) as Seconds,
            runtime_s: runtime,
            spec: *spec,
        })
        .collect();
    Ok(sink.finish("helios".into(), jobs, None))
}

fn job(cols: &Columns, row: &csv::StringRecord, seed: u64) -> Result<Option<(i64, Seconds, Box<JobSpec>)>, String> {
    let id = cols.get(row, "job_id").ok_or("`job_id` is empty")?;
    let gpus: u32 = field(cols.get(row, "gpu_num"), "gpu_num")?;
    if gpus == 0 {
        return Ok(None);
    }
    let nodes: u32 = match cols.get(row, "node_num") {
        Some(v) => field(Some(v), "node_num")?,
        None => 1,
    };
    let submit = time(cols.get(row, "submit_time"), "submit_time")?;
    let runtime: i64 = match cols.get(row, "duration") {
        Some(d) => field::<f64>(Some(d), "duration").map(|d| d.round() as i64)?,
        None => time(cols.get(row, "end_time"), "end_time")? - time(cols.get(row, "start_time"), "start_time")?,
    };
    if runtime < 0 {
        return Err(format!("negative runtime {runtime}"));
    }
    let runtime = (runtime as Seconds).max(1);
    let request = if nodes > 1 && gpus.is_multiple_of(nodes) {
        GpuRequest::Gang {
            nodes,
            gpus_per_node: gpus / nodes,
        }
    } else {
        GpuRequest::Spread { gpus }
    };
    let account = cols
        .get(row, "vc")
        .or_else(|| cols.get(row, "user"))
        .unwrap_or("default")
        .to_string();
    let mut spec = JobSpec::new(account, request, walltime_for(runtime, id, seed));
    spec.org_type = org_type_for(&spec.account, seed);
    spec.runtime_hint_s = Some(runtime);
    Ok(Some((submit, runtime, Box::new(spec))))
}

/// A workload as a Helios job log, for replaying it as such logs are replayed: what the
/// format has no column for (class, walltime, GPU model, fractions, dependencies) is lost,
/// a share of a GPU becomes a GPU, and the account is both `user` and `vc`.
pub fn write_csv(trace: &Trace) -> String {
    let mut out =
        String::from("job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,end_time,duration,queue\n");
    for j in &trace.jobs {
        let s = &j.spec;
        let (gpus, nodes) = match s.gpus {
            GpuRequest::Gang { nodes, gpus_per_node } => (nodes * gpus_per_node, nodes),
            GpuRequest::Spread { gpus } => (gpus, 1),
            GpuRequest::Fraction { .. } => (1, 1),
        };
        let _ = writeln!(
            out,
            "{},{},{},{gpus},{},{nodes},COMPLETED,{},,,{},",
            j.id,
            s.account,
            s.account,
            gpus * 4,
            j.submit,
            j.runtime_s
        );
    }
    out
}

/// Unix seconds, or `YYYY-MM-DD HH:MM:SS` read as UTC.
fn time(value: Option<&str>, name: &str) -> Result<i64, String> {
    let v = value.ok_or_else(|| format!("`{name}` is empty"))?;
    if let Ok(t) = v.parse::<i64>() {
        return Ok(t);
    }
    if let Ok(t) = v.parse::<f64>()
        && t.is_finite()
        && t.abs() < 1e15
    {
        return Ok(t.round() as i64);
    }
    parse_datetime(v).ok_or_else(|| format!("`{name}` is neither Unix seconds nor `YYYY-MM-DD HH:MM:SS`: `{v}`"))
}

fn parse_datetime(v: &str) -> Option<i64> {
    let (date, clock) = v.split_once([' ', 'T'])?;
    let mut d = date.splitn(3, '-').map(str::parse::<i64>);
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut c = clock.trim_end_matches('Z').splitn(3, ':').map(str::parse::<i64>);
    let (h, min, s) = (c.next()?.ok()?, c.next()?.ok()?, c.next().unwrap_or(Ok(0)).ok()?);
    if !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(0..24).contains(&h)
        || !(0..60).contains(&min)
        || !(0..=60).contains(&s)
        || !(1970..=9999).contains(&y)
    {
        return None;
    }
    // The day counts on from the first of the month, so a 30 February is 1 March, as the
    // tools that wrote such logs read it; the calendar is jiff's.
    let first = jiff::civil::Date::new(y as i16, m as i8, 1).ok()?;
    let date = first.checked_add(jiff::Span::new().days(day - 1)).ok()?;
    let midnight = jiff::tz::TimeZone::UTC
        .to_timestamp(date.to_datetime(jiff::civil::Time::midnight()))
        .ok()?;
    Some(midnight.as_second() + h * 3600 + min * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,end_time,duration,queue
j1,u1,vcA,8,32,1,COMPLETED,2020-04-01 00:00:10,2020-04-01 00:01:00,2020-04-01 01:01:00,3600,0
j2,u2,vcB,16,64,2,FAILED,2020-04-01 00:00:00,2020-04-01 00:00:30,2020-04-01 00:10:30,,0
j3,u3,vcB,0,4,1,COMPLETED,2020-04-01 00:00:05,2020-04-01 00:00:05,2020-04-01 00:00:50,45,0
j4,u4,vcC,3,12,2,COMPLETED,2020-04-01 00:00:20,2020-04-01 00:00:30,2020-04-01 00:10:30,600,0
j5,u5,vcC,1,1,1,COMPLETED,yesterday,x,y,10,0
";

    #[test]
    fn a_workload_written_as_a_helios_log_reads_back_as_such_logs_do() {
        let p: crate::SyntheticParams = "jobs=300,gpus=64,seed=2".parse().unwrap();
        let trace = crate::synthetic::generate(&p);
        let text = write_csv(&trace);
        let back = read(text.as_bytes(), ReadOptions::default()).unwrap();
        assert_eq!(back.bad_rows_total, 0);
        assert_eq!(back.jobs.len(), trace.jobs.len());
        let origin = trace.jobs[0].submit;
        for (a, b) in trace.jobs.iter().zip(&back.jobs) {
            assert_eq!(b.submit, a.submit - origin);
            assert_eq!(b.runtime_s, a.runtime_s);
            assert_eq!(b.spec.account, a.spec.account);
            // A share of a GPU becomes a GPU; the rest keeps its count.
            let gpus = a.spec.gpus.total_milli().div_ceil(1000);
            assert_eq!(b.spec.gpus.total_milli(), gpus * 1000, "job {}", a.id);
        }
    }

    #[test]
    fn reads_gangs_spreads_and_relative_times() {
        let t = read(LOG.as_bytes(), ReadOptions::default()).unwrap();
        assert_eq!(t.jobs.len(), 3);
        assert_eq!(
            t.jobs[0].spec.gpus,
            GpuRequest::Gang {
                nodes: 2,
                gpus_per_node: 8
            }
        );
        assert_eq!(t.jobs[0].submit, 0);
        assert_eq!(t.jobs[0].runtime_s, 600, "end - start when duration is empty");
        assert_eq!(t.jobs[1].submit, 10);
        assert_eq!(t.jobs[1].spec.account, "vcA");
        assert_eq!(t.jobs[2].spec.gpus, GpuRequest::Spread { gpus: 3 });
        assert_eq!(t.excluded, vec![("job without GPUs".to_string(), 1)]);
        assert_eq!(t.bad_rows_total, 1);
        assert_eq!(t.bad_rows[0].line, 6);
        assert!(t.bad_rows[0].reason.contains("submit_time"));
    }

    #[test]
    fn unix_times_and_dates_agree() {
        assert_eq!(parse_datetime("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_datetime("2020-04-01 00:00:10"), Some(1_585_699_210));
        assert_eq!(parse_datetime("2020-02-30 00:00"), Some(1_583_020_800)); // lenient day, like the logs' tools
        assert_eq!(parse_datetime("2020-13-01 00:00:00"), None);
        assert_eq!(time(Some("1585699210"), "t"), Ok(1_585_699_210));
    }
}
