//! Who may see and do what: every decision of the API's authorisation is made here.
//! Look-ups take the caller and apply its scope, so that an object of another
//! organisation is "not found" the same way everywhere.

use crate::{ApiError, AppState};
use store::{Allocation, Job, Membership, OrgRole, PlatformRole, Project, User};

/// The authenticated caller and what they may see.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub memberships: Vec<Membership>,
    /// The job whose token this is: such a caller acts as the job's user, within the job's
    /// organisation only and without any platform role, and reaches only the hub
    /// ([`job_token_reaches`]).
    pub job: Option<String>,
}

impl Caller {
    pub(crate) fn role(&self) -> Option<PlatformRole> {
        self.user.platform_role
    }
    pub(crate) fn is_admin(&self) -> bool {
        self.role() == Some(PlatformRole::Admin)
    }
    /// Platform staff who run the factory or the programme see every organisation;
    /// reviewers, outside experts, see only the applications they were asked to review.
    pub(crate) fn sees_all(&self) -> bool {
        matches!(
            self.role(),
            Some(PlatformRole::Admin | PlatformRole::Operator | PlatformRole::ProgrammeManager)
        )
    }
    pub(crate) fn manages_allocations(&self) -> bool {
        matches!(self.role(), Some(PlatformRole::Admin | PlatformRole::Operator))
    }
    pub(crate) fn org_role(&self, org_id: &str) -> Option<OrgRole> {
        self.memberships.iter().find(|m| m.org_id == org_id).map(|m| m.role)
    }
    pub(crate) fn sees_org(&self, org_id: &str) -> bool {
        self.sees_all() || self.org_role(org_id).is_some()
    }
    pub(crate) fn admins_org(&self, org_id: &str) -> bool {
        self.is_admin() || self.org_role(org_id) == Some(OrgRole::Admin)
    }
}

/// A job's token pushes what the job made and reads what it may read: the hub's
/// endpoints (the Hugging Face protocol) and the catalogue, nothing of the factory's API.
pub(crate) fn job_token_reaches(path: &str) -> Result<(), ApiError> {
    let api = path.starts_with("/api/v1/") || path == "/api/v1";
    if !api || path.starts_with("/api/v1/catalogue") {
        return Ok(());
    }
    Err(ApiError::forbidden(
        "a job's token reaches the data and model hub only: use your own token for the rest of the API",
    ))
}

/// What a job's token may act as: the job's user in the job's organisation, no more.
pub(crate) fn job_caller(mut caller: Caller, job_id: String, job_org: &str) -> Caller {
    caller.user.platform_role = None;
    caller.memberships.retain(|m| m.org_id == job_org);
    caller.job = Some(job_id);
    caller
}

/// Organisation admins (and platform admins) manage who belongs; the organisation is
/// looked up first so that strangers learn nothing.
pub(crate) fn admin_of(caller: &Caller, org_id: &str) -> Result<(), ApiError> {
    if !caller.sees_org(org_id) {
        return Err(ApiError::not_found("organisation", org_id));
    }
    if !caller.admins_org(org_id) {
        return Err(ApiError::forbidden("organisation admins manage members"));
    }
    Ok(())
}

pub(crate) async fn visible_project(state: &AppState, caller: &Caller, id: &str) -> Result<Project, ApiError> {
    let project = state
        .store
        .get_project(id)
        .await
        .map_err(|_| ApiError::not_found("project", id))?;
    if !caller.sees_org(&project.org_id) {
        return Err(ApiError::not_found("project", id));
    }
    Ok(project)
}

pub(crate) async fn visible_allocation(state: &AppState, caller: &Caller, id: &str) -> Result<Allocation, ApiError> {
    let alloc = state
        .store
        .get_allocation(id)
        .await
        .map_err(|_| ApiError::not_found("allocation", id))?;
    visible_project(state, caller, &alloc.project_id)
        .await
        .map_err(|_| ApiError::not_found("allocation", id))?;
    Ok(alloc)
}

/// Who may run jobs in a project (submit, requeue): its members and its organisation's
/// admins; other members of the organisation, and staff, may not.
pub(crate) fn may_submit(caller: &Caller, org_id: &str, members: &[String]) -> Result<(), ApiError> {
    if caller.org_role(org_id).is_none() {
        return Err(ApiError::forbidden(
            "only members of the project's organisation submit jobs",
        ));
    }
    if !caller.admins_org(org_id) && !members.contains(&caller.user.id) {
        return Err(ApiError::forbidden(
            "you are not a member of this project: ask an organisation admin to add you",
        ));
    }
    Ok(())
}

pub(crate) async fn visible_job(state: &AppState, caller: &Caller, id: &str) -> Result<Job, ApiError> {
    let job = state
        .store
        .get_job(id)
        .await
        .map_err(|_| ApiError::not_found("job", id))?;
    if !caller.sees_org(&job.org_id) {
        return Err(ApiError::not_found("job", id));
    }
    Ok(job)
}

/// Platform admins and site operators: allocations, Slurm accounts, nodes.
pub(crate) fn operator(caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.manages_allocations() {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "platform admins and site operators {what}"
    )))
}

/// Platform staff (admins, operators, programme managers): what spans every organisation.
pub(crate) fn staff(caller: &Caller, refusal: &str) -> Result<(), ApiError> {
    if caller.sees_all() {
        return Ok(());
    }
    Err(ApiError::forbidden(refusal))
}

pub(crate) fn platform_admin(caller: &Caller, refusal: &str) -> Result<(), ApiError> {
    if caller.is_admin() {
        return Ok(());
    }
    Err(ApiError::forbidden(refusal))
}

/// An organisation the caller may see; any other is "not found", never "forbidden".
pub(crate) fn visible_org(caller: &Caller, org_id: &str) -> Result<(), ApiError> {
    if caller.sees_org(org_id) {
        return Ok(());
    }
    Err(ApiError::not_found("organisation", org_id))
}

/// The organisation's members and platform admins cancel its jobs.
pub(crate) fn may_cancel(caller: &Caller, job: &Job) -> Result<(), ApiError> {
    if caller.org_role(&job.org_id).is_some() || caller.is_admin() {
        return Ok(());
    }
    Err(ApiError::forbidden(
        "only the organisation's members and platform admins cancel its jobs",
    ))
}

/// An invitation is the invitee's alone: anyone else is told it does not exist.
pub(crate) async fn addressed_to(state: &AppState, caller: &Caller, id: &str) -> Result<store::Invitation, ApiError> {
    match state.store.get_invitation(id).await {
        Ok(i) if i.email.eq_ignore_ascii_case(caller.user.email.trim()) => Ok(i),
        _ => Err(ApiError::not_found("invitation", id)),
    }
}

/// Platform admins create staff and users of any organisation; an organisation admin
/// creates new accounts in their own (an existing account is invited instead).
pub(crate) fn may_create_user(caller: &Caller, platform_role: bool, org: Option<&str>) -> Result<(), ApiError> {
    if let Some(org) = org {
        visible_org(caller, org)?;
    }
    let allowed = match (platform_role, org) {
        (true, _) | (false, None) => caller.is_admin(),
        (false, Some(org)) => caller.admins_org(org),
    };
    if allowed {
        return Ok(());
    }
    Err(ApiError::forbidden(
        "platform admins create staff; organisation admins add members to their organisation",
    ))
}

/// Adding an existing account to an organisation without its consent is for platform
/// admins (onboarding); organisation admins invite.
pub(crate) fn may_add_member_directly(caller: &Caller, org_id: &str) -> Result<(), ApiError> {
    visible_org(caller, org_id)?;
    if caller.is_admin() {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "a person joins an organisation by accepting an invitation: invite their e-mail address with POST /api/v1/orgs/{org_id}/invitations"
    )))
}

impl Caller {
    /// Platform admins and programme managers run calls and decide applications.
    pub(crate) fn manages_programme(&self) -> bool {
        matches!(self.role(), Some(PlatformRole::Admin | PlatformRole::ProgrammeManager))
    }
}

pub(crate) fn programme_manager(caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.manages_programme() {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "platform admins and programme managers {what}"
    )))
}

/// Applying needs a proven e-mail address: notifications and awards go there.
pub(crate) fn verified(caller: &Caller) -> Result<(), ApiError> {
    if caller.user.email_verified_at.is_some() {
        return Ok(());
    }
    Err(ApiError::new(
        axum::http::StatusCode::FORBIDDEN,
        "email-not-verified",
        format!(
            "confirm your e-mail address first: enter the code sent to {} (aifactory verify CODE)",
            caller.user.email
        ),
    ))
}

/// Why the caller sees an application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Viewer {
    /// A member of the applying organisation.
    Applicant,
    Manager,
    /// A reviewer it is assigned to (who never sees it once they declared a conflict).
    Reviewer,
}

/// An application is seen by its organisation's members, by programme managers, and by
/// the reviewers assigned to it who declared no conflict; to anyone else it does not exist.
pub(crate) async fn application_access(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<(store::Application, Viewer), ApiError> {
    let app = state
        .store
        .get_application(id)
        .await
        .map_err(|_| ApiError::not_found("application", id))?;
    if caller.org_role(&app.org_id).is_some() {
        return Ok((app, Viewer::Applicant));
    }
    if caller.manages_programme() {
        return Ok((app, Viewer::Manager));
    }
    if reviews(state, caller, &app.id).await? {
        return Ok((app, Viewer::Reviewer));
    }
    Err(ApiError::not_found("application", id))
}

/// Whether the caller holds a live review of the application and declared no conflict.
pub(crate) async fn reviews(state: &AppState, caller: &Caller, application_id: &str) -> Result<bool, ApiError> {
    if caller.role() != Some(PlatformRole::Reviewer) {
        return Ok(false);
    }
    if state
        .store
        .declared_conflicts(&caller.user.id)
        .await?
        .iter()
        .any(|a| a == application_id)
    {
        return Ok(false);
    }
    Ok(state
        .store
        .reviews_by(&caller.user.id)
        .await?
        .iter()
        .any(|r| r.application_id == application_id && r.state != store::ReviewState::Withdrawn))
}

pub(crate) async fn visible_application(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<store::Application, ApiError> {
    Ok(application_access(state, caller, id).await?.0)
}

/// A review is its reviewer's and the programme managers'; a reviewer who declared a
/// conflict with its application no longer sees it.
pub(crate) async fn visible_review(state: &AppState, caller: &Caller, id: &str) -> Result<store::Review, ApiError> {
    let review = state
        .store
        .get_review(id)
        .await
        .map_err(|_| ApiError::not_found("review", id))?;
    if caller.manages_programme() {
        return Ok(review);
    }
    if review.reviewer_user_id == caller.user.id && reviews(state, caller, &review.application_id).await? {
        return Ok(review);
    }
    Err(ApiError::not_found("review", id))
}

/// The applicant and their organisation's admins edit, submit, withdraw, accept and reply.
pub(crate) fn applicant_side(caller: &Caller, app: &store::Application) -> Result<(), ApiError> {
    if caller.user.id == app.applicant_user_id || caller.org_role(&app.org_id) == Some(OrgRole::Admin) {
        return Ok(());
    }
    Err(ApiError::forbidden(
        "only the applicant and their organisation's admins act on an application",
    ))
}

/// Reviewers declare their own conflicts and collaborations.
pub(crate) fn reviewer(caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.role() == Some(PlatformRole::Reviewer) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!("reviewers {what}")))
}

/// Only the reviewer submits their review.
pub(crate) fn author_of(caller: &Caller, review: &store::Review) -> Result<(), ApiError> {
    if review.reviewer_user_id == caller.user.id {
        return Ok(());
    }
    Err(ApiError::forbidden("only the reviewer submits their review"))
}

/// A trainee's enrolment is theirs and the programme managers'; to anyone else it does
/// not exist.
pub(crate) fn enrolment_of(caller: &Caller, user_id: &str) -> Result<(), ApiError> {
    if caller.user.id == user_id || caller.manages_programme() {
        return Ok(());
    }
    Err(ApiError::not_found("enrolment", user_id))
}

/// What a caller may do with a hub repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RepoAccess {
    /// Not even know it exists (non-public, not a member).
    None,
    /// See its catalogue entry but not its files (restricted, no access granted).
    Listed,
    Read,
    /// Commit to it: members of the owning organisation, and platform admins.
    Write,
}

/// Public repositories are read by anyone, also without a token; restricted ones are
/// listed for everyone and read by the owner's members, platform staff and the members of
/// organisations granted access (`granted`); non-public ones exist only for the first two.
pub(crate) fn repo_access_granted(caller: Option<&Caller>, repo: &store::Repo, granted: bool) -> RepoAccess {
    match repo_access(caller, repo) {
        RepoAccess::Listed if granted => RepoAccess::Read,
        other => other,
    }
}

/// As [`repo_access_granted`] for a caller without a grant.
pub(crate) fn repo_access(caller: Option<&Caller>, repo: &store::Repo) -> RepoAccess {
    if let Some(c) = caller {
        if c.is_admin() || c.org_role(&repo.org_id).is_some() {
            return RepoAccess::Write;
        }
        if c.sees_all() {
            return RepoAccess::Read;
        }
    }
    match repo.access_rights {
        hub::AccessRights::Public => RepoAccess::Read,
        hub::AccessRights::Restricted => RepoAccess::Listed,
        hub::AccessRights::NonPublic => RepoAccess::None,
    }
}

/// Whether the caller's organisations hold a grant on a restricted repository now (asked
/// only where it changes the answer).
pub(crate) async fn holds_grant(
    state: &AppState,
    caller: Option<&Caller>,
    repo: &store::Repo,
) -> Result<bool, ApiError> {
    let Some(c) = caller else { return Ok(false) };
    if repo_access(caller, repo) != RepoAccess::Listed {
        return Ok(false);
    }
    let orgs: Vec<String> = c.memberships.iter().map(|m| m.org_id.clone()).collect();
    Ok(state
        .store
        .has_access_grant(&repo.id, &orgs, crate::accounting::unix_now() as i64)
        .await?)
}

/// Who decides access requests and reads the audit log of a repository: its owner's
/// members and platform admins (staff read the log too).
pub(crate) fn decides_access(caller: &Caller, repo: &store::Repo) -> bool {
    repo_access(Some(caller), repo) == RepoAccess::Write
}

/// The organisation a caller creates a repository for, by its namespace (or, without one,
/// the only organisation the caller belongs to); members create, others learn nothing.
pub(crate) fn repo_owner(
    caller: &Caller,
    orgs: &[store::Org],
    namespace: Option<&str>,
) -> Result<store::Org, ApiError> {
    let mine: Vec<&store::Org> = orgs
        .iter()
        .filter(|o| caller.org_role(&o.id).is_some() || caller.is_admin())
        .collect();
    match namespace {
        Some(ns) => mine
            .into_iter()
            .find(|o| hub::namespace_of(&o.name) == ns)
            .cloned()
            .ok_or_else(|| {
                ApiError::forbidden(format!(
                    "you may create repositories only under the namespaces of your organisations, not `{ns}`"
                ))
            }),
        None => match mine.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(ApiError::field(
                "organization",
                "name the organisation's namespace the repository belongs to (`namespace/name`)",
            )),
        },
    }
}
