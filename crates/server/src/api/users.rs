//! Users: the caller (`/me`) and creating users.

use super::prelude::*;

pub(crate) fn endpoints() -> Vec<Endpoint> {
    vec![
        e(
            "get",
            "/api/v1/me",
            "The caller and their memberships",
            true,
            &[],
            None,
            get(me),
        )
        .returns::<MeView>(),
        e(
            "put",
            "/api/v1/me/password",
            "Set the caller's password for the web portal (12 to 1024 characters; Argon2id at rest; ends the portal's other sessions)",
            true,
            &[],
            Some(schema::<NewPassword>),
            axum::routing::put(set_password),
        ),
        e(
            "post",
            "/api/v1/users",
            "Create a user (platform admin; organisation admins add members)",
            true,
            &[],
            Some(schema::<CreateUser>),
            post(create_user),
        )
        .returns::<UserView>(),
    ]
}

/// The caller and the organisations they belong to.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct MeView {
    user: UserView,
    memberships: Vec<store::Membership>,
}

pub(crate) async fn me(caller: Caller) -> ApiResult {
    ok(MeView {
        user: user_view(&caller.user),
        memberships: caller.memberships,
    })
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewPassword {
    password: String,
}

pub(crate) async fn set_password(
    State(state): State<AppState>,
    caller: Caller,
    Body(b): Body<NewPassword>,
) -> ApiResult {
    // A job's token acts for a job, not for its user's sign-in.
    if caller.job.is_some() {
        return Err(ApiError::forbidden("a job's token does not set passwords"));
    }
    let phc = crate::portal::hash_password(b.password).await?;
    state
        .store
        .set_password(&caller.user.id, &phc, unix_now() as i64)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A user as the API shows them: times in RFC 3339 like everywhere else.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct UserView {
    id: String,
    email: String,
    name: String,
    platform_role: Option<PlatformRole>,
    created_at: String,
    /// When the address was confirmed; until then the user cannot apply to calls.
    email_verified_at: Option<String>,
}

pub(crate) fn user_view(u: &User) -> UserView {
    UserView {
        id: u.id.clone(),
        email: u.email.clone(),
        name: u.name.clone(),
        platform_role: u.platform_role,
        created_at: rfc3339(u.created_at),
        email_verified_at: u.email_verified_at.map(rfc3339),
    }
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    email: String,
    name: String,
    platform_role: Option<PlatformRole>,
    org: Option<String>,
    role: Option<OrgRole>,
}

pub(crate) async fn create_user(State(state): State<AppState>, caller: Caller, Body(b): Body<CreateUser>) -> ApiResult {
    non_empty("name", &b.name, 200)?;
    if !b.email.contains('@') || b.email.len() > 320 {
        return Err(ApiError::field("email", "`email` is not an e-mail address"));
    }
    may_create_user(&caller, b.platform_role.is_some(), b.org.as_deref())?;
    if let Some(org) = &b.org {
        state.store.get_org(org).await?;
    }
    let user = state
        .store
        .create_user(&NewUser {
            email: b.email,
            name: b.name,
            platform_role: b.platform_role,
        })
        .await
        .map_err(|e| match (e, &b.org) {
            (store::StoreError::Conflict(words), Some(org)) => ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!("{words}: invite it instead (POST /api/v1/orgs/{org}/invitations)"),
            ),
            (e, _) => ApiError::from(e),
        })?;
    if let Some(org) = &b.org {
        state
            .store
            .add_membership(&user.id, org, b.role.unwrap_or(OrgRole::Member))
            .await?;
    }
    Ok(created(user_view(&user)))
}

/// A member of an organisation (with their role there) or of a project.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct MemberView {
    id: String,
    name: String,
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<OrgRole>,
}

pub(crate) fn member_view(u: &User, role: Option<OrgRole>) -> MemberView {
    MemberView {
        id: u.id.clone(),
        name: u.name.clone(),
        email: u.email.clone(),
        role,
    }
}
