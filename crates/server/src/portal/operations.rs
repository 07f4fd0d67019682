//! The machine in the browser: the queue per site and partition (everybody: figures for
//! all, details of one's own organisations' jobs only), the sites with their prices and
//! carbon intensity now, and for platform staff the nodes with a utilisation heat map,
//! drain and resume, energy and carbon per site, the programme's indicators and usage
//! reports with CSV download.

use super::auth::check_csrf;
use super::charts::{bars, heat_map, hourly, share};
use super::{Session, answer, failure, render, text};
use crate::api::{Params, indicators, sites, usage};
use crate::{ApiError, AppState};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use store::{JobFilter, JobState};

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v["items"].as_array().into_iter().flatten()
}

fn used_milli(node: &Value) -> u64 {
    node["gpus_used_milli"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .sum()
}

/// Thousandths as `12.3`.
fn tenths(milli: u64) -> String {
    format!("{}.{}", milli / 1000, (milli % 1000) / 100)
}

async fn nodes_of(state: &AppState, session: &Session) -> Result<Value, ApiError> {
    answer(sites::list_nodes(State(state.clone()), session.caller.clone()).await).await
}

#[derive(Default)]
struct Partition {
    nodes: u64,
    drained: u64,
    gpus: u64,
    used_milli: u64,
    waiting: u64,
    waiting_gpus_milli: u64,
    running: u64,
}

pub(super) async fn queue(State(state): State<AppState>, session: Session) -> Response {
    let body = async {
        let nodes = nodes_of(&state, &session).await?;
        let mut parts: BTreeMap<(String, String), Partition> = BTreeMap::new();
        for n in items(&nodes) {
            let p = parts.entry((text(n, "site"), text(n, "partition"))).or_default();
            p.nodes += 1;
            p.drained += u64::from(n["status"] != "up");
            p.gpus += n["gpus"].as_u64().unwrap_or(0);
            p.used_milli += used_milli(n);
        }
        // Everybody's jobs are counted; only the caller's organisations' are named.
        let mut mine = Vec::new();
        for job_state in [JobState::Pending, JobState::Running] {
            let filter = JobFilter {
                state: Some(job_state),
                ..JobFilter::default()
            };
            for j in state.store.list_jobs(&filter, None, 100_000).await? {
                let site = j.spec.site.clone().unwrap_or_else(|| "any".into());
                let partition = j.spec.partition.clone().unwrap_or_else(|| "any".into());
                let p = parts.entry((site, partition)).or_default();
                if job_state == JobState::Pending {
                    p.waiting += 1;
                    p.waiting_gpus_milli += j.spec.gpus.total_milli();
                } else {
                    p.running += 1;
                }
                if session.caller.org_role(&j.org_id).is_some() {
                    mine.push(j);
                }
            }
        }
        mine.sort_by_key(|j| j.submitted_at);
        let chart: Vec<(String, i64, String)> = parts
            .iter()
            .filter(|(_, p)| p.gpus > 0)
            .map(|((s, pa), p)| {
                let permille = (p.used_milli / p.gpus.max(1)) as i64;
                (format!("{s} / {pa}"), permille, format!("{}% of {} GPUs", permille / 10, p.gpus))
            })
            .collect();
        Ok(html! {
            (bars("GPUs in use per partition", &chart))
            div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                caption { "Per site and partition (jobs that name neither wait under “any”)" }
                thead { tr {
                    th scope="col" { "Site" } th scope="col" { "Partition" } th scope="col" { "Nodes (drained)" }
                    th scope="col" { "GPUs in use" } th scope="col" { "Running jobs" } th scope="col" { "Waiting jobs" } th scope="col" { "GPUs asked by waiting jobs" }
                } }
                tbody { @for ((site, partition), p) in &parts { tr {
                    td { (site) } td { (partition) } td { (p.nodes) " (" (p.drained) ")" }
                    td { (tenths(p.used_milli)) " of " (p.gpus) } td { (p.running) } td { (p.waiting) } td { (tenths(p.waiting_gpus_milli)) }
                } } }
            } }
            h2 { "Your organisations' jobs in the queue" }
            @if mine.is_empty() { p { "None waiting or running." } } @else {
                div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                    thead { tr { th scope="col" { "Job" } th scope="col" { "State" } th scope="col" { "GPUs" } th scope="col" { "Walltime" } th scope="col" { "Submitted" } } }
                    tbody { @for j in &mine { tr {
                        td { a href=(format!("/jobs/{}", j.id)) { (j.name) } }
                        td { (j.state.as_str()) @if let Some(r) = &j.reason { " — " (r) } }
                        td { (tenths(j.spec.gpus.total_milli())) }
                        td { (j.spec.walltime_s / 60) " min" }
                        td { (crate::api::rfc3339(j.submitted_at)) }
                    } } }
                } }
            }
        })
    }
    .await;
    render(&session, "Queue", body)
}

fn cents(c: i64) -> String {
    format!("€{}.{:02}", c / 100, c % 100)
}

pub(super) async fn sites(State(state): State<AppState>, session: Session) -> Response {
    let body = async {
        let list = answer(sites::list_sites(State(state.clone()), session.caller.clone()).await).await?;
        let now = crate::accounting::unix_now() as i64;
        let carbon: Vec<(String, i64, String)> = items(&list)
            .map(|s| {
                let g = s["carbon_g_per_kwh"].as_i64().unwrap_or(0);
                (text(s, "name"), g, format!("{g} g CO₂e/kWh"))
            })
            .collect();
        Ok(html! {
            (bars("Carbon intensity of each site's electricity now", &carbon))
            div.cards { @for s in items(&list) {
                section.card {
                    h2 { (text(s, "name")) " (" (text(s, "country")) ")" }
                    @if let Some(site) = state.cluster.sites.iter().find(|c| c.name == text(s, "name")) {
                        @let midnight = now - now % 86_400;
                        @let today: Vec<u32> = (0..24).map(|h| site.carbon_at((midnight + h * 3600) as u64)).collect();
                        (hourly(&format!("Carbon intensity at {} today, g CO₂e/kWh by hour", site.name), &today, ((now % 86_400) / 3600) as usize, "g CO₂e/kWh"))
                    }
                    dl.facts {
                        dt { "GPUs" } dd { @for (model, n) in s["gpus"].as_object().into_iter().flatten() { (n) " × " (model) " " } }
                        dt { "Nodes" } dd { (text(s, "nodes")) }
                        dt { "Price" } dd { (cents(s["gpu_hour_price_cents"].as_i64().unwrap_or(0))) " per GPU-hour (free for awarded SMEs and start-ups)" }
                        dt { "Carbon now" } dd { (text(s, "carbon_g_per_kwh")) " g CO₂e/kWh" }
                        dt { "PUE" } dd { (text(s, "pue")) }
                        dt { "Partitions" } dd { @for p in s["partitions"].as_array().into_iter().flatten() {
                            (text(p, "name")) @if let Some(w) = p["max_walltime_s"].as_u64() { " (up to " (w / 3600) " h)" } " "
                        } }
                    }
                }
            } }
        })
    }
    .await;
    render(&session, "Sites", body)
}

/// The staff pages' sub-navigation.
fn staff_nav() -> Markup {
    html! {
        nav aria-label="operations" {
            p { a href="/operations" { "Nodes" } " · " a href="/operations/energy" { "Energy and carbon" } " · "
                a href="/operations/indicators" { "Programme indicators" } " · " a href="/operations/usage" { "Usage reports" } }
        }
    }
}

pub(super) async fn nodes(State(state): State<AppState>, session: Session) -> Response {
    let body = async {
        crate::authz::staff(&session.caller, "the operations pages are for platform staff")?;
        let nodes = nodes_of(&state, &session).await?;
        let operator = session.caller.manages_allocations();
        let cells: Vec<(String, String, Vec<u16>)> = items(&nodes)
            .map(|n| {
                let used = n["gpus_used_milli"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_u64)
                    .map(|m| m.min(1000) as u16)
                    .collect();
                (text(n, "name"), text(n, "status"), used)
            })
            .collect();
        Ok(html! {
            (staff_nav())
            (heat_map("GPU utilisation by node", &cells))
            div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                thead { tr {
                    th scope="col" { "Node" } th scope="col" { "Site" } th scope="col" { "Partition" } th scope="col" { "GPUs" }
                    th scope="col" { "In use" } th scope="col" { "Status" } th scope="col" { span.visually-hidden { "Action" } }
                } }
                tbody { @for n in items(&nodes) {
                    @let name = text(n, "name");
                    tr {
                        td { (name) } td { (text(n, "site")) } td { (text(n, "partition")) }
                        td { (text(n, "gpus")) " × " (text(n, "gpu_model")) }
                        td { (tenths(used_milli(n))) }
                        td { (text(n, "status")) }
                        td { @if operator {
                            form.inline method="post" action=(format!("/operations/nodes/{name}")) {
                                input type="hidden" name="csrf" value=(session.csrf);
                                @if n["status"] == "up" {
                                    input type="hidden" name="action" value="drain";
                                    button type="submit" aria-label=(format!("Drain {name}")) { "Drain" }
                                } @else {
                                    input type="hidden" name="action" value="resume";
                                    button type="submit" aria-label=(format!("Resume {name}")) { "Resume" }
                                }
                            }
                        } }
                    }
                } }
            } }
        })
    }
    .await;
    render(&session, "Operations", body)
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct NodeAction {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
}

pub(super) async fn set_node(
    State(state): State<AppState>,
    session: Session,
    Path(name): Path<String>,
    Form(f): Form<NodeAction>,
) -> Response {
    if let Some(refused) = check_csrf(&session, &f.csrf) {
        return refused;
    }
    let drain = match f.action.as_str() {
        "drain" => true,
        "resume" => false,
        other => {
            return failure(
                Some(&session),
                ApiError::field("action", format!("drain or resume, not `{other}`")),
            );
        }
    };
    match sites::set_node(state, session.caller.clone(), name, drain).await {
        Ok(_) => Redirect::to("/operations").into_response(),
        Err(e) => failure(Some(&session), e),
    }
}

async fn report(
    state: &AppState,
    session: &Session,
    group_by: &str,
    format: Option<&str>,
) -> Result<Response, ApiError> {
    let mut q = json!({ "group_by": group_by });
    if let Some(f) = format {
        q["format"] = json!(f);
    }
    let query = serde_json::from_value(q).map_err(ApiError::internal)?;
    usage::usage_report(State(state.clone()), session.caller.clone(), Params(query)).await
}

/// kWh and kg from Wh and g.
fn kilo(n: i64) -> String {
    format!("{}.{:03}", n / 1000, (n % 1000).abs())
}

pub(super) async fn energy(State(state): State<AppState>, session: Session) -> Response {
    let body = async {
        let by_site = answer(report(&state, &session, "site", None).await).await?;
        let sites = answer(sites::list_sites(State(state.clone()), session.caller.clone()).await).await?;
        let energy: Vec<(String, i64, String)> = items(&by_site)
            .map(|r| {
                let wh = r["energy_wh"].as_i64().unwrap_or(0);
                (text(r, "key"), wh, format!("{} kWh", kilo(wh)))
            })
            .collect();
        let carbon: Vec<(String, i64, String)> = items(&by_site)
            .map(|r| {
                let g = r["carbon_g"].as_i64().unwrap_or(0);
                (text(r, "key"), g, format!("{} kg CO₂e", kilo(g)))
            })
            .collect();
        Ok(html! {
            (staff_nav())
            (bars("Energy used per site (facility, with PUE)", &energy))
            (bars("Carbon emitted per site", &carbon))
            div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                thead { tr { th scope="col" { "Site" } th scope="col" { "GPU-hours" } th scope="col" { "kWh" } th scope="col" { "kg CO₂e" } th scope="col" { "g CO₂e/kWh now" } th scope="col" { "PUE" } } }
                tbody { @for r in items(&by_site) {
                    @let site = items(&sites).find(|s| s["name"] == r["key"]);
                    tr {
                        td { (text(r, "key")) }
                        td { (kilo(r["gpu_seconds"].as_i64().unwrap_or(0) * 1000 / 3600)) }
                        td { (kilo(r["energy_wh"].as_i64().unwrap_or(0))) }
                        td { (kilo(r["carbon_g"].as_i64().unwrap_or(0))) }
                        td { (site.map(|s| text(s, "carbon_g_per_kwh")).unwrap_or_default()) }
                        td { (site.map(|s| text(s, "pue")).unwrap_or_default()) }
                    }
                } }
            } }
        })
    }
    .await;
    render(&session, "Energy and carbon", body)
}

pub(super) async fn indicators(State(state): State<AppState>, session: Session) -> Response {
    let body = async {
        let query = serde_json::from_value(json!({})).map_err(ApiError::internal)?;
        let r = answer(indicators::programme_report(State(state.clone()), session.caller.clone(), Params(query)).await).await?;
        let nodes = nodes_of(&state, &session).await?;
        let rows: Vec<&Value> = r["rows"].as_array().into_iter().flatten().collect();
        let by_mode: Vec<&&Value> = rows.iter().filter(|row| row["dimension"] == "mode").collect();
        let access: Vec<(String, i64, String)> = by_mode
            .iter()
            .filter_map(|row| {
                let s = row["median_seconds_to_first_job"].as_i64()?;
                Some((text(row, "key"), s, format!("{} h {} min", s / 3600, s % 3600 / 60)))
            })
            .collect();
        let awards: Vec<(String, i64, String)> = by_mode
            .iter()
            .map(|row| {
                let n = row["awards"].as_i64().unwrap_or(0);
                (text(row, "key"), n, format!("{n} of {} applications", text(row, "applications")))
            })
            .collect();
        let mut per_site: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for n in items(&nodes) {
            let e = per_site.entry(text(n, "site")).or_default();
            e.0 += used_milli(n);
            e.1 += n["gpus"].as_u64().unwrap_or(0);
        }
        let utilisation: Vec<(String, i64, String)> = per_site
            .iter()
            .map(|(site, (used, gpus))| {
                let permille = (used / (*gpus).max(1)) as i64;
                (site.clone(), permille, format!("{}.{}% of {gpus} GPUs", permille / 10, permille % 10))
            })
            .collect();
        Ok(html! {
            (staff_nav())
            p { "Generated " (text(&r, "generated_at")) ". " a href="/api/v1/reports/programme?format=csv" { "The table as CSV (API)" } }
            div.cards {
                @if let Some(p) = r["sme_startup_awarded_permille"].as_i64() { (share("GPU-hours awarded to SMEs and start-ups", p)) }
                @if let Some(p) = r["sme_startup_used_permille"].as_i64() { (share("GPU-time used by SMEs and start-ups", p)) }
            }
            @if access.is_empty() { p { "No first jobs yet: the time to access appears when awarded projects run." } }
            @else { (bars("Median time from submission to first job, per mode", &access)) }
            (bars("Awards per mode", &awards))
            (bars("GPU utilisation per site now", &utilisation))
            h2 { "Training" }
            p { (text(&r["training"], "courses")) " courses, " (text(&r["training"], "seats_filled")) " of " (text(&r["training"], "seats_offered")) " seats filled, "
                (text(&r["training"], "waitlisted")) " waitlisted, " (text(&r["training"], "completed")) " completed." }
            div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                thead { tr { th scope="col" { "Dimension" } th scope="col" { "Key" } th scope="col" { "Applications" } th scope="col" { "Eligible" } th scope="col" { "Awards" }
                    th scope="col" { "Awarded GPU-h" } th scope="col" { "Used GPU-h" } th scope="col" { "Median decision (working days)" } } }
                tbody { @for row in &rows { tr {
                    td { (text(row, "dimension")) } td { (text(row, "key")) } td { (text(row, "applications")) } td { (text(row, "eligible")) }
                    td { (text(row, "awards")) } td { (text(row, "awarded_gpu_hours")) } td { (text(row, "used_gpu_hours")) } td { (text(row, "median_decision_working_days")) }
                } } }
            } }
        })
    }
    .await;
    render(&session, "Programme indicators", body)
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct GroupBy {
    group_by: Option<String>,
}

const GROUPS: &[(&str, &str)] = &[
    ("org_type", "organisation type"),
    ("country", "country"),
    ("sector", "sector"),
    ("site", "site"),
    ("month", "month"),
];

pub(super) async fn usage(State(state): State<AppState>, session: Session, Query(g): Query<GroupBy>) -> Response {
    let group_by = g.group_by.unwrap_or_else(|| "org_type".into());
    let body = async {
        let r = answer(report(&state, &session, &group_by, None).await).await?;
        let chart: Vec<(String, i64, String)> = items(&r)
            .map(|row| {
                let s = row["gpu_seconds"].as_i64().unwrap_or(0);
                (text(row, "key"), s, format!("{} GPU-h", kilo(s * 1000 / 3600)))
            })
            .collect();
        Ok(html! {
            (staff_nav())
            form method="get" action="/operations/usage" {
                label for="group_by" { "Group by" }
                select id="group_by" name="group_by" {
                    @for (k, label) in GROUPS { option value=(k) selected[group_by == *k] { (label) } }
                }
                " " button type="submit" { "Show" }
            }
            (bars(&format!("GPU-hours by {}", group_by.replace('_', " ")), &chart))
            div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                thead { tr { th scope="col" { "Key" } th scope="col" { "Entries" } th scope="col" { "GPU-hours" } th scope="col" { "kWh" } th scope="col" { "kg CO₂e" } th scope="col" { "Cost" } } }
                tbody { @for row in items(&r) { tr {
                    td { (text(row, "key")) } td { (text(row, "entries")) }
                    td { (kilo(row["gpu_seconds"].as_i64().unwrap_or(0) * 1000 / 3600)) }
                    td { (kilo(row["energy_wh"].as_i64().unwrap_or(0))) }
                    td { (kilo(row["carbon_g"].as_i64().unwrap_or(0))) }
                    td { (cents(row["cost_cents"].as_i64().unwrap_or(0))) }
                } } }
            } }
            p { a href=(format!("/operations/usage.csv?group_by={group_by}")) download=(format!("usage-by-{group_by}.csv")) { "Download as CSV" } }
        })
    }
    .await;
    render(&session, "Usage reports", body)
}

pub(super) async fn usage_csv(State(state): State<AppState>, session: Session, Query(g): Query<GroupBy>) -> Response {
    let group_by = g.group_by.unwrap_or_else(|| "org_type".into());
    match report(&state, &session, &group_by, Some("csv")).await {
        Ok(mut resp) => {
            let disposition = format!("attachment; filename=\"usage-by-{group_by}.csv\"");
            if let Ok(v) = header::HeaderValue::from_str(&disposition) {
                resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        Err(e) => failure(Some(&session), e),
    }
}
