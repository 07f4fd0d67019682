//! The catalogue in the browser: search with facets, an entry's page (metadata, how to
//! download it with the Hugging Face client, provenance), and access requests for
//! restricted entries, all through the API's handlers.

use super::auth::check_csrf;
use super::{Session, answer, body, failure, general, problem, render, text};
use crate::api::{Params, access, catalogue};
use crate::hub::MaybeCaller;
use crate::{ApiError, AppState};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

fn title_of(metadata: &Value, fallback: &str) -> String {
    metadata["titles"]["en"]
        .as_str()
        .or_else(|| {
            metadata["titles"]
                .as_object()
                .and_then(|t| t.values().next())
                .and_then(Value::as_str)
        })
        .unwrap_or(fallback)
        .to_string()
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Search {
    #[serde(default)]
    q: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    access_rights: String,
}

pub(super) async fn search(State(state): State<AppState>, session: Session, Query(s): Query<Search>) -> Response {
    let body = async {
        let mut q = json!({ "limit": 50 });
        for (k, v) in [("q", &s.q), ("kind", &s.kind), ("access_rights", &s.access_rights)] {
            if !v.trim().is_empty() {
                q[k] = json!(v.trim());
            }
        }
        let query = serde_json::from_value(q).map_err(|e| ApiError::field("q", e.to_string()))?;
        let found = answer(catalogue::search(State(state.clone()), Params(query)).await).await?;
        Ok(html! {
            form method="get" action="/catalogue" role="search" {
                label for="q" { "Search datasets and models" }
                input id="q" name="q" type="search" value=(s.q) size="40";
                label for="kind" { "Kind" }
                select id="kind" name="kind" {
                    option value="" { "any" }
                    @for k in ["dataset", "model"] { option value=(k) selected[s.kind == k] { (k) } }
                }
                label for="access_rights" { "Access" }
                select id="access_rights" name="access_rights" {
                    option value="" { "any" }
                    @for k in ["public", "restricted"] { option value=(k) selected[s.access_rights == k] { (k) } }
                }
                div { button type="submit" { "Search" } }
            }
            p role="status" { (text(&found, "total")) " entries" }
            div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                thead { tr { th scope="col" { "Entry" } th scope="col" { "Kind" } th scope="col" { "Publisher" } th scope="col" { "Access" } th scope="col" { "Licence" } } }
                tbody { @for e in found["items"].as_array().into_iter().flatten() {
                    tr {
                        td { @if e["harvested_from"].is_null() {
                            a href=(format!("/catalogue/{}/{}", text(e, "kind"), text(e, "repo_id"))) { (title_of(&e["metadata"], &text(e, "repo_id"))) }
                        } @else {
                            (title_of(&e["metadata"], &text(e, "repo_id"))) " (from " (text(e, "harvested_from")) ")"
                        } }
                        td { (text(e, "kind")) }
                        td { (text(e, "publisher")) }
                        td { (text(e, "access_rights")) }
                        td { (text(&e["metadata"], "licence")) }
                    }
                } }
            } }
        })
    }
    .await;
    render(&session, "Catalogue", body)
}

async fn entry_body(
    state: &AppState,
    session: &Session,
    path: (String, String, String),
    error: Option<&ApiError>,
) -> Result<(String, Markup), ApiError> {
    let (kind, namespace, name) = path.clone();
    let entry = answer(
        catalogue::show_entry(
            State(state.clone()),
            MaybeCaller(Some(session.caller.clone())),
            Path(path.clone()),
        )
        .await,
    )
    .await?;
    let requests = if entry["access_rights"] == "restricted" {
        answer(access::list_requests(State(state.clone()), session.caller.clone(), Path(path)).await).await?
    } else {
        Value::Null
    };
    let m = &entry["metadata"];
    let repo_id = text(&entry, "repo_id");
    let back = format!("/catalogue/{kind}/{namespace}/{name}");
    let hf_kind = if kind == "dataset" {
        ", repo_type=\"dataset\""
    } else {
        ""
    };
    let body = html! {
        @if let Some(d) = m["descriptions"]["en"].as_str().or_else(|| m["descriptions"].as_object().and_then(|t| t.values().next()).and_then(Value::as_str)) {
            p { (d) }
        }
        dl.facts {
            dt { "Identifier" } dd { code { (repo_id) } }
            dt { "Kind" } dd { (kind) }
            dt { "Publisher" } dd { (text(&entry, "publisher")) }
            dt { "Access" } dd { (text(&entry, "access_rights")) }
            dt { "Licence" } dd { (text(m, "licence")) }
            dt { "Keywords" } dd { (m["keywords"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")) }
            dt { "Themes" } dd { (m["themes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")) }
            dt { "Formats" } dd { (entry["formats"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")) }
            dt { "Updated" } dd { (text(&entry, "updated_at")) }
            @if !entry["produced_by_job"].is_null() {
                dt { "Made by job" } dd { a href=(format!("/jobs/{}", text(&entry, "produced_by_job"))) { (text(&entry, "produced_by_job")) } }
            }
        }
        h2 { "Download" }
        pre { code { "from huggingface_hub import snapshot_download\nsnapshot_download(\"" (repo_id) "\"" (hf_kind) ")  # HF_ENDPOINT = this factory" } }
        p { "In a job: " code { "aifactory job submit --dataset " (namespace) "/" (name) } " stages it for the job." }
        @if entry["access_rights"] == "restricted" {
            h2 { "Access" }
            @let mine: Vec<&Value> = requests["items"].as_array().into_iter().flatten().collect();
            @if !mine.is_empty() {
                div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                    thead { tr { th scope="col" { "Asked" } th scope="col" { "Purpose" } th scope="col" { "Days" } th scope="col" { "State" } th scope="col" { "Until" } th scope="col" { "Decision" } } }
                    tbody { @for r in &mine { tr {
                        td { (text(r, "created_at")) } td { (text(r, "purpose")) } td { (text(r, "days")) } td { (text(r, "state")) } td { (text(r, "valid_until")) }
                        td {
                            // The entry's owners see everybody's requests and decide them.
                            @if text(r, "user") != session.caller.user.id && r["state"] == "pending" {
                                (decision_form(session, r, &back, "decide"))
                            } @else if text(r, "user") != session.caller.user.id && r["state"] == "granted" {
                                (decision_form(session, r, &back, "revoke"))
                            } @else { (text(r, "reason")) }
                        }
                    } } }
                } }
            }
            (general(error, &["purpose", "days"]))
            form method="post" action=(format!("/catalogue/{kind}/{namespace}/{name}/access")) {
                input type="hidden" name="csrf" value=(session.csrf);
                label for="purpose" { "What the data is for (research, training, evaluation, commercial…)" }
                input id="purpose" name="purpose" required maxlength="200";
                (problem(error, &["purpose"]))
                label for="days" { "For how many days" }
                input id="days" name="days" type="number" min="1" value="90" required;
                (problem(error, &["days"]))
                div { button type="submit" { "Ask for access" } }
            }
        }
    };
    Ok((title_of(m, &repo_id), body))
}

pub(super) async fn entry(
    State(state): State<AppState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
) -> Response {
    match entry_body(&state, &session, path, None).await {
        Ok((title, body)) => render(&session, &title, Ok(body)),
        Err(e) => failure(Some(&session), e),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct AccessForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    days: String,
}

pub(super) async fn request_access(
    State(state): State<AppState>,
    session: Session,
    Path(path): Path<(String, String, String)>,
    Form(f): Form<AccessForm>,
) -> Response {
    if let Some(refused) = check_csrf(&session, &f.csrf) {
        return refused;
    }
    let days = f.days.trim().parse::<u32>();
    let done = match days {
        Err(_) => Err(ApiError::field("days", "a whole number of days")),
        Ok(days) => match body(json!({ "purpose": f.purpose.trim(), "days": days })) {
            Ok(b) => access::request_access(State(state.clone()), session.caller.clone(), Path(path.clone()), b).await,
            Err(e) => Err(e),
        },
    };
    match done {
        Ok(_) => Redirect::to(&format!("/catalogue/{}/{}/{}", path.0, path.1, path.2)).into_response(),
        Err(e) => match entry_body(&state, &session, path, Some(&e)).await {
            Ok((title, body)) => super::page(e.status, super::layout(&title, Some(&session), body)),
            Err(e) => failure(Some(&session), e),
        },
    }
}

/// An owner's form on a request: grant or refuse a pending one, revoke a granted one.
fn decision_form(session: &Session, r: &Value, back: &str, action: &str) -> Markup {
    let id = text(r, "id");
    html! {
        form method="post" action=(format!("/catalogue/requests/{id}/{action}")) {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="back" value=(back);
            @if action == "decide" {
                label for=(format!("grant-{id}")) { "Decision" }
                select id=(format!("grant-{id}")) name="grant" { option value="yes" { "grant" } option value="no" { "refuse" } }
            }
            label for=(format!("reason-{id}")) { "Reason (the requester reads it)" }
            input id=(format!("reason-{id}")) name="reason" required maxlength="2000";
            div { button type="submit" { @if action == "decide" { "Decide" } @else { "Revoke" } } }
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: String,
    #[serde(default)]
    grant: String,
    #[serde(default)]
    reason: String,
}

pub(super) async fn decide_request(
    State(state): State<AppState>,
    session: Session,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<DecisionForm>,
) -> Response {
    if let Some(refused) = check_csrf(&session, &f.csrf) {
        return refused;
    }
    let (s, c, p) = (State(state), session.caller.clone(), Path(id));
    let done = match action.as_str() {
        "decide" => match body(json!({ "grant": f.grant == "yes", "reason": f.reason.trim() })) {
            Ok(b) => access::decide(s, c, p, b).await,
            Err(e) => Err(e),
        },
        "revoke" => match body(json!({ "reason": f.reason.trim() })) {
            Ok(b) => access::revoke(s, c, p, b).await,
            Err(e) => Err(e),
        },
        other => Err(ApiError::not_found("action", other)),
    };
    // Back only to a catalogue page of ours.
    let back = if f.back.starts_with("/catalogue/") && !f.back.contains("//") {
        f.back
    } else {
        "/catalogue".into()
    };
    match done {
        Ok(_) => Redirect::to(&back).into_response(),
        Err(e) => failure(Some(&session), e),
    }
}
