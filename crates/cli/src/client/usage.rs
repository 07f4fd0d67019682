//! `aifactory usage`: GPU-seconds, energy, carbon and cost from the ledger.

use super::*;

#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    #[arg(long)]
    job: Option<String>,
    #[arg(long)]
    allocation: Option<String>,
    #[arg(long)]
    project: Option<String>,
    #[arg(long)]
    org: Option<String>,
}

pub fn usage(conn: &Conn, a: UsageArgs) -> Result<()> {
    let c = Client::new(conn);
    let q = match (a.job, a.allocation, a.project, a.org) {
        (Some(j), ..) => format!("job={j}"),
        (_, Some(x), ..) => format!("allocation={x}"),
        (_, _, Some(p), _) => format!("project={}", c.project_id(&p)?),
        (_, _, _, Some(o)) => format!("org={o}"),
        // Like `job submit` picks your only project: your organisation, if you have one.
        _ => format!("org={}", c.org_id(None)?),
    };
    c.print(
        &c.call("GET", &format!("/api/v1/usage?{q}"), None)?,
        &["scope", "id", "gpu_seconds", "energy_wh", "carbon_g", "cost_cents"],
    );
    Ok(())
}
