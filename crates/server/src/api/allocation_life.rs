//! An award's later life: extension, supplement and renewal requests (applications of
//! their own kind, through a lighter review: see `access::workflow::Kind::steps`), and the
//! final report of what an allocation produced, which comes before the next award.

use super::applications::{ApplicationView, application_view};
use super::prelude::*;
use access::workflow::Kind;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/allocations/{id}/requests",
            "Ask for more time (extension), more GPU-hours (supplement) or a new allocation (renewal) on an awarded allocation",
            true,
            &[],
            Some(schema::<AllocationRequest>),
            post(request),
        )
        .returns::<ApplicationView>(),
        e(
            "post",
            "/api/v1/allocations/{id}/report",
            "Send an allocation's final report: what it produced (papers, models, datasets, software)",
            true,
            &[],
            Some(schema::<ReportRequest>),
            post(report),
        )
        .returns::<ReportView>(),
        e(
            "get",
            "/api/v1/allocations/{id}/report",
            "An allocation's final report",
            true,
            &[],
            None,
            get(get_report),
        )
        .returns::<ReportView>(),
    ]
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AllocationRequest {
    /// `extension`, `supplement` or `renewal`.
    kind: Kind,
    /// More GPU-hours (supplement) or the renewal's GPU-hours.
    gpu_hours: Option<i64>,
    /// More days (extension) or the renewal's duration.
    duration_days: Option<i64>,
    /// Why: what was done, what remains.
    reason: String,
}

/// The award an allocation came from, for the applicant's side.
async fn awarded_by(state: &AppState, caller: &Caller, id: &str) -> Result<(Allocation, store::Application), ApiError> {
    let alloc = visible_allocation(state, caller, id).await?;
    let app = state.store.application_of_allocation(&alloc.id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not-from-a-call",
            "this allocation was not awarded through a call: site operators extend or top it up directly",
        )
    })?;
    applicant_side(caller, &app)?;
    Ok((alloc, app))
}

pub(crate) async fn request(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<AllocationRequest>,
) -> ApiResult {
    verified(&caller)?;
    let (alloc, original) = awarded_by(&state, &caller, &id).await?;
    non_empty("reason", &b.reason, 5000)?;
    let call = state.store.get_call(&original.call_id).await?;
    let max_days = i64::from(call.spec.max_duration_days);
    let hours = |required: bool| -> Result<i64, ApiError> {
        match b.gpu_hours {
            Some(h) if (1..=call.spec.max_gpu_hours).contains(&h) => Ok(h),
            None if !required => Ok(0),
            _ => Err(ApiError::field(
                "gpu_hours",
                format!(
                    "`gpu_hours` between 1 and the call's maximum of {}",
                    call.spec.max_gpu_hours
                ),
            )),
        }
    };
    let days = |required: bool| -> Result<i64, ApiError> {
        match b.duration_days {
            Some(d) if (1..=max_days).contains(&d) => Ok(d),
            None if !required => Ok(0),
            _ => Err(ApiError::field(
                "duration_days",
                format!("`duration_days` between 1 and {max_days}"),
            )),
        }
    };
    let (gpu_hours, duration_days, title) = match b.kind {
        Kind::Extension => (0, days(true)?, format!("Extension of {}", alloc.id)),
        Kind::Supplement => (hours(true)?, 0, format!("Supplement to {}", alloc.id)),
        Kind::Renewal => (hours(true)?, days(true)?, format!("Renewal of {}", original.title)),
        Kind::New => {
            return Err(ApiError::field(
                "kind",
                "a new award is an application to a call (POST /api/v1/applications)",
            ));
        }
    };
    let mut answers = std::collections::BTreeMap::new();
    answers.insert("reason".to_string(), json!(b.reason.trim()));
    let app = store::Application {
        for_allocation: Some(alloc.id.clone()),
        title,
        site: alloc.site.clone(),
        gpu_hours,
        duration_days,
        answers,
        declaration: original.declaration.clone(),
        team: original.team.clone(),
        // A renewal continues this project.
        project_id: Some(alloc.project_id.clone()),
        ..store::Application::draft(
            b.kind,
            &original.call_id,
            &original.org_id,
            &caller.user.id,
            unix_now() as i64,
        )
    };
    state.store.create_application(&app, &caller.user.id).await?;
    let saved = crate::programme::submit(&state, &caller.user, &call, &app).await?;
    Ok(created(application_view(&call, &saved)))
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Output {
    /// `paper`, `model`, `dataset`, `software` or `other`.
    kind: String,
    title: String,
    /// A DOI, a repository or a hub address.
    url: Option<String>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReportRequest {
    summary: String,
    #[serde(default)]
    outputs: Vec<Output>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ReportView {
    allocation: String,
    submitted_by: String,
    summary: String,
    outputs: Vec<Output>,
    submitted_at: String,
}

fn report_view(r: store::FinalReport) -> ReportView {
    ReportView {
        allocation: r.allocation_id,
        submitted_by: r.submitted_by,
        summary: r.summary,
        outputs: serde_json::from_value(r.outputs).unwrap_or_default(),
        submitted_at: rfc3339(r.submitted_at),
    }
}

pub(crate) async fn report(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<ReportRequest>,
) -> ApiResult {
    let (alloc, _) = awarded_by(&state, &caller, &id).await?;
    non_empty("summary", &b.summary, 20_000)?;
    if b.outputs.len() > 500 {
        return Err(ApiError::field("outputs", "at most 500 outputs"));
    }
    for (i, o) in b.outputs.iter().enumerate() {
        if !["paper", "model", "dataset", "software", "other"].contains(&o.kind.as_str()) {
            return Err(ApiError::field(
                &format!("outputs[{i}].kind"),
                "one of paper, model, dataset, software, other",
            ));
        }
        non_empty(&format!("outputs[{i}].title"), &o.title, 500)?;
    }
    let report = store::FinalReport {
        allocation_id: alloc.id.clone(),
        submitted_by: caller.user.id.clone(),
        summary: b.summary.trim().to_string(),
        outputs: serde_json::to_value(&b.outputs).map_err(ApiError::internal)?,
        submitted_at: unix_now() as i64,
    };
    state.store.submit_final_report(&report).await?;
    Ok(created(report_view(report)))
}

pub(crate) async fn get_report(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    visible_allocation(&state, &caller, &id).await?;
    let report = state
        .store
        .final_report(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("final report", &id))?;
    ok(report_view(report))
}
