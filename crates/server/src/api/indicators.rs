//! The access programme's indicators (platform staff), as JSON or CSV.

use super::prelude::*;
use access::indicators::{self, Record, Row};
use std::collections::BTreeMap;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "get",
            "/api/v1/reports/programme",
            "The access programme's indicators by mode, organisation type, country and sector (staff; `format=csv` for a table)",
            true,
            &["format"],
            None,
            get(programme_report),
        )
        .returns::<ProgrammeReport>(),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ProgrammeReport {
    generated_at: String,
    rows: Vec<Row>,
    /// Thousandths of the awarded GPU-hours that went to SMEs and start-ups.
    sme_startup_awarded_permille: Option<i64>,
    /// Thousandths of the GPU-time used on awards that SMEs and start-ups used.
    sme_startup_used_permille: Option<i64>,
    training: TrainingTotals,
}

/// Seats offered and filled over every course.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TrainingTotals {
    courses: usize,
    seats_offered: i64,
    seats_filled: i64,
    waitlisted: i64,
    completed: i64,
}

#[derive(Deserialize)]
pub(crate) struct ReportQuery {
    format: Option<String>,
}

/// One record per submitted application.
async fn records(state: &AppState) -> Result<Vec<Record>, ApiError> {
    let mut calls: BTreeMap<String, store::Call> = BTreeMap::new();
    let mut orgs: BTreeMap<String, store::Org> = BTreeMap::new();
    let mut out = Vec::new();
    for a in state.store.list_applications(&Default::default()).await? {
        let Some(submitted) = a.submitted_at else { continue };
        if !calls.contains_key(&a.call_id) {
            calls.insert(a.call_id.clone(), state.store.get_call(&a.call_id).await?);
        }
        if !orgs.contains_key(&a.org_id) {
            orgs.insert(a.org_id.clone(), state.store.get_org(&a.org_id).await?);
        }
        let (call, org) = (&calls[&a.call_id], &orgs[&a.org_id]);
        let awarded = a.decision.as_ref().filter(|d| d.award).map_or(0, |d| d.gpu_hours);
        let used = match &a.allocation_id {
            Some(alloc) => state.store.balance(alloc).await?.used,
            None => 0,
        };
        let first_job = match &a.project_id {
            Some(p) => state.store.first_job_started(p).await?,
            None => None,
        };
        let sme_status = a.eligibility.as_ref().and_then(|e| e.sme_status);
        out.push(Record {
            mode: call.spec.mode.as_str().into(),
            org_type: org.org_type.to_string(),
            country: org.country.clone(),
            sector: a
                .declaration
                .as_ref()
                .map_or_else(|| "unspecified".into(), |d| d.sector.to_ascii_lowercase()),
            eligible: a.eligibility.as_ref().is_some_and(|e| e.eligible),
            awarded: awarded > 0,
            requested_gpu_hours: a.gpu_hours,
            awarded_gpu_hours: awarded,
            used_gpu_seconds: used,
            decision_working_days: a
                .decided_at
                .map(|d| call.spec.calendar().working_days_between(submitted, d)),
            decision_target_working_days: call.spec.decision_working_days,
            seconds_to_first_job: first_job.map(|f| f - submitted),
            first_job_working_days: first_job.map(|f| call.spec.calendar().working_days_between(submitted, f)),
            access_target_working_days: call.spec.access_working_days,
            sme_or_startup: a.eligibility.as_ref().is_some_and(|e| e.free_of_charge)
                || sme_status.is_some_and(|s| s.is_sme()),
        });
    }
    Ok(out)
}

pub(crate) async fn programme_report(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<ReportQuery>,
) -> ApiResult {
    staff(&caller, "reports cover every organisation: platform staff only")?;
    let records = records(&state).await?;
    let rows = indicators::rows(&records);
    match q.format.as_deref() {
        None | Some("json") => {
            let (awarded, used) = indicators::sme_share_permille(&records);
            let (seats_offered, seats_filled, waitlisted, completed) = state.store.training_totals().await?;
            ok(ProgrammeReport {
                training: TrainingTotals {
                    courses: state.store.list_courses().await?.len(),
                    seats_offered,
                    seats_filled,
                    waitlisted,
                    completed,
                },
                generated_at: rfc3339(unix_now() as i64),
                rows,
                sme_startup_awarded_permille: awarded,
                sme_startup_used_permille: used,
            })
        }
        Some("csv") => super::usage::csv_response(
            &[
                "dimension",
                "key",
                "applications",
                "eligible",
                "awards",
                "requested_gpu_hours",
                "awarded_gpu_hours",
                "used_gpu_hours",
                "decisions",
                "median_decision_working_days",
                "decisions_within_target",
                "first_jobs",
                "median_seconds_to_first_job",
                "first_jobs_within_target",
            ],
            &rows,
        ),
        Some(other) => Err(ApiError::field(
            "format",
            format!("`format` is json or csv, not `{other}`"),
        )),
    }
}
