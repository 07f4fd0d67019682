//! `aifactory report` (staff: the programme's indicators, usage; tables or CSV) and
//! `notifications` (what the factory told you).

use super::*;

pub fn notifications(conn: &Conn) -> Result<()> {
    let c = Client::new(conn);
    c.print(
        &c.call("GET", "/api/v1/notifications", None)?,
        &["created_at", "kind", "subject", "emailed_at"],
    );
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// The access programme's indicators by mode, organisation type, country and sector.
    Programme {
        /// Print CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Usage by org_type, country, sector, site or month.
    Usage {
        #[arg(long, default_value = "org_type")]
        group_by: String,
        #[arg(long)]
        csv: bool,
    },
}

pub fn report(conn: &Conn, cmd: ReportCmd) -> Result<()> {
    let c = Client::new(conn);
    match cmd {
        ReportCmd::Programme { csv: true } => c.copy_to("/api/v1/reports/programme?format=csv", &mut std::io::stdout()),
        ReportCmd::Programme { csv: false } => {
            let v = c.call("GET", "/api/v1/reports/programme", None)?;
            c.print(
                &json!({"items": v["rows"]}),
                &[
                    "dimension",
                    "key",
                    "applications",
                    "awards",
                    "awarded_gpu_hours",
                    "used_gpu_hours",
                    "median_decision_working_days",
                    "decisions_within_target",
                    "median_seconds_to_first_job",
                ],
            );
            if c.output == Output::Table {
                println!(
                    "\nSMEs and start-ups: {} ‰ of awarded GPU-hours, {} ‰ of GPU-time used on awards",
                    v["sme_startup_awarded_permille"], v["sme_startup_used_permille"]
                );
            }
            Ok(())
        }
        ReportCmd::Usage { group_by, csv: true } => c.copy_to(
            &format!("/api/v1/reports/usage?group_by={group_by}&format=csv"),
            &mut std::io::stdout(),
        ),
        ReportCmd::Usage { group_by, csv: false } => {
            c.print(
                &c.call("GET", &format!("/api/v1/reports/usage?group_by={group_by}"), None)?,
                &["key", "entries", "gpu_seconds", "energy_wh", "carbon_g", "cost_cents"],
            );
            Ok(())
        }
    }
}
