//! Projects and their members.

use super::prelude::*;
use super::users::{MemberView, member_view};

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "post",
            "/api/v1/projects",
            "Create a project (organisation admin)",
            true,
            &[],
            Some(schema::<CreateProject>),
            post(create_project),
        )
        .returns::<ProjectView>(),
        e(
            "get",
            "/api/v1/projects",
            "Projects the caller may see",
            true,
            &["org"],
            None,
            get(list_projects),
        )
        .returns::<Items<ProjectView>>(),
        e(
            "get",
            "/api/v1/projects/{id}",
            "One project",
            true,
            &[],
            None,
            get(get_project),
        )
        .returns::<ProjectView>(),
        e(
            "get",
            "/api/v1/projects/{id}/members",
            "Who may submit to a project besides the organisation's admins",
            true,
            &[],
            None,
            get(list_project_members),
        )
        .returns::<Items<MemberView>>(),
        e(
            "post",
            "/api/v1/projects/{id}/members",
            "Add a member of the organisation to a project (organisation admin)",
            true,
            &[],
            Some(schema::<AddProjectMember>),
            post(add_project_member),
        )
        .returns::<MemberView>(),
        e(
            "delete",
            "/api/v1/projects/{id}/members/{user}",
            "Remove a member from a project (organisation admin)",
            true,
            &[],
            None,
            axum::routing::delete(remove_project_member),
        ),
    ]
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ProjectView {
    id: String,
    org: String,
    name: String,
    sector: String,
    /// The principal investigator (a user id).
    pi: Option<String>,
    created_at: String,
}

pub(crate) fn project_view(p: &Project) -> ProjectView {
    ProjectView {
        id: p.id.clone(),
        org: p.org_id.clone(),
        name: p.name.clone(),
        sector: p.sector.clone(),
        pi: p.pi_user_id.clone(),
        created_at: rfc3339(p.created_at),
    }
}

pub(crate) async fn list_project_members(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult {
    visible_project(&state, &caller, &id).await?;
    let members = state.store.project_members(&id).await?;
    ok(items(members.iter().map(|u| member_view(u, None)).collect()))
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddProjectMember {
    user: String,
}

pub(crate) async fn add_project_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Body(b): Body<AddProjectMember>,
) -> ApiResult {
    let project = visible_project(&state, &caller, &id).await?;
    admin_of(&caller, &project.org_id)?;
    let members = state.store.org_members(&project.org_id).await?;
    let Some((user, _)) = members.iter().find(|(u, _)| u.id == b.user) else {
        return Err(ApiError::field(
            "user",
            format!("`{}` is not a member of the project's organisation", b.user),
        ));
    };
    state.store.add_project_member(&id, &user.id).await?;
    state.submission_cache.clear();
    Ok(created(member_view(user, None)))
}

pub(crate) async fn remove_project_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> ApiResult {
    let project = visible_project(&state, &caller, &id).await?;
    admin_of(&caller, &project.org_id)?;
    state.store.remove_project_member(&id, &user).await?;
    state.submission_cache.clear();
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateProject {
    org: String,
    name: String,
    sector: String,
    pi: Option<String>,
}

pub(crate) async fn create_project(
    State(state): State<AppState>,
    caller: Caller,
    Body(b): Body<CreateProject>,
) -> ApiResult {
    visible_org(&caller, &b.org)?;
    if !caller.admins_org(&b.org) {
        return Err(ApiError::forbidden("organisation admins create projects"));
    }
    non_empty("name", &b.name, 200)?;
    non_empty("sector", &b.sector, 100)?;
    if let Some(pi) = &b.pi
        && !state.store.org_members(&b.org).await?.iter().any(|(u, _)| &u.id == pi)
    {
        return Err(ApiError::field(
            "pi",
            format!("the principal investigator `{pi}` is not a member of the organisation"),
        ));
    }
    let project = state
        .store
        .create_project(&NewProject {
            org_id: b.org,
            name: b.name,
            sector: b.sector,
            pi_user_id: b.pi,
        })
        .await?;
    Ok(created(project_view(&project)))
}

#[derive(Deserialize)]
pub(crate) struct ProjectQuery {
    org: Option<String>,
}

pub(crate) async fn list_projects(
    State(state): State<AppState>,
    caller: Caller,
    Params(q): Params<ProjectQuery>,
) -> ApiResult {
    let projects = state.store.list_projects(q.org.as_deref()).await?;
    ok(items(
        projects
            .iter()
            .filter(|p| caller.sees_org(&p.org_id))
            .map(project_view)
            .collect(),
    ))
}

pub(crate) async fn get_project(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult {
    ok(project_view(&visible_project(&state, &caller, &id).await?))
}
