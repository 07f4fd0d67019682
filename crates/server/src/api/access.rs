//! Access to restricted entries: the entry's policy (ODRL-like: who may ask, for what, for
//! how long, whether the owner decides), requests evaluated rule by rule, the owner's
//! decisions, time-boxed grants to the asking organisation, and the audit log of every
//! decision and download. A grant lets the organisation's members read the entry's files,
//! through the API and the Hugging Face client alike.

use super::prelude::*;
use hub::policy::{Outcome, Policy, Requester, Rule};
use store::{AccessRequest, RequestState};

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "get",
            "/api/v1/catalogue/{kind}/{namespace}/{name}/policy",
            "An entry's access policy",
            false,
            &[],
            None,
            get(show_policy),
        )
        .returns::<Policy>(),
        e(
            "put",
            "/api/v1/catalogue/{kind}/{namespace}/{name}/policy",
            "Sets an entry's access policy (the owner's members)",
            true,
            &[],
            Some(schema::<Policy>),
            axum::routing::put(set_policy),
        )
        .returns::<Policy>(),
        e(
            "post",
            "/api/v1/catalogue/{kind}/{namespace}/{name}/access-requests",
            "Ask for access to a restricted entry: evaluated against its policy at once (granted, refused, or waiting for the owner)",
            true,
            &[],
            Some(schema::<NewAccessRequest>),
            post(request_access),
        )
        .returns::<AccessRequestView>(),
        e(
            "get",
            "/api/v1/catalogue/{kind}/{namespace}/{name}/access-requests",
            "An entry's access requests: all of them for the owner's members and staff, one's own for others",
            true,
            &[],
            None,
            get(list_requests),
        )
        .returns::<Items<AccessRequestView>>(),
        e(
            "post",
            "/api/v1/access-requests/{id}/decision",
            "Grant (for some days) or refuse a waiting request, with the reason (the owner's members)",
            true,
            &[],
            Some(schema::<AccessDecision>),
            post(decide),
        )
        .returns::<AccessRequestView>(),
        e(
            "post",
            "/api/v1/access-requests/{id}/revoke",
            "End a grant before its time, with the reason (the owner's members); jobs not yet started lose the data",
            true,
            &[],
            Some(schema::<Revocation>),
            post(revoke),
        )
        .returns::<AccessRequestView>(),
        e(
            "get",
            "/api/v1/catalogue/{kind}/{namespace}/{name}/audit",
            "An entry's audit log: policy changes, requests, decisions, grants and downloads (the owner's members and staff)",
            true,
            &[],
            None,
            get(audit_log),
        )
        .returns::<Items<AuditView>>(),
    ]
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewAccessRequest {
    /// What the data is for (`research`, `training`, `evaluation`, `commercial`...).
    purpose: String,
    /// For how many days.
    days: u32,
    /// The organisation asking, where the caller belongs to several.
    org: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AccessDecision {
    grant: bool,
    reason: String,
    /// Days granted (default: as asked, within the policy's maximum).
    days: Option<u32>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct AccessRequestView {
    id: String,
    org: String,
    user: String,
    purpose: String,
    days: i64,
    state: RequestState,
    /// Every rule of the policy, passed or failed, and why.
    rules: Vec<Rule>,
    created_at: String,
    decided_at: Option<String>,
    reason: Option<String>,
    /// Until when access is granted.
    valid_until: Option<String>,
}

impl From<AccessRequest> for AccessRequestView {
    fn from(r: AccessRequest) -> Self {
        AccessRequestView {
            id: r.id,
            org: r.org_id,
            user: r.user_id,
            purpose: r.purpose,
            days: r.days,
            state: r.state,
            rules: r.rules,
            created_at: rfc3339(r.created_at),
            decided_at: r.decided_at.map(rfc3339),
            reason: r.reason,
            valid_until: r.valid_until.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct AuditView {
    at: String,
    actor: Option<String>,
    action: String,
    detail: String,
}

/// The entry a path names, if the caller may know of it.
async fn entry(
    state: &AppState,
    caller: Option<&Caller>,
    (k, ns, name): (&str, &str, &str),
) -> Result<store::Repo, ApiError> {
    let kind = match k {
        "dataset" => hub::RepoKind::Dataset,
        "model" => hub::RepoKind::Model,
        other => return Err(ApiError::field("kind", format!("`dataset` or `model`, not `{other}`"))),
    };
    let id = format!("{ns}/{name}");
    let repo = state
        .store
        .find_repo(kind, ns, name)
        .await?
        .ok_or_else(|| ApiError::not_found("catalogue entry", &id))?;
    if repo_access(caller, &repo) == RepoAccess::None {
        return Err(ApiError::not_found("catalogue entry", &id));
    }
    Ok(repo)
}

pub(crate) async fn show_policy(
    State(state): State<AppState>,
    crate::hub::MaybeCaller(caller): crate::hub::MaybeCaller,
    Path((k, ns, name)): Path<(String, String, String)>,
) -> ApiResult {
    let repo = entry(&state, caller.as_ref(), (&k, &ns, &name)).await?;
    ok(state.store.repo_policy(&repo.id).await?)
}

pub(crate) async fn set_policy(
    State(state): State<AppState>,
    caller: Caller,
    Path((k, ns, name)): Path<(String, String, String)>,
    Body(policy): Body<Policy>,
) -> ApiResult {
    let repo = entry(&state, Some(&caller), (&k, &ns, &name)).await?;
    if !decides_access(&caller, &repo) {
        return Err(ApiError::forbidden("the owner's members set an entry's policy"));
    }
    if let Some((field, problem)) = policy.problems().into_iter().next() {
        return Err(ApiError::field(&field, problem));
    }
    state
        .store
        .set_repo_policy(&repo.id, &policy, &caller.user.id, unix_now() as i64)
        .await?;
    ok(policy)
}

pub(crate) async fn request_access(
    State(state): State<AppState>,
    caller: Caller,
    Path((k, ns, name)): Path<(String, String, String)>,
    Body(req): Body<NewAccessRequest>,
) -> ApiResult {
    let repo = entry(&state, Some(&caller), (&k, &ns, &name)).await?;
    if repo.access_rights != hub::AccessRights::Restricted {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not-restricted",
            "access is asked for restricted entries only (public ones are open)",
        ));
    }
    non_empty("purpose", &req.purpose, 200)?;
    let org_id = match (&req.org, caller.memberships.as_slice()) {
        (Some(o), _) if caller.org_role(o).is_some() => o.clone(),
        (Some(o), _) => return Err(ApiError::field("org", format!("you are not a member of `{o}`"))),
        (None, [one]) => one.org_id.clone(),
        (None, []) => return Err(ApiError::forbidden("access is given to organisations: join one first")),
        (None, _) => {
            return Err(ApiError::field(
                "org",
                "you belong to several organisations: name the one asking",
            ));
        }
    };
    let org = state.store.get_org(&org_id).await?;
    let policy = state.store.repo_policy(&repo.id).await?;
    let requester = Requester {
        org_type: org.org_type.as_str().to_string(),
        country: org.country.clone(),
        sectors: org.sectors.clone(),
    };
    let (outcome, rules) = policy.evaluate(&requester, req.purpose.trim(), req.days);
    let decided = match outcome {
        Outcome::Grant(_) => RequestState::Granted,
        Outcome::Review => RequestState::Pending,
        Outcome::Refuse => RequestState::Refused,
    };
    let saved = state
        .store
        .create_access_request(
            &repo.id,
            &caller.user.id,
            &org_id,
            req.purpose.trim(),
            i64::from(req.days),
            decided,
            &rules,
            unix_now() as i64,
        )
        .await?;
    Ok(created(AccessRequestView::from(saved)))
}

pub(crate) async fn list_requests(
    State(state): State<AppState>,
    caller: Caller,
    Path((k, ns, name)): Path<(String, String, String)>,
) -> ApiResult {
    let repo = entry(&state, Some(&caller), (&k, &ns, &name)).await?;
    let everything = decides_access(&caller, &repo) || caller.sees_all();
    let requests = state.store.access_requests(&repo.id).await?;
    ok(items(
        requests
            .into_iter()
            .filter(|r| everything || r.user_id == caller.user.id)
            .map(AccessRequestView::from)
            .collect(),
    ))
}

/// A request and its entry, for the entry's owner to act on; the requester is told only
/// that the owner acts (`what`), strangers that it does not exist.
async fn owned_request(
    state: &AppState,
    caller: &Caller,
    id: &str,
    what: &str,
) -> Result<(store::AccessRequest, store::Repo), ApiError> {
    let request = state.store.access_request(id).await?;
    let repo = state
        .store
        .find_repo_by_id(&request.repo_id)
        .await?
        .ok_or_else(|| ApiError::not_found("access request", id))?;
    if !decides_access(caller, &repo) {
        return Err(if request.user_id == caller.user.id {
            ApiError::forbidden(format!("the entry's owner {what}"))
        } else {
            ApiError::not_found("access request", id)
        });
    }
    Ok((request, repo))
}

pub(crate) async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(d): Body<AccessDecision>,
) -> ApiResult {
    let (request, repo) = owned_request(&state, &caller, &id, "decides requests").await?;
    non_empty("reason", &d.reason, 2000)?;
    let policy = state.store.repo_policy(&repo.id).await?;
    let days = d.days.map_or(request.days, i64::from);
    if d.grant && !(1..=i64::from(policy.max_days)).contains(&days) {
        return Err(ApiError::field(
            "days",
            format!("from 1 to {} days (the policy's maximum)", policy.max_days),
        ));
    }
    let decided = state
        .store
        .decide_access_request(&id, &caller.user.id, d.grant, days, d.reason.trim(), unix_now() as i64)
        .await?;
    ok(AccessRequestView::from(decided))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Revocation {
    reason: String,
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(r): Body<Revocation>,
) -> ApiResult {
    owned_request(&state, &caller, &id, "revokes grants").await?;
    non_empty("reason", &r.reason, 2000)?;
    let revoked = state
        .store
        .revoke_access_grant(&id, &caller.user.id, r.reason.trim(), unix_now() as i64)
        .await?;
    ok(AccessRequestView::from(revoked))
}

pub(crate) async fn audit_log(
    State(state): State<AppState>,
    caller: Caller,
    Path((k, ns, name)): Path<(String, String, String)>,
) -> ApiResult {
    let repo = entry(&state, Some(&caller), (&k, &ns, &name)).await?;
    if !(decides_access(&caller, &repo) || caller.sees_all()) {
        return Err(ApiError::forbidden(
            "the owner's members and staff read an entry's audit log",
        ));
    }
    let log = state.store.hub_audit(&repo.id, 1000).await?;
    ok(items(
        log.into_iter()
            .map(|a| AuditView {
                at: rfc3339(a.at),
                actor: a.actor_user_id,
                action: a.action,
                detail: a.detail,
            })
            .collect(),
    ))
}
