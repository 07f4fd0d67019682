//! Organisations and who belongs to them.

use super::prelude::*;
use super::users::{MemberView, member_view};

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/orgs",
            "Create an organisation (platform admin)",
            true,
            &[],
            Some(schema::<CreateOrg>),
            post(create_org),
        )
        .returns::<OrgView>(),
        e(
            "get",
            "/api/v1/orgs",
            "Organisations the caller may see",
            true,
            &[],
            None,
            get(list_orgs),
        )
        .returns::<Items<OrgView>>(),
        e(
            "get",
            "/api/v1/orgs/{id}",
            "One organisation",
            true,
            &[],
            None,
            get(get_org),
        )
        .returns::<OrgView>(),
        e(
            "get",
            "/api/v1/orgs/{id}/members",
            "An organisation's members and their roles",
            true,
            &[],
            None,
            get(list_org_members),
        )
        .returns::<Items<MemberView>>(),
        e(
            "post",
            "/api/v1/orgs/{id}/members",
            "Add an existing user to an organisation without an invitation (platform admin, for onboarding)",
            true,
            &[],
            Some(schema::<AddMember>),
            post(add_org_member),
        )
        .returns::<MemberView>(),
        e(
            "delete",
            "/api/v1/orgs/{id}/members/{user}",
            "Remove a member from an organisation and its projects (organisation admin)",
            true,
            &[],
            None,
            axum::routing::delete(remove_org_member),
        ),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct OrgView {
    id: String,
    name: String,
    #[serde(rename = "type")]
    org_type: OrgType,
    country: String,
    sectors: Vec<String>,
    employees: Option<i64>,
    turnover_eur: Option<i64>,
    created_at: String,
}

pub(crate) fn org_view(o: &Org) -> OrgView {
    OrgView {
        id: o.id.clone(),
        name: o.name.clone(),
        org_type: o.org_type,
        country: o.country.clone(),
        sectors: o.sectors.clone(),
        employees: o.employees,
        turnover_eur: o.turnover_eur,
        created_at: rfc3339(o.created_at),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateOrg {
    name: String,
    #[serde(rename = "type")]
    org_type: OrgType,
    country: String,
    #[serde(default)]
    sectors: Vec<String>,
    employees: Option<i64>,
    turnover_eur: Option<i64>,
}

/// Checks an organisation's fields; `prefix` names where they sit in the request.
pub(crate) fn check_org_fields(b: CreateOrg, prefix: &str) -> Result<NewOrg, ApiError> {
    non_empty(&format!("{prefix}name"), &b.name, 200)?;
    if b.country.len() != 2 || !b.country.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(ApiError::field(
            &format!("{prefix}country"),
            "`country` must be an ISO 3166-1 alpha-2 code such as `IT`",
        ));
    }
    if b.employees.is_some_and(|e| e < 0) || b.turnover_eur.is_some_and(|t| t < 0) {
        return Err(ApiError::field(
            &format!("{prefix}employees"),
            "size figures must not be negative",
        ));
    }
    Ok(NewOrg {
        name: b.name.trim().to_string(),
        org_type: b.org_type,
        country: b.country,
        sectors: b.sectors,
        employees: b.employees,
        turnover_eur: b.turnover_eur,
    })
}

pub(crate) async fn create_org(State(state): State<AppState>, caller: Caller, Body(b): Body<CreateOrg>) -> ApiResult {
    platform_admin(&caller, "only platform admins create organisations")?;
    let org = state.store.create_org(&check_org_fields(b, "")?).await?;
    Ok(created(org_view(&org)))
}

pub(crate) async fn list_orgs(State(state): State<AppState>, caller: Caller) -> ApiResult {
    let orgs = state.store.list_orgs().await?;
    ok(items(
        orgs.iter().filter(|o| caller.sees_org(&o.id)).map(org_view).collect(),
    ))
}

pub(crate) async fn get_org(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    visible_org(&caller, &id)?;
    ok(org_view(&state.store.get_org(&id).await?))
}

pub(crate) async fn list_org_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    visible_org(&caller, &id)?;
    let members = state.store.org_members(&id).await?;
    ok(items(members.iter().map(|(u, r)| member_view(u, Some(*r))).collect()))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddMember {
    user: String,
    role: Option<OrgRole>,
}

pub(crate) async fn add_org_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<AddMember>,
) -> ApiResult {
    may_add_member_directly(&caller, &id)?;
    state.store.get_org(&id).await?;
    let user = state
        .store
        .get_user(&b.user)
        .await
        .map_err(|_| ApiError::field("user", format!("no user `{}`", b.user)))?;
    let role = b.role.unwrap_or(OrgRole::Member);
    state.store.add_membership(&user.id, &id, role).await?;
    state.auth_cache.clear();
    Ok(created(member_view(&user, Some(role))))
}

pub(crate) async fn remove_org_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult {
    admin_of(&caller, &id)?;
    state.store.remove_membership(&user, &id).await?;
    state.auth_cache.clear();
    state.submission_cache.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}
