//! The job composer: a script, GPUs, a walltime, datasets and a project, with a few
//! templates to start from; submitted exactly as the API submits (`api::jobs::submit`), so
//! the same checks and refusals apply, shown beside the field they are about.

use super::auth::check_csrf;
use super::{Session, layout, page};
use crate::api::jobs::{SubmitJob, submit};
use crate::{ApiError, AppState};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

/// Templates: a name, what it is for, and its script.
const TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "hello",
        "Hello from the GPUs",
        "echo \"hello from GPUs $CUDA_VISIBLE_DEVICES on $(hostname)\"\n",
    ),
    (
        "datasets",
        "List the staged datasets",
        "ls -R \"$AIFACTORY_DATASETS\"\n",
    ),
    (
        "steps",
        "A training loop that reports its steps",
        "for step in 1 2 3 4 5; do\n  echo \"step $step on GPU $CUDA_VISIBLE_DEVICES\"\n  sleep 1\ndone\n",
    ),
];

#[derive(Debug, Default, Deserialize)]
pub(super) struct Composed {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    script: String,
    #[serde(default)]
    gpus: String,
    #[serde(default)]
    minutes: String,
    #[serde(default)]
    datasets: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct Start {
    template: Option<String>,
}

async fn form(state: &AppState, session: &Session, c: &Composed, error: Option<&ApiError>) -> Result<Markup, ApiError> {
    let mut projects = Vec::new();
    for m in &session.caller.memberships {
        projects.extend(state.store.list_projects(Some(&m.org_id)).await?);
    }
    let problem = |field: &str| {
        error
            .filter(|e| e.field.as_deref() == Some(field))
            .map(|e| e.detail.clone())
    };
    let general = error.filter(|e| {
        !matches!(
            e.field.as_deref(),
            Some("gpus" | "walltime_s" | "command" | "datasets" | "name")
        )
    });
    let field_error = |id: &str, field: &str| {
        html! { @if let Some(p) = problem(field) { p.error id=(format!("{id}-error")) role="alert" { (p) } } }
    };
    Ok(html! {
        @if let Some(e) = general { p.error role="alert" { (e.detail) } }
        p { "Start from a template: "
            @for (key, title, _) in TEMPLATES { a href=(format!("/jobs/new?template={key}")) { (title) } " · " } }
        form method="post" action="/jobs/new" {
            input type="hidden" name="csrf" value=(session.csrf);
            label for="project" { "Project" }
            select id="project" name="project" required {
                @for p in &projects {
                    option value=(p.id) selected[p.id == c.project] { (p.name) }
                }
            }
            label for="name" { "Name" }
            input id="name" name="name" value=(c.name) maxlength="200";
            label for="script" { "Script (run with bash in the job's directory)" }
            textarea id="script" name="script" rows="10" cols="70" required
                aria-describedby=[problem("command").map(|_| "script-error")] { (c.script) }
            (field_error("script", "command"))
            label for="gpus" { "GPUs" }
            input id="gpus" name="gpus" type="number" min="1" max="4096" required value=(c.gpus)
                aria-describedby=[problem("gpus").map(|_| "gpus-error")];
            (field_error("gpus", "gpus"))
            label for="minutes" { "Walltime (minutes)" }
            input id="minutes" name="minutes" type="number" min="1" required value=(c.minutes)
                aria-describedby=[problem("walltime_s").map(|_| "minutes-error")];
            (field_error("minutes", "walltime_s"))
            label for="datasets" { "Datasets (namespace/name[@revision], separated by commas; optional)" }
            input id="datasets" name="datasets" value=(c.datasets) size="60"
                aria-describedby=[problem("datasets").map(|_| "datasets-error")];
            (field_error("datasets", "datasets"))
            div { button type="submit" { "Submit the job" } }
        }
    })
}

pub(super) async fn new(State(state): State<AppState>, session: Session, Query(start): Query<Start>) -> Response {
    let script = start
        .template
        .as_deref()
        .and_then(|t| TEMPLATES.iter().find(|(k, _, _)| *k == t))
        .map_or(TEMPLATES[0].2, |(_, _, s)| s);
    let c = Composed {
        script: script.to_string(),
        gpus: "1".into(),
        minutes: "10".into(),
        ..Composed::default()
    };
    match form(&state, &session, &c, None).await {
        Ok(body) => page(StatusCode::OK, layout("New job", Some(&session), body)),
        Err(e) => e.into_response(),
    }
}

fn to_submission(c: &Composed) -> Result<SubmitJob, ApiError> {
    let gpus: u32 = c
        .gpus
        .trim()
        .parse()
        .map_err(|_| ApiError::field("gpus", "GPUs: a whole number, 1 or more"))?;
    let minutes: u64 = c
        .minutes
        .trim()
        .parse()
        .map_err(|_| ApiError::field("walltime_s", "Walltime: a whole number of minutes"))?;
    if c.script.trim().is_empty() {
        return Err(ApiError::field("command", "The script is empty"));
    }
    let datasets = c
        .datasets
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .collect();
    let name = Some(c.name.trim().to_string()).filter(|n| !n.is_empty());
    Ok(SubmitJob::composed(
        c.project.clone(),
        name,
        vec!["bash".into(), "-c".into(), c.script.replace("\r\n", "\n")],
        gpus,
        minutes.saturating_mul(60),
        datasets,
    ))
}

pub(super) async fn create(State(state): State<AppState>, session: Session, Form(c): Form<Composed>) -> Response {
    if let Some(refused) = check_csrf(&session, &c.csrf) {
        return refused;
    }
    let submitted = match to_submission(&c) {
        Ok(s) => submit(&state, &session.caller, s, None).await,
        Err(e) => Err(e),
    };
    match submitted {
        Ok(job) => Redirect::to(&format!("/jobs/{}", job.id)).into_response(),
        Err(e) => match form(&state, &session, &c, Some(&e)).await {
            Ok(body) => page(
                StatusCode::UNPROCESSABLE_ENTITY,
                layout("New job", Some(&session), body),
            ),
            Err(e) => e.into_response(),
        },
    }
}
