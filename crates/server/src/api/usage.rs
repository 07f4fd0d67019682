//! Usage from the ledger: per job, allocation, project or organisation, and reports for staff.

use super::prelude::*;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "get",
            "/api/v1/usage",
            "Usage of a job, allocation, project or organisation",
            true,
            &["job", "allocation", "project", "org"],
            None,
            get(usage),
        )
        .returns::<UsageView>(),
        e(
            "get",
            "/api/v1/reports/usage",
            "Usage by organisation type, country, sector, site or month (staff)",
            true,
            &["group_by", "format"],
            None,
            get(usage_report),
        )
        .returns::<ReportView>(),
    ]
}

#[derive(Deserialize)]
pub(crate) struct UsageQuery {
    job: Option<String>,
    allocation: Option<String>,
    project: Option<String>,
    org: Option<String>,
}

pub(crate) async fn usage(State(state): State<AppState>, caller: Caller, Params(q): Params<UsageQuery>) -> ApiResult {
    let (scope, id) = match (&q.job, &q.allocation, &q.project, &q.org) {
        (Some(j), ..) => {
            visible_job(&state, &caller, j).await?;
            ("job", j.clone())
        }
        (None, Some(a), ..) => {
            visible_allocation(&state, &caller, a).await?;
            ("allocation", a.clone())
        }
        (None, None, Some(p), _) => {
            visible_project(&state, &caller, p).await?;
            ("project", p.clone())
        }
        (None, None, None, Some(o)) => {
            if !caller.sees_org(o) {
                return Err(ApiError::not_found("organisation", o));
            }
            ("org", o.clone())
        }
        _ => {
            return Err(ApiError::field(
                "job",
                "say whose usage: `job`, `allocation`, `project` or `org`",
            ));
        }
    };
    let u = state
        .store
        .usage(match scope {
            "job" => UsageScope::Job(&id),
            "allocation" => UsageScope::Allocation(&id),
            "project" => UsageScope::Project(&id),
            _ => UsageScope::Org(&id),
        })
        .await?;
    ok(UsageView {
        scope: scope.to_string(),
        id,
        gpu_seconds: u.gpu_seconds,
        energy_wh: u.energy_wh,
        carbon_g: u.carbon_g,
        cost_cents: u.cost_cents,
    })
}

/// What a job, allocation, project or organisation used, summed from the ledger.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct UsageView {
    /// job, allocation, project or org.
    scope: String,
    id: String,
    gpu_seconds: i64,
    energy_wh: i64,
    carbon_g: i64,
    cost_cents: i64,
}

/// Usage grouped for the programme's reporting (also as CSV with `format=csv`).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ReportView {
    group_by: String,
    items: Vec<ReportRow>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ReportRow {
    key: String,
    /// Ledger entries summed.
    entries: u64,
    gpu_seconds: i64,
    energy_wh: i64,
    carbon_g: i64,
    cost_cents: i64,
}

#[derive(Deserialize)]
pub(crate) struct ReportQuery {
    group_by: Option<String>,
    format: Option<String>,
}

/// Usage aggregated by organisation type, country, sector, site or month, for the
/// programme's reporting (platform staff), as JSON or CSV.
pub(crate) async fn usage_report(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<ReportQuery>,
) -> ApiResult {
    staff(&caller, "reports cover every organisation: platform staff only")?;
    let group_by = q.group_by.as_deref().unwrap_or("org_type");
    let key: fn(&store::UsageRow) -> String = match group_by {
        "org_type" => |r| r.org_type.as_str().to_string(),
        "country" => |r| r.country.clone(),
        "sector" => |r| r.sector.clone(),
        "site" => |r| r.site.clone(),
        "month" => |r| rfc3339(r.at)[..7].to_string(),
        other => {
            return Err(ApiError::field(
                "group_by",
                format!("`group_by` is org_type, country, sector, site or month, not `{other}`"),
            ));
        }
    };
    let mut groups: std::collections::BTreeMap<String, (u64, Usage)> = std::collections::BTreeMap::new();
    for row in state.store.usage_rows().await? {
        let g = groups.entry(key(&row)).or_default();
        g.0 += 1;
        g.1.gpu_seconds += row.usage.gpu_seconds;
        g.1.energy_wh += row.usage.energy_wh;
        g.1.carbon_g += row.usage.carbon_g;
        g.1.cost_cents += row.usage.cost_cents;
    }
    match q.format.as_deref() {
        None | Some("json") => ok(ReportView {
            group_by: group_by.to_string(),
            items: groups
                .iter()
                .map(|(k, (n, u))| ReportRow {
                    key: k.clone(),
                    entries: *n,
                    gpu_seconds: u.gpu_seconds,
                    energy_wh: u.energy_wh,
                    carbon_g: u.carbon_g,
                    cost_cents: u.cost_cents,
                })
                .collect(),
        }),
        Some("csv") => {
            #[derive(Serialize)]
            struct CsvRow<'a> {
                key: &'a str,
                entries: u64,
                gpu_seconds: i64,
                energy_wh: i64,
                carbon_g: i64,
                cost_cents: i64,
            }
            let rows: Vec<CsvRow> = groups
                .iter()
                .map(|(k, (n, u))| CsvRow {
                    key: k,
                    entries: *n,
                    gpu_seconds: u.gpu_seconds,
                    energy_wh: u.energy_wh,
                    carbon_g: u.carbon_g,
                    cost_cents: u.cost_cents,
                })
                .collect();
            csv_response(
                &["key", "entries", "gpu_seconds", "energy_wh", "carbon_g", "cost_cents"],
                &rows,
            )
        }
        Some(other) => Err(ApiError::field(
            "format",
            format!("`format` is json or csv, not `{other}`"),
        )),
    }
}

/// A CSV table: the header line (also when there are no rows), then `rows`, whose fields
/// are in the header's order (the `csv` crate quotes what needs quoting).
pub(crate) fn csv_response<T: Serialize>(header: &[&str], rows: &[T]) -> ApiResult {
    let mut w = csv::WriterBuilder::new().has_headers(false).from_writer(Vec::new());
    w.write_record(header).map_err(ApiError::internal)?;
    for r in rows {
        w.serialize(r).map_err(ApiError::internal)?;
    }
    let out = w.into_inner().map_err(ApiError::internal)?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response())
}
