//! Peer review: programme managers assign reviewers (conflicts of interest are detected:
//! declared, same organisation, previous collaboration), reviewers score each criterion
//! with comments before their deadline, the applicant reads the reviews (never who wrote
//! them) and replies, and the panel ranks each cut-off's applications by score.

use super::applications::{ApplicationView, application_view};
use super::prelude::*;
use access::conflicts::{self, Conflict, Reviewer};
use access::workflow::{Event, State as Stage};
use std::collections::BTreeMap;
use store::{Review, ReviewState};

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/applications/{id}/reviewers",
            "Assign a reviewer (programme manager); refused on a conflict of interest",
            true,
            &[],
            Some(schema::<AssignReviewer>),
            post(assign),
        )
        .returns::<ReviewView>(),
        e(
            "get",
            "/api/v1/applications/{id}/reviews",
            "The application's reviews: all for programme managers; submitted ones, without their authors, for the applicant once the reviews are in",
            true,
            &[],
            None,
            get(application_reviews),
        )
        .returns::<Items<ReviewView>>(),
        e(
            "post",
            "/api/v1/applications/{id}/conflict",
            "Declare a conflict of interest with an application (reviewer): its review is withdrawn and it is no longer shown to you",
            true,
            &[],
            Some(schema::<DeclareConflict>),
            post(declare_conflict),
        ),
        e(
            "get",
            "/api/v1/reviews",
            "The caller's review inbox (programme managers: every review)",
            true,
            &[],
            None,
            get(inbox),
        )
        .returns::<Items<InboxItem>>(),
        e(
            "get",
            "/api/v1/reviews/{id}",
            "One review with the application it is about",
            true,
            &[],
            None,
            get(get_review),
        )
        .returns::<InboxItem>(),
        e(
            "post",
            "/api/v1/reviews/{id}/submit",
            "Submit scores per criterion and comments (the reviewer)",
            true,
            &[],
            Some(schema::<SubmitReview>),
            post(submit_review),
        )
        .returns::<ReviewView>(),
        e(
            "post",
            "/api/v1/me/collaborations",
            "Declare a past collaboration with an organisation (reviewer): its applications are not assigned to you",
            true,
            &[],
            Some(schema::<DeclareCollaboration>),
            post(declare_collaboration),
        ),
        e(
            "get",
            "/api/v1/calls/{id}/ranking",
            "Applications of a cut-off ranked by their reviews' weighted scores (programme manager)",
            true,
            &["cutoff"],
            None,
            get(ranking),
        )
        .returns::<Items<RankedApplication>>(),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ReviewView {
    id: String,
    application: String,
    /// Shown to programme managers and to the reviewer only.
    reviewer: Option<String>,
    state: ReviewState,
    scores: BTreeMap<String, u32>,
    comments: Option<String>,
    /// Weighted score in thousandths of a point.
    score_milli: Option<i64>,
    assigned_at: String,
    due_at: String,
    submitted_at: Option<String>,
}

fn review_view(r: &Review, show_reviewer: bool) -> ReviewView {
    ReviewView {
        id: r.id.clone(),
        application: r.application_id.clone(),
        reviewer: show_reviewer.then(|| r.reviewer_user_id.clone()),
        state: r.state,
        scores: r.scores.clone(),
        comments: r.comments.clone(),
        score_milli: r.score_milli,
        assigned_at: rfc3339(r.assigned_at),
        due_at: rfc3339(r.due_at),
        submitted_at: r.submitted_at.map(rfc3339),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AssignReviewer {
    reviewer: String,
}

/// The first conflict between a reviewer and an application, if any.
async fn conflict_of(state: &AppState, reviewer: &str, app: &store::Application) -> Result<Option<Conflict>, ApiError> {
    let orgs: Vec<String> = state
        .store
        .memberships(reviewer)
        .await?
        .into_iter()
        .map(|m| m.org_id)
        .collect();
    let collaborations = state.store.collaborations(reviewer).await?;
    let declared = state.store.declared_conflicts(reviewer).await?;
    Ok(conflicts::conflict(
        &Reviewer {
            orgs: &orgs,
            collaborations: &collaborations,
            declared: &declared,
        },
        &app.id,
        &app.org_id,
    ))
}

pub(crate) async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<AssignReviewer>,
) -> ApiResult {
    programme_manager(&caller, "assign reviewers")?;
    let app = visible_application(&state, &caller, &id).await?;
    if app.state != Stage::PeerReview {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid-transition",
            format!(
                "reviewers are assigned during peer review; this application is {}",
                app.state
            ),
        ));
    }
    let reviewer = state
        .store
        .get_user(&b.reviewer)
        .await
        .map_err(|_| ApiError::field("reviewer", format!("no user `{}`", b.reviewer)))?;
    if reviewer.platform_role != Some(PlatformRole::Reviewer) {
        return Err(ApiError::field(
            "reviewer",
            format!("{} is not in the reviewer pool", reviewer.name),
        ));
    }
    if let Some(c) = conflict_of(&state, &reviewer.id, &app).await? {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict-of-interest",
            format!("{} cannot review {}: {}", reviewer.name, app.id, c.reason()),
        ));
    }
    let call = state.store.get_call(&app.call_id).await?;
    let now = unix_now() as i64;
    let due_at = call.spec.calendar().due(now, call.spec.review.review_working_days);
    let message = store::NewMessage {
        to_user_id: Some(reviewer.id.clone()),
        to_email: reviewer.email.clone(),
        kind: "review-assigned".into(),
        subject: format!("A review for the call \"{}\" is due {}", call.title, rfc3339(due_at)),
        body: format!(
            "You are asked to review the application {} to the call \"{}\" by {}.\n\nRead it with aifactory review list, score each criterion ({}) from 1 to {}, or declare a conflict of interest.",
            app.id,
            call.title,
            rfc3339(due_at),
            call.spec
                .review
                .criteria
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            call.spec.review.max_score
        ),
        about: Some(app.id.clone()),
        dedupe_key: None,
    };
    let review = state
        .store
        .assign_review(&app.id, &reviewer.id, due_at, &message)
        .await?;
    state.outbox_wake.notify_one();
    Ok(created(review_view(&review, true)))
}

pub(crate) async fn application_reviews(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    let (app, viewer) = application_access(&state, &caller, &id).await?;
    let reviews = state.store.reviews_of_application(&app.id).await?;
    let out = match viewer {
        Viewer::Manager => reviews.iter().map(|r| review_view(r, true)).collect(),
        // The applicant reads them once they are all in, to reply; never who wrote them.
        Viewer::Applicant
            if !matches!(
                app.state,
                Stage::Draft | Stage::Ineligible | Stage::TechnicalAssessment | Stage::PeerReview
            ) =>
        {
            reviews
                .iter()
                .filter(|r| r.state == ReviewState::Submitted)
                .map(|r| review_view(r, false))
                .collect()
        }
        Viewer::Applicant => vec![],
        // A reviewer sees their own.
        Viewer::Reviewer => reviews
            .iter()
            .filter(|r| r.reviewer_user_id == caller.user.id)
            .map(|r| review_view(r, true))
            .collect(),
    };
    ok(items(out))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeclareConflict {
    reason: String,
}

pub(crate) async fn declare_conflict(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<DeclareConflict>,
) -> ApiResult {
    reviewer(&caller, "declare conflicts of interest")?;
    non_empty("reason", &b.reason, 2000)?;
    // Only for an application the reviewer was asked to review.
    visible_application(&state, &caller, &id).await?;
    state
        .store
        .declare_conflict(&caller.user.id, &id, b.reason.trim())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct InboxItem {
    review: ReviewView,
    application: ApplicationView,
}

/// What a reviewer sees of an application: on a blind call, not who applied.
async fn inbox_item(
    state: &AppState,
    r: &Review,
    show_reviewer: bool,
    blind_for_reviewer: bool,
) -> Result<InboxItem, ApiError> {
    let app = state.store.get_application(&r.application_id).await?;
    let call = state.store.get_call(&app.call_id).await?;
    let mut view = application_view(&call, &app);
    if blind_for_reviewer && call.spec.review.blind {
        view.blind();
    }
    Ok(InboxItem {
        review: review_view(r, show_reviewer),
        application: view,
    })
}

pub(crate) async fn inbox(State(state): State<AppState>, caller: Caller) -> ApiResult {
    let mut out = Vec::new();
    if caller.manages_programme() {
        for app in state.store.list_applications(&Default::default()).await? {
            for r in state.store.reviews_of_application(&app.id).await? {
                out.push(inbox_item(&state, &r, true, false).await?);
            }
        }
        return ok(items(out));
    }
    if caller.role() == Some(PlatformRole::Reviewer) {
        let conflicts = state.store.declared_conflicts(&caller.user.id).await?;
        for r in state.store.reviews_by(&caller.user.id).await? {
            if r.state != ReviewState::Withdrawn && !conflicts.contains(&r.application_id) {
                out.push(inbox_item(&state, &r, true, true).await?);
            }
        }
    }
    ok(items(out))
}

pub(crate) async fn get_review(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    let r = visible_review(&state, &caller, &id).await?;
    ok(inbox_item(&state, &r, true, !caller.manages_programme()).await?)
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubmitReview {
    /// A score from 1 to the call's maximum for every criterion.
    scores: BTreeMap<String, u32>,
    comments: String,
}

pub(crate) async fn submit_review(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<SubmitReview>,
) -> ApiResult {
    let r = visible_review(&state, &caller, &id).await?;
    author_of(&caller, &r)?;
    non_empty("comments", &b.comments, 20_000)?;
    let app = state.store.get_application(&r.application_id).await?;
    let call = state.store.get_call(&app.call_id).await?;
    let spec = &call.spec.review;
    for c in &spec.criteria {
        match b.scores.get(&c.name) {
            Some(s) if (1..=spec.max_score).contains(s) => {}
            Some(_) => {
                return Err(ApiError::field(
                    &format!("scores.{}", c.name),
                    format!("scores run from 1 to {}", spec.max_score),
                ));
            }
            None => {
                return Err(ApiError::field(
                    &format!("scores.{}", c.name),
                    format!("score every criterion: {} is missing", c.name),
                ));
            }
        }
    }
    if let Some(extra) = b.scores.keys().find(|k| !spec.criteria.iter().any(|c| &c.name == *k)) {
        return Err(ApiError::field(
            &format!("scores.{extra}"),
            format!("the call has no criterion `{extra}`"),
        ));
    }
    let score = access::call::weighted_score_milli(&spec.criteria, &b.scores);
    let saved = state
        .store
        .submit_review(&id, &b.scores, b.comments.trim(), score, unix_now() as i64)
        .await?;
    // The last review the call needs moves the application on (to the right to reply).
    let reviews = state.store.reviews_of_application(&app.id).await?;
    let submitted = reviews.iter().filter(|r| r.state == ReviewState::Submitted).count();
    let waiting = reviews.iter().any(|r| r.state == ReviewState::Assigned);
    if app.state == Stage::PeerReview && !waiting && submitted >= spec.min_reviewers as usize {
        crate::programme::apply(&state, Some(&caller.user), &call, &app, Event::ReviewsComplete, |_| {}).await?;
    }
    ok(review_view(&saved, true))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeclareCollaboration {
    org: String,
    note: String,
}

pub(crate) async fn declare_collaboration(
    State(state): State<AppState>,
    caller: Caller,
    Body(b): Body<DeclareCollaboration>,
) -> ApiResult {
    reviewer(&caller, "declare their collaborations")?;
    non_empty("note", &b.note, 2000)?;
    state
        .store
        .get_org(&b.org)
        .await
        .map_err(|_| ApiError::field("org", format!("no organisation `{}`", b.org)))?;
    state
        .store
        .declare_collaboration(&caller.user.id, &b.org, b.note.trim())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct RankedApplication {
    rank: u32,
    application: String,
    title: String,
    state: Stage,
    gpu_hours: i64,
    /// Mean of the submitted reviews' weighted scores, in thousandths of a point.
    mean_score_milli: Option<i64>,
    reviews: usize,
}

#[derive(Deserialize)]
pub(crate) struct RankingQuery {
    cutoff: Option<i64>,
}

pub(crate) async fn ranking(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Params(q): Params<RankingQuery>,
) -> ApiResult {
    programme_manager(&caller, "rank applications")?;
    let call = state.store.get_call(&id).await?;
    let apps = state
        .store
        .list_applications(&store::ApplicationFilter {
            call_id: Some(call.id.clone()),
            ..Default::default()
        })
        .await?;
    let mut rows = Vec::new();
    for a in apps
        .iter()
        .filter(|a| a.submitted_at.is_some() && (q.cutoff.is_none() || a.round_cutoff == q.cutoff))
        .filter(|a| !matches!(a.state, Stage::Ineligible | Stage::Withdrawn | Stage::Draft))
    {
        let scores: Vec<i64> = state
            .store
            .reviews_of_application(&a.id)
            .await?
            .iter()
            .filter_map(|r| r.score_milli.filter(|_| r.state == ReviewState::Submitted))
            .collect();
        let mean = (!scores.is_empty()).then(|| scores.iter().sum::<i64>() / scores.len() as i64);
        rows.push((a, mean, scores.len()));
    }
    // Best score first; unscored last; earlier submissions first among equals.
    rows.sort_by_key(|(a, mean, _)| (std::cmp::Reverse(mean.unwrap_or(-1)), a.submitted_at, a.id.clone()));
    ok(items(
        rows.into_iter()
            .enumerate()
            .map(|(i, (a, mean, n))| RankedApplication {
                rank: i as u32 + 1,
                application: a.id.clone(),
                title: a.title.clone(),
                state: a.state,
                gpu_hours: a.gpu_hours,
                mean_score_milli: mean,
                reviews: n,
            })
            .collect(),
    ))
}
