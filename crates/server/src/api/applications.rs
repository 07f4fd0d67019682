//! Applications to calls: drafts, submission (eligibility, and the automatic award of a
//! playground), assessment and decision by programme managers, the applicant's reply,
//! acceptance (the project and allocation are created at once), withdrawal, the history
//! (evidence documents: `documents`). Transitions are made by `crate::programme`.

use super::prelude::*;
use crate::programme;
use access::calendar::Clock;
use access::eligibility::{Decision, Declaration};
use access::workflow::{Event, Kind, State as AppStateKind};
use std::collections::BTreeMap;
use store::{Application, PanelDecision};

pub(crate) fn endpoints() -> Vec<Endpoint> {
    let action = |path: &'static str, summary: &'static str, route| {
        e("post", path, summary, true, &[], None, route).returns::<ApplicationView>()
    };
    vec![
        e(
            "post",
            "/api/v1/applications",
            "Start an application to a call (and submit it with `submit: true`)",
            true,
            &[],
            Some(schema::<CreateApplication>),
            post(create_application),
        )
        .returns::<ApplicationView>(),
        e(
            "get",
            "/api/v1/applications",
            "Applications the caller may see: their organisations' (programme managers: all)",
            true,
            &["call", "state"],
            None,
            get(list_applications),
        )
        .returns::<Items<ApplicationView>>(),
        e(
            "get",
            "/api/v1/applications/{id}",
            "One application with its eligibility decision and service-level clocks",
            true,
            &[],
            None,
            get(get_application),
        )
        .returns::<ApplicationView>(),
        e(
            "patch",
            "/api/v1/applications/{id}",
            "Change a draft",
            true,
            &[],
            Some(schema::<EditApplication>),
            axum::routing::patch(edit_application),
        )
        .returns::<ApplicationView>(),
        action(
            "/api/v1/applications/{id}/submit",
            "Submit a draft: eligibility is decided at once",
            post(submit),
        ),
        action(
            "/api/v1/applications/{id}/withdraw",
            "Withdraw (possible until the award is accepted)",
            post(withdraw),
        ),
        action(
            "/api/v1/applications/{id}/reopen",
            "Turn an ineligible application back into a draft",
            post(reopen),
        ),
        action(
            "/api/v1/applications/{id}/accept",
            "Accept an award: the project and its allocation are created at once",
            post(accept),
        ),
        action("/api/v1/applications/{id}/decline", "Decline an award", post(decline)),
        e(
            "post",
            "/api/v1/applications/{id}/assessment",
            "Record the technical assessment (programme manager)",
            true,
            &[],
            Some(schema::<Assessment>),
            post(assess),
        )
        .returns::<ApplicationView>(),
        e(
            "post",
            "/api/v1/applications/{id}/decision",
            "Award or reject, with reasons (programme manager)",
            true,
            &[],
            Some(schema::<DecisionRequest>),
            post(decide),
        )
        .returns::<ApplicationView>(),
        e(
            "post",
            "/api/v1/applications/{id}/reply",
            "Answer the reviews before the panel (the right to reply)",
            true,
            &[],
            Some(schema::<Reply>),
            post(reply),
        )
        .returns::<ApplicationView>(),
        e(
            "get",
            "/api/v1/applications/{id}/events",
            "What happened to the application, oldest first",
            true,
            &[],
            None,
            get(events),
        )
        .returns::<Items<EventView>>(),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Clocks {
    /// Submission to decision, against the call's promise.
    decision: Option<ClockView>,
    /// Submission to a usable allocation.
    access: Option<ClockView>,
}

/// A service-level clock in working days (weekends and the host country's holidays skipped).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ClockView {
    target_working_days: u32,
    elapsed_working_days: u32,
    started_at: String,
    due_at: String,
    stopped_at: Option<String>,
    /// Stopped after it was due, or still running past it.
    breached: bool,
}

fn clock_view(c: Clock) -> ClockView {
    ClockView {
        target_working_days: c.target_working_days,
        elapsed_working_days: c.elapsed_working_days,
        started_at: rfc3339(c.started_at),
        due_at: rfc3339(c.due_at),
        stopped_at: c.stopped_at.map(rfc3339),
        breached: c.breached,
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ApplicationView {
    id: String,
    /// A new award, or an extension, supplement or renewal of `for_allocation`.
    kind: Kind,
    for_allocation: Option<String>,
    call: String,
    org: String,
    applicant: String,
    title: String,
    state: AppStateKind,
    site: String,
    gpu_hours: i64,
    duration_days: i64,
    answers: BTreeMap<String, Value>,
    declaration: Option<Declaration>,
    eligibility: Option<Decision>,
    team: Vec<String>,
    round_cutoff: Option<String>,
    reply: Option<String>,
    decision: Option<PanelDecision>,
    project: Option<String>,
    allocation: Option<String>,
    created_at: String,
    submitted_at: Option<String>,
    decided_at: Option<String>,
    accepted_at: Option<String>,
    closed_at: Option<String>,
    clocks: Clocks,
}

pub(crate) fn application_view(call: &store::Call, a: &Application) -> ApplicationView {
    let now = unix_now() as i64;
    let calendar = call.spec.calendar();
    let clock = |target: u32, stop: Option<i64>| {
        a.submitted_at.map(|s| {
            // A closed application's clock stops when it closed.
            let stop = stop.or(a.closed_at);
            clock_view(Clock::read(&calendar, target, s, stop, now))
        })
    };
    ApplicationView {
        id: a.id.clone(),
        kind: a.kind,
        for_allocation: a.for_allocation.clone(),
        call: a.call_id.clone(),
        org: a.org_id.clone(),
        applicant: a.applicant_user_id.clone(),
        title: a.title.clone(),
        state: a.state,
        site: a.site.clone(),
        gpu_hours: a.gpu_hours,
        duration_days: a.duration_days,
        answers: a.answers.clone(),
        declaration: a.declaration.clone(),
        eligibility: a.eligibility.clone(),
        team: a.team.clone(),
        round_cutoff: a.round_cutoff.map(rfc3339),
        reply: a.reply.clone(),
        decision: a.decision.clone(),
        project: a.project_id.clone(),
        allocation: a.allocation_id.clone(),
        created_at: rfc3339(a.created_at),
        submitted_at: a.submitted_at.map(rfc3339),
        decided_at: a.decided_at.map(rfc3339),
        accepted_at: a.accepted_at.map(rfc3339),
        closed_at: a.closed_at.map(rfc3339),
        clocks: Clocks {
            decision: clock(call.spec.decision_working_days, a.decided_at),
            access: clock(call.spec.access_working_days, a.accepted_at),
        },
    }
}

impl ApplicationView {
    /// What a reviewer of a blind call sees: the proposal, not who made it.
    pub(crate) fn blind(&mut self) {
        self.org = "hidden".into();
        self.applicant = "hidden".into();
        self.team = vec![];
        self.declaration = None;
        self.eligibility = None;
        self.project = None;
        self.allocation = None;
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateApplication {
    /// The call's id or name.
    call: String,
    /// The applying organisation; the caller's only one when absent.
    org: Option<String>,
    title: String,
    /// Where; the call's first site when absent.
    site: Option<String>,
    gpu_hours: i64,
    duration_days: i64,
    #[serde(default)]
    answers: BTreeMap<String, Value>,
    declaration: Option<Declaration>,
    /// E-mail addresses of the people who will work in the project.
    #[serde(default)]
    team: Vec<String>,
    /// Submit at once.
    #[serde(default)]
    submit: bool,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditApplication {
    title: Option<String>,
    site: Option<String>,
    gpu_hours: Option<i64>,
    duration_days: Option<i64>,
    answers: Option<BTreeMap<String, Value>>,
    declaration: Option<Declaration>,
    team: Option<Vec<String>>,
}

/// Checks the request's fields against the call; `complete` for a submission.
fn check(call: &store::Call, a: &Application, complete: bool) -> Result<(), ApiError> {
    let spec = &call.spec;
    non_empty("title", &a.title, 200)?;
    if spec.budget_at(&a.site).is_none() {
        let sites: Vec<&str> = spec.budgets.iter().map(|b| b.site.as_str()).collect();
        return Err(ApiError::field(
            "site",
            format!("the call gives GPU-hours at {}, not at `{}`", sites.join(", "), a.site),
        ));
    }
    if !(1..=spec.max_gpu_hours).contains(&a.gpu_hours) {
        return Err(ApiError::field(
            "gpu_hours",
            format!(
                "`gpu_hours` is between 1 and the call's maximum of {}",
                spec.max_gpu_hours
            ),
        ));
    }
    let days = i64::from(spec.min_duration_days)..=i64::from(spec.max_duration_days);
    if !days.contains(&a.duration_days) {
        return Err(ApiError::field(
            "duration_days",
            format!(
                "`duration_days` is between {} and {} for this call",
                spec.min_duration_days, spec.max_duration_days
            ),
        ));
    }
    if a.team.len() > 100 {
        return Err(ApiError::field("team", "at most 100 team members"));
    }
    for (i, email) in a.team.iter().enumerate() {
        if !access::call::looks_like_email(email) {
            return Err(ApiError::field(
                &format!("team[{i}]"),
                format!("`{email}` is not an e-mail address"),
            ));
        }
    }
    spec.check_answers(&a.answers, complete)
        .map_err(|(field, message)| ApiError::field(&field, message))?;
    if let Some(d) = &a.declaration {
        check_declaration(d)?;
    }
    Ok(())
}

fn check_declaration(d: &Declaration) -> Result<(), ApiError> {
    if access::countries::normalise(&d.country).is_none() {
        return Err(ApiError::field(
            "declaration.country",
            "a two-letter country code such as `IT`",
        ));
    }
    non_empty("declaration.sector", &d.sector, 100)?;
    if let Some(e) = &d.enterprise {
        if e.years.len() > 10 || e.related.len() > 50 {
            return Err(ApiError::field(
                "declaration.enterprise",
                "at most 10 years and 50 related enterprises",
            ));
        }
        let years = e.years.iter().chain(e.related.iter().flat_map(|r| &r.years));
        for y in years {
            if y.staff_awu_milli < 0 || y.turnover_eur < 0 || y.balance_sheet_eur < 0 {
                return Err(ApiError::field("declaration.enterprise", "figures are not negative"));
            }
        }
        if e.public_share_bp > 10_000 || e.related.iter().any(|r| r.share_bp > 10_000) {
            return Err(ApiError::field(
                "declaration.enterprise",
                "shares are basis points: 0 to 10,000",
            ));
        }
    }
    Ok(())
}

pub(crate) async fn create_application(
    State(state): State<AppState>,
    caller: Caller,
    Body(b): Body<CreateApplication>,
) -> ApiResult {
    verified(&caller)?;
    let call = state
        .store
        .get_call(&b.call)
        .await
        .map_err(|_| ApiError::field("call", format!("no call `{}`", b.call)))?;
    if !call.accepts(unix_now() as i64) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "call-closed",
            format!("the call `{}` does not take applications now", call.name),
        ));
    }
    let org = match b.org {
        Some(org) => org,
        None => match caller.memberships.as_slice() {
            [only] => only.org_id.clone(),
            [] => {
                return Err(ApiError::field(
                    "org",
                    "register an organisation first (POST /api/v1/signup)",
                ));
            }
            _ => {
                return Err(ApiError::field(
                    "org",
                    "you belong to several organisations: name the applying `org`",
                ));
            }
        },
    };
    visible_org(&caller, &org)?;
    if caller.org_role(&org).is_none() {
        return Err(ApiError::forbidden(
            "only an organisation's members apply on its behalf",
        ));
    }
    let app = Application {
        title: b.title.trim().to_string(),
        site: b
            .site
            .unwrap_or_else(|| call.spec.budgets.first().map(|s| s.site.clone()).unwrap_or_default()),
        gpu_hours: b.gpu_hours,
        duration_days: b.duration_days,
        answers: b.answers,
        declaration: b.declaration,
        team: b.team.iter().map(|t| t.trim().to_string()).collect(),
        ..Application::draft(Kind::New, &call.id, &org, &caller.user.id, unix_now() as i64)
    };
    check(&call, &app, b.submit)?;
    state.store.create_application(&app, &caller.user.id).await?;
    let app = if b.submit {
        programme::submit(&state, &caller.user, &call, &app).await?
    } else {
        app
    };
    Ok(created(application_view(&call, &app)))
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    call: Option<String>,
    state: Option<String>,
}

pub(crate) async fn list_applications(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<ListQuery>,
) -> ApiResult {
    let state_filter = q
        .state
        .as_deref()
        .map(str::parse::<AppStateKind>)
        .transpose()
        .map_err(|e| ApiError::field("state", e))?;
    let call = match &q.call {
        Some(c) => Some(state.store.get_call(c).await?),
        None => None,
    };
    let filter = store::ApplicationFilter {
        org_ids: (!caller.manages_programme()).then(|| caller.memberships.iter().map(|m| m.org_id.clone()).collect()),
        call_id: call.as_ref().map(|c| c.id.clone()),
        state: state_filter,
    };
    let apps = state.store.list_applications(&filter).await?;
    let mut calls: BTreeMap<String, store::Call> = BTreeMap::new();
    let mut out = Vec::new();
    for a in &apps {
        if !calls.contains_key(&a.call_id) {
            calls.insert(a.call_id.clone(), state.store.get_call(&a.call_id).await?);
        }
        out.push(application_view(&calls[&a.call_id], a));
    }
    ok(items(out))
}

pub(crate) async fn get_application(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    let (app, viewer) = application_access(&state, &caller, &id).await?;
    let call = state.store.get_call(&app.call_id).await?;
    let mut v = application_view(&call, &app);
    if viewer == Viewer::Reviewer && call.spec.review.blind {
        v.blind();
    }
    ok(v)
}

/// The history and the evidence are for the applicant's side and programme managers.
pub(crate) async fn applicant_or_manager(state: &AppState, caller: &Caller, id: &str) -> Result<Application, ApiError> {
    match application_access(state, caller, id).await? {
        (app, Viewer::Applicant | Viewer::Manager) => Ok(app),
        (_, Viewer::Reviewer) => Err(ApiError::forbidden(
            "reviewers read the application itself; its history and evidence are the applicant's and the programme's",
        )),
    }
}

pub(crate) async fn edit_application(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<EditApplication>,
) -> ApiResult {
    let before = visible_application(&state, &caller, &id).await?;
    applicant_side(&caller, &before)?;
    if before.kind != Kind::New {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not-editable",
            "a request on an award is not edited: withdraw it and ask again",
        ));
    }
    if before.state != AppStateKind::Draft {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not-a-draft",
            format!("only drafts change; this application is {}", before.state),
        ));
    }
    let call = state.store.get_call(&before.call_id).await?;
    let mut after = before.clone();
    if let Some(v) = b.title {
        after.title = v.trim().to_string();
    }
    if let Some(v) = b.site {
        after.site = v;
    }
    if let Some(v) = b.gpu_hours {
        after.gpu_hours = v;
    }
    if let Some(v) = b.duration_days {
        after.duration_days = v;
    }
    if let Some(v) = b.answers {
        after.answers = v;
    }
    if let Some(v) = b.declaration {
        after.declaration = Some(v);
    }
    if let Some(v) = b.team {
        after.team = v.iter().map(|t| t.trim().to_string()).collect();
    }
    check(&call, &after, false)?;
    let saved = state
        .store
        .save_application(
            &before,
            &after,
            store::Effects {
                actor_user_id: Some(caller.user.id.clone()),
                note: "draft edited".into(),
                ..Default::default()
            },
        )
        .await?;
    ok(application_view(&call, &saved))
}

/// The application and its call, for the applicant's side.
pub(crate) async fn as_applicant(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(Application, store::Call), ApiError> {
    let app = visible_application(state, caller, id).await?;
    applicant_side(caller, &app)?;
    let call = state.store.get_call(&app.call_id).await?;
    Ok((app, call))
}

pub(crate) async fn submit(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    verified(&caller)?;
    let (app, call) = as_applicant(&state, &caller, &id).await?;
    // Requests on an award were checked when made, and outlive the call's deadline.
    if app.state == AppStateKind::Draft && app.kind == Kind::New {
        if !call.accepts(unix_now() as i64) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "call-closed",
                format!("the call `{}` does not take applications now", call.name),
            ));
        }
        check(&call, &app, true)?;
    }
    let saved = programme::submit(&state, &caller.user, &call, &app).await?;
    ok(application_view(&call, &saved))
}

async fn applicant_event(state: AppState, caller: Caller, id: String, event: Event) -> ApiResult {
    let (app, call) = as_applicant(&state, &caller, &id).await?;
    let saved = programme::apply(&state, Some(&caller.user), &call, &app, event, |_| {}).await?;
    if event == Event::Accept {
        invite_team(&state, &caller, &saved).await;
    }
    ok(application_view(&call, &saved))
}

pub(crate) async fn withdraw(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    applicant_event(state, caller, id, Event::Withdraw).await
}

pub(crate) async fn reopen(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    applicant_event(state, caller, id, Event::Reopen).await
}

pub(crate) async fn accept(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    applicant_event(state, caller, id, Event::Accept).await
}

pub(crate) async fn decline(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    applicant_event(state, caller, id, Event::Decline).await
}

/// Team members without an account in the organisation are invited to it (they join the
/// project once they accept and an admin adds them).
async fn invite_team(state: &AppState, caller: &Caller, app: &Application) {
    let members: Vec<String> = match state.store.org_members(&app.org_id).await {
        Ok(m) => m.into_iter().map(|(u, _)| u.email.to_ascii_lowercase()).collect(),
        Err(_) => return,
    };
    for email in &app.team {
        if members.contains(&email.to_ascii_lowercase()) {
            continue;
        }
        if let Err(e) = state
            .store
            .create_invitation(&app.org_id, email, OrgRole::Member, &caller.user.id, 14 * 86_400)
            .await
        {
            tracing::warn!(error = %e, %email, "cannot invite a team member");
        }
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Assessment {
    passed: bool,
    notes: String,
}

pub(crate) async fn assess(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<Assessment>,
) -> ApiResult {
    programme_manager(&caller, "record technical assessments")?;
    non_empty("notes", &b.notes, 10_000)?;
    let app = visible_application(&state, &caller, &id).await?;
    let call = state.store.get_call(&app.call_id).await?;
    let by = caller.user.id.clone();
    let saved = programme::apply(
        &state,
        Some(&caller.user),
        &call,
        &app,
        Event::TechnicalAssessment { passed: b.passed },
        |a| {
            if !b.passed {
                a.decision = Some(PanelDecision {
                    award: false,
                    gpu_hours: 0,
                    reasons: format!("technical assessment: {}", b.notes),
                    decided_by: Some(by),
                    rank: None,
                });
            }
        },
    )
    .await?;
    ok(application_view(&call, &saved))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionRequest {
    award: bool,
    /// GPU-hours awarded; what was asked for when absent.
    gpu_hours: Option<i64>,
    reasons: String,
    /// Place in the cut-off's ranking.
    rank: Option<u32>,
}

pub(crate) async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<DecisionRequest>,
) -> ApiResult {
    programme_manager(&caller, "decide applications")?;
    non_empty("reasons", &b.reasons, 10_000)?;
    let app = visible_application(&state, &caller, &id).await?;
    let call = state.store.get_call(&app.call_id).await?;
    // An extension gives time, not GPU-hours.
    let hours = match app.kind {
        Kind::Extension => 0,
        _ => b.gpu_hours.unwrap_or(app.gpu_hours),
    };
    if b.award && app.kind != Kind::Extension && !(1..=call.spec.max_gpu_hours).contains(&hours) {
        return Err(ApiError::field(
            "gpu_hours",
            format!(
                "an award is between 1 and the call's maximum of {} GPU-hours",
                call.spec.max_gpu_hours
            ),
        ));
    }
    let decision = PanelDecision {
        award: b.award,
        gpu_hours: if b.award { hours } else { 0 },
        reasons: b.reasons.trim().to_string(),
        decided_by: Some(caller.user.id.clone()),
        rank: b.rank,
    };
    let saved = programme::apply(
        &state,
        Some(&caller.user),
        &call,
        &app,
        Event::Decided { award: b.award },
        |a| {
            a.decision = Some(decision);
        },
    )
    .await?;
    ok(application_view(&call, &saved))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Reply {
    text: String,
}

pub(crate) async fn reply(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<Reply>,
) -> ApiResult {
    non_empty("text", &b.text, 20_000)?;
    let (app, call) = as_applicant(&state, &caller, &id).await?;
    let saved = programme::apply(&state, Some(&caller.user), &call, &app, Event::Replied, |a| {
        a.reply = Some(b.text.trim().to_string());
    })
    .await?;
    ok(application_view(&call, &saved))
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct EventView {
    at: String,
    actor: Option<String>,
    from: Option<AppStateKind>,
    to: AppStateKind,
    note: String,
}

pub(crate) async fn events(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    applicant_or_manager(&state, &caller, &id).await?;
    let events = state.store.application_events(&id).await?;
    ok(items(
        events
            .into_iter()
            .map(|e| EventView {
                at: rfc3339(e.at),
                actor: e.actor_user_id,
                from: e.from_state,
                to: e.to_state,
                note: e.note,
            })
            .collect(),
    ))
}
