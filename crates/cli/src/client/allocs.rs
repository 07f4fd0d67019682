//! `aifactory alloc`: allocations of GPU-hours and their balances.

use super::*;

#[derive(Debug, Subcommand)]
pub enum AllocCmd {
    List {
        #[arg(long)]
        project: String,
    },
    Show {
        id: String,
    },
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        site: String,
        #[arg(long)]
        gpu_hours: i64,
        /// playground, fast-lane, standard, large-scale or preemptible.
        #[arg(long)]
        class: Option<String>,
        /// End of validity, in days from now.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// The Slurm account the site opened for it (sbatch --account).
        #[arg(long)]
        slurm_account: Option<String>,
        /// The Slurm QoS its jobs run under (sbatch --qos).
        #[arg(long)]
        slurm_qos: Option<String>,
    },
    TopUp {
        id: String,
        #[arg(long)]
        gpu_hours: i64,
    },
    Suspend {
        id: String,
    },
    Resume {
        id: String,
    },
    /// Move the end of validity.
    Extend {
        id: String,
        /// New end, in days from now.
        #[arg(long)]
        days: i64,
    },
    /// Ask for more on an awarded allocation: `extension` (--days), `supplement`
    /// (--gpu-hours) or `renewal` (both); a programme manager decides.
    Request {
        id: String,
        /// extension, supplement or renewal.
        kind: String,
        #[arg(long)]
        gpu_hours: Option<i64>,
        #[arg(long)]
        days: Option<i64>,
        #[arg(long)]
        reason: String,
    },
    /// Send the final report: a summary and each output as `--item kind=title[=url]`
    /// (kind one of paper, model, dataset, software, other).
    Report {
        id: String,
        #[arg(long)]
        summary: String,
        #[arg(long = "item", value_name = "KIND=TITLE[=URL]")]
        outputs: Vec<String>,
    },
    /// Set the Slurm account and QoS its jobs are charged to (omitted: none).
    Slurm {
        id: String,
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        qos: Option<String>,
    },
}

/// GPU-seconds as GPU-hours for a table: two decimals, and never 0.00 for some use.
fn gpu_hours(gpu_seconds: i64) -> String {
    match gpu_seconds {
        0 => "0".into(),
        1..36 => "<0.01".into(),
        gs => format!("{:.2}", gs as f64 / 3600.0),
    }
}

fn with_hours(mut v: Value) -> Value {
    let fix = |a: &mut Value| {
        if let Some(g) = a.get("gpu_seconds").cloned() {
            for k in ["granted", "reserved", "used", "available"] {
                a[format!("{k}_gpu_h")] = json!(gpu_hours(g[k].as_i64().unwrap_or(0)));
            }
        }
    };
    match v.get_mut("items").and_then(Value::as_array_mut) {
        Some(items) => items.iter_mut().for_each(fix),
        None => fix(&mut v),
    }
    v
}

pub fn alloc(conn: &Conn, cmd: AllocCmd) -> Result<()> {
    let c = Client::new(conn);
    let cols = [
        "id",
        "project",
        "site",
        "class",
        "state",
        "granted_gpu_h",
        "reserved_gpu_h",
        "used_gpu_h",
        "available_gpu_h",
        "valid_until",
        "slurm_account",
    ];
    let v = match cmd {
        AllocCmd::Request {
            id,
            kind,
            gpu_hours,
            days,
            reason,
        } => {
            let v = c.call(
                "POST",
                &format!("/api/v1/allocations/{id}/requests"),
                Some(&json!({"kind": kind, "gpu_hours": gpu_hours, "duration_days": days, "reason": reason})),
            )?;
            c.print(&v, &["id", "kind", "state", "for_allocation"]);
            return Ok(());
        }
        AllocCmd::Report { id, summary, outputs } => {
            let mut list = Vec::new();
            for o in &outputs {
                let mut parts = o.splitn(3, '=');
                let (Some(kind), Some(title)) = (parts.next(), parts.next()) else {
                    anyhow::bail!("--item takes kind=title[=url], got `{o}`");
                };
                list.push(json!({"kind": kind, "title": title, "url": parts.next()}));
            }
            let v = c.call(
                "POST",
                &format!("/api/v1/allocations/{id}/report"),
                Some(&json!({"summary": summary, "outputs": list})),
            )?;
            c.print(&v, &["allocation", "submitted_at", "summary"]);
            return Ok(());
        }
        AllocCmd::List { project } => c.call(
            "GET",
            &format!("/api/v1/allocations?project={}", c.project_id(&project)?),
            None,
        )?,
        AllocCmd::Show { id } => c.call("GET", &format!("/api/v1/allocations/{id}"), None)?,
        AllocCmd::Create {
            project,
            site,
            gpu_hours,
            class,
            days,
            slurm_account,
            slurm_qos,
        } => {
            let until = days_from_now(days)?;
            c.call(
                "POST",
                "/api/v1/allocations",
                Some(&json!({
                    "project": c.project_id(&project)?, "site": site, "gpu_hours": gpu_hours, "class": class, "valid_until": until,
                    "slurm_account": slurm_account, "slurm_qos": slurm_qos,
                })),
            )?
        }
        AllocCmd::TopUp { id, gpu_hours } => c.call(
            "POST",
            &format!("/api/v1/allocations/{id}/top-up"),
            Some(&json!({"gpu_hours": gpu_hours})),
        )?,
        AllocCmd::Suspend { id } => c.call("POST", &format!("/api/v1/allocations/{id}/suspend"), None)?,
        AllocCmd::Resume { id } => c.call("POST", &format!("/api/v1/allocations/{id}/resume"), None)?,
        AllocCmd::Extend { id, days } => {
            let until = days_from_now(days)?;
            c.call(
                "POST",
                &format!("/api/v1/allocations/{id}/extend"),
                Some(&json!({"valid_until": until})),
            )?
        }
        AllocCmd::Slurm { id, account, qos } => c.call(
            "PUT",
            &format!("/api/v1/allocations/{id}/slurm"),
            Some(&json!({"account": account, "qos": qos})),
        )?,
    };
    c.print(&with_hours(v), &cols);
    Ok(())
}

/// Unix seconds `days` days from now: the end of validity the API takes.
fn days_from_now(days: i64) -> Result<i64> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    Ok(now.as_secs() as i64 + days * 86_400)
}
