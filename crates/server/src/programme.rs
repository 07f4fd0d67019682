//! The access programme's one owner of application transitions: every change of an
//! application's state goes through [`apply`], which asks `access::workflow` whether it is
//! allowed, fills in what the new state implies (decision times, the budget taken or given
//! back, the project and allocation of an accepted award) and queues the notifications, and
//! has the store save all of it in one transaction. The table is in ARCHITECTURE.md.

use crate::{ApiError, AppState};
use access::eligibility;
use access::workflow::{self, Event, Kind, State};
use axum::http::StatusCode;
use store::{
    Application, Call, Effects, NewAllocation, NewMessage, NewProject, PanelDecision, PlatformRole, Provision, User,
};

fn now() -> i64 {
    crate::accounting::unix_now() as i64
}

fn refused(e: workflow::Refused) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "invalid-transition", e.to_string())
}

/// Applies `event` to the application as `before` had it, with `edit` for what the event
/// carries (answers, a decision, a reply), and saves it with its effects.
pub async fn apply(
    state: &AppState,
    actor: Option<&User>,
    call: &Call,
    before: &Application,
    event: Event,
    edit: impl FnOnce(&mut Application),
) -> Result<Application, ApiError> {
    let to = workflow::next(before.state, event, before.kind.steps(call.spec.steps())).map_err(refused)?;
    let mut after = before.clone();
    edit(&mut after);
    after.state = to;
    let t = now();
    let mut effects = Effects {
        actor_user_id: actor.map(|a| a.id.clone()),
        note: note(event, &after),
        ..Default::default()
    };
    match to {
        State::Awarded => {
            after.decided_at = Some(t);
            let hours = after.decision.as_ref().map_or(after.gpu_hours, |d| d.gpu_hours);
            effects.budget_gpu_seconds = hours * 3600;
        }
        State::Rejected | State::Ineligible => after.decided_at = after.decided_at.or(Some(t)),
        _ => {}
    }
    if before.state == State::Awarded && matches!(to, State::Withdrawn | State::Declined) {
        // The award goes back to the call.
        let hours = before.decision.as_ref().map_or(0, |d| d.gpu_hours);
        effects.budget_gpu_seconds = -hours * 3600;
    }
    if to.is_final() {
        after.closed_at = Some(t);
    }
    if to == State::Accepted {
        after.accepted_at = Some(t);
        let hours = after.decision.as_ref().map_or(after.gpu_hours, |d| d.gpu_hours);
        match (after.kind, after.for_allocation.clone()) {
            (Kind::Extension, Some(alloc)) => {
                let current = state.store.get_allocation(&alloc).await?;
                // From its end, or from now for one that ended already.
                let from = current.valid_until.max(t);
                effects.extend = Some((alloc, from + after.duration_days * 86_400));
            }
            (Kind::Supplement, Some(alloc)) => effects.top_up = Some((alloc, hours * 3600)),
            _ => effects.provision = Some(provision(state, call, &after).await?),
        }
    }
    effects.messages = messages(state, call, &after, before.state).await?;
    let saved = state.store.save_application(before, &after, effects).await?;
    state.outbox_wake.notify_one();
    if saved.state == State::Accepted {
        state.submission_cache.clear();
        state.auth_cache.clear();
        if let Some(allocation) = &saved.allocation_id {
            crate::slurm_accounts::accepted(state, allocation).await;
        }
    }
    Ok(saved)
}

/// Submits a draft: decides eligibility, and awards a playground application at once
/// while the call's budget lasts (the store refuses an award past it, whoever else is
/// awarding at the same time; then the application waits for a decision instead).
pub async fn submit(
    state: &AppState,
    actor: &User,
    call: &Call,
    before: &Application,
) -> Result<Application, ApiError> {
    let t = now();
    let documents = state.store.documents(&before.id).await?.len();
    let declaration = before.declaration.as_ref().ok_or_else(|| {
        ApiError::field(
            "declaration",
            "the declaration (organisation type, country, sector, size) is required to submit",
        )
    })?;
    let mut decision = eligibility::decide(&call.spec.eligibility, declaration, documents, t);
    // The next award waits for the final reports of earlier ones: every ended allocation
    // of the organisation's, and for a renewal the allocation it renews.
    if matches!(before.kind, Kind::New | Kind::Renewal) {
        let mut missing = state.store.unreported_allocations(&before.org_id, t).await?;
        if let Some(renewed) = before.for_allocation.as_ref().filter(|_| before.kind == Kind::Renewal)
            && state.store.final_report(renewed).await?.is_none()
            && !missing.contains(renewed)
        {
            missing.push(renewed.clone());
        }
        let rule = eligibility::final_reports(&missing);
        decision.eligible &= rule.passed;
        decision.rules.push(rule);
    }
    let budgets = state.store.call_budgets(&call.id).await?;
    let mut budget_left = budgets
        .iter()
        .any(|b| b.site == before.site && b.awarded_gpu_seconds + before.gpu_hours * 3600 <= b.budget_gpu_seconds);
    loop {
        let eligible = decision.eligible;
        let automatic = eligible && budget_left && before.kind.steps(call.spec.steps()).automatic_award;
        let decision = decision.clone();
        let result = apply(
            state,
            Some(actor),
            call,
            before,
            Event::Submitted { eligible, budget_left },
            |a| {
                a.eligibility = Some(decision);
                a.submitted_at = Some(t);
                a.round_cutoff = call.spec.round_of(t);
                if automatic {
                    a.decision = Some(PanelDecision {
                        award: true,
                        gpu_hours: a.gpu_hours,
                        reasons: "awarded automatically: the applicant is eligible and the call had GPU-hours left"
                            .into(),
                        decided_by: None,
                        rank: None,
                    });
                }
            },
        )
        .await;
        match result {
            Err(e) if e.code == "call-budget-exhausted" && budget_left => budget_left = false,
            other => return other,
        }
    }
}

async fn provision(state: &AppState, call: &Call, app: &Application) -> Result<Provision, ApiError> {
    let hours = app.decision.as_ref().map_or(app.gpu_hours, |d| d.gpu_hours);
    let t = now();
    // Team members who belong to the organisation join the project at once; the rest are
    // invited after (`invite_team`).
    let mut members = Vec::new();
    for (user, _) in state.store.org_members(&app.org_id).await? {
        if app.team.iter().any(|e| e.eq_ignore_ascii_case(&user.email)) {
            members.push(user.id);
        }
    }
    let sector = app
        .declaration
        .as_ref()
        .map_or_else(|| "unspecified".to_string(), |d| d.sector.clone());
    Ok(Provision {
        // A renewal goes on in the project it renews.
        existing_project: app.project_id.clone().filter(|_| app.kind == Kind::Renewal),
        slurm_account_template: state.config.slurm_account_template.clone(),
        project: NewProject {
            org_id: app.org_id.clone(),
            name: format!("{}-{}", call.name, &app.id[app.id.len() - 6..]),
            sector,
            pi_user_id: Some(app.applicant_user_id.clone()),
        },
        members,
        allocation: NewAllocation {
            project_id: String::new(),
            site: app.site.clone(),
            class: call.spec.mode.class(),
            gpu_seconds: hours * 3600,
            valid_from: t,
            valid_until: t + app.duration_days * 86_400,
            slurm: Default::default(),
            // Free for confirmed SMEs and start-ups; the call's price for everyone else
            // (the site's price when the call sets none).
            price_cents_per_gpu_hour: match app.eligibility.as_ref().is_some_and(|e| e.free_of_charge) {
                true => Some(0),
                false => Some(call.spec.price_cents_per_gpu_hour).filter(|p| *p > 0),
            },
        },
    })
}

fn note(event: Event, app: &Application) -> String {
    match (event, app.state) {
        (Event::Submitted { .. }, State::Ineligible) => {
            let failed: Vec<String> = app
                .eligibility
                .iter()
                .flat_map(|d| d.failed())
                .map(|o| format!("{}: {}", o.rule, o.reason))
                .collect();
            format!("not eligible: {}", failed.join("; "))
        }
        (Event::Submitted { .. }, State::Awarded) => "submitted and awarded automatically".into(),
        (Event::Submitted { .. }, _) => "submitted; eligible".into(),
        (Event::Decided { .. } | Event::TechnicalAssessment { .. }, _) => app
            .decision
            .as_ref()
            .map_or_else(|| event.name().to_string(), |d| d.reasons.clone()),
        _ => event.name().to_string(),
    }
}

/// Who must hear of the application's new state, and what they must do.
async fn messages(state: &AppState, call: &Call, app: &Application, from: State) -> Result<Vec<NewMessage>, ApiError> {
    if app.state == from {
        return Ok(vec![]);
    }
    let applicant = state.store.get_user(&app.applicant_user_id).await?;
    let to_applicant = |kind: &str, subject: String, body: String| NewMessage {
        to_user_id: Some(applicant.id.clone()),
        to_email: applicant.email.clone(),
        kind: kind.into(),
        subject,
        body,
        about: Some(app.id.clone()),
        dedupe_key: None,
    };
    let head = format!(
        "Your application \"{}\" ({}) to the call \"{}\"",
        app.title, app.id, call.title
    );
    let mut out = Vec::new();
    match app.state {
        State::Ineligible => out.push(to_applicant(
            "application-ineligible",
            format!("Not eligible: {}", app.title),
            format!(
                "{head} is not eligible:\n\n{}\n\nYou can correct the declaration and submit again: aifactory application reopen {}",
                app.eligibility
                    .iter()
                    .flat_map(|d| d.failed())
                    .map(|o| format!("- {}: {}", o.rule, o.reason))
                    .collect::<Vec<_>>()
                    .join("\n"),
                app.id
            ),
        )),
        State::Awarded => {
            let hours = app.decision.as_ref().map_or(app.gpu_hours, |d| d.gpu_hours);
            out.push(to_applicant(
                "application-awarded",
                format!("Awarded: {} GPU-hours for {}", hours, app.title),
                format!(
                    "{head} was awarded {hours} GPU-hours at {} for {} days.\n\nAccept the award to get your project and allocation: aifactory application accept {}",
                    app.site, app.duration_days, app.id
                ),
            ));
        }
        State::Rejected => out.push(to_applicant(
            "application-rejected",
            format!("Not awarded: {}", app.title),
            format!(
                "{head} was not awarded.\n\nReasons: {}",
                app.decision.as_ref().map_or("-", |d| d.reasons.as_str())
            ),
        )),
        State::RightToReply => out.push(to_applicant(
            "right-to-reply",
            format!("Reviews to answer: {}", app.title),
            format!(
                "{head} has been reviewed. Read the reviews and reply within {} working days: aifactory application reply {} --text ...",
                call.spec.review.reply_working_days, app.id
            ),
        )),
        State::Accepted => out.push(to_applicant(
            "application-accepted",
            format!("Your allocation is ready: {}", app.title),
            format!(
                "{head} was accepted. Project {} and allocation {} are ready: submit jobs with aifactory job submit --project {}",
                app.project_id.as_deref().unwrap_or("-"),
                app.allocation_id.as_deref().unwrap_or("-"),
                app.project_id.as_deref().unwrap_or("-")
            ),
        )),
        _ => {}
    }
    if matches!(app.state, State::TechnicalAssessment | State::Panel) {
        let what = if app.state == State::Panel {
            "a decision"
        } else {
            "a technical assessment"
        };
        for manager in programme_managers(state).await? {
            out.push(NewMessage {
                to_user_id: Some(manager.id.clone()),
                to_email: manager.email.clone(),
                kind: "application-needs-action".into(),
                subject: format!("Application {} awaits {what}", app.id),
                body: format!(
                    "The application \"{}\" ({}) to the call \"{}\" awaits {what}; the call promises a decision within {} working days.",
                    app.title, app.id, call.title, call.spec.decision_working_days
                ),
                about: Some(app.id.clone()),
                dedupe_key: Some(format!("{}:{}", app.id, app.state)),
            });
        }
    }
    Ok(out)
}

async fn programme_managers(state: &AppState) -> Result<Vec<User>, ApiError> {
    Ok(state.store.users_with_role(PlatformRole::ProgrammeManager).await?)
}

const DAY: i64 = 86_400;

fn notice(to: &User, kind: &str, about: &str, dedupe: String, subject: String, body: String) -> NewMessage {
    NewMessage {
        to_user_id: Some(to.id.clone()),
        to_email: to.email.clone(),
        kind: kind.into(),
        subject,
        body,
        about: Some(about.into()),
        dedupe_key: Some(dedupe),
    }
}

/// Deadlines and reminders, run every minute by the server (and by tests at any `now`):
/// reviewers are reminded a day before their review is due and told when it is late; an
/// applicant is reminded before the time to reply ends, and when it has ended the
/// application goes to the panel without a reply; programme managers hear of every
/// application past its decision target; principal investigators are warned 30 and 7
/// days before their allocation ends. Each notice goes out once (its dedupe key).
pub async fn tick(state: &AppState, now: i64) -> Result<(), ApiError> {
    let mut out = Vec::new();
    let managers = programme_managers(state).await?;
    let waiting = state.store.list_applications(&Default::default()).await?;
    for app in waiting.iter().filter(|a| a.state.awaits_decision()) {
        let call = state.store.get_call(&app.call_id).await?;
        let calendar = call.spec.calendar();
        if app.state == State::PeerReview {
            for r in state.store.reviews_of_application(&app.id).await? {
                if r.state != store::ReviewState::Assigned {
                    continue;
                }
                let reviewer = state.store.get_user(&r.reviewer_user_id).await?;
                let due = crate::api::rfc3339(r.due_at);
                if now > r.due_at {
                    out.push(notice(&reviewer, "review-overdue", &app.id, format!("{}:overdue", r.id),
                        format!("Your review of {} is overdue", app.id),
                        format!("Your review of the application {} to \"{}\" was due {due}. Submit it, or declare a conflict of interest.", app.id, call.title)));
                    for m in &managers {
                        out.push(notice(
                            m,
                            "review-overdue",
                            &app.id,
                            format!("{}:overdue:{}", r.id, m.id),
                            format!("A review of {} is overdue", app.id),
                            format!(
                                "{} has not reviewed {} (due {due}): remind them or assign another reviewer.",
                                reviewer.name, app.id
                            ),
                        ));
                    }
                } else if now > r.due_at - DAY {
                    out.push(notice(
                        &reviewer,
                        "review-reminder",
                        &app.id,
                        format!("{}:reminder", r.id),
                        format!("Reminder: your review of {} is due {due}", app.id),
                        format!(
                            "Your review of the application {} to \"{}\" is due {due}.",
                            app.id, call.title
                        ),
                    ));
                }
            }
        }
        if app.state == State::RightToReply {
            let since = state
                .store
                .application_events(&app.id)
                .await?
                .iter()
                .rev()
                .find(|e| e.to_state == State::RightToReply)
                .map_or(app.updated_at, |e| e.at);
            let due = calendar.due(since, call.spec.review.reply_working_days);
            let applicant = state.store.get_user(&app.applicant_user_id).await?;
            if now > due {
                apply(state, None, &call, app, Event::Replied, |a| {
                    a.reply = None;
                })
                .await?;
                continue;
            } else if now > due - DAY {
                out.push(notice(&applicant, "reply-reminder", &app.id, format!("{}:reply-reminder", app.id),
                    format!("Reminder: reply to the reviews of {} by {}", app.title, crate::api::rfc3339(due)),
                    format!("The time to answer the reviews of your application {} ends {}; after that it goes to the panel as it is.", app.id, crate::api::rfc3339(due))));
            }
        }
        if let Some(submitted) = app.submitted_at {
            let due = calendar.due(submitted, call.spec.decision_working_days);
            if now > due {
                for m in &managers {
                    out.push(notice(m, "decision-overdue", &app.id, format!("{}:breach:{}", app.id, m.id),
                        format!("Application {} is past its decision target", app.id),
                        format!("The call \"{}\" promises a decision within {} working days; {} ({}) was submitted {} and is still {}.",
                            call.title, call.spec.decision_working_days, app.title, app.id, crate::api::rfc3339(submitted), app.state)));
                }
            }
        }
    }
    for (days, key) in [(30, "30d"), (7, "7d")] {
        for (alloc, pi) in state.store.allocations_ending(now, now + days * DAY).await? {
            let Some(pi) = pi else { continue };
            let pi = state.store.get_user(&pi).await?;
            let ends = crate::api::rfc3339(alloc.valid_until);
            out.push(notice(&pi, "allocation-ending", &alloc.id, format!("{}:{key}", alloc.id),
                format!("Your allocation {} ends {ends}", alloc.id),
                format!("The allocation {} of project {} ends {ends}. Ask for an extension or a renewal before then, and send the final report (papers, models, datasets).", alloc.id, alloc.project_id)));
        }
    }
    if !out.is_empty() {
        state.store.enqueue(&out).await?;
        state.outbox_wake.notify_one();
    }
    Ok(())
}
