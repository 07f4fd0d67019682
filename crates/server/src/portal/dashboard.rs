//! The dashboard (my projects, their allocations with what is left, usage with energy and
//! carbon, my organisations' latest jobs) and a job's page (its state, usage and the tail
//! of its log, refreshed while it runs). Everything is read as the API reads it for the
//! same caller.

use super::{Session, layout, page};
use crate::authz;
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use store::{JobFilter, UsageScope};

/// Thousandths as `1.234` (GPU-hours, kWh, kg from integer seconds, Wh, g).
fn milli(n: i64, per: i64) -> String {
    let m = (i128::from(n) * 1000) / i128::from(per);
    format!("{}.{:03}", m / 1000, (m % 1000).abs())
}

/// What is used of a grant, as a bar (server-rendered SVG, with its figures in words for
/// screen readers).
fn burn_bar(used: i64, reserved: i64, granted: i64) -> Markup {
    let width = 200.0;
    let share = |n: i64| {
        if granted > 0 {
            (n.max(0) as f64 / granted as f64).min(1.0) * width
        } else {
            0.0
        }
    };
    let (u, r) = (share(used), share(reserved));
    let label = format!(
        "{} of {} GPU-hours used, {} reserved by waiting and running jobs",
        milli(used, 3600),
        milli(granted, 3600),
        milli(reserved, 3600)
    );
    html! {
        svg width="200" height="14" viewBox="0 0 200 14" role="img" aria-label=(label) {
            title { (label) }
            rect x="0" y="0" width="200" height="14" fill="#dde6ee" {}
            rect x="0" y="0" width=(format!("{u:.1}")) height="14" fill="#0b3d6b" {}
            rect x=(format!("{u:.1}")) y="0" width=(format!("{:.1}", r.min(width - u))) height="14" fill="#b35c00" {}
        }
    }
}

fn failed(e: impl Into<ApiError>) -> Response {
    e.into().into_response()
}

async fn page_inner(state: &AppState, session: &Session) -> Result<Markup, ApiError> {
    let caller = &session.caller;
    let mut projects = Vec::new();
    for m in &caller.memberships {
        let org = state.store.get_org(&m.org_id).await?;
        for p in state.store.list_projects(Some(&m.org_id)).await? {
            let mut allocations = Vec::new();
            for a in state.store.list_allocations(&p.id).await? {
                let balance = state.store.balance(&a.id).await?;
                let burn = state.store.allocation_burn(&a.id).await?;
                allocations.push((a, balance, burn));
            }
            let usage = state.store.usage(UsageScope::Project(&p.id)).await?;
            projects.push((org.name.clone(), p, allocations, usage));
        }
    }
    let mut jobs = Vec::new();
    for m in &caller.memberships {
        let filter = JobFilter {
            org_id: Some(m.org_id.clone()),
            ..JobFilter::default()
        };
        jobs.extend(state.store.list_jobs(&filter, None, 20).await?);
    }
    let now = crate::accounting::unix_now() as i64;
    jobs.sort_by_key(|j| std::cmp::Reverse(j.submitted_at));
    jobs.truncate(20);
    Ok(html! {
        h2 { "Projects and allocations" }
        @if projects.is_empty() {
            p { "You have no projects yet: apply to a call for GPU-hours." }
        }
        @for (org, p, allocations, usage) in &projects {
            section aria-labelledby=(format!("p-{}", p.id)) {
                h3 id=(format!("p-{}", p.id)) { (p.name) " " small { "(" (org) ")" } }
                p { "Used so far: " (milli(usage.gpu_seconds, 3600)) " GPU-hours, "
                    (milli(usage.energy_wh, 1000)) " kWh, " (milli(usage.carbon_g, 1000)) " kg CO₂e." }
                div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                    caption.visually-hidden { "Allocations of " (p.name) }
                    thead { tr { th scope="col" { "Allocation" } th scope="col" { "Site" } th scope="col" { "State" }
                        th scope="col" { "Valid until" } th scope="col" { "GPU-hours left" } th scope="col" { "Used" } } }
                    tbody {
                        @for (a, b, _) in allocations {
                            tr {
                                td { code { (a.id) } }
                                td { (a.site) }
                                td { (a.state.as_str()) }
                                td { (crate::api::rfc3339(a.valid_until)) }
                                td { (milli(b.available, 3600)) " of " (milli(b.granted, 3600)) }
                                td { (burn_bar(b.used, b.reserved, b.granted)) }
                            }
                        }
                    }
                } }
                @for (a, _, burn) in allocations {
                    figure {
                        (super::charts::burn_down(&format!("Burn-down of {} at {}", a.id, a.site), a.valid_from, a.valid_until, now, burn))
                        figcaption { "GPU-hours left of " code { (a.id) } " (" (a.site) ") over its validity; dashed: even use; orange: today." }
                    }
                }
            }
        }
        h2 { "Latest jobs" }
        @if jobs.is_empty() {
            p { "No jobs yet." }
        } @else {
            div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                thead { tr { th scope="col" { "Job" } th scope="col" { "Name" } th scope="col" { "State" }
                    th scope="col" { "GPUs" } th scope="col" { "Submitted" } } }
                tbody {
                    @for j in &jobs {
                        tr {
                            td { a href=(format!("/jobs/{}", j.id)) { code { (j.id) } } }
                            td { (j.name) }
                            td { (j.state.as_str()) }
                            td { (j.spec.gpus.total_milli() as f64 / 1000.0) }
                            td { (crate::api::rfc3339(j.submitted_at)) }
                        }
                    }
                }
            } }
        }
    })
}

pub(super) async fn dashboard(State(state): State<AppState>, session: Session) -> Response {
    match page_inner(&state, &session).await {
        Ok(body) => page(StatusCode::OK, layout("Dashboard", Some(&session), body)),
        Err(e) => failed(e),
    }
}

/// The last `max` bytes of a log, at a line start where one is near.
async fn tail(path: std::path::PathBuf, max: u64) -> String {
    let bytes = tokio::fs::read(path).await.unwrap_or_default();
    let from = bytes.len().saturating_sub(max as usize);
    let start = bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .filter(|_| from > 0)
        .map_or(from, |i| from + i + 1);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

pub(super) async fn job_page(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    let job = match authz::visible_job(&state, &session.caller, &id).await {
        Ok(j) => j,
        Err(e) => {
            let status = e.status;
            return page(
                status,
                layout(
                    "Job not found",
                    Some(&session),
                    html! { p.error role="alert" { (e.detail) } p { a href="/" { "Back to the dashboard" } } },
                ),
            );
        }
    };
    let usage = match state.store.usage(UsageScope::Job(&id)).await {
        Ok(u) => u,
        Err(e) => return failed(e),
    };
    let stdout = tail(state.exec.log_path(&id, exec::Stream::Stdout), 8192).await;
    let stderr = tail(state.exec.log_path(&id, exec::Stream::Stderr), 4096).await;
    let live = !job.state.is_final();
    let body = html! {
        @if live {
            // With JavaScript the log and state follow the job (portal.js); without, the
            // link reloads.
            p data-live=(format!("/jobs/{id}/live")) {
                span role="status" { "Running: the output below follows the job. " }
                a href=(format!("/jobs/{id}")) { "Reload" }
            }
        }
        dl.facts {
            dt { "State" } dd id="job-state" { (job.state.as_str()) @if let Some(r) = &job.reason { " — " (r) } }
            dt { "Command" } dd { code { (job.command.join(" ")) } }
            dt { "GPUs" } dd { (job.spec.gpus.total_milli() as f64 / 1000.0) }
            dt { "Submitted" } dd { (crate::api::rfc3339(job.submitted_at)) }
            @if let Some(e) = state.forecasts.of(&job.id).filter(|_| job.state == store::JobState::Pending) {
                dt { "Expected start" } dd { (crate::api::rfc3339(e.start)) " (at the latest " (crate::api::rfc3339(e.latest)) ", if every job before it runs to its walltime)" }
            }
            @if let Some(t) = job.started_at { dt { "Started" } dd { (crate::api::rfc3339(t)) } }
            @if let Some(t) = job.ended_at { dt { "Ended" } dd { (crate::api::rfc3339(t)) } }
            dt { "Usage" } dd { (milli(usage.gpu_seconds, 3600)) " GPU-hours, " (milli(usage.energy_wh, 1000)) " kWh, "
                (milli(usage.carbon_g, 1000)) " kg CO₂e" }
        }
        h2 { "History" }
        ol {
            li { (crate::api::rfc3339(job.submitted_at)) ": submitted, waiting" }
            @if let Some(t) = job.started_at {
                li { (crate::api::rfc3339(t)) ": started" @if job.runs > 1 { " (run " (job.runs) ", after " (job.runs - 1) " preemption(s) or requeue(s))" } }
            }
            @if let Some(t) = job.ended_at { li { (crate::api::rfc3339(t)) ": " (job.state.as_str()) @if let Some(c) = job.exit_code { " (exit code " (c) ")" } } }
        }
        h2 { "Output" }
        pre id="job-stdout" role="region" aria-label="standard output" tabindex="0" { (stdout) }
        h2 { "Errors" }
        pre id="job-stderr" role="region" aria-label="standard error" tabindex="0" { (stderr) }
        p { a href="/" { "Back to the dashboard" } }
    };
    page(
        StatusCode::OK,
        layout(&format!("Job {}", job.name), Some(&session), body),
    )
}

/// The job's state and log tails, for the page's live view (same authorisation as the page).
pub(super) async fn job_live(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    let job = match authz::visible_job(&state, &session.caller, &id).await {
        Ok(j) => j,
        Err(e) => return failed(e),
    };
    let stdout = tail(state.exec.log_path(&id, exec::Stream::Stdout), 8192).await;
    let stderr = tail(state.exec.log_path(&id, exec::Stream::Stderr), 4096).await;
    axum::Json(serde_json::json!({
        "state": job.state.as_str(),
        "final": job.state.is_final(),
        "stdout": stdout,
        "stderr": stderr,
    }))
    .into_response()
}
