//! The access programme in the browser: calls, the application form generated from the
//! call's form definition, my applications with their service-level clocks and what can be
//! done with them, the programme manager's assessment and decision forms, the reviewer's
//! inbox and review form, and courses. Every read and every action goes through the API's
//! own handlers with the session's caller.

use super::auth::check_csrf;
use super::{Session, answer, body, failure, general, problem, render, text};
use crate::api::{Params, applications, calls, courses, reviews};
use crate::{ApiError, AppState};
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Map, Value, json};

type Fields = Vec<(String, String)>;

fn field<'a>(f: &'a Fields, name: &str) -> &'a str {
    f.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
}

fn items(v: &Value) -> impl Iterator<Item = &Value> {
    v["items"].as_array().into_iter().flatten()
}

/// Calls, open ones first.
pub(super) async fn calls(State(state): State<AppState>, session: Session) -> Response {
    let body = async {
        let list = answer(calls::list_calls(State(state.clone())).await).await?;
        Ok(html! {
            p { "Calls for GPU time. Confirmed SMEs and start-ups of the EU, the EEA and associated countries use it free of charge." }
            div.cards {
                @for c in items(&list) {
                    section.card aria-labelledby=(format!("call-{}", text(c, "name"))) {
                        h2 id=(format!("call-{}", text(c, "name"))) { a href=(format!("/calls/{}", text(c, "id"))) { (text(c, "title")) } }
                        p { (text(c, "mode")) " · " @if c["accepting"] == true { "accepting applications" } @else { "closed" } }
                        p { "Decision within " (text(c, "decision_working_days")) " working days; access within " (text(c, "access_working_days")) "." }
                        ul { @for b in c["budgets"].as_array().into_iter().flatten() {
                            li { (text(b, "site")) ": " (text(b, "left_gpu_hours")) " of " (text(b, "gpu_hours")) " GPU-hours left" }
                        } }
                    }
                }
            }
            p { a href="/courses" { "Training courses" } }
            @if session.caller.manages_programme() {
                h2 { "Rankings" }
                ul { @for c in items(&list) { li { a href=(format!("/calls/{}/ranking", text(c, "id"))) { "Ranking of " (text(c, "title")) } } } }
            }
        })
    }
    .await;
    render(&session, "Calls", body)
}

/// The application form of a call, generated from its form definition.
fn application_form(
    session: &Session,
    call: &Value,
    orgs: &[store::Org],
    f: &Fields,
    error: Option<&ApiError>,
) -> Markup {
    let spec = &call["spec"];
    let id = text(call, "id");
    let mut known: Vec<String> = [
        "title",
        "site",
        "gpu_hours",
        "duration_days",
        "org",
        "declaration",
        "declaration.country",
        "declaration.sector",
    ]
    .map(String::from)
    .to_vec();
    let questions: Vec<&Value> = spec["form"].as_array().into_iter().flatten().collect();
    for q in &questions {
        known.push(format!("answers.{}", text(q, "name")));
    }
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let value = |name: &str, default: &str| {
        let v = field(f, name);
        if v.is_empty() {
            default.to_string()
        } else {
            v.to_string()
        }
    };
    let org = orgs.first();
    html! {
        h2 { "Apply" }
        (general(error, &known))
        form method="post" action=(format!("/calls/{id}")) {
            input type="hidden" name="csrf" value=(session.csrf);
            @if orgs.len() > 1 {
                label for="org" { "On behalf of" }
                select id="org" name="org" {
                    @for o in orgs { option value=(o.id) selected[field(f, "org") == o.id] { (o.name) } }
                }
            } @else if let Some(o) = org {
                input type="hidden" name="org" value=(o.id);
                p { "On behalf of " strong { (o.name) } "." }
            }
            label for="title" { "Title of the project" }
            input id="title" name="title" required maxlength="200" size="60" value=(field(f, "title"));
            (problem(error, &["title"]))
            label for="site" { "Site" }
            select id="site" name="site" {
                @for b in spec["budgets"].as_array().into_iter().flatten() {
                    option value=(text(b, "site")) selected[field(f, "site") == text(b, "site")] { (text(b, "site")) }
                }
            }
            (problem(error, &["site"]))
            label for="gpu_hours" { "GPU-hours (at most " (text(spec, "max_gpu_hours")) ")" }
            input id="gpu_hours" name="gpu_hours" type="number" min="1" max=(text(spec, "max_gpu_hours")) required value=(value("gpu_hours", "100"));
            (problem(error, &["gpu_hours"]))
            label for="duration_days" { "Duration in days (" (text(spec, "min_duration_days")) " to " (text(spec, "max_duration_days")) ")" }
            input id="duration_days" name="duration_days" type="number" min=(text(spec, "min_duration_days")) max=(text(spec, "max_duration_days")) required value=(value("duration_days", "30"));
            (problem(error, &["duration_days"]))
            @for q in &questions {
                @let name = format!("answers.{}", text(q, "name"));
                @let input_id = format!("answer-{}", text(q, "name"));
                @let required = q["required"] == true;
                @let max = q["max_length"].as_u64();
                @if q["kind"] == "boolean" {
                    label for=(input_id) {
                        input id=(input_id) name=(name) type="checkbox" checked[field(f, &name) == "on"];
                        " " (text(q, "label"))
                    }
                } @else {
                    label for=(input_id) { (text(q, "label")) @if required { " (required)" } }
                    @if !q["help"].is_null() { p id=(format!("{input_id}-help")) { (text(q, "help")) } }
                    @match q["kind"].as_str().unwrap_or("text") {
                        "long-text" => textarea id=(input_id) name=(name) rows="6" cols="70" required[required] maxlength=[max] { (field(f, &name)) },
                        "choice" => select id=(input_id) name=(name) required[required] {
                            @for c in q["choices"].as_array().into_iter().flatten() {
                                @let c = c.as_str().unwrap_or("");
                                option value=(c) selected[field(f, &name) == c] { (c) }
                            }
                        },
                        kind => input id=(input_id) name=(name) required[required] maxlength=[max]
                            type=(match kind { "number" => "number", "url" => "url", "email" => "email", _ => "text" })
                            value=(field(f, &name));,
                    }
                }
                (problem(error, &[name.as_str()]))
            }
            fieldset {
                legend { "Declaration (for the eligibility check)" }
                label for="org_type" { "Kind of organisation" }
                select id="org_type" name="org_type" {
                    @for t in ["startup", "sme", "industry", "research", "public"] {
                        option value=(t) selected[value("org_type", org.map_or("", |o| o.org_type.as_str())) == t] { (t) }
                    }
                }
                label for="country" { "Country of registration (two letters)" }
                input id="country" name="country" maxlength="2" size="3" required value=(value("country", org.map_or("", |o| o.country.as_str())));
                (problem(error, &["declaration.country"]))
                label for="sector" { "Sector" }
                input id="sector" name="sector" required value=(value("sector", org.and_then(|o| o.sectors.first()).map_or("", |s| s.as_str())));
                (problem(error, &["declaration.sector"]))
                label for="founded_on" { "Registered on (start-ups)" }
                input id="founded_on" name="founded_on" type="date" value=(field(f, "founded_on"));
                label for="staff" { "Staff last year, in annual work units (SMEs and start-ups)" }
                input id="staff" name="staff" type="number" min="0" step="0.1" value=(field(f, "staff"));
                label for="turnover" { "Turnover last year, EUR" }
                input id="turnover" name="turnover" type="number" min="0" value=(field(f, "turnover"));
                label for="balance" { "Balance sheet total last year, EUR" }
                input id="balance" name="balance" type="number" min="0" value=(field(f, "balance"));
                label for="declared_true" {
                    input id="declared_true" name="declared_true" type="checkbox" checked[field(f, "declared_true") == "on"];
                    " I declare on my honour that the above is true."
                }
                (problem(error, &["declaration"]))
            }
            div {
                button type="submit" name="intent" value="submit" { "Submit the application" }
                " "
                button type="submit" name="intent" value="draft" { "Save as a draft" }
            }
        }
    }
}

async fn my_orgs(state: &AppState, session: &Session) -> Result<Vec<store::Org>, ApiError> {
    let mut orgs = Vec::new();
    for m in &session.caller.memberships {
        orgs.push(state.store.get_org(&m.org_id).await?);
    }
    Ok(orgs)
}

async fn call_page(
    state: &AppState,
    session: &Session,
    id: &str,
    f: &Fields,
    error: Option<&ApiError>,
) -> Result<(String, Markup), ApiError> {
    let call = answer(calls::get_call(State(state.clone()), Path(id.to_string())).await).await?;
    let orgs = my_orgs(state, session).await?;
    let spec = &call["spec"];
    let body = html! {
        p { (text(&call, "description")) }
        dl.facts {
            dt { "Mode" } dd { (text(&call, "mode")) }
            dt { "Accepting" } dd { @if call["accepting"] == true { "yes" } @else { "no" } }
            dt { "Most GPU-hours per application" } dd { (text(spec, "max_gpu_hours")) }
            dt { "Decision within" } dd { (text(&call, "decision_working_days")) " working days" }
            dt { "Access within" } dd { (text(&call, "access_working_days")) " working days of acceptance" }
            dt { "Review" } dd {
                @if spec["review"]["peer_review"] == true { "peer review by " (text(&spec["review"], "min_reviewers")) " reviewers, then a panel" }
                @else if spec["review"]["technical_assessment"] == true { "technical assessment, then a decision" }
                @else { "awarded at once to eligible applicants while the budget lasts" }
            }
        }
        @if call["accepting"] == true && !orgs.is_empty() {
            (application_form(session, &call, &orgs, f, error))
        } @else if orgs.is_empty() {
            p { "Register an organisation to apply." }
        }
    };
    Ok((text(&call, "title"), body))
}

pub(super) async fn call(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    match call_page(&state, &session, &id, &Vec::new(), None).await {
        Ok((title, body)) => render(&session, &title, Ok(body)),
        Err(e) => failure(Some(&session), e),
    }
}

/// The application the form describes, as the API's request.
fn application_request(call_id: &str, f: &Fields, questions: &[Value]) -> Value {
    let number = |name: &str| -> Value {
        let v = field(f, name).trim();
        v.parse::<i64>()
            .map_or_else(|_| Value::String(v.to_string()), Value::from)
    };
    let mut answers = Map::new();
    for q in questions {
        let name = text(q, "name");
        let raw = field(f, &format!("answers.{name}")).trim().to_string();
        let v = match q["kind"].as_str() {
            Some("boolean") => Value::Bool(raw == "on"),
            Some("number") => raw
                .parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                .unwrap_or(Value::String(raw.clone())),
            _ => Value::String(raw.clone()),
        };
        if !raw.is_empty() || q["kind"] == "boolean" {
            answers.insert(name, v);
        }
    }
    let mut declaration = json!({
        "org_type": field(f, "org_type"),
        "country": field(f, "country").trim().to_ascii_uppercase(),
        "sector": field(f, "sector").trim(),
        "declared_true": field(f, "declared_true") == "on",
    });
    if !field(f, "founded_on").is_empty() {
        declaration["founded_on"] = json!(field(f, "founded_on"));
    }
    if ["staff", "turnover", "balance"]
        .iter()
        .any(|k| !field(f, k).trim().is_empty())
    {
        let whole = |k: &str| field(f, k).trim().parse::<f64>().unwrap_or(0.0);
        let year = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).year() - 1;
        declaration["enterprise"] = json!({ "years": [{
            "year": year,
            "staff_awu_milli": (whole("staff") * 1000.0).round() as i64,
            "turnover_eur": whole("turnover") as i64,
            "balance_sheet_eur": whole("balance") as i64,
        }] });
    }
    let mut request = json!({
        "call": call_id,
        "title": field(f, "title").trim(),
        "site": field(f, "site"),
        "gpu_hours": number("gpu_hours"),
        "duration_days": number("duration_days"),
        "answers": answers,
        "declaration": declaration,
        "submit": field(f, "intent") != "draft",
    });
    if !field(f, "org").is_empty() {
        request["org"] = json!(field(f, "org"));
    }
    request
}

pub(super) async fn apply(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(refused) = check_csrf(&session, field(&f, "csrf")) {
        return refused;
    }
    let created = async {
        let call = answer(calls::get_call(State(state.clone()), Path(id.clone())).await).await?;
        let questions: Vec<Value> = call["spec"]["form"].as_array().cloned().unwrap_or_default();
        let request = application_request(&text(&call, "id"), &f, &questions);
        answer(applications::create_application(State(state.clone()), session.caller.clone(), body(request)?).await)
            .await
    }
    .await;
    match created {
        Ok(app) => Redirect::to(&format!("/applications/{}", text(&app, "id"))).into_response(),
        Err(e) => match call_page(&state, &session, &id, &f, Some(&e)).await {
            Ok((title, body)) => super::page(e.status, super::layout(&title, Some(&session), body)),
            Err(e) => failure(Some(&session), e),
        },
    }
}

fn state_name(v: &Value) -> String {
    text(v, "state").replace('-', " ")
}

/// A service-level clock in words.
fn clock(name: &str, c: &Value) -> Markup {
    html! {
        @if !c.is_null() {
            dt { (name) }
            dd {
                (text(c, "elapsed_working_days")) " of " (text(c, "target_working_days")) " working days"
                @if c["stopped_at"].is_null() { ", due " (text(c, "due_at")) } @else { ", stopped " (text(c, "stopped_at")) }
                @if c["breached"] == true { strong { " — past its target" } }
            }
        }
    }
}

pub(super) async fn applications(State(state): State<AppState>, session: Session) -> Response {
    let body = async {
        let query = serde_json::from_value(json!({})).map_err(ApiError::internal)?;
        let list = answer(applications::list_applications(State(state.clone()), session.caller.clone(), Params(query)).await).await?;
        let mut titles = std::collections::HashMap::new();
        for c in items(&answer(calls::list_calls(State(state.clone())).await).await?) {
            titles.insert(text(c, "id"), text(c, "title"));
        }
        Ok(html! {
            @if session.caller.manages_programme() { p { "Every organisation's applications (you manage the programme)." } }
            div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                thead { tr { th scope="col" { "Title" } th scope="col" { "Call" } th scope="col" { "State" } th scope="col" { "GPU-hours" } th scope="col" { "Decision clock" } } }
                tbody {
                    @for a in items(&list) {
                        tr {
                            td { a href=(format!("/applications/{}", text(a, "id"))) { (text(a, "title")) } }
                            td { (titles.get(&text(a, "call")).cloned().unwrap_or_default()) }
                            td { (state_name(a)) }
                            td { (text(a, "gpu_hours")) }
                            td { @let c = &a["clocks"]["decision"]; @if !c.is_null() {
                                (text(c, "elapsed_working_days")) " / " (text(c, "target_working_days")) " days"
                                @if c["breached"] == true { " (late)" }
                            } }
                        }
                    }
                }
            } }
            @if items(&list).next().is_none() { p { "No applications yet: " a href="/calls" { "see the open calls" } "." } }
        })
    }
    .await;
    render(&session, "Applications", body)
}

/// A small form posting to an application's action, with extra fields.
fn action(session: &Session, id: &str, action: &str, label: &str, fields: Markup) -> Markup {
    html! {
        form method="post" action=(format!("/applications/{id}/{action}")) {
            input type="hidden" name="csrf" value=(session.csrf);
            (fields)
            div { button type="submit" { (label) } }
        }
    }
}

async fn application_body(state: &AppState, session: &Session, id: &str) -> Result<(String, Markup), ApiError> {
    let app =
        answer(applications::get_application(State(state.clone()), session.caller.clone(), Path(id.to_string())).await)
            .await?;
    let events =
        answer(applications::events(State(state.clone()), session.caller.clone(), Path(id.to_string())).await).await?;
    let call = answer(calls::get_call(State(state.clone()), Path(text(&app, "call"))).await).await?;
    let stage = text(&app, "state");
    let applicant_side =
        session.caller.sees_org(&text(&app, "org")) && session.caller.org_role(&text(&app, "org")).is_some();
    let manager = session.caller.manages_programme();
    let (reviews_of, reviewer_names) = if manager && stage == "peer-review" {
        let list = answer(
            reviews::application_reviews(State(state.clone()), session.caller.clone(), Path(id.to_string())).await,
        )
        .await?;
        let names: std::collections::BTreeMap<String, String> = state
            .store
            .users_with_role(store::PlatformRole::Reviewer)
            .await?
            .into_iter()
            .map(|u| (u.id, format!("{} ({})", u.name, u.email)))
            .collect();
        (list, names)
    } else {
        (Value::Null, Default::default())
    };
    let body = html! {
        dl.facts {
            dt { "Call" } dd { a href=(format!("/calls/{}", text(&call, "id"))) { (text(&call, "title")) } }
            dt { "State" } dd { strong { (state_name(&app)) } }
            dt { "Site" } dd { (text(&app, "site")) }
            dt { "GPU-hours" } dd { (text(&app, "gpu_hours")) }
            dt { "Duration" } dd { (text(&app, "duration_days")) " days" }
            @if !app["submitted_at"].is_null() { dt { "Submitted" } dd { (text(&app, "submitted_at")) } }
            (clock("Decision clock", &app["clocks"]["decision"]))
            (clock("Access clock", &app["clocks"]["access"]))
            @if !app["allocation"].is_null() { dt { "Allocation" } dd { (text(&app, "allocation")) " — " a href="/jobs/new" { "submit a job" } } }
        }
        @if let Some(d) = app["decision"].as_object() {
            h2 { "Decision" }
            p { @if d.get("award") == Some(&Value::Bool(true)) { "Awarded " (text(&app["decision"], "gpu_hours")) " GPU-hours: " } @else { "Not awarded: " } (text(&app["decision"], "reasons")) }
        }
        @if let Some(rules) = app["eligibility"]["rules"].as_array() {
            h2 { "Eligibility" }
            ul { @for r in rules { li { @if r["passed"] == true { "✓ " } @else { "✗ " } (text(r, "reason")) } } }
        }
        @if let Some(answers) = app["answers"].as_object() {
            h2 { "Answers" }
            dl { @for (k, v) in answers {
                dt { (k) } dd { (v.as_str().map_or_else(|| v.to_string(), str::to_string)) }
            } }
        }
        @if applicant_side {
            @match stage.as_str() {
                "draft" => (action(session, id, "submit", "Submit the application", html! {})),
                "ineligible" => (action(session, id, "reopen", "Reopen as a draft", html! {})),
                "awarded" => {
                    (action(session, id, "accept", "Accept the award", html! {}))
                    (action(session, id, "decline", "Decline the award", html! {}))
                },
                "right-to-reply" => (action(session, id, "reply", "Send the reply", html! {
                    label for="reply-text" { "Your reply to the reviews" }
                    textarea id="reply-text" name="text" rows="6" cols="70" required {}
                })),
                _ => {},
            }
            @if !["accepted", "declined", "withdrawn", "rejected", "ineligible"].contains(&stage.as_str()) {
                (action(session, id, "withdraw", "Withdraw the application", html! {}))
            }
        }
        @if manager {
            @if stage == "technical-assessment" {
                h2 { "Technical assessment" }
                (action(session, id, "assessment", "Record the assessment", html! {
                    label for="passed" { "Outcome" }
                    select id="passed" name="passed" { option value="yes" { "passed" } option value="no" { "failed" } }
                    label for="notes" { "Notes" }
                    textarea id="notes" name="notes" rows="4" cols="70" required {}
                }))
            }
            @if stage == "peer-review" {
                h2 { "Reviews" }
                ul { @for r in items(&reviews_of) {
                    li { (reviewer_names.get(&text(r, "reviewer")).cloned().unwrap_or_else(|| text(r, "reviewer"))) ": " (text(r, "state"))
                        @if let Some(s) = r["score_milli"].as_i64() { ", score " (s / 1000) "." (format!("{:03}", s % 1000)) } }
                } }
                (action(session, id, "reviewers", "Assign the reviewer", html! {
                    label for="reviewer" { "Reviewer" }
                    select id="reviewer" name="reviewer" {
                        @for (uid, name) in &reviewer_names { option value=(uid) { (name) } }
                    }
                }))
            }
            @if stage == "panel" || (stage == "technical-assessment" && call["spec"]["review"]["peer_review"] != true) {
                h2 { "Decision" }
                (action(session, id, "decision", "Record the decision", html! {
                    label for="award" { "Decision" }
                    select id="award" name="award" { option value="yes" { "award" } option value="no" { "reject" } }
                    label for="decision-hours" { "GPU-hours awarded" }
                    input id="decision-hours" name="gpu_hours" type="number" min="1" value=(text(&app, "gpu_hours"));
                    label for="reasons" { "Reasons (sent to the applicant)" }
                    textarea id="reasons" name="reasons" rows="4" cols="70" required {}
                }))
            }
        }
        h2 { "History" }
        ol { @for e in items(&events) {
            li { (text(e, "at")) ": " (text(e, "from")) " → " (text(e, "to")) @if !e["note"].is_null() { " — " (text(e, "note")) } }
        } }
    };
    Ok((text(&app, "title"), body))
}

pub(super) async fn application(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    match application_body(&state, &session, &id).await {
        Ok((title, body)) => render(&session, &title, Ok(body)),
        Err(e) => failure(Some(&session), e),
    }
}

pub(super) async fn act(
    State(state): State<AppState>,
    session: Session,
    Path((id, act)): Path<(String, String)>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(refused) = check_csrf(&session, field(&f, "csrf")) {
        return refused;
    }
    let (s, c, p) = (State(state.clone()), session.caller.clone(), Path(id.clone()));
    let done = match act.as_str() {
        "submit" => applications::submit(s, c, p).await,
        "withdraw" => applications::withdraw(s, c, p).await,
        "reopen" => applications::reopen(s, c, p).await,
        "accept" => applications::accept(s, c, p).await,
        "decline" => applications::decline(s, c, p).await,
        "reply" => match body(json!({ "text": field(&f, "text") })) {
            Ok(b) => applications::reply(s, c, p, b).await,
            Err(e) => Err(e),
        },
        "reviewers" => match body(json!({ "reviewer": field(&f, "reviewer") })) {
            Ok(b) => reviews::assign(s, c, p, b).await,
            Err(e) => Err(e),
        },
        "assessment" => match body(json!({ "passed": field(&f, "passed") == "yes", "notes": field(&f, "notes") })) {
            Ok(b) => applications::assess(s, c, p, b).await,
            Err(e) => Err(e),
        },
        "decision" => {
            let hours = field(&f, "gpu_hours").trim().parse::<i64>().ok();
            match body(
                json!({ "award": field(&f, "award") == "yes", "gpu_hours": hours, "reasons": field(&f, "reasons") }),
            ) {
                Ok(b) => applications::decide(s, c, p, b).await,
                Err(e) => Err(e),
            }
        }
        _ => Err(ApiError::not_found("action", &act)),
    };
    match done {
        Ok(_) => Redirect::to(&format!("/applications/{id}")).into_response(),
        Err(e) => failure(Some(&session), e),
    }
}

pub(super) async fn inbox(State(state): State<AppState>, session: Session) -> Response {
    let body = async {
        let list = answer(reviews::inbox(State(state.clone()), session.caller.clone()).await).await?;
        Ok(html! {
            div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                thead { tr { th scope="col" { "Application" } th scope="col" { "GPU-hours" } th scope="col" { "Review" } th scope="col" { "Due" } th scope="col" { "Score" } } }
                tbody {
                    @for item in items(&list) {
                        @let r = &item["review"];
                        tr {
                            td { a href=(format!("/reviews/{}", text(r, "id"))) { (text(&item["application"], "title")) } }
                            td { (text(&item["application"], "gpu_hours")) }
                            td { (text(r, "state")) }
                            td { (text(r, "due_at")) }
                            td { @if let Some(s) = r["score_milli"].as_i64() { (s / 1000) "." (format!("{:03}", s % 1000)) } }
                        }
                    }
                }
            } }
            @if items(&list).next().is_none() { p { "Nothing to review." } }
        })
    }
    .await;
    render(&session, "Reviews", body)
}

async fn review_body(
    state: &AppState,
    session: &Session,
    id: &str,
    error: Option<&ApiError>,
) -> Result<(String, Markup), ApiError> {
    let item =
        answer(reviews::get_review(State(state.clone()), session.caller.clone(), Path(id.to_string())).await).await?;
    let app = &item["application"];
    let r = &item["review"];
    let call = answer(calls::get_call(State(state.clone()), Path(text(app, "call"))).await).await?;
    let review = &call["spec"]["review"];
    let max = review["max_score"].as_u64().unwrap_or(5);
    let criteria: Vec<String> = review["criteria"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| text(c, "name"))
        .collect();
    let mut known: Vec<String> = criteria.iter().map(|c| format!("scores.{c}")).collect();
    known.push("comments".into());
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    let body = html! {
        dl.facts {
            dt { "Call" } dd { (text(&call, "title")) }
            dt { "GPU-hours asked" } dd { (text(app, "gpu_hours")) " at " (text(app, "site")) " for " (text(app, "duration_days")) " days" }
            dt { "Review due" } dd { (text(r, "due_at")) }
            dt { "State" } dd { (text(r, "state")) }
        }
        h2 { "The application" }
        dl { @for (k, v) in app["answers"].as_object().into_iter().flatten() {
            dt { (k) } dd { (v.as_str().map_or_else(|| v.to_string(), str::to_string)) }
        } }
        @if r["state"] == "assigned" {
            h2 { "Your review" }
            (general(error, &known))
            form method="post" action=(format!("/reviews/{id}")) {
                input type="hidden" name="csrf" value=(session.csrf);
                @for c in &criteria {
                    label for=(format!("score-{c}")) { (c) " (1 to " (max) ")" }
                    select id=(format!("score-{c}")) name=(format!("scores.{c}")) required {
                        option value="" { "choose" }
                        @for s in 1..=max { option value=(s) { (s) } }
                    }
                    (problem(error, &[format!("scores.{c}").as_str()]))
                }
                label for="comments" { "Comments (the applicant reads them)" }
                textarea id="comments" name="comments" rows="8" cols="70" required {}
                (problem(error, &["comments"]))
                div { button type="submit" { "Submit the review" } }
            }
        } @else {
            h2 { "Scores" }
            ul { @for (k, v) in r["scores"].as_object().into_iter().flatten() { li { (k) ": " (v) } } }
            p { (text(r, "comments")) }
        }
    };
    Ok((format!("Review: {}", text(app, "title")), body))
}

pub(super) async fn review(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    match review_body(&state, &session, &id, None).await {
        Ok((title, body)) => render(&session, &title, Ok(body)),
        Err(e) => failure(Some(&session), e),
    }
}

pub(super) async fn submit_review(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(refused) = check_csrf(&session, field(&f, "csrf")) {
        return refused;
    }
    let mut scores = Map::new();
    for (k, v) in &f {
        if let Some(c) = k.strip_prefix("scores.") {
            let n = v.trim().parse::<u32>().map_or(Value::Null, Value::from);
            scores.insert(c.to_string(), n);
        }
    }
    let request = json!({ "scores": scores, "comments": field(&f, "comments") });
    let done = match body(request) {
        Ok(b) => reviews::submit_review(State(state.clone()), session.caller.clone(), Path(id.clone()), b).await,
        Err(_) => Err(ApiError::field("scores", "score every criterion")),
    };
    match done {
        Ok(_) => Redirect::to("/reviews").into_response(),
        Err(e) => match review_body(&state, &session, &id, Some(&e)).await {
            Ok((title, body)) => super::page(e.status, super::layout(&title, Some(&session), body)),
            Err(e) => failure(Some(&session), e),
        },
    }
}

pub(super) async fn courses(State(state): State<AppState>, session: Session) -> Response {
    let body = async {
        let list = answer(courses::list_courses(State(state.clone())).await).await?;
        Ok(html! {
            div.cards { @for c in items(&list) {
                section.card {
                    h2 { (text(c, "title")) }
                    p { (text(c, "description")) }
                    p { (text(c, "starts_at")) " to " (text(c, "ends_at")) " at " (text(c, "site")) "; "
                        (text(c, "seats_left")) " of " (text(c, "seats")) " seats left; "
                        (text(c, "gpu_hours_per_trainee")) " GPU-hours per trainee." }
                    form method="post" action=(format!("/courses/{}/enrol", text(c, "id"))) {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" aria-label=(format!("Enrol in {}", text(c, "title"))) { "Enrol" }
                    }
                }
            } }
        })
    }
    .await;
    render(&session, "Courses", body)
}

pub(super) async fn enrol(
    State(state): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    if let Some(refused) = check_csrf(&session, field(&f, "csrf")) {
        return refused;
    }
    match courses::enrol_self(State(state), session.caller.clone(), Path(id)).await {
        Ok(_) => Redirect::to("/").into_response(),
        Err(e) => failure(Some(&session), e),
    }
}

/// A call's applications ranked by their reviews (programme managers).
pub(super) async fn ranking(State(state): State<AppState>, session: Session, Path(id): Path<String>) -> Response {
    let body = async {
        let call = answer(calls::get_call(State(state.clone()), Path(id.clone())).await).await?;
        let query = serde_json::from_value(json!({})).map_err(ApiError::internal)?;
        let ranked = answer(reviews::ranking(State(state.clone()), session.caller.clone(), Path(text(&call, "id")), Params(query)).await).await?;
        let chart: Vec<(String, i64, String)> = items(&ranked)
            .filter_map(|r| {
                let s = r["mean_score_milli"].as_i64()?;
                Some((format!("{}. {}", text(r, "rank"), text(r, "title")), s, format!("{}.{:03}", s / 1000, s % 1000)))
            })
            .collect();
        Ok(html! {
            p { a href=(format!("/calls/{}", text(&call, "id"))) { (text(&call, "title")) } }
            (super::charts::bars("Mean weighted review score", &chart))
            div.scroll tabindex="0" role="region" aria-label="Table, scrolls sideways" { table {
                thead { tr { th scope="col" { "Rank" } th scope="col" { "Application" } th scope="col" { "State" } th scope="col" { "GPU-hours" } th scope="col" { "Reviews" } th scope="col" { "Mean score" } } }
                tbody { @for r in items(&ranked) { tr {
                    td { (text(r, "rank")) }
                    td { a href=(format!("/applications/{}", text(r, "application"))) { (text(r, "title")) } }
                    td { (state_name(r)) } td { (text(r, "gpu_hours")) } td { (text(r, "reviews")) }
                    td { @if let Some(s) = r["mean_score_milli"].as_i64() { (s / 1000) "." (format!("{:03}", s % 1000)) } }
                } } }
            } }
        })
    }
    .await;
    render(&session, "Ranking", body)
}
