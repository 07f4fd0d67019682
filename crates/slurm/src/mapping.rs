//! What we send to slurmrestd and what we read back, per API version; pure functions over
//! JSON, tested against responses recorded from real Slurm.
//!
//! Two families of shapes exist. `v0.0.38` (Slurm 22.05): plain integers, `job_state` a
//! string, `exit_code` a wait status, `environment` an object, node count `[min, max]`,
//! and no way to pin a job to nodes (`required_nodes` is a disabled key). `v0.0.39`
//! onwards (23.02 to 24.11): numbers as `{"set", "infinite", "number"}`, `job_state` and
//! node `state` arrays of flags (from v0.0.40), `exit_code` an object with `return_code`
//! and `signal`, `environment` a list of `K=V`, GPUs as `tres_per_node`.

use crate::SlurmError;
use serde_json::{Value, json};

/// The API versions we speak, oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ApiVersion {
    V0038,
    V0039,
    V0040,
    V0041,
    V0042,
}

impl ApiVersion {
    pub const ALL: [ApiVersion; 5] = [
        ApiVersion::V0038,
        ApiVersion::V0039,
        ApiVersion::V0040,
        ApiVersion::V0041,
        ApiVersion::V0042,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V0038 => "v0.0.38",
            ApiVersion::V0039 => "v0.0.39",
            ApiVersion::V0040 => "v0.0.40",
            ApiVersion::V0041 => "v0.0.41",
            ApiVersion::V0042 => "v0.0.42",
        }
    }

    /// Whether jobs can be pinned to named nodes (`required_nodes`).
    pub fn can_pin_nodes(self) -> bool {
        self >= ApiVersion::V0039
    }
}

/// The highest version both slurmrestd (from its OpenAPI document's paths) and we support.
pub fn pick_version(openapi: &Value) -> Result<ApiVersion, SlurmError> {
    let paths = openapi
        .get("paths")
        .and_then(Value::as_object)
        .ok_or_else(|| SlurmError::Protocol("the OpenAPI document has no paths".into()))?;
    let offered: Vec<&str> = paths
        .keys()
        .filter_map(|p| p.strip_prefix("/slurm/"))
        .filter_map(|p| p.split('/').next())
        .collect();
    ApiVersion::ALL
        .iter()
        .rev()
        .copied()
        .find(|v| offered.contains(&v.as_str()) && paths.contains_key(&format!("/slurm/{}/job/submit", v.as_str())))
        .ok_or_else(|| {
            let mut seen: Vec<&str> = offered.clone();
            seen.sort_unstable();
            seen.dedup();
            SlurmError::Unsupported(format!(
                "slurmrestd offers {seen:?}; aifactory speaks v0.0.38 to v0.0.42 (load one with -s openapi/...)"
            ))
        })
}

/// A batch job as we submit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRequest {
    pub name: String,
    pub partition: Option<String>,
    pub nodes: u32,
    pub gpus_per_node: u32,
    pub time_limit_s: u64,
    pub account: Option<String>,
    pub qos: Option<String>,
    pub working_dir: String,
    pub environment: Vec<(String, String)>,
    pub script: String,
    pub stdout: String,
    pub stderr: String,
    /// Carries our job id, to find the job again after a restart.
    pub comment: String,
    /// Pin to these nodes (when aifactory schedules); empty lets Slurm choose.
    pub required_nodes: Vec<String>,
}

/// Slurm time limits are whole minutes: round up, so a job never gets less than asked.
pub fn minutes(seconds: u64) -> u64 {
    seconds.div_ceil(60).max(1)
}

fn no_val(n: u64) -> Value {
    json!({"set": true, "infinite": false, "number": n})
}

/// The body of `POST /slurm/<version>/job/submit`.
pub fn submit_body(version: ApiVersion, job: &JobRequest) -> Result<Value, SlurmError> {
    let mut desc = json!({
        "name": job.name,
        "current_working_directory": job.working_dir,
        "standard_output": job.stdout,
        "standard_error": job.stderr,
        "comment": job.comment,
    });
    for (key, value) in [
        ("partition", &job.partition),
        ("account", &job.account),
        ("qos", &job.qos),
    ] {
        if let Some(v) = value {
            desc[key] = json!(v);
        }
    }
    if version == ApiVersion::V0038 {
        if !job.required_nodes.is_empty() {
            return Err(SlurmError::Unsupported(
                "Slurm's REST API v0.0.38 (Slurm 22.05) cannot pin a job to nodes: use the `slurm` scheduling mode, or Slurm 23.02 or later".into(),
            ));
        }
        // The OpenAPI document says `[min, max]`, but 22.05 ignores an array (the job gets
        // one node); an integer is the minimum node count, which it honours.
        desc["nodes"] = json!(job.nodes);
        desc["time_limit"] = json!(minutes(job.time_limit_s));
        desc["environment"] = Value::Object(job.environment.iter().map(|(k, v)| (k.clone(), json!(v))).collect());
        if job.gpus_per_node > 0 {
            desc["gres"] = json!(format!("gpu:{}", job.gpus_per_node));
        }
        return Ok(json!({"job": desc, "script": job.script}));
    }
    desc["nodes"] = json!(job.nodes.to_string());
    desc["time_limit"] = no_val(minutes(job.time_limit_s));
    desc["environment"] = json!(
        job.environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
    );
    if job.gpus_per_node > 0 {
        desc["tres_per_node"] = json!(format!("gres/gpu:{}", job.gpus_per_node));
    }
    if !job.required_nodes.is_empty() {
        desc["required_nodes"] = json!(job.required_nodes);
    }
    if version >= ApiVersion::V0040 {
        desc["script"] = json!(job.script);
        Ok(json!({"job": desc}))
    } else {
        Ok(json!({"job": desc, "script": job.script}))
    }
}

/// The errors slurmrestd put in an answer, as one message; `None` if there are none.
pub fn errors(body: &Value) -> Option<String> {
    let errors = body.get("errors")?.as_array()?;
    let messages: Vec<String> = errors
        .iter()
        .map(|e| {
            let text = |k: &str| e.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
            match (text("description"), text("error")) {
                (Some(d), Some(err)) => format!("{d} ({err})"),
                (Some(d), None) => d.to_string(),
                (None, Some(err)) => err.to_string(),
                (None, None) => e.to_string(),
            }
        })
        .collect();
    (!messages.is_empty()).then(|| messages.join("; "))
}

/// Whether a ping answer says slurmctld answered: v0.0.38 `"ping": "UP"`, v0.0.40+
/// `"pinged": "UP"` and `"responding": true`. Since 23.11 a ping slurmctld refused (a
/// token it does not take) is HTTP 200 with `"pinged": "DOWN"` and no error.
pub fn ping_answered(body: &Value) -> Result<(), String> {
    if let Some(e) = errors(body) {
        return Err(e);
    }
    let pings = body.get("pings").and_then(Value::as_array).cloned().unwrap_or_default();
    let up = |p: &Value| {
        let state = p.get("pinged").or_else(|| p.get("ping")).and_then(Value::as_str);
        state == Some("UP") && p.get("responding").and_then(Value::as_bool) != Some(false)
    };
    if pings.iter().any(up) {
        Ok(())
    } else {
        Err(format!("slurmctld does not answer the ping: {}", Value::Array(pings)))
    }
}

/// Whether Slurm's errors say it refused the caller's credentials (a token slurmctld does
/// not accept: `Protocol authentication error`, 1007), as opposed to being away.
pub fn is_auth_error(body: &Value) -> bool {
    error_numbers(body).any(|n| n == 1007)
}

/// The numbers of an answer's errors: `error_number`, or the `error_code` of v0.0.38's
/// parse errors.
pub(crate) fn error_numbers(body: &Value) -> impl Iterator<Item = i64> + '_ {
    body.get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            e.get("error_number")
                .or_else(|| e.get("error_code"))
                .and_then(Value::as_i64)
        })
}

/// Whether Slurm's errors are slurmctld's own objections to the request (`ESLURM_*`
/// codes, 2000 and up: bad partition, node configuration not available, parse failures)
/// rather than trouble reaching it. Since 23.11 such a refusal comes as HTTP 500.
pub fn is_refusal(body: &Value) -> bool {
    error_numbers(body).any(|n| (2000..=9999).contains(&n))
}

/// Slurm's codes for a request it will never take as it is (slurm_errno.h): an invalid
/// partition (2000), access denied (2002), too many CPUs (2005), a bad node count (2006),
/// no script (2009), a path too long (2012), a node configuration no node has (2014), an
/// unknown node (2018), an invalid account (2045), licenses (2048), time limit (2051),
/// wckey (2057), QoS (2066), GRES (2072), burst buffer (2094), TRES (2115), a topology it
/// lacks (2178), and the REST layer's parse errors (9000 and up). Others, such as a
/// partition configuration not available *now* (2015), busy nodes (2016) or a node not
/// available (2068, right after slurmctld restarts), may pass later.
const LASTING_REFUSALS: &[i64] = &[
    2000, 2002, 2005, 2006, 2009, 2012, 2014, 2018, 2045, 2048, 2051, 2057, 2066, 2072, 2094, 2115, 2178,
];

/// The error for an answer in which Slurm objected: [`SlurmError::Invalid`] when no retry
/// can help, else [`SlurmError::Refused`].
pub fn refusal(body: &Value, message: String) -> SlurmError {
    if error_numbers(body).any(|n| LASTING_REFUSALS.contains(&n) || (9000..=9999).contains(&n)) {
        SlurmError::Invalid(message)
    } else {
        SlurmError::Refused(message)
    }
}

/// What a submission answered: the job it created, and what Slurm objected to. Both can
/// come at once: a job Slurm queued but says cannot run as asked (22.05 answers a request
/// for more nodes than the partition has with a job id and error 2015).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submitted {
    pub job_id: Option<u64>,
    pub error: Option<String>,
}

pub fn parse_submit(body: &Value) -> Submitted {
    Submitted {
        job_id: body
            .get("job_id")
            .and_then(number)
            .and_then(|n| u64::try_from(n).ok())
            .filter(|&n| n > 0),
        error: errors(body),
    }
}

/// An integer, plain (v0.0.38) or `{"set": true, "number": n}` (later); `None` when unset
/// or infinite.
pub fn number(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::Object(o) => {
            let set = o.get("set").and_then(Value::as_bool).unwrap_or(true);
            let infinite = o.get("infinite").and_then(Value::as_bool).unwrap_or(false);
            if set && !infinite {
                o.get("number").and_then(number)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// A job's base state (the first of v0.0.40's flag list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    Suspended,
    Completing,
    Completed,
    Failed,
    Timeout,
    Cancelled,
    NodeFail,
    Preempted,
    BootFail,
    Deadline,
    OutOfMemory,
    Other(String),
}

impl JobState {
    pub fn parse(s: &str) -> JobState {
        match s.to_ascii_uppercase().as_str() {
            "PENDING" | "CONFIGURING" | "REQUEUED" | "REQUEUE_HOLD" | "REQUEUE_FED" | "RESV_DEL_HOLD" => {
                JobState::Pending
            }
            "RUNNING" => JobState::Running,
            "SUSPENDED" | "STOPPED" => JobState::Suspended,
            "COMPLETING" => JobState::Completing,
            "COMPLETED" => JobState::Completed,
            "FAILED" => JobState::Failed,
            "TIMEOUT" => JobState::Timeout,
            "CANCELLED" => JobState::Cancelled,
            "NODE_FAIL" => JobState::NodeFail,
            "PREEMPTED" => JobState::Preempted,
            "BOOT_FAIL" => JobState::BootFail,
            "DEADLINE" => JobState::Deadline,
            "OUT_OF_MEMORY" => JobState::OutOfMemory,
            other => JobState::Other(other.to_string()),
        }
    }

    /// The job is over and will not run again by itself.
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            JobState::Pending | JobState::Running | JobState::Suspended | JobState::Completing
        )
    }
}

/// One job as slurmctld reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobStatus {
    pub slurm_id: u64,
    pub name: String,
    pub comment: String,
    pub state: JobState,
    pub reason: String,
    /// The batch script's exit code, once it has one.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// When it started; none while it waits (Slurm's answer then holds a forecast).
    pub start_time: Option<u64>,
    /// When it ended; none until it has (Slurm's answer holds the projected end).
    pub end_time: Option<u64>,
    /// While it waits: when Slurm's backfill expects to start it (`squeue --start`).
    pub expected_start: Option<u64>,
    pub nodes: String,
    pub stdout: String,
    pub stderr: String,
    /// GPU indices per node, from `gres_detail` (`gpu:h100:4(IDX:0-3)`).
    pub gpus: Vec<Vec<u16>>,
}

fn text(job: &Value, key: &str) -> String {
    job.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

fn time(job: &Value, key: &str) -> Option<u64> {
    job.get(key).and_then(number).filter(|&t| t > 0).map(|t| t as u64)
}

fn first_state(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Array(flags) => flags.first().and_then(Value::as_str).map(str::to_string),
        _ => None,
    }
}

/// The jobs of a `GET /slurm/<version>/jobs` answer (either family of shapes). An answer
/// with errors is an error even if it carries a (then empty) list: taking it at its word
/// would make every job look vanished while slurmctld is away.
pub fn parse_jobs(body: &Value) -> Result<Vec<JobStatus>, SlurmError> {
    if let Some(e) = errors(body) {
        return Err(SlurmError::Refused(e));
    }
    let jobs = body
        .get("jobs")
        .and_then(Value::as_array)
        .ok_or_else(|| SlurmError::Protocol(errors(body).unwrap_or_else(|| "no jobs in the answer".into())))?;
    jobs.iter().map(parse_job).collect()
}

fn parse_job(job: &Value) -> Result<JobStatus, SlurmError> {
    let slurm_id = job
        .get("job_id")
        .and_then(number)
        .ok_or_else(|| SlurmError::Protocol(format!("a job without job_id: {job}")))? as u64;
    let state = JobState::parse(&first_state(job.get("job_state")).unwrap_or_default());
    let (exit_code, signal) = match job.get("exit_code") {
        // v0.0.38: a wait status.
        Some(Value::Number(n)) => {
            let status = n.as_i64().unwrap_or(0) as i32;
            let signal = status & 0x7f;
            if signal != 0 {
                (Some(128 + signal), Some(signal))
            } else {
                (Some((status >> 8) & 0xff), None)
            }
        }
        Some(obj @ Value::Object(_)) => {
            let code = obj.get("return_code").and_then(number).map(|c| c as i32);
            let signal = obj
                .get("signal")
                .and_then(|s| s.get("id"))
                .and_then(number)
                .map(|s| s as i32)
                .filter(|&s| s != 0);
            (signal.map(|s| 128 + s).or(code), signal)
        }
        _ => (None, None),
    };
    let gpus = job
        .get("gres_detail")
        .and_then(Value::as_array)
        .map(|d| d.iter().filter_map(Value::as_str).map(gpu_indices).collect())
        .unwrap_or_default();
    let (pending, ended) = (state == JobState::Pending, state.is_final());
    Ok(JobStatus {
        slurm_id,
        name: text(job, "name"),
        comment: match job.get("comment") {
            // v0.0.41's accounting shape nests it; slurmctld's is a string.
            Some(Value::Object(c)) => c.get("job").and_then(Value::as_str).unwrap_or_default().to_string(),
            _ => text(job, "comment"),
        },
        state,
        reason: text(job, "state_reason"),
        exit_code,
        signal,
        start_time: time(job, "start_time").filter(|_| !pending),
        end_time: time(job, "end_time").filter(|_| ended),
        expected_start: time(job, "start_time").filter(|_| pending),
        nodes: text(job, "nodes"),
        stdout: text(job, "standard_output"),
        stderr: text(job, "standard_error"),
        gpus,
    })
}

/// `gpu:h100:4(IDX:0-3,6)` → `[0, 1, 2, 3, 6]`.
pub fn gpu_indices(detail: &str) -> Vec<u16> {
    let Some(idx) = detail.split("IDX:").nth(1) else {
        return Vec::new();
    };
    let list = idx.trim_end_matches(')');
    let mut out = Vec::new();
    for part in list.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
                    out.extend(a..=b);
                }
            }
            None => out.extend(part.parse::<u16>().ok()),
        }
    }
    out
}

/// A node's condition as it matters to scheduling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeState {
    Idle,
    Mixed,
    Allocated,
    /// Takes no new work (DRAIN flag, whatever its base state).
    Drained,
    Down,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub state: NodeState,
    pub gpus: u16,
    pub gpu_type: Option<String>,
    pub gpus_used: u16,
    pub partitions: Vec<String>,
    pub reason: String,
}

/// `gpu[01-03,07],login1` → every name.
pub fn expand_hostlist(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    for item in split_top_level(list, '[', ']').filter(|s| !s.is_empty()) {
        let Some((prefix, rest)) = item.split_once('[') else {
            out.push(item.to_string());
            continue;
        };
        let (ranges, suffix) = rest.split_once(']').unwrap_or((rest, ""));
        for range in ranges.split(',') {
            match range.split_once('-') {
                Some((a, b)) => {
                    let width = a.len();
                    if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                        out.extend((a..=b).map(|n| format!("{prefix}{n:0width$}{suffix}")));
                    }
                }
                None => out.push(format!("{prefix}{range}{suffix}")),
            }
        }
    }
    out
}

/// The comma-separated items of `s`, ignoring commas between `open` and `close`.
fn split_top_level(s: &str, open: char, close: char) -> impl Iterator<Item = &str> {
    let mut depth = 0i32;
    let mut start = 0;
    let mut items = Vec::new();
    for (i, c) in s.char_indices() {
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
        } else if c == ',' && depth == 0 {
            items.push(&s[start..i]);
            start = i + 1;
        }
    }
    items.push(&s[start..]);
    items.into_iter()
}

/// `gpu:h100:8(S:0-1)` or `gpu:8` (among other GRES, comma separated) → (type, count).
pub fn gpu_gres(gres: &str) -> (Option<String>, u16) {
    let mut kind = None;
    let mut count = 0;
    // Commas also appear inside "(S:0-1)" and "(IDX:0,2)": split at top level only.
    for item in split_top_level(gres, '(', ')') {
        let item = item.split('(').next().unwrap_or_default();
        let parts: Vec<&str> = item.split(':').collect();
        if parts.first() != Some(&"gpu") {
            continue;
        }
        match parts.as_slice() {
            [_, n] => count += n.parse::<u16>().unwrap_or(0),
            [_, t, n] => {
                kind = Some(t.to_string());
                count += n.parse::<u16>().unwrap_or(0);
            }
            _ => {}
        }
    }
    (kind, count)
}

/// The nodes of a `GET /slurm/<version>/nodes` answer.
pub fn parse_nodes(body: &Value) -> Result<Vec<NodeInfo>, SlurmError> {
    if let Some(e) = errors(body) {
        return Err(SlurmError::Refused(e));
    }
    let nodes = body
        .get("nodes")
        .and_then(Value::as_array)
        .ok_or_else(|| SlurmError::Protocol(errors(body).unwrap_or_else(|| "no nodes in the answer".into())))?;
    Ok(nodes
        .iter()
        .map(|n| {
            // v0.0.38: "state": "mixed", "state_flags": ["DRAIN"]; later: "state": ["MIXED", "DRAIN"].
            let mut flags: Vec<String> = match n.get("state") {
                Some(Value::String(s)) => vec![s.to_ascii_uppercase()],
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_ascii_uppercase)
                    .collect(),
                _ => Vec::new(),
            };
            if let Some(extra) = n.get("state_flags").and_then(Value::as_array) {
                flags.extend(extra.iter().filter_map(Value::as_str).map(str::to_ascii_uppercase));
            }
            let has = |f: &str| flags.iter().any(|x| x == f);
            let state = if has("DOWN") || has("FAIL") || has("NOT_RESPONDING") {
                NodeState::Down
            } else if has("DRAIN") || has("DRAINED") || has("DRAINING") {
                NodeState::Drained
            } else if has("ALLOCATED") {
                NodeState::Allocated
            } else if has("MIXED") {
                NodeState::Mixed
            } else if has("IDLE") {
                NodeState::Idle
            } else {
                NodeState::Other
            };
            let (gpu_type, gpus) = gpu_gres(&text(n, "gres"));
            let gpus_used = gpu_indices(&text(n, "gres_used")).len() as u16;
            NodeInfo {
                name: text(n, "name"),
                state,
                gpus,
                gpu_type,
                gpus_used,
                partitions: n
                    .get("partitions")
                    .and_then(Value::as_array)
                    .map(|p| p.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default(),
                reason: text(n, "reason"),
            }
        })
        .collect())
}
