//! Trace readers. Each reads bytes (never panicking, whatever they are), reports a bad row
//! with its line number and reason, and either fails on it (`strict`) or skips and counts it.

mod aifactory;
mod alibaba;
mod helios;

use crate::rng::stable_hash;
use crate::trace::{RowSink, Trace, TraceError};
use domain::{OrgType, Seconds};
use std::path::Path;
use std::str::FromStr;

pub use aifactory::write_csv as write_aifactory_csv;
pub use helios::write_csv as write_helios_csv;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceFormat {
    /// Alibaba's cluster-trace-gpu-v2023 (`openb_pod_list_*.csv` plus its GPU node list).
    AlibabaV2023,
    /// Helios/Philly-style job logs.
    Helios,
    /// Our own CSV or JSON Lines format (`docs/trace-format.md`).
    Aifactory,
}

impl FromStr for TraceFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "alibaba-v2023" | "alibaba" => Ok(TraceFormat::AlibabaV2023),
            "helios" | "philly" => Ok(TraceFormat::Helios),
            "aifactory" => Ok(TraceFormat::Aifactory),
            other => Err(format!(
                "unknown trace format `{other}` (expected alibaba-v2023, helios or aifactory)"
            )),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Fail on the first bad row instead of skipping it.
    pub strict: bool,
    /// Seed of the mappings a trace leaves open (accounts, walltimes).
    pub seed: u64,
}

/// Reads a trace from a file (or, for `alibaba-v2023`, a folder holding the pod list and
/// the GPU node list).
pub fn read_path(format: TraceFormat, path: &Path, opts: ReadOptions) -> Result<Trace, TraceError> {
    let io = |p: &Path, e| TraceError::Io {
        path: p.display().to_string(),
        source: e,
    };
    match format {
        TraceFormat::AlibabaV2023 => {
            let (pods, nodes) = if path.is_dir() {
                (
                    path.join("openb_pod_list_default.csv"),
                    path.join("openb_node_list_gpu_node.csv"),
                )
            } else {
                let dir = path.parent().unwrap_or(Path::new("."));
                (path.to_path_buf(), dir.join("openb_node_list_gpu_node.csv"))
            };
            let pod_bytes = std::fs::read(&pods).map_err(|e| io(&pods, e))?;
            let node_bytes = std::fs::read(&nodes).map_err(|e| io(&nodes, e))?;
            alibaba::read(&pod_bytes, Some(&node_bytes), opts)
        }
        TraceFormat::Helios => {
            let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
            helios::read(&bytes, opts)
        }
        TraceFormat::Aifactory => {
            let bytes = std::fs::read(path).map_err(|e| io(path, e))?;
            let jsonl = path.extension().is_some_and(|e| e == "jsonl" || e == "ndjson");
            aifactory::read(&bytes, jsonl, opts)
        }
    }
    .map(|mut t| {
        t.name = path.display().to_string();
        t
    })
}

/// Reads a trace from bytes; the Alibaba format takes its node list separately.
pub fn read_bytes(format: TraceFormat, bytes: &[u8], opts: ReadOptions) -> Result<Trace, TraceError> {
    match format {
        TraceFormat::AlibabaV2023 => alibaba::read(bytes, None, opts),
        TraceFormat::Helios => helios::read(bytes, opts),
        TraceFormat::Aifactory => {
            let jsonl = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            aifactory::read(bytes, jsonl, opts)
        }
    }
}

/// Column positions by header name.
pub(crate) struct Columns(Vec<String>);

impl Columns {
    pub fn new(header: &csv::StringRecord) -> Columns {
        Columns(header.iter().map(|h| h.trim().to_ascii_lowercase()).collect())
    }

    pub fn require(&self, names: &[&str]) -> Result<(), TraceError> {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !self.0.iter().any(|h| h == n))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(TraceError::Format(format!(
                "the header lacks column(s) {}; it has: {}",
                missing.join(", "),
                self.0.join(",")
            )))
        }
    }

    pub fn get<'r>(&self, row: &'r csv::StringRecord, name: &str) -> Option<&'r str> {
        let i = self.0.iter().position(|h| h == name)?;
        row.get(i).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// Parses a field, saying which one and why when it fails.
pub(crate) fn field<T: FromStr>(value: Option<&str>, name: &str) -> Result<T, String> {
    let v = value.ok_or_else(|| format!("`{name}` is empty"))?;
    v.parse()
        .map_err(|_| format!("`{name}` is not valid: `{}`", v.chars().take(40).collect::<String>()))
}

pub(crate) fn csv_reader(bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(bytes)
}

/// What a row parser makes of a row it understood.
pub(crate) enum Row<T> {
    Keep(T),
    /// Left out on purpose, counted under this reason.
    Exclude(&'static str),
}

/// Reads a CSV whose header must name `required`, hands every record to `parse`, and
/// returns the kept rows with their line numbers (header = line 1). Unreadable and bad rows
/// go to `sink`, which fails on the first in strict mode.
pub(crate) fn read_rows<T>(
    bytes: &[u8],
    required: &[&str],
    sink: &mut RowSink,
    mut parse: impl FnMut(&Columns, &csv::StringRecord) -> Result<Row<T>, String>,
) -> Result<Vec<(u64, T)>, TraceError> {
    let mut rdr = csv_reader(bytes);
    let cols = Columns::new(
        rdr.headers()
            .map_err(|e| TraceError::Format(format!("unreadable header: {e}")))?,
    );
    cols.require(required)?;
    let mut rows = Vec::new();
    let mut fallback_line = 1;
    for record in rdr.records() {
        fallback_line += 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line).max(fallback_line);
                sink.bad(line, format!("unreadable row: {e}"))?;
                continue;
            }
        };
        let line = record.position().map_or(fallback_line, csv::Position::line);
        match parse(&cols, &record) {
            Ok(Row::Keep(v)) => rows.push((line, v)),
            Ok(Row::Exclude(reason)) => sink.exclude(reason),
            Err(reason) => sink.bad(line, reason)?,
        }
    }
    Ok(rows)
}

/// Organisation types for traces that have none, in these proportions: research 40 %,
/// start-up 20 %, SME 15 %, industry 15 %, public 10 %; stable per account name.
pub(crate) fn org_type_for(account: &str, seed: u64) -> OrgType {
    const TYPES: [(OrgType, u64); 5] = [
        (OrgType::Research, 40),
        (OrgType::Startup, 20),
        (OrgType::Sme, 15),
        (OrgType::Industry, 15),
        (OrgType::Public, 10),
    ];
    let mut x = stable_hash(account, seed ^ 0x0ff1) % 100;
    for (t, w) in TYPES {
        if x < w {
            return t;
        }
        x -= w;
    }
    OrgType::Research
}

/// Walltime for traces that record none: users ask for more than they use, so the
/// runtime times a factor drawn in [1, 3) per job, rounded up to 15 minutes.
pub(crate) fn walltime_for(runtime: Seconds, key: &str, seed: u64) -> Seconds {
    let factor = 1.0 + 2.0 * (stable_hash(key, seed ^ 0x3a11) >> 11) as f64 / (1u64 << 53) as f64;
    let raw = (runtime as f64 * factor).ceil() as Seconds;
    raw.div_ceil(900).max(1) * 900
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn walltimes_cover_the_runtime_and_round_to_quarter_hours() {
        for (i, rt) in [1u64, 899, 900, 3601, 86_400].into_iter().enumerate() {
            let w = walltime_for(rt, &i.to_string(), 1);
            assert!(w >= rt && w.is_multiple_of(900) && w <= 3 * rt + 900, "{rt} -> {w}");
        }
    }

    proptest! {
        // No input makes a reader panic; whatever comes back is consistent.
        #[test]
        fn readers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600), strict in any::<bool>()) {
            for format in [TraceFormat::AlibabaV2023, TraceFormat::Helios, TraceFormat::Aifactory] {
                if let Ok(t) = read_bytes(format, &bytes, ReadOptions { strict, seed: 1 }) {
                    prop_assert!(t.jobs.windows(2).all(|w| w[0].submit <= w[1].submit));
                }
            }
        }

        #[test]
        fn readers_never_panic_on_csv_like_text(
            rows in prop::collection::vec(prop::collection::vec("[0-9a-zA-Z:. -]{0,12}", 0..14), 0..12),
            header in prop::sample::select(vec![
                "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time",
                "job_id,user,vc,gpu_num,cpu_num,node_num,state,submit_time,start_time,end_time,duration",
                "id,submit_s,account,org_type,class,gpus,nodes,gpu_milli,walltime_s,runtime_s,depends_on",
            ]),
        ) {
            let text = std::iter::once(header.to_string()).chain(rows.iter().map(|r| r.join(","))).collect::<Vec<_>>().join("\n");
            for format in [TraceFormat::AlibabaV2023, TraceFormat::Helios, TraceFormat::Aifactory] {
                let _ = read_bytes(format, text.as_bytes(), ReadOptions { strict: false, seed: 1 });
            }
        }
    }
}
